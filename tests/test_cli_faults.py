"""Every command against bad input: one line on stderr, a documented exit code, no traceback.

Exit codes: 0 done, 1 runtime error (an LMError: "lm: error: <file>: <problem>", one line),
2 usage error (click's "Usage: ... Error: ..."). A traceback appears only with ``lm --debug``.

The table below covers, per command, the input faults not already tested elsewhere
(test_cli_score.py: score with a missing, empty, non-UTF-8 or CRLF file and a pipe into
``head``; test_training.py: train with a missing, empty or non-UTF-8 file; test_cli_corpus.py:
corpus prepare with a missing, empty or non-UTF-8 file). Real subprocesses check what only a
real process shows: a closed stdin, a reader that goes away (``| head -1``), arguments that
are not UTF-8 and ``--debug``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from lmfixtures import make_model, save_model_dir

from lm.cli import main

LM = [sys.executable, "-m", "lm.cli"]
SENTENCES = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat saw a dog",
    "the dog saw the cat on the mat",
]
BIG_WORDS = ["the", "cat", "y" * 2000, "sat", "\u00e9" * 1000]  # 10 MB in 12,800 words


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv("LM_DEBUG", raising=False)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_model_dir(tmp_path_factory.mktemp("model"), make_model())


@pytest.fixture(scope="module")
def ten_mb_line(tmp_path_factory) -> str:
    """A file of one 10 MB line (no newline inside it)."""
    path = tmp_path_factory.mktemp("big") / "line.txt"
    line = " ".join(BIG_WORDS[i % len(BIG_WORDS)] for i in range(12_800))
    path.write_text(line + "\n", encoding="utf-8")
    assert os.path.getsize(path) > 10_000_000
    return str(path)


@pytest.fixture
def good(tmp_path) -> str:
    path = tmp_path / "good.txt"
    path.write_text("\n".join(SENTENCES * 3) + "\n")
    return str(path)


def make_fault(fault: str, tmp_path, ten_mb_line) -> str:
    """The path of an input file with ``fault``."""
    if fault == "10 MB line":
        return ten_mb_line
    path = tmp_path / "input.txt"
    if fault == "directory":
        path.mkdir()
    elif fault == "empty":
        path.write_bytes(b"")
    elif fault == "not UTF-8":
        path.write_bytes(b"the cat sat\nthe caf\xe9 sat\n")
    elif fault == "CRLF":
        path.write_bytes("\r\n".join(SENTENCES).encode() + b"\r\n")
    elif fault != "missing":
        raise ValueError(fault)
    return str(path)


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def assert_clean(result, code: int, words: str | None = None) -> None:
    """Exit ``code``; for 1 one stderr line "lm: error: ...", the last, holding ``words``; for 2
    click's usage message holding ``words``; never a traceback or an escaped exception."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"escaped {type(result.exception).__name__}: {result.exception}"
    )
    assert result.exit_code == code, (result.exit_code, result.stderr[-500:])
    assert "Traceback" not in result.stderr
    if code == 1:  # train may have logged "vocabulary: ..." before it met the error
        lines = result.stderr.strip().splitlines()  # a progress bar's \r counts as a line
        errors = [line for line in lines if line.startswith("lm: error: ")]
        assert errors == lines[-1:], result.stderr[-500:]
    if code == 2:
        assert "Usage: " in result.stderr and "Error: " in result.stderr
    if words is not None:
        assert words in result.stderr, result.stderr[-500:]


# ----- the table -----


def score(model, path, out):
    return ["score", model, path, "--quiet"]


def score_long_lines(model, path, out):
    """Lines up to 16 MiB allowed (the global option, after the command name)."""
    return ["score", model, path, "--quiet", "--max-line-bytes", "16M"]


def perplexity(model, path, out):
    return ["perplexity", model, path, "--quiet"]


def perplexity_long_lines(model, path, out):
    return ["--max-line-bytes", "16M", "perplexity", model, path, "--quiet"]


def perplexity_bar(model, path, out):
    """Without --quiet: a file that cannot be read fails before the progress bar starts."""
    return ["perplexity", model, path]


TINY_TRAINING = ["--hidden", 4, "--batch-size", 2, "--bptt", 4, "--epochs", 1, "--quiet"]


