"""Cluster scoring speed: one process against --workers 1 and --workers 2, in one run.

    python scripts/bench_cluster.py [--sentences 300000] [--hidden 200] [--vocab 10000]
        [--batch-size 128] [--per-token] [--rounds 1]

The model of bench_score.py (embedding input, E = H = 200, a 10k vocabulary made of the words
of ptb.valid.txt + ptb.test.txt padded with unused filler words, random weights) is saved to
a temporary directory; ptb.test.txt is repeated to ``--sentences`` lines. Then three real
commands score that file, their stdout read through a pipe:

    one process    lm --threads 1 score MODEL IN
    --workers 1    lm score MODEL IN --workers 1     (one single-threaded worker process)
    --workers 2    lm score MODEL IN --workers 2

For each: the wall time from start to exit (the LocalCluster's start and stop included), the
time to the first output line (loading, starting the cluster, the first chunk), and the
sentences per second over the whole run and after the first line (the steady rate). The
three outputs must be identical byte for byte (checked by hash). The targets: workers 2 at
least 1.7 times workers 1, and workers 1 within 15% of one process (the cluster's overhead);
both are printed as ratios of the whole-run rates. With ``--rounds R`` the three take turns R
times and the best run of each counts (a shared machine slows some runs down).

Quick check that the script works (a few seconds): ``--sentences 2000 --hidden 16 --vocab
0`` (``--vocab 0``: only the words of PTB, no filler).

``--client-costs`` measures instead what a chunk costs outside the workers, for the
README's on-paper scaling: in this process, per chunk of ``lm score``'s 512 lines, (1) input:
reading and decoding the lines and cutting the chunks; (2) output: what the client does with
a worker's reply (unpickling it, rebuilding each SentenceScore, adding it to the totals,
writing the formatted lines); (3) the worker's scoring of the chunk on one BLAS thread, for
scale; and (4) the scheduler: the time per task of a LocalCluster of 2 workers running 2,000
empty tasks submitted at once (as with hundreds of workers, 3 chunks in flight each).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lm import checkpoint, data
from lm.model import ModelConfig, Network
from lm.tokenizer import Vocab

ROOT = Path(__file__).resolve().parents[1]
PTB = ROOT.parent / "shared" / "corpora" / "ptb"
LM = [sys.executable, "-m", "lm.cli"]


def build_model(directory: Path, hidden: int, n_vocab: int, seed: int = 0) -> str:
    """bench_score.py's model: PTB's words padded with fillers to n_vocab, random weights."""
    lines = [*data.read_lines(PTB / "ptb.valid.txt"), *data.read_lines(PTB / "ptb.test.txt")]
    n_real = Vocab.build(lines).size
    fillers = " ".join(f"<filler{i}>" for i in range(max(0, n_vocab - n_real)))
    vocab = Vocab.build([*lines, fillers])
    config = ModelConfig(n_vocab=vocab.size, hidden=hidden, input="embedding", embed_dim=hidden)
    net = Network.create(config, np.random.default_rng(seed))
    checkpoint.save_model(directory, net, vocab)
    return str(directory)


def repeated_test_set(path: Path, n: int) -> int:
    """ptb.test.txt repeated (and cut) to n lines; returns n."""
    test = [line + "\n" for line in data.read_lines(PTB / "ptb.test.txt")]
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(test[i % len(test)] for i in range(n))
    return n


def timed(args: list[str], env: dict) -> dict:
    """Run a command; time it, the first stdout line, and hash its stdout."""
    digest = hashlib.sha256()
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = None
    lines = 0
    for line in proc.stdout:
        if first is None:
            first = time.perf_counter() - start
        lines += 1
        digest.update(line)
    err = proc.stderr.read().decode()
    proc.wait()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{err}")
    return {"wall": wall, "first": first or wall, "lines": lines, "sha": digest.hexdigest()}


def best_time(f, repeat: int = 5) -> float:
    """The shortest of ``repeat`` timed calls of f(), in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def client_costs(model_dir: str, path: Path, batch_size: int) -> None:
    """Print the per-chunk costs of the input, the output, a worker and the scheduler."""
    import pickle

    import distributed
    from threadpoolctl import threadpool_limits

    import lm
    from lm import cluster, formats
    from lm.cli.score import result_text

    model = lm.load(model_dir)
    shape = functools.partial(result_text, fmt="text", as_json=False, per_token=False,
                              oovs_scored=False)  # lm score's default line  # fmt: skip
    chunk_lines = 4 * batch_size  # lm score's chunk
    n_lines = sum(1 for _ in data.read_lines(path))
    n_chunks = -(-n_lines // chunk_lines)
    reading = best_time(lambda: sum(1 for _ in cluster.read_chunks(data.read_lines(path),
                                                                    chunk_lines)), 3)  # fmt: skip
    chunk = next(cluster.read_chunks(data.read_lines(path), chunk_lines))
    with threadpool_limits(limits=1, user_api="blas"):
        scoring_s = best_time(lambda: cluster._score(model, chunk.lines, True, True, batch_size,
                                                     shape, None), 3)  # fmt: skip
        reply = pickle.dumps(cluster._score_on_worker(
            cluster.model_loader(model_dir), chunk.lines, True, True, batch_size,
            shape, None,
        ))  # fmt: skip

    def take_reply():
        r = pickle.loads(reply).unpack(chunk, True, True)
        totals = formats.Totals()
        for sentence in r.scores:
            totals.add(sentence)
        with open(os.devnull, "w", encoding="utf-8") as out:
            out.write(r.text + "\n")

    output = best_time(take_reply)
    local = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=50
    )
    with local, distributed.Client(local) as client:
        client.submit(int, 0, pure=False).result()
        n_tasks = 2000  # all in flight at once, as with hundreds of workers (3 per thread)
        start = time.perf_counter()
        client.gather(client.map(int, range(n_tasks), pure=False))
        per_task = (time.perf_counter() - start) / n_tasks
    print(f"per chunk of {chunk_lines} lines ({n_lines:,} lines, {n_chunks:,} chunks), "
          f"E = H = {model.net.hidden}, V = {model.vocab.size}:")  # fmt: skip
    rows = [
        ("input: read, decode, cut", reading / n_chunks),
        ("output: unpickle, unpack, totals, write", output),
        ("scheduler: one task (2,000 empty tasks)", per_task),
        ("a worker scoring it (one BLAS thread)", scoring_s),
    ]
    for name, sec in rows:
        print(f"  {name:42} {sec * 1e3:9.2f} ms  ({sec / chunk_lines * 1e6:7.1f} us a line)")
    client_s = reading / n_chunks + output
    print(f"one client keeps up with about {scoring_s / client_s:,.0f} such workers "
          f"({chunk_lines / client_s:,.0f} lines/s); one scheduler with about "
          f"{scoring_s / per_task:,.0f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sentences", type=int, default=300_000)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--vocab", type=int, default=10_000, help="0: PTB's words only")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--per-token", action="store_true", help="score with --per-token")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--client-costs", action="store_true", help="per-chunk costs outside workers")
    a = p.parse_args()
    if not PTB.is_dir():
        raise SystemExit(f"{PTB}: not found (the Penn Treebank files ptb.valid.txt, ptb.test.txt)")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_model(tmp / "model", a.hidden, a.vocab)
        n = repeated_test_set(tmp / "in.txt", a.sentences)
        if a.client_costs:
            return client_costs(model, tmp / "in.txt", a.batch_size)
        common = [model, str(tmp / "in.txt"), "--batch-size", str(a.batch_size), "--quiet"]
        common += ["--per-token"] * a.per_token
        runs = {
            "one process": [*LM, "--threads", "1", "score", *common],
            "--workers 1": [*LM, "score", *common, "--workers", "1"],
            "--workers 2": [*LM, "score", *common, "--workers", "2"],
        }
        best: dict[str, dict] = {}
        for r in range(a.rounds):
            order = list(runs)[r % 3 :] + list(runs)[: r % 3]  # rotate who goes first
            for name in order:
                t = timed(runs[name], env)
                if t["lines"] != n:
                    raise SystemExit(f"{name}: {t['lines']} lines out, {n} in")
                if name not in best or t["wall"] < best[name]["wall"]:
                    best[name] = t
    print(
        f"{n:,} sentences (ptb.test.txt repeated), E = H = {a.hidden}, "
        f"batch {a.batch_size}{', per token' if a.per_token else ''}; best of {a.rounds}"
    )
    print(f"{'':12} {'wall s':>8} {'first line s':>13} {'sentences/s':>12} {'steady/s':>10}")
    rate = {}
    for name, t in best.items():
        rate[name] = n / t["wall"]
        steady = (n - 1) / max(t["wall"] - t["first"], 1e-9)
        print(f"{name:12} {t['wall']:8.2f} {t['first']:13.2f} {rate[name]:12,.0f} {steady:10,.0f}")
    same = len({t["sha"] for t in best.values()}) == 1
    print(f"outputs identical byte for byte: {'yes' if same else 'NO'}")
    two_over_one = rate["--workers 2"] / rate["--workers 1"]
    one_over_single = rate["--workers 1"] / rate["one process"]
    print(f"--workers 2 / --workers 1 = {two_over_one:.2f} (target >= 1.7)")
    print(f"--workers 1 / one process = {one_over_single:.2f} (target >= 0.85)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
