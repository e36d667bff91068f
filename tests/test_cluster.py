"""Scoring on a Dask cluster (lm.cluster, lm/cli/cluster.py): the same bytes as one process
with one BLAS thread, streamed in order, and the faults: a worker killed by PID, a chunk past
Dask's allowed-failures, a worker that cannot read the model, a scheduler unreachable or gone,
Ctrl-C against a real process, a non-UTF-8 line, Dask not installed.

One LocalCluster (two single-threaded worker processes) serves the whole module; commands
reach it with --scheduler. References come from one process with one BLAS thread: ``lm
--threads 1`` in a subprocess, or this process under ``threadpool_limits(1)``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings

import dask
import distributed
import numpy as np
import psutil
import pytest
from click.testing import CliRunner
from lmfixtures import make_model, save_model_dir
from threadpoolctl import threadpool_info, threadpool_limits

import lm
from corpora.ngram import KneserNeyBigram
from lm import cluster, scoring
from lm.cli import cluster as cli_cluster
from lm.cli import main
from lm.cli.score import result_text
from lm.errors import ClusterError, DataError

LM = [sys.executable, "-m", "lm.cli"]
ENV = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
WORDS = [f"w{i}" for i in range(100)] + ["caf\u00e9", "na\u00efve"]


def sentences(n: int, seed: int = 0, vocab=WORDS, longest: int = 25) -> list[str]:
    """n random sentences of 0 to longest - 1 words, a fifth of the non-empty ones with a word
    outside the training vocabulary."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, longest, size=n)
    words = np.asarray(vocab, dtype=object)[rng.integers(len(vocab), size=int(lengths.sum()))]
    starts = np.cumsum(lengths) - lengths
    oov = (lengths > 0) & (rng.random(n) < 0.2)
    at = starts[oov] + (rng.random(int(oov.sum())) * lengths[oov]).astype(int)
    words[at] = [f"oov{k}" for k in rng.integers(1000, size=len(at))]
    return [" ".join(words[s : s + k]) for s, k in zip(starts, lengths)]