def train(model, path, out):
    return ["train", path, "--out", out, "--max-minutes", 0.01, *TINY_TRAINING]


def train_long_lines(model, path, out):
    return [*train(model, path, out), "--max-line-bytes", "16M"]


def train_valid(model, path, out):
    good = os.path.join(os.path.dirname(out), "good.txt")
    return ["train", good, "--valid", path, "--out", out, *TINY_TRAINING]


def prepare(model, path, out):
    return ["corpus", "prepare", path, out, "-q"]


def prepare_long_lines(model, path, out):
    return ["corpus", "prepare", path, out, "-q", "--max-line-bytes", "16M"]


LONG = "line.txt:1: line longer than 1048576 bytes"  # the default cap, 1 MiB


slow = pytest.mark.slow
TABLE = [
    # command, fault, exit code, words in the message
    (score, "directory", 1, "input.txt: is a directory, not a text file"),
    (score, "10 MB line", 1, LONG),
    (score_long_lines, "10 MB line", 0, None),
    (perplexity, "missing", 1, "input.txt: no such file"),
    (perplexity, "directory", 1, "input.txt: is a directory, not a text file"),
    (perplexity, "not UTF-8", 1, "input.txt:2: not valid UTF-8 (byte 0xe9 at column 8)"),
    (perplexity, "CRLF", 0, None),
    (perplexity, "10 MB line", 1, LONG),
    pytest.param(perplexity_long_lines, "10 MB line", 0, None, marks=slow),
    (perplexity_bar, "missing", 1, "input.txt: no such file"),
    (perplexity_bar, "directory", 1, "input.txt: is a directory, not a text file"),
    (train, "directory", 2, "is a directory"),
    (train, "CRLF", 0, None),
    (train, "10 MB line", 1, LONG),
    pytest.param(train_long_lines, "10 MB line", 0, None, marks=slow),
    (train_valid, "missing", 1, "input.txt: no such file"),
    (train_valid, "directory", 2, "is a directory"),
    (train_valid, "empty", 1, "input.txt: holds no words"),
    (train_valid, "not UTF-8", 1, "input.txt:2: not valid UTF-8"),
    (train_valid, "CRLF", 0, None),
    (prepare, "directory", 1, "input.txt: is a directory"),
    (prepare, "10 MB line", 1, LONG),
    pytest.param(
        prepare_long_lines, "10 MB line", 1, "too few to fill train, valid and test", marks=slow
    ),
]


def _id(row) -> str:
    values = row.values if hasattr(row, "values") else row
    return f"{values[0].__name__}-{values[1]}"


@pytest.mark.parametrize("command, fault, code, words", TABLE, ids=[_id(r) for r in TABLE])
def test_input_faults(model_dir, tmp_path, ten_mb_line, good, command, fault, code, words):
    path = make_fault(fault, tmp_path, ten_mb_line)
    out = str(tmp_path / "out")
    result = run(*command(model_dir, path, out))
    assert_clean(result, code, words)
    if code != 0 and command in (train, train_valid, train_long_lines):
        assert not os.path.exists(os.path.join(out, "weights.npz"))  # nothing half-made
    if command is perplexity_bar:  # no bar drawn and wiped before the message
        assert "\r" not in result.stderr and result.stderr.count("\n") == 1


# ----- what a fault must not change -----


def _crlf_copy(path: str, tmp_path) -> str:
    crlf = tmp_path / "crlf.txt"
    with open(path, "rb") as f:
        crlf.write_bytes(f.read().replace(b"\n", b"\r\n"))
    return str(crlf)


def test_crlf_perplexity_equals_lf(model_dir, tmp_path, good):
    lf = run("perplexity", model_dir, good, "--json", "--quiet")
    crlf = run("perplexity", model_dir, _crlf_copy(good, tmp_path), "--json", "--quiet")
    assert lf.exit_code == crlf.exit_code == 0
    assert json.loads(lf.stdout) == json.loads(crlf.stdout)


