"""Soak test: a long stream of sentences through a real ``lm score MODEL -``, memory watched.

    python scripts/soak_score.py [--sentences 1000000] [--model DIR] [--batch-size 128]
                                 [--seed 0] [--oov-rate 0.02]

Without ``--model`` a model is built in a temporary directory: a 10,000-word vocabulary (the
words of PTB's valid and test sets when /work/shared/corpora/ptb is there, padded with made-up
words), one-hot input, H = 200, tanh, random weights; the size of a typical PTB model.

The sentences, 1 to 30 words each (uniform), words drawn from the model's vocabulary with
Zipf frequencies (the i-th word with probability proportional to 1/i) and ``--oov-rate`` of
them replaced by words outside it, are generated lazily, 10,000 at a time: the stream is
never held in memory, here or in the child. A thread writes them into the child's stdin while
this process reads its stdout, so ``lm score`` sees a pipe exactly as in
``producer | lm score MODEL - > out``.

At 10%, 50% and 100% of the stream (counted by lines read back) it reports the throughput
(sentences and words per second since ``lm score`` started, model loading included, and over
the last segment),
the child's CPU time and its memory from /proc/PID/status: VmRSS (now) and VmHWM (peak so
far). Memory is flat when the peak at 100% exceeds the peak at 10% by at most 5% or 16 MB,
whichever is larger; the verdict compares the two. Exit status 0 when memory is flat, every
line came back with a finite log10 probability <= 0 and ``lm score`` exited 0; else 1.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

PTB = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "ptb"
MARKS = (0.1, 0.5, 1.0)
BLOCK = 10_000  # sentences generated at a time


# ----- the model and the stream -----


def build_model(directory: str, n_vocab: int = 10_000, hidden: int = 200, seed: int = 0) -> str:
    """A random-weight model of PTB's size written to ``directory`` (see the module doc)."""
    from lm import checkpoint, data
    from lm.model import ModelConfig, Network
    from lm.tokenizer import Vocab

    lines: list[str] = []
    for name in ("ptb.valid.txt", "ptb.test.txt"):
        if (PTB / name).is_file():
            lines += data.read_lines(PTB / name)
    real = Vocab.build(lines).size if lines else 3
    lines.append(" ".join(f"word{i}" for i in range(max(0, n_vocab - real))))
    vocab = Vocab.build(lines)
    config = ModelConfig(n_vocab=vocab.size, hidden=hidden)
    net = Network.create(config, np.random.default_rng(seed))
    checkpoint.save_model(directory, net, vocab)
    return directory


def model_words(directory: str) -> list[str]:
    """The model's words, most frequent first (Vocab.build's order), boundaries left out."""
    import lm

    return [w for w in lm.load(directory).vocab.words if w not in ("<s>", "</s>")]


def sentences(words: list[str], n: int, seed: int = 0, oov_rate: float = 0.02) -> Iterator[str]:
    """``n`` sentences of 1 to 30 words, made ``BLOCK`` at a time (see the module doc)."""
    rng = np.random.default_rng(seed)
    vocab = np.array(words, dtype=object)
    p = 1.0 / np.arange(1, len(words) + 1)
    p /= p.sum()
    made = 0
    while made < n:
        lengths = rng.integers(1, 31, size=min(BLOCK, n - made))
        tokens = vocab[rng.choice(len(words), size=int(lengths.sum()), p=p)]
        oov = rng.random(len(tokens)) < oov_rate
        tokens[oov] = [f"zz{j}" for j in rng.integers(0, 10**9, size=int(oov.sum()))]
        ends = np.cumsum(lengths)
        for lo, hi in zip((ends - lengths).tolist(), ends.tolist()):
            yield " ".join(tokens[lo:hi])
        made += len(lengths)


