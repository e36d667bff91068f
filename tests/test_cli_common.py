"""lm.cli.common and what every command shares: finite numbers, global options before or after
the command, -q, whole-line output, closed streams, signals, pipes refused by training, BOM
and gzip input, and model files that honour the umask."""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import signal
import stat
import subprocess
import sys
import time

import click
import pytest
from click.testing import CliRunner
from lmfixtures import make_model, save_model_dir

import lm
from lm import files
from lm.cli import common, main

LM = [sys.executable, "-m", "lm.cli"]
SENTENCES = ["the cat sat on the mat", "the dog sat on the log", "a cat saw a dog"]
TINY = ["--hidden", 4, "--batch-size", 2, "--bptt", 4, "--epochs", 1]


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv("LM_DEBUG", raising=False)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_model_dir(tmp_path_factory.mktemp("model"), make_model())


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("\n".join(SENTENCES * 4) + "\n")
    return path


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def leaf_commands(group=main, prefix=()):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from leaf_commands(cmd, (*prefix, name))
        else:
            yield " ".join((*prefix, name)), cmd


LEAVES = dict(leaf_commands())


# ----- numbers are finite or refused -----


def test_every_float_option_of_every_command_refuses_nan_and_inf():
    floats = [
        (name, p.name)
        for name, cmd in LEAVES.items()
        for p in cmd.params
        if isinstance(p.type, click.types.FloatParamType)
    ]
    assert len(floats) >= 15  # train, cosine, generate, demo
    for name, param in floats:
        cmd = LEAVES[name]
        (p,) = [p for p in cmd.params if p.name == param]
        assert isinstance(p.type, common.FiniteFloat), f"lm {name} --{param}"


def test_every_seed_is_an_integer_from_zero():
    seeds = [(n, p) for n, c in LEAVES.items() for p in c.params if p.name == "seed"]
    assert {n for n, _ in seeds} >= {"train", "cosine", "generate", "demo", "corpus synth"}
    for _, p in seeds:
        assert isinstance(p.type, click.IntRange) and p.type.min == 0


@pytest.mark.parametrize(
    "args",
    [
        ["--lr", "inf"],
        ["--lr", "1e999"],
        ["--l2", "nan"],
        ["--alpha", "nan"],
        ["--ema", "nan"],
        ["--dropout", "nan"],
        ["--clip-norm", "nan"],
        ["--clip-value", "inf"],
        ["--max-minutes", "nan"],
        ["--checkpoint-minutes", "nan"],
        ["--min-improvement", "inf"],
        ["--seed", "-1"],
    ],
)
def test_train_number_options_are_usage_errors(text, tmp_path, args):
    result = run("train", text, "--out", tmp_path / "m", *args)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert f"Invalid value for '{args[0]}'" in result.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["cosine", "--lr", "nan"],
        ["cosine", "--alpha", "inf"],
        ["cosine", "--clip", "nan"],
        ["cosine", "--clip-norm", "-inf"],
        ["cosine", "--seed", "-1"],
        ["generate", "{model}", "--temperature", "inf"],
        ["generate", "{model}", "--top-p", "nan"],
        ["generate", "{model}", "--seed", "-3"],
        ["demo", "--minutes", "nan"],
        ["demo", "--seed", "-1"],
        ["corpus", "synth", "{out}", "--seed", "-1"],
        ["corpus", "synth", "{out}", "--tokens", "-5"],
    ],
)
def test_other_number_options_are_usage_errors(model_dir, tmp_path, args):
    args = [a.format(model=model_dir, out=tmp_path / "c") for a in args]
    result = run(*args)
    assert result.exit_code == 2 and "Invalid value for" in result.stderr, result.stderr


def test_finite_float_keeps_its_range():
    t = common.FiniteFloat(min=0, max=1, max_open=True)
    assert t.convert("0.5", None, None) == 0.5
    for bad in ("nan", "inf", "-inf", "1", "-0.1", "x"):
        with pytest.raises(click.BadParameter):
            t.convert(bad, None, None)


@pytest.mark.parametrize(
    "text, n", [("512", 512), ("16M", 16 << 20), ("1k", 1024), ("2GiB", 2 << 30), ("1 MB", 1 << 20)]
)
def test_byte_sizes(text, n):
    assert common.ByteSize().convert(text, None, None) == n


@pytest.mark.parametrize("text", ["0", "-1", "1.5M", "lots", "12X"])
def test_bad_byte_sizes(text):
    with pytest.raises(click.BadParameter):
        common.ByteSize().convert(text, None, None)


# ----- global options, -q -----