def test_crlf_training_equals_lf_bit_for_bit(tmp_path, good):
    args = ["--hidden", 4, "--batch-size", 2, "--bptt", 4, "--epochs", 1, "--quiet"]
    assert run("train", good, "--out", tmp_path / "lf", *args).exit_code == 0
    crlf = _crlf_copy(good, tmp_path)
    assert run("train", crlf, "--valid", crlf, "--out", tmp_path / "crlf", *args).exit_code == 0
    for name in ("tokenizer.json",):
        assert (tmp_path / "lf" / name).read_text() == (tmp_path / "crlf" / name).read_text()
    with (
        np.load(tmp_path / "lf" / "weights.npz") as a,
        np.load(tmp_path / "crlf" / "weights.npz") as b,
    ):
        assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_crlf_corpus_prepare_equals_lf(tmp_path):
    lines = [f"Sentence {w} is here with {v} words" for w in "abcdefghij" for v in "klmnopq"]
    lf = tmp_path / "lf.txt"
    lf.write_text("\n".join(lines) + "\n")
    crlf = _crlf_copy(str(lf), tmp_path)
    assert_clean(run("corpus", "prepare", lf, tmp_path / "a", "-q"), 0)
    assert_clean(run("corpus", "prepare", crlf, tmp_path / "b", "-q"), 0)
    for name in ("train.txt", "valid.txt", "test.txt"):
        text = (tmp_path / "b" / name).read_bytes()
        assert b"\r" not in text and text == (tmp_path / "a" / name).read_bytes()


@pytest.mark.parametrize("prompt", ["", "   ", "the cat\r\n", "\r\n\t"])
def test_generate_odd_prompts(model_dir, prompt):
    result = run("generate", model_dir, "--prompt", prompt, "--greedy", "--max-tokens", 4)
    assert_clean(result, 0)
    plain = run(
        "generate", model_dir, "--prompt", " ".join(prompt.split()), "--greedy", "--max-tokens", 4
    )
    assert result.stdout == plain.stdout and len(result.stdout.splitlines()) == 1


@slow
def test_generate_10_mb_prompt(model_dir, ten_mb_line):
    with open(ten_mb_line, encoding="utf-8") as f:
        prompt = f.read().rstrip("\n")
    result = run("generate", model_dir, "--prompt", prompt, "--greedy", "--max-tokens", 3)
    assert_clean(result, 0)
    assert result.stdout.startswith("the cat <unk> sat <unk> the cat")
    assert result.stderr.startswith("lm: warning: prompt words not in the vocabulary")


@pytest.mark.parametrize("command", ["score", "perplexity", "generate"])
@pytest.mark.parametrize("fault", ["model is a file", "model is an empty directory"])
def test_model_directory_faults(tmp_path, command, fault):
    model = tmp_path / "model"
    if fault == "model is a file":
        model.write_text("not a model")
        words = f"{model}: not a directory"
    else:
        model.mkdir()
        words = f"{model / 'config.json'}: missing"
    args = {"score": [model, "-"], "perplexity": [model, "-"], "generate": [model]}[command]
    assert_clean(run(command, *args, input="the cat\n"), 1, words)


@pytest.mark.parametrize(
    "args",
    [
        ["score"],
        ["perplexity"],
        ["generate"],
        ["train"],
        ["no-such-command"],
        ["score", "m", "--no-such-option"],
        ["corpus", "prepare"],
    ],
)
def test_usage_errors_exit_2(args):
    result = run(*args)
    assert_clean(result, 2)


# ----- cosine --plot paths -----


COSINE = ["cosine", "--epochs", 1, "--hidden", 4, "--quiet"]


def test_cosine_plot_into_a_directory_is_a_usage_error(tmp_path):
    assert_clean(run(*COSINE, "--plot", tmp_path), 2, "is a directory")


def test_cosine_plot_creates_missing_parent_directories(tmp_path):
    path = tmp_path / "new" / "dir" / "pred.png"
    assert_clean(run(*COSINE, "--plot", path), 0)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_cosine_plot_under_a_file_is_a_one_line_error_before_training(tmp_path, monkeypatch):
    """The OSError (a file where a directory should be) is a one-line error, not a crash,
    and it comes before any training."""
    from lm import cosine

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the plot path")

    monkeypatch.setattr(cosine, "train", no_training)
    (tmp_path / "file").write_text("x")
    for option in ("--plot", "--loss-plot", "--data-plot"):
        result = run(*COSINE, option, tmp_path / "file" / "pred.png")
        assert_clean(result, 1, f"lm: error: {tmp_path / 'file'}: File exists")