# ----- watching the child -----


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM in MB and CPU seconds (user + system) of process ``pid``."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024  # kB
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    out["cpu"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def feed(stdin, lines: Iterator[str]) -> None:
    """Write ``lines`` into the child's stdin, 1,000 at a time; then close it."""
    try:
        batch = []
        for line in lines:
            batch.append(line)
            if len(batch) == 1000:
                stdin.write(("\n".join(batch) + "\n").encode("utf-8"))
                batch.clear()
        if batch:
            stdin.write(("\n".join(batch) + "\n").encode("utf-8"))
    except BrokenPipeError:  # the child died; the main thread reports it
        pass
    finally:
        try:
            stdin.close()
        except BrokenPipeError:
            pass


def soak(model: str, n: int, batch_size: int, seed: int, oov_rate: float) -> int:
    words = model_words(model)
    print(
        f"model {model}: {len(words) + 2} words; streaming {n:,} sentences of 1-30 words "
        f"({oov_rate:.0%} OOV) through lm score",
        flush=True,
    )
    cmd = [sys.executable, "-m", "lm.cli", "score", model, "-", "--batch-size", str(batch_size)]
    with tempfile.TemporaryFile() as err:
        t_start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        return watch(proc, err, t_start, sentences(words, n, seed, oov_rate), n)


def watch(proc: subprocess.Popen, err, t_start: float, lines: Iterator[str], n: int) -> int:
    """Feed ``lines`` (``n`` of them) to ``proc`` from a thread while reading its output here;
    report at the marks; return the verdict's exit status."""
    writer = threading.Thread(target=feed, args=(proc.stdin, lines), daemon=True)
    writer.start()

    marks = [max(1, math.ceil(f * n)) for f in MARKS]
    rows, bad, got, n_words, t_first = [], 0, 0, 0, None
    last = (0, 0.0)  # (lines, seconds) at the previous mark
    header = (
        f"{'stream':>6} {'sentences':>10} {'seconds':>8} {'sent/s':>8} {'segment':>8} "
        f"{'words/s':>8} {'CPU s':>7} {'VmRSS MB':>9} {'VmHWM MB':>9}"
    )
    print(header, flush=True)
    for line in proc.stdout:
        got += 1
        if t_first is None:
            t_first = time.perf_counter()
        lp, tokens, _ = line.split(b"\t", 2)  # log10prob, tokens (words + </s>), ...
        n_words += int(tokens) - 1
        bad += not (math.isfinite(float(lp)) and float(lp) <= 0)
        if got in marks:
            now = time.perf_counter() - t_start
            st = proc_status(proc.pid)
            seg = (got - last[0]) / max(now - last[1], 1e-9)
            row = {
                "mark": MARKS[marks.index(got)],
                "lines": got,
                "seconds": now,
                "rate": got / max(now, 1e-9),
                "segment": seg,
                "words": n_words / max(now, 1e-9),
                **st,
            }
            rows.append(row)
            last = (got, now)
            print(
                f"{row['mark']:>6.0%} {got:>10,} {now:>8.1f} {row['rate']:>8.0f} {seg:>8.0f} "
                f"{row['words']:>8.0f} {st['cpu']:>7.1f} {st['VmRSS']:>9.1f} "
                f"{st['VmHWM']:>9.1f}",
                flush=True,
            )
    code = proc.wait()
    writer.join()
    err.seek(0)
    stderr = err.read().decode("utf-8", "replace")
    total = time.perf_counter() - t_start
    print(
        f"lm score exited {code} after {total:.1f} s (startup and model loading "
        f"{(t_first or t_start) - t_start:.1f} s); its summary:"
    )
    print("  " + "\n  ".join(stderr.strip().splitlines()[-2:]))
    return verdict(rows, n, got, bad, code, stderr)


def verdict(rows: list[dict], n: int, got: int, bad: int, code: int, stderr: str) -> int:
    ok = code == 0 and got == n and bad == 0 and f"{n} sentences" in stderr
    if not ok:
        print(f"FAILED: exit {code}, {got:,} of {n:,} lines back, {bad} bad log10 probabilities")
    if len(rows) < len(MARKS):
        return 1
    first, end = rows[0], rows[-1]
    growth = end["VmHWM"] - first["VmHWM"]
    allowed = max(0.05 * first["VmHWM"], 16.0)
    flat = growth <= allowed
    print(
        f"memory {'flat' if flat else 'GROWS'}: peak RSS {first['VmHWM']:.1f} MB at 10%, "
        f"{end['VmHWM']:.1f} MB at 100% ({growth:+.1f} MB, {growth / first['VmHWM']:+.1%}; "
        f"allowed {allowed:.1f} MB); RSS now {first['VmRSS']:.1f} -> {end['VmRSS']:.1f} MB"
    )
    print(
        f"throughput: {end['rate']:.0f} sentences/s, {end['words']:.0f} words/s overall; "
        f"{got / max(end['cpu'], 1e-9):.0f} sentences per CPU second"
    )
    return 0 if ok and flat else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=1_000_000)
    parser.add_argument("--model", help="model directory (default: build one, see above)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--oov-rate", type=float, default=0.02)
    args = parser.parse_args()
    if args.sentences < 10:
        parser.error("--sentences must be at least 10")
    if args.model:
        return soak(args.model, args.sentences, args.batch_size, args.seed, args.oov_rate)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model = build_model(os.path.join(tmp, "model"), seed=args.seed)
        print(f"built a random-weight model in {time.perf_counter() - t0:.1f} s")
        return soak(model, args.sentences, args.batch_size, args.seed, args.oov_rate)


if __name__ == "__main__":
    sys.exit(main())