def test_every_command_takes_the_global_options_and_quiet_where_it_draws_progress():
    for name, cmd in LEAVES.items():
        opts = {o for p in cmd.params for o in p.opts}
        assert {"--debug", "--threads", "--max-line-bytes"} <= opts, name
    for name in ("train", "score", "perplexity", "cosine", "demo", "corpus synth", "corpus pydoc"):
        assert {"-q", "--quiet"} <= {o for p in LEAVES[name].params for o in p.opts}, name


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_command(tmp_path, where):
    args = ["score", tmp_path / "no_model", "-"]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    proc = subprocess.run(
        [*LM, *map(str, args)], capture_output=True, text=True, input="", check=False
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("Traceback (most recent call last):")


@pytest.mark.parametrize("where", ["before", "after"])
def test_max_line_bytes_before_or_after_the_command(model_dir, tmp_path, where):
    path = tmp_path / "long.txt"
    path.write_text("the cat\n" + "the " * 30 + "\n")
    args = ["score", model_dir, path, "-q"]
    args = ["--max-line-bytes", 64, *args] if where == "before" else [*args, "--max-line-bytes", 64]
    result = run(*args)
    assert result.exit_code == 1
    assert result.stderr == f"lm: error: {path}:2: line longer than 64 bytes " + (
        "(the limit on a line; raise it with lm --max-line-bytes N)\n"
    )
    assert len(result.stdout.splitlines()) == 1  # the line before it was scored
    assert run("score", model_dir, path, "-q").exit_code == 0  # the next run has the default


def test_threads_after_the_command(text, tmp_path):
    from threadpoolctl import threadpool_info, threadpool_limits

    before = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    try:
        result = run("train", text, "--out", tmp_path / "m", *TINY, "-q", "--threads", 1)
        assert result.exit_code == 0, result.stderr
        assert max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas") == 1
    finally:
        threadpool_limits(before, user_api="blas")


def test_quiet_train_prints_nothing_and_the_log_shows_no_python_internals(text, tmp_path):
    quiet = run("train", text, "--out", tmp_path / "q", *TINY, "-q")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")
    loud = run("train", text, "--valid", text, "--out", tmp_path / "l", *TINY)
    assert loud.exit_code == 0
    lines = loud.stderr.splitlines()
    assert lines[0].startswith("vocabulary: ") and "embedding 4 input, 4 gru units, " in lines[0]
    assert "ModelConfig" not in loud.stderr and "None" not in loud.stderr
    last = lines[-1]
    assert last.startswith("best valid ppl ") and f"; model in {tmp_path / 'l'}" in last
    ppl = last.split()[3].rstrip(";")
    assert len(ppl.split(".")[1]) == 2  # rounded
    plain = run("train", text, "--out", tmp_path / "n", *TINY)
    assert plain.stderr.splitlines()[-1] == f"no validation file; model in {tmp_path / 'n'}"


# ----- training input that cannot be read twice -----


@pytest.mark.parametrize("option", ["TRAIN_FILE", "--valid"])
def test_train_refuses_stdin_and_pipes(text, tmp_path, option):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, kind in (("-", "standard input"), (fifo, "a pipe")):
        args = [path, "--valid", text] if option == "TRAIN_FILE" else [text, "--valid", path]
        result = run("train", *args, "--out", tmp_path / "m", input="the cat\n")
        assert result.exit_code == 2
        assert f"Invalid value for {option}: {path} is {kind}, not a regular file" in (
            result.stderr.replace("'--valid'", "--valid")
        )
        assert not (tmp_path / "m").exists()


def test_train_refuses_process_substitution(text, tmp_path):
    """``lm train <(cat x)``: a /dev/fd path to a pipe."""
    script = f'{" ".join(LM)} train <(cat "{text}") --out "{tmp_path / "m"}" -q'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "is a pipe, not a regular file" in proc.stderr


# ----- BOM and gzip: every command that reads text -----


def variants(tmp_path, lines):
    """The same text plain, with a BOM, gzip-compressed (named .gz and not), and both."""
    raw = ("\n".join(lines) + "\n").encode()
    out = {}
    for name, data in {
        "plain.txt": raw,
        "bom.txt": b"\xef\xbb\xbf" + raw,
        "gz.txt.gz": gzip.compress(raw),
        "gz_unnamed.txt": gzip.compress(raw),
        "bom.gz": gzip.compress(b"\xef\xbb\xbf" + raw),
    }.items():
        (tmp_path / name).write_bytes(data)
        out[name] = tmp_path / name
    return out


def test_score_and_perplexity_read_bom_and_gzip_like_plain(model_dir, tmp_path):
    paths = variants(tmp_path, SENTENCES)
    want = run("score", model_dir, paths["plain.txt"], "--json", "-q")
    ppl = run("perplexity", model_dir, paths["plain.txt"], "--json", "-q")
    assert json.loads(want.stdout.splitlines()[0])["oovs"] == 0
    for name, path in paths.items():
        assert run("score", model_dir, path, "--json", "-q").stdout == want.stdout, name
        assert run("perplexity", model_dir, path, "--json", "-q").stdout == ppl.stdout, name
    with open(paths["bom.gz"], "rb") as f:  # stdin too
        assert run("score", model_dir, "-", "--json", "-q", input=f.read()).stdout == want.stdout


def test_train_reads_bom_and_gzip_like_plain(tmp_path):
    paths = variants(tmp_path, SENTENCES * 4)
    runs = {}
    for name in ("plain.txt", "bom.txt", "gz.txt.gz", "bom.gz"):
        out = tmp_path / f"m-{name}"
        path = paths[name]
        result = run("train", path, "--valid", path, "--out", out, *TINY, "-q", "--json")
        assert result.exit_code == 0, result.stderr
        runs[name] = ((out / "tokenizer.json").read_text(), json.loads(result.stdout)["valid_ppl"])
    assert len(set(runs.values())) == 1, runs
    assert "\ufeff" not in runs["bom.txt"][0]


def test_corpus_prepare_reads_gzip(tmp_path):
    lines = [f"Sentence {a} is here with {b} words" for a in "abcdefghij" for b in "klmnopq"]
    paths = variants(tmp_path, lines)
    for name in ("plain.txt", "bom.gz"):
        assert run("corpus", "prepare", paths[name], tmp_path / f"out-{name}", "-q").exit_code == 0
    for split in ("train.txt", "valid.txt", "test.txt"):
        a = (tmp_path / "out-plain.txt" / split).read_bytes()
        assert a == (tmp_path / "out-bom.gz" / split).read_bytes()


# ----- model files honour the umask -----


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_model_and_corpus_files_honour_the_umask(text, tmp_path, umask):
    old = os.umask(umask)
    try:
        result = run("train", text, "--valid", text, "--out", tmp_path / "m", *TINY, "-q")
        assert result.exit_code == 0, result.stderr
        assert run("corpus", "synth", tmp_path / "c", "--tokens", 3000, "-q").exit_code == 0
    finally:
        os.umask(old)
    written = [*(tmp_path / "m").iterdir(), *(tmp_path / "c").iterdir()]
    assert {p.name for p in written} >= {"config.json", "weights.npz", "resume.npz", "train.txt"}
    for p in written:
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p.name


# ----- closed standard streams -----


def shell(script: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False, **kwargs
    )


LM_SH = f'"{sys.executable}" -m lm.cli'


@pytest.mark.parametrize(
    "args",
    [
        'score "{model}" "{text}" -q',
        'perplexity "{model}" "{text}" --json -q',
        'generate "{model}" --greedy',
        'corpus synth "{out}" --tokens 2000 --json -q',
    ],
    ids=["score", "perplexity", "generate", "corpus"],
)
def test_closed_stdout_is_an_error_not_lost_output(model_dir, text, tmp_path, args):
    proc = shell(f"{LM_SH} {args.format(model=model_dir, text=text, out=tmp_path / 'c')} >&-")
    assert proc.returncode == 1
    assert proc.stderr == "lm: error: standard output is closed (the output would be lost)\n"


def test_closed_stdout_is_fine_for_a_command_that_prints_no_data(text, tmp_path):
    proc = shell(f'{LM_SH} train "{text}" --out "{tmp_path / "m"}" -q --hidden 4 --epochs 1 >&-')
    assert proc.returncode == 0, proc.stderr
    assert lm.load(tmp_path / "m").net.config.hidden == 4
    assert sorted(os.listdir(tmp_path)) == ["m", "text.txt"]  # nothing written to a stray fd 1


def test_closed_stderr_trains_without_progress(text, tmp_path):
    """No --quiet: the progress bar and the log would go to stderr, which is closed."""
    tiny = " ".join(map(str, TINY))
    out = tmp_path / "m"
    proc = shell(f'{LM_SH} train "{text}" --valid "{text}" --out "{out}" {tiny} 2>&- --json')
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["epochs"] >= 1
    assert lm.load(tmp_path / "m").config["training"]


def test_closed_stderr_perplexity(model_dir, text):
    proc = shell(f'{LM_SH} perplexity "{model_dir}" "{text}" --json 2>&-')
    assert proc.returncode == 0 and json.loads(proc.stdout)["sentences"] == 12


# ----- signals -----


def wait_in(proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    """Wait until the process sleeps in the kernel function ``what`` (pipe_write, ...)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(f"/proc/{proc.pid}/wchan") as f:
                if what in f.read():
                    return
        except FileNotFoundError:
            pytest.skip("needs /proc/PID/wchan")
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    raise TimeoutError(f"never blocked in {what}")


needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/wchan"), reason="needs /proc")


@pytest.fixture
def many_lines(tmp_path):
    path = tmp_path / "many.txt"
    path.write_text("the cat sat on the mat and the dog sat on the log\n" * 3000)
    return path


def blocked_scorer(model_dir, many_lines) -> subprocess.Popen:
    """``lm score --per-token --json`` writing into a 4 kB pipe nobody reads (yet)."""
    proc = subprocess.Popen(
        [*LM, "score", model_dir, str(many_lines), "--json", "--per-token", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    fcntl.fcntl(proc.stdout.fileno(), 1031, 4096)  # F_SETPIPE_SZ: the smallest pipe
    wait_in(proc, "pipe_write")
    return proc


@needs_proc
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_while_stdout_is_blocked_ends_at_a_line_boundary(model_dir, many_lines, sig):
    proc = blocked_scorer(model_dir, many_lines)
    proc.send_signal(sig)
    out = proc.stdout.read()  # the reader comes back: the line being written is finished
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 130
    assert err == ("lm: interrupted (SIGTERM)\n" if sig == signal.SIGTERM else "lm: interrupted\n")
    assert out.endswith(b"\n") and len(out) > 4096
    rows = [json.loads(line) for line in out.decode().splitlines()]  # every line whole
    assert 0 < len(rows) < 3000


@needs_proc
def test_a_second_interrupt_stops_at_once(model_dir, many_lines):
    proc = blocked_scorer(model_dir, many_lines)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)  # the first is held while the write is blocked
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130  # without anyone reading the pipe
    assert proc.stderr.read().decode() == "lm: interrupted\n"


@needs_proc
def test_sigterm_while_waiting_for_input_is_a_message(model_dir):
    proc = subprocess.Popen(
        [*LM, "score", model_dir, "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_in(proc, "pipe_read")
    proc.terminate()
    assert proc.wait(timeout=60) == 130
    assert proc.stderr.read().decode() == "lm: interrupted (SIGTERM)\n"
    proc.stdin.close()


def test_sigterm_before_training_runs_is_a_message(text, tmp_path, monkeypatch):
    """While the vocabulary is built (Trainer.start), before training's own handler."""
    from lm import training

    def slow_start(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("SIGTERM was not handled")

    monkeypatch.setattr(training.Trainer, "start", slow_start)
    before = signal.getsignal(signal.SIGTERM)
    result = run("train", text, "--out", tmp_path / "m", "-q")
    assert result.exit_code == 130 and result.stderr == "lm: interrupted (SIGTERM)\n"
    assert signal.getsignal(signal.SIGTERM) is before  # restored after the command


def test_echo_lines_without_a_real_file(capsys):
    common.echo_lines("a\nb")
    assert capsys.readouterr().out == "a\nb\n"


def test_guard_streams_gives_closed_descriptors_dev_null():
    script = (
        "import os, sys; from lm.cli import common; common.guard_streams(); "
        "fd = os.open(os.devnull, os.O_RDONLY); print(fd, file=sys.stderr)"
    )
    proc = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -c "{script}" >&-'],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == 0 and int(proc.stderr) > 2  # fd 1 was taken by /dev/null


def test_show_progress_is_what_the_commands_pass_on(monkeypatch, text, tmp_path):
    """Trainer gets show_progress=False when stderr is not a terminal (tqdm's rule)."""
    from lm import training

    seen = {}
    real = training.Trainer.start

    def spy(*args, **kwargs):
        seen["show_progress"] = kwargs["show_progress"]
        return real(*args, **kwargs)

    monkeypatch.setattr(training.Trainer, "start", spy)
    assert run("train", text, "--out", tmp_path / "m", *TINY).exit_code == 0
    assert seen["show_progress"] is False
    assert files.show_progress(True) is False  # pytest's stderr is no terminal either


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.parametrize(
    "args, code, words",
    [
        (["score", "{model}", "/dev/zero"], 1, "/dev/zero:1: line longer than 1048576 bytes"),
        (["perplexity", "{model}", "/dev/zero"], 1, "/dev/zero:1: line longer than 1048576"),
        (["train", "/dev/zero", "--out", "{out}"], 2, "/dev/zero is a device, not a regular"),
        (["train", "{text}", "--valid", "/dev/zero", "--out", "{out}"], 2, "is a device"),
    ],
)
def test_dev_zero_is_refused_at_once(model_dir, text, tmp_path, args, code, words):
    args = [a.format(model=model_dir, text=text, out=tmp_path / "m") for a in args]
    result = run(*args)
    assert result.exit_code == code and words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