def write(path, lines) -> str:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def one_process(*args) -> subprocess.CompletedProcess:
    """``lm --threads 1 ARGS...`` as a separate process (the figure to match bit for bit)."""
    one = subprocess.run(
        [*LM, "--threads", "1", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert one.returncode == 0, one.stderr
    return one


def reference(*args, input=None):
    """The command in this process with one BLAS thread (what ``lm --threads 1`` does)."""
    with threadpool_limits(limits=1, user_api="blas"):
        return run(*args, input=input)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model = make_model(lines=sentences(1000, seed=1), hidden=32, input="embedding", embed_dim=32)
    return save_model_dir(tmp_path_factory.mktemp("model"), model)


@pytest.fixture(scope="module")
def model(model_dir):
    return lm.load(model_dir)


@pytest.fixture(scope="module")
def big_model_dir(tmp_path_factory):
    """Slower to score (H = 64, 400 words): runs long enough to be killed or interrupted."""
    words = [f"w{i}" for i in range(400)]
    model = make_model(lines=sentences(2000, seed=2, vocab=words), hidden=64)
    return save_model_dir(tmp_path_factory.mktemp("big_model"), model)


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> str:
    return write(tmp_path_factory.mktemp("text") / "text.txt", sentences(3000))


@pytest.fixture(scope="module")
def client():
    with cluster.connect(workers=2) as c:
        yield c


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv("LM_DEBUG", raising=False)


def address(client) -> str:
    return client.scheduler.address


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(client) -> None:
    """Wait for the module's cluster to have its two workers again (after a kill)."""
    client.wait_for_workers(2, timeout=60)


# ----- the same bytes as one process -----


@pytest.fixture(scope="module")
def arpa(tmp_path_factory) -> str:
    pytest.importorskip("kenlm")
    path = tmp_path_factory.mktemp("ngram") / "bigram.arpa"
    KneserNeyBigram().fit(sentences(500, seed=1)).write_arpa(path)
    return str(path)


@pytest.mark.parametrize(
    "flags",
    [
        ["--per-token"],
        ["--json", "--per-token", "--no-bos", "--batch-size", "16"],
        ["--format", "srilm", "--unk-penalty", "-7"],
        ["--ngram", "ARPA", "--ngram-weight", "0.3"],
    ],
    ids=["kenlm", "json", "srilm-unk-penalty", "ngram-mixture"],
)
def test_score_on_the_cluster_is_bit_for_bit_lm_threads_1_score(
    client, model_dir, text, flags, request
):
    if "ARPA" in flags:
        flags = [request.getfixturevalue("arpa") if f == "ARPA" else f for f in flags]
    one = one_process("score", model_dir, text, *flags)
    result = run("score", model_dir, text, *flags, "--scheduler", address(client))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == one.stdout
    assert result.stderr == one.stderr  # the SRILM summary, to the last digit
    if "srilm" not in flags:  # one line per sentence (SRILM's shape has a block each)
        assert len(result.stdout.splitlines()) == 3000


@pytest.mark.parametrize("flags", [[], ["--unk-penalty", "-7"]], ids=["plain", "unk-penalty"])
def test_perplexity_on_the_cluster_is_bit_for_bit(client, model_dir, text, flags):
    one = one_process("perplexity", model_dir, text, "--json", "--quiet", *flags)
    where = ["--scheduler", address(client)]
    result = run("perplexity", model_dir, text, "--json", *flags, *where)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == one.stdout
    as_text = run("perplexity", model_dir, text, *flags, *where)
    assert as_text.stdout == reference("perplexity", model_dir, text, "--quiet", *flags).stdout


def nbest_lines(n_keys: int, seed: int = 3) -> list[str]:
    """A Kaldi n-best list: n_keys utterances of 1 to 40 hypotheses each."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 41, size=n_keys)
    hyps = iter(sentences(int(counts.sum()), seed=seed))
    return [f"utt{k} {next(hyps)}".rstrip() for k, n in enumerate(counts) for _ in range(n)]


@pytest.fixture(scope="module")
def nbest_file(tmp_path_factory) -> str:
    return write(tmp_path_factory.mktemp("nbest") / "kaldi.txt", nbest_lines(300))


@pytest.mark.parametrize(
    "flags",
    [[], ["--best", "--lm-weight", "2", "--word-penalty", "-0.5"], ["--unk-penalty", "-7"]],
    ids=["scores", "best", "unk-penalty"],
)
def test_rescore_on_the_cluster_is_bit_for_bit_lm_threads_1_rescore(
    client, model_dir, nbest_file, flags
):
    one = one_process("rescore", model_dir, nbest_file, *flags)
    assert len(one.stdout.splitlines()) == (300 if "--best" in flags else len(nbest_lines(300)))
    result = run("rescore", model_dir, nbest_file, *flags, "--scheduler", address(client))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == one.stdout


def test_rescore_srilm_lists_on_the_cluster_chained_or_one_output_each(
    client, model_dir, tmp_path
):
    """SRILM lists (one per file): to stdout one after another as one process writes them,
    or with --out-dir to DIR/NAME.rescored each; a rerun skips the lists already done."""
    lists = tmp_path / "lists"
    lists.mkdir()
    for i in range(3):
        hyps = sentences(50 + 30 * i, seed=10 + i)
        write(lists / f"u{i}.nb", [f"{-i - k} 0 {len(h.split())} {h}".rstrip() for k, h in
                                   enumerate(hyps)])  # fmt: skip
    files = sorted(str(p) for p in lists.iterdir())
    where = ["--scheduler", address(client)]
    expected = reference("rescore", model_dir, *files, "--format", "srilm").stdout
    got = run("rescore", model_dir, *files, "--format", "srilm", *where)
    assert got.exit_code == 0, got.stderr
    assert got.stdout == expected
    out = tmp_path / "out"
    got = run("rescore", model_dir, str(lists), "--format", "srilm", "--out-dir", out, *where)
    assert got.exit_code == 0, got.stderr
    assert sorted(os.listdir(out)) == [f"u{i}.nb.rescored" for i in range(3)]
    assert "".join((out / f"u{i}.nb.rescored").read_text() for i in range(3)) == expected
    (out / "u1.nb.rescored").unlink()
    again = run("rescore", model_dir, str(lists), "--format", "srilm", "--out-dir", out, *where)
    assert again.exit_code == 0 and "2 of 3 inputs already done" in again.stderr
    assert "".join((out / f"u{i}.nb.rescored").read_text() for i in range(3)) == expected


def test_rescore_with_workers_starts_its_own_cluster_and_names_a_bad_line(
    model_dir, nbest_file, tmp_path
):
    bad = tmp_path / "bad.nb"
    bad.write_text("-1 0 1 a\nnot numbers here\n")
    got = run("rescore", model_dir, bad, "--format", "srilm", "--workers", "1")
    assert got.exit_code == 1
    assert got.stderr.strip().splitlines()[-1].startswith(f"lm: error: {bad}:2: ")


def test_api_perplexity_with_a_client_equals_one_process(client, model_dir, model, text):
    with threadpool_limits(limits=1, user_api="blas"):
        expected = lm.perplexity(model, text, progress=False)
        expected_lines = lm.perplexity(model, sentences(700, seed=5))
    assert lm.perplexity(model_dir, text, client=client) == expected  # a path: workers load it
    assert lm.perplexity(model, text, client=client, progress=False) == expected
    assert lm.perplexity(model, sentences(700, seed=5), client=client) == expected_lines
    assert lm.perplexity(model_dir, text) == lm.perplexity(model, text)  # no client: loaded here


def test_workers_run_one_blas_thread(client, model_dir, text):
    lm.perplexity(model_dir, text, client=client)
    threads = client.run(
        lambda: max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    )
    assert set(threads.values()) == {1}


def test_stdin_on_the_cluster(client, model_dir):
    stdin = "".join(line + "\n" for line in sentences(600, seed=3))
    result = run("score", model_dir, "-", "--scheduler", address(client), input=stdin)
    assert result.exit_code == 0, result.stderr
    expected = reference("score", model_dir, input=stdin)
    assert (result.stdout, result.stderr) == (expected.stdout, expected.stderr)


def test_a_chunk_of_long_lines_is_scored_without_dask_warnings(client, model_dir, tmp_path):
    path = tmp_path / "long.txt"
    path.write_text(" ".join(["the", "cat", "y" * 2000, "sat"] * 100) + "\nthe cat\n")
    # Dask warns about tasks over 10 MB ("Sending large graph"): here, over 100 kB
    limit = {"distributed.admin.large-graph-warning-threshold": "100kB"}
    with dask.config.set(limit), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run("score", model_dir, path, "--scheduler", address(client))
    assert [str(w.message) for w in caught if "graph" in str(w.message)] == []
    assert result.exit_code == 0, result.stderr
    expected = reference("score", model_dir, path)
    assert (result.stdout, result.stderr) == (expected.stdout, expected.stderr)


def test_the_progress_bar_counts_sentences_on_stderr(client, model_dir, text, monkeypatch):
    bars = []

    class Recorded(cli_cluster.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.counted = 0
            bars.append((kwargs, self))

        def update(self, n=1):
            self.counted += n
            return super().update(n)

    monkeypatch.setattr(cli_cluster, "tqdm", Recorded)
    assert run("score", model_dir, text, "--scheduler", address(client)).exit_code == 0
    ((kwargs, bar),) = bars
    assert kwargs["disable"] is None  # tqdm's own choice: on for a terminal, off otherwise
    assert (kwargs["unit"], bar.counted) == (" sentences", 3000)
    assert run("score", model_dir, text, "--scheduler", address(client), "-q").exit_code == 0
    assert bars[1][0]["disable"] is True


def test_workers_option_starts_and_stops_its_own_cluster(model_dir, tmp_path):
    path = write(tmp_path / "t.txt", sentences(300, seed=4))
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = run("score", model_dir, path, "--workers", "1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == reference("score", model_dir, path).stdout
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    _, alive = psutil.wait_procs(left, timeout=30)
    assert alive == []


# ----- streaming -----


def test_chunks_in_flight_are_bounded_and_results_come_in_order(client, model):
    lines = sentences(4000, seed=6, longest=8)
    pulled = []

    def chunks():
        for c in cluster.read_chunks(lines, 50, "x"):
            pulled.append(c.first)
            yield c

    limit = cluster.PER_WORKER * 2
    fmt = functools.partial(
        result_text, fmt="text", as_json=False, per_token=False, oovs_scored=False
    )
    texts = []
    for r in cluster.in_order(client, model, chunks(), format=fmt):
        texts.append(r.text)
        assert len(pulled) - len(texts) <= limit  # never more than `limit` chunks ahead
    assert len(texts) == 80
    with threadpool_limits(limits=1, user_api="blas"):
        expected = [
            "\n".join(fmt(s, model.vocab) for s in chunk)
            for chunk in scoring.score_chunks(model, lines, chunk_lines=50)
        ]
    assert texts == expected


def test_workers_send_back_every_number_and_apply_the_transform(client, model):
    lines = sentences(1500, seed=12)
    penalty = lambda s: dataclasses.replace(s, log10probs=np.where(s.oov, -5.0, s.log10probs))
    fmt = functools.partial(
        result_text, fmt="text", as_json=False, per_token=True, oovs_scored=False
    )

    def run_on(c):
        chunks = cluster.read_chunks(lines, 256, "x")
        return list(cluster.in_order(c, model, chunks, format=fmt, transform=penalty))

    with threadpool_limits(limits=1, user_api="blas"):
        here = run_on(None)  # in this process: the same functions, no transport
    there = run_on(client)
    assert [r.text for r in there] == [r.text for r in here]
    got = [s for r in there for s in r.scores]
    expected = [s for r in here for s in r.scores]
    assert [s.sentence for s in got] == lines
    for g, e in zip(got, expected):
        assert (g.bos, g.eos) == (e.bos, e.eos)
        for name in ("ids", "oov", "log10probs"):
            a, b = getattr(g, name), getattr(e, name)
            assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert any(s.oovs for s in got)
    assert all(np.all(s.log10probs[s.oov] == -5.0) for s in got)


def test_read_chunks_cuts_where_score_chunks_cuts():
    lines = [str(i) for i in range(10)]
    got = list(cluster.read_chunks(lines, 4, "f"))
    assert [c.lines for c in got] == [lines[0:4], lines[4:8], lines[8:10]]
    assert [(c.name, c.first) for c in got] == [("f", 1), ("f", 5), ("f", 9)]
    assert list(cluster.read_chunks([], 4)) == []
    assert [c.first for c in cluster.read_chunks(lines[:8], 4)] == [1, 5]


# ----- many inputs: --out-dir -----


def shards(tmp_path, n=3, lines=400):
    d = tmp_path / "shards"
    d.mkdir()
    for i in range(n):
        write(d / f"part-{i}.txt", sentences(lines + 37 * i, seed=10 + i))
    (d / ".hidden").write_text("not an input\n")
    return d


def test_out_dir_one_output_per_shard_and_a_rerun_skips_finished_ones(client, model_dir, tmp_path):
    d = shards(tmp_path)
    out = tmp_path / "out"
    result = run("score", model_dir, d, "--out-dir", out, "--scheduler", address(client))
    assert result.exit_code == 0, result.stderr
    assert sorted(os.listdir(out)) == [f"part-{i}.txt.scores" for i in range(3)]
    for i in range(3):
        one = reference("score", model_dir, d / f"part-{i}.txt")
        assert (out / f"part-{i}.txt.scores").read_text(encoding="utf-8") == one.stdout
        assert one.stderr in result.stderr  # each shard's summary
    # a rerun: a finished output is kept as it is, a missing one is written, a killed run's
    # temporary file of a pending output is removed
    (out / "part-0.txt.scores").write_text("kept\n")
    os.remove(out / "part-1.txt.scores")
    (out / ".tmp-abcd1234-part-1.txt.scores").write_text("half")
    again = run("score", model_dir, d, "--out-dir", out, "--scheduler", address(client))
    assert again.exit_code == 0, again.stderr
    assert again.stderr.startswith(f"lm: 2 of 3 inputs already done in {out}: skipped\n")
    assert (out / "part-0.txt.scores").read_text() == "kept\n"
    assert (out / "part-1.txt.scores").read_text(encoding="utf-8") == reference(
        "score", model_dir, d / "part-1.txt"
    ).stdout
    assert sorted(os.listdir(out)) == [f"part-{i}.txt.scores" for i in range(3)]


def test_out_dir_takes_a_glob_and_works_without_a_cluster(model_dir, tmp_path):
    d = shards(tmp_path)
    out = tmp_path / "out"
    result = run("perplexity", model_dir, str(d / "part-[02].txt"), "--out-dir", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert sorted(os.listdir(out)) == ["part-0.txt.ppl", "part-2.txt.ppl"]
    for i in (0, 2):
        got = json.loads((out / f"part-{i}.txt.ppl").read_text())
        one = json.loads(run("perplexity", model_dir, d / f"part-{i}.txt", "--json", "-q").stdout)
        assert got == one


@pytest.mark.parametrize(
    "args, message",
    [
        (["A", "B"], "2 inputs: give --out-dir DIR"),
        (["-", "--out-dir", "OUT"], "not stdin"),
        (["A", "SUB/A", "--out-dir", "OUT"], "would both write"),
        (["A", "--workers", "2", "--scheduler", "tcp://x:1"], "exclude each other"),
        (["A", "--workers", "0"], "--workers"),
    ],
)
def test_bad_cluster_options_are_usage_errors(model_dir, tmp_path, args, message):
    (tmp_path / "SUB").mkdir()
    for name in ("A", "B", "SUB/A"):
        write(tmp_path / name, ["the cat"])
    args = [str(tmp_path / a) if a in ("A", "B", "SUB/A", "OUT") else a for a in args]
    result = run("score", model_dir, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_a_glob_that_matches_nothing_is_a_one_line_error(model_dir, tmp_path):
    pattern = str(tmp_path / "nothing-*.txt")
    result = run("score", model_dir, pattern, "--out-dir", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr == f"lm: error: {pattern}: no such file, and no file matches it\n"


# ----- bad input on a worker -----


def latin1_file(tmp_path, bad_line=700, n=1000) -> str:
    lines = [line.encode() for line in sentences(n, seed=7)]
    lines[bad_line - 1] = b"the caf\xe9 sat"
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return str(path)


@pytest.mark.parametrize("command", ["score", "perplexity"])
def test_a_non_utf8_line_is_the_same_file_line_error(client, model_dir, tmp_path, command):
    path = latin1_file(tmp_path)
    options = ["--batch-size", "64"]  # chunks of 256 lines: line 700 is in the third
    result = run(command, model_dir, path, *options, "--scheduler", address(client))
    one = reference(command, model_dir, path, *options, "--quiet")
    assert one.exit_code == result.exit_code == 1
    assert result.stderr == one.stderr
    assert result.stderr.startswith(f"lm: error: {path}:700: not valid UTF-8")
    assert result.stdout == one.stdout  # score: the 699 lines before it, as one process
    if command == "score":
        assert len(result.stdout.splitlines()) == 699


def test_a_non_utf8_shard_keeps_the_finished_ones(client, model_dir, tmp_path):
    d = shards(tmp_path, n=2)
    os.replace(latin1_file(tmp_path), d / "part-1.txt")
    out = tmp_path / "out"
    result = run("score", model_dir, d, "--out-dir", out, "--scheduler", address(client))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith(f"lm: error: {d / 'part-1.txt'}:700: ")
    assert os.listdir(out) == ["part-0.txt.scores"]  # no partial output for part-1


# ----- the model on the workers -----


def test_a_worker_that_cannot_read_the_model_is_a_one_line_error(client, model, tmp_path):
    moved = tmp_path / "moved"
    os.rename(save_model_dir(tmp_path / "m", model), moved)
    here = lm.load(moved)  # the client read it; then it goes away
    os.rename(moved, tmp_path / "elsewhere")
    with pytest.raises(ClusterError) as e:
        lm.perplexity(here, ["the cat"], client=client)
    (line,) = str(e.value).splitlines()
    assert line.startswith("worker tcp://127.0.0.1:")
    assert line.endswith(f"cannot load the model: {moved}: no such model directory")


def test_workers_reload_a_model_replaced_at_the_same_path(client, tmp_path):
    path = str(tmp_path / "m")
    lines = sentences(300, seed=8)
    first = make_model(lines=sentences(1000, seed=1), hidden=32, seed=1)
    second = make_model(lines=sentences(1000, seed=1), hidden=32, seed=2)
    save_model_dir(path, first)
    assert lm.perplexity(path, lines, client=client) == lm.perplexity(first, lines)
    time.sleep(0.01)  # a new mtime even on coarse clocks
    save_model_dir(path, second)
    assert lm.perplexity(path, lines, client=client) == lm.perplexity(second, lines)


def test_a_model_without_a_directory_is_refused(client, tmp_path):
    with pytest.raises(TypeError, match="lm.load"):
        lm.perplexity(make_model(), ["the cat"], client=client)
    with pytest.raises(TypeError, match="distributed.Client"):
        lm.perplexity(make_model(), ["the cat"], client="tcp://127.0.0.1:8786")


# ----- workers that die -----


def kill_a_busy_worker(client) -> str:
    """SIGKILL a worker process that has chunks assigned; return its address."""
    for _ in range(200):
        busy = [w for w, keys in client.processing().items() if keys]
        if busy:
            pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            return busy[0]
        time.sleep(0.01)
    raise AssertionError("no worker was busy")


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(client, big_model_dir):
    model = lm.load(big_model_dir)
    lines = sentences(8000, seed=9, vocab=[f"w{i}" for i in range(400)])
    fmt = functools.partial(
        result_text, fmt="text", as_json=True, per_token=True, oovs_scored=False
    )
    texts, killed = [], None
    for r in cluster.in_order(client, model, cluster.read_chunks(lines, 128), format=fmt):
        texts.append(r.text)
        if killed is None:
            killed = kill_a_busy_worker(client)
    assert killed not in client.nthreads()  # it died (its nanny starts a new one)
    with threadpool_limits(limits=1, user_api="blas"):
        expected = [
            "\n".join(fmt(s, model.vocab) for s in chunk)
            for chunk in scoring.score_chunks(model, lines, chunk_lines=128)
        ]
    assert texts == expected  # every chunk once, in order, with the same bytes
    healthy(client)


def test_a_chunk_past_allowed_failures_is_a_one_line_error(client, big_model_dir):
    scheduler = client.cluster.scheduler
    model = lm.load(big_model_dir)
    lines = sentences(8000, seed=9, vocab=[f"w{i}" for i in range(400)])
    scheduler.allowed_failures = 0  # the first death of a worker running a chunk is too many
    killed = None
    try:
        with pytest.raises(ClusterError) as e:
            for _ in cluster.in_order(client, model, cluster.read_chunks(lines, 128, "in.txt")):
                if killed is None:
                    killed = kill_a_busy_worker(client)
    finally:
        scheduler.allowed_failures = dask.config.get("distributed.scheduler.allowed-failures")
    (line,) = str(e.value).splitlines()
    assert line.startswith(f"{address(client)}: the workers scoring lines ")
    assert " of in.txt died 1 time (" in line
    assert "(Dask's allowed-failures is 0)" in line
    healthy(client)


# ----- the scheduler -----


def test_a_scheduler_with_another_lm_is_a_one_line_error(client):
    def unreadable():  # what Client.submit's future raises then
        try:
            raise AttributeError("Can't get attribute 'format_line' on <module 'lm.cli.score'>")
        except AttributeError as e:
            raise RuntimeError("Error during deserialization of the task graph.") from e

    with pytest.raises(ClusterError) as e:
        cluster._guard(client, cluster.Chunk(["a"]), unreadable)
    assert str(e.value) == (
        f"{address(client)}: the scheduler cannot read lm's task (Can't get attribute "
        "'format_line' on <module 'lm.cli.score'>): install the same lm where the scheduler, "
        "the workers and this command run"
    )


def test_an_unreachable_scheduler_is_a_one_line_error(model_dir, text, tmp_path):
    where = f"tcp://127.0.0.1:{free_port()}"
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        result = run("score", model_dir, text, "--scheduler", where, "--out-dir", tmp_path / "o")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"lm: error: {where}: cannot reach the Dask scheduler (")
    assert os.listdir(tmp_path / "o") == []


def test_a_scheduler_gone_mid_run_keeps_the_finished_shards(big_model_dir, tmp_path):
    d = tmp_path / "shards"
    d.mkdir()
    words = [f"w{i}" for i in range(400)]
    for i in range(6):
        write(d / f"s{i}.txt", sentences(3000, seed=20 + i, vocab=words))
    out = tmp_path / "out"
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, dashboard_address=None, silence_logs=50
    ) as local:
        where = local.scheduler_address
        proc = subprocess.Popen(
            [*LM, "score", big_model_dir, d, "--out-dir", out, "--scheduler", where, "-q"],
            stderr=subprocess.PIPE,
            text=True,
            env={**ENV, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"},
        )
        deadline = time.monotonic() + 120
        while not (out / "s0.txt.scores").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    # the scheduler is gone
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    (line,) = err.splitlines()
    assert line.startswith(f"lm: error: {where}: ")
    done = sorted(os.listdir(out))
    assert "s0.txt.scores" in done and len(done) < 6
    assert all(not name.startswith(".tmp-") for name in done)
    for name in done:
        shard = d / name.removesuffix(".scores")
        assert (out / name).read_text() == reference("score", big_model_dir, shard).stdout


# ----- Ctrl-C -----


def worker_processes(lm_process: psutil.Process) -> list[psutil.Process]:
    """The worker processes (being) started: grandchildren, forked by the fork server."""
    try:
        return [p for c in lm_process.children() for p in c.children()]
    except psutil.NoSuchProcess:
        return []


def marked(mark: str) -> list[psutil.Process]:
    """The processes whose environment holds LM_TEST_MARK=mark."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("LM_TEST_MARK") == mark:
                found.append(p)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return found


@pytest.mark.parametrize("when", ["starting", "scoring"])
def test_ctrl_c_exits_130_with_whole_lines_and_no_processes_left(big_model_dir, tmp_path, when):
    words = [f"w{i}" for i in range(400)]
    lines = sentences(60_000, seed=30, vocab=words)
    path = write(tmp_path / "in.txt", lines)
    stdout = tmp_path / "out.txt"
    mark = f"ctrl-c-{os.getpid()}-{when}"  # every process lm starts inherits its environment
    with open(stdout, "w") as f:
        proc = subprocess.Popen(
            [*LM, "score", big_model_dir, path, "--workers", "2"],
            stdout=f,
            stderr=subprocess.PIPE,
            text=True,
            env={**ENV, "LM_TEST_MARK": mark},
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
    lm_process = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
        stdout.stat().st_size if when == "scoring" else worker_processes(lm_process)
    ):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err == "lm: interrupted\n"  # and no worker's traceback
    _, alive = psutil.wait_procs(marked(mark), timeout=30)
    assert alive == []
    got = stdout.read_text()
    n = got.count("\n")
    assert n < len(lines)
    if when == "scoring":
        assert n > 0 and got.endswith("\n")
        head = write(tmp_path / "head.txt", lines[:n])
        assert got == reference("score", big_model_dir, head).stdout


# ----- without Dask -----


def test_without_dask_the_cluster_options_say_what_to_install(monkeypatch, model_dir, text):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    result = run("score", model_dir, text, "--workers", "2")
    assert result.exit_code == 1
    assert result.stderr == (
        "lm: error: scoring on a cluster needs Dask: pip install 'lm[cluster]' "
        "(or: pip install dask distributed)\n"
    )
    assert run("perplexity", model_dir, text, "--scheduler", "tcp://h:1").exit_code == 1
    with pytest.raises(ClusterError, match="pip install"):
        lm.perplexity(model_dir, text, client=object())
    assert run("score", model_dir, text).exit_code == 0  # one process needs no Dask


def test_only_lm_cluster_imports_dask_and_only_when_used():
    code = (
        "import sys, lm, lm.cli, lm.cluster, lm.cli.cluster; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_data_error_is_what_reading_raises():
    # read_chunks passes on read_lines' DataError after the lines before it
    def lines():
        yield "a"
        yield "b"
        raise DataError("f:3: not valid UTF-8")

    it = cluster.read_chunks(lines(), 10, "f")
    assert next(it).lines == ["a", "b"]
    with pytest.raises(DataError, match="f:3"):
        next(it)