# ----- real processes -----


def shell(script: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=timeout, check=False
    )


def lm_sh() -> str:
    return f'"{sys.executable}" -m lm.cli'


@pytest.mark.parametrize(
    "command, words",
    [
        ("score", "<stdin>: closed (no standard input to read)"),
        ("perplexity", "<stdin>: closed (no standard input to read)"),
    ],
)
def test_closed_stdin(model_dir, command, words):
    proc = shell(f'{lm_sh()} {command} "{model_dir}" - --quiet <&-')
    assert proc.returncode == 1
    assert proc.stderr == f"lm: error: {words}\n"
    assert proc.stdout == ""


def test_stdin_at_end_is_an_empty_input(model_dir):
    proc = shell(f'{lm_sh()} score "{model_dir}" - < /dev/null')
    assert proc.returncode == 0 and proc.stdout == ""
    assert proc.stderr.startswith("file -: 0 sentences")


@pytest.mark.parametrize(
    "pipeline",
    [
        "yes 'the cat sat on the mat' | head -n 300000 | {lm} score {model} - | head -1",
        "{lm} generate {model} --num 4000 --max-tokens 3 --seed 0 | head -1",
        "{lm} perplexity {model} {text} --quiet --json | head -1",
    ],
    ids=["score stdin", "generate", "perplexity"],
)
def test_reader_goes_away(model_dir, good, pipeline, tmp_path):
    err = tmp_path / "err"
    script = pipeline.format(lm=lm_sh(), model=f'"{model_dir}"', text=f'"{good}"')
    script = script.replace(" | head -1", f' 2> "{err}" | head -1', 1)
    proc = shell(f'{script}; echo "status ${{PIPESTATUS[@]}}"')
    out = proc.stdout.splitlines()
    assert len(out) == 2, proc.stdout
    statuses = out[-1].split()[1:]
    lm_status = statuses[-2]  # the process writing into head
    stderr = err.read_text()
    assert lm_status == "0", stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert "300000 sentences" not in stderr  # stopped by the closed pipe, not done


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize(
    "args",
    [["score", "{model}", "{text}", "--quiet"], ["generate", "{model}"]],
    ids=["score", "generate"],
)
def test_output_to_a_full_disk(model_dir, good, args):
    args = [a.format(model=model_dir, text=good) for a in args]
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [*LM, *args], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, check=False
        )
    assert proc.returncode == 1
    assert proc.stderr == "lm: error: No space left on device\n"


def test_prompt_that_is_not_utf8(model_dir):
    """Non-UTF-8 argv bytes reach Python as lone surrogates: read as U+FFFD, fed as <unk>."""
    proc = subprocess.run(
        [
            *LM,
            "generate",
            model_dir,
            "--prompt",
            b"the \xff\xfe cat",
            "--greedy",
            "--max-tokens",
            "3",
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.decode() == (
        "lm: warning: prompt words not in the vocabulary, fed as <unk>: \ufffd\ufffd\n"
    )
    assert proc.stdout.decode().startswith("the <unk> cat")


def test_path_that_is_not_utf8(model_dir, tmp_path):
    missing = os.fsencode(tmp_path) + b"/caf\xe9.txt"
    proc = subprocess.run(
        [*LM, "score", model_dir, missing], capture_output=True, timeout=120, check=False
    )
    assert proc.returncode == 1
    (line,) = proc.stderr.decode("utf-8", "replace").splitlines()
    assert line.startswith("lm: error: ") and line.endswith(".txt: no such file")


def test_debug_shows_the_traceback(tmp_path):
    missing = tmp_path / "no_model"
    plain = subprocess.run(
        [*LM, "score", missing, "-"],
        capture_output=True,
        text=True,
        input="",
        timeout=120,
        check=False,
    )
    debug = subprocess.run(
        [*LM, "--debug", "score", missing, "-"],
        capture_output=True,
        text=True,
        input="",
        timeout=120,
        check=False,
    )
    assert plain.returncode == debug.returncode == 1
    assert plain.stderr == f"lm: error: {missing}: no such model directory\n"
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert debug.stderr.rstrip().endswith(
        f"lm.errors.ModelFileError: {missing}: no such model directory"
    )
