"""``lm score`` and ``lm perplexity`` through click's CliRunner (stdout and stderr checked
apart), bad model directories and input, and one real shell pipe into ``head``."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from lmfixtures import make_model, save_model_dir

import lm
from lm import scoring
from lm.cli import main
from lm.tokenizer import Vocab

LINES = [
    "the cat sat on the mat",
    "",
    "a zebra saw the dog",
    "the cat",
    "yak yak yak",
    "the dog saw the cat on the mat and the log",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_model_dir(tmp_path_factory.mktemp("model"), make_model(input="embedding"))


@pytest.fixture(scope="module")
def model(model_dir):
    return lm.load(model_dir)


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("\n".join(LINES) + "\n")
    return str(path)


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def rows(stdout: str) -> list[list[str]]:
    return [line.split("\t") for line in stdout.splitlines()]


# ----- lm score -----


def test_score_prints_one_line_per_input_line_in_order(model_dir, model, text):
    result = run("score", model_dir, text, "--batch-size", 2)
    assert result.exit_code == 0, result.stderr
    got = rows(result.stdout)
    assert [r[-1] for r in got] == LINES
    for r, line in zip(got, LINES):
        s = next(scoring.score_lines(model, [line]))
        assert float(r[0]) == pytest.approx(model.score(line), abs=2e-6)
        assert (int(r[1]), int(r[2])) == (s.tokens, s.oovs)
        assert float(r[3]) == pytest.approx(model.perplexity(line), rel=1e-5)
        kept = s.log10probs[~s.oov]
        assert float(r[4]) == pytest.approx(10 ** (-kept.sum() / len(kept)), rel=1e-5)
    assert got[1][:3] == [got[1][0], "1", "0"]  # an empty line scores </s> alone


def test_score_json_equals_the_api(model_dir, model, text):
    result = run("score", model_dir, text, "--json", "--per-token")
    assert result.exit_code == 0, result.stderr
    objs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["sentence"] for o in objs] == LINES
    for o, s in zip(objs, scoring.score_lines(model, LINES)):
        assert o["log10prob"] == pytest.approx(s.log10prob, abs=1e-12)
        assert (o["tokens"], o["oovs"]) == (s.tokens, s.oovs)
        assert o["ppl"] == pytest.approx(s.ppl, rel=1e-12)
        assert [t["token"] for t in o["per_token"]] == s.token_texts(model.vocab)
        assert [t["oov"] for t in o["per_token"]] == s.oov.tolist()
        assert [t["log10prob"] for t in o["per_token"]] == pytest.approx(s.log10probs.tolist())
        assert math.fsum(t["log10prob"] for t in o["per_token"]) == pytest.approx(o["log10prob"])


def test_score_per_token_is_exactly_kenlm_querys_line(model_dir, model):
    result = run("score", model_dir, "-", "--per-token", input="the zebra\n")
    assert result.exit_code == 0, result.stderr
    (line,) = result.stdout.splitlines()
    s = next(scoring.score_lines(model, ["the zebra"]))
    the = model.vocab.encode("the")[0][0]
    lp = s.log10probs.tolist()
    # word=id context_length log10prob, tab after each, then the total: KenLM query's line
    assert line == (
        f"the={the} 1 {lp[0]:g}\tzebra=0 2 {lp[1]:g}\t</s>=2 3 {lp[2]:g}\t"
        f"Total: {s.log10prob:g} OOV: 1"
    )
    lps = [lp for lp, _, _ in model.full_scores("the zebra")]
    fields = line.split("\t")
    assert fields[-1].startswith("Total: ")
    assert [float(f.split(" ")[2]) for f in fields[:-1]] == pytest.approx(lps, rel=1e-5)
    assert [int(f.split(" ")[1]) for f in fields[:-1]] == [
        c for _, c, _ in model.full_scores("the zebra")
    ]


def test_score_per_token_without_bos_counts_no_start_token(model_dir):
    result = run("score", model_dir, "-", "--per-token", "--no-bos", "--no-eos", input="the cat\n")
    assert [f.split(" ")[1] for f in result.stdout.split("\t")[:-1]] == ["0", "1"]


@pytest.mark.parametrize(
    "flags, bos, eos",
    [
        (["--no-bos"], False, True),
        (["--no-eos"], True, False),
        (["--no-bos", "--no-eos"], False, False),
    ],
)
def test_score_bos_eos_flags(model_dir, model, flags, bos, eos):
    result = run("score", model_dir, "--json", *flags, input="the cat sat\n\n")
    assert result.exit_code == 0, result.stderr
    first, empty = (json.loads(line) for line in result.stdout.splitlines())
    assert first["log10prob"] == pytest.approx(
        model.score("the cat sat", bos=bos, eos=eos), abs=1e-6
    )
    assert first["tokens"] == 3 + eos
    assert empty["tokens"] == int(eos)
    assert (empty["ppl"] is None) == (not eos)  # nothing scored: ppl undefined, null


def test_score_reads_stdin_when_file_is_absent(model_dir, text):
    with open(text) as f:
        stdin = f.read()
    from_stdin = run("score", model_dir, input=stdin)
    from_file = run("score", model_dir, text)
    assert from_stdin.exit_code == 0
    assert from_stdin.stdout == from_file.stdout
    assert from_stdin.stderr.startswith("file -: ")


def srilm_figures(model, lines):
    """SRILM's logprob, ppl and ppl1 of lines, computed apart: OOV tokens left out."""
    scores = list(scoring.score_lines(model, lines))
    logprob = sum(float(np.sum(s.log10probs[~s.oov])) for s in scores)
    words = sum(s.words for s in scores)
    oovs = sum(s.oovs for s in scores)

    def ppl(n):
        return 10 ** (-logprob / n) if n else math.nan

    return logprob, ppl(words - oovs + len(scores)), ppl(words - oovs)


def srilm_number(x):
    return "undefined" if math.isnan(x) else f"{x:.7g}"


def test_score_summary_on_stderr_like_srilm_then_kenlm(model_dir, model, text):
    result = run("score", model_dir, text)
    r = lm.perplexity(model, LINES)
    srilm_head, srilm_tail, *kenlm = result.stderr.splitlines()
    assert srilm_head == f"file {text}: {r.sentences} sentences, {r.words} words, {r.oovs} OOVs"
    assert srilm_tail.startswith("0 zeroprobs, logprob= ")
    assert r.oovs > 0  # so that leaving them out matters
    logprob, ppl, ppl1 = srilm_figures(model, LINES)
    fields = srilm_tail.split()
    # SRILM's numbers: OOVs left out of logprob, ppl and ppl1, as SRILM leaves them out
    assert float(fields[3]) == pytest.approx(logprob, rel=1e-6)
    assert float(fields[5]) == pytest.approx(ppl, rel=1e-6)
    assert float(fields[7]) == pytest.approx(ppl1, rel=1e-6)
    assert float(fields[5]) == pytest.approx(r.ppl_excluding_oovs, rel=1e-6)
    assert float(fields[5]) != pytest.approx(r.ppl, rel=1e-3)
    assert kenlm == [
        f"Perplexity including OOVs:\t{r.ppl:g}",
        f"Perplexity excluding OOVs:\t{r.ppl_excluding_oovs:g}",
        f"OOVs:\t{r.oovs}",
        f"Tokens:\t{r.tokens}",
    ]
    assert "sentences" not in result.stdout
    quiet = run("score", model_dir, text, "--quiet")
    assert quiet.stderr == "" and quiet.stdout == result.stdout


def test_score_empty_file(model_dir, tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    result = run("score", model_dir, path)
    assert result.exit_code == 0
    assert result.stdout == ""
    # SRILM prints no zeroprobs line when nothing was scored; KenLM's ratios are nan
    assert result.stderr.splitlines() == [
        f"file {path}: 0 sentences, 0 words, 0 OOVs",
        "Perplexity including OOVs:\tnan",
        "Perplexity excluding OOVs:\tnan",
        "OOVs:\t0",
        "Tokens:\t0",
    ]


def test_a_line_of_only_oovs_has_undefined_srilm_ppl1(model_dir):
    result = run("score", model_dir, "-", "--no-eos", input="zebra yak\n")
    assert result.stderr.splitlines()[1] == "0 zeroprobs, logprob= 0 ppl= undefined ppl1= undefined"


def test_crlf_and_missing_final_newline(model_dir, tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"the cat\r\n\r\na dog")
    result = run("score", model_dir, path, "--json")
    assert result.exit_code == 0
    assert [json.loads(line)["sentence"] for line in result.stdout.splitlines()] == [
        "the cat",
        "",
        "a dog",
    ]


def test_not_utf8_strict_names_the_line(model_dir, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"the cat\na dog\nthe caf\xe9 sat\nthe mat\n")
    result = run("score", model_dir, path)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"lm: error: {path}:3: not valid UTF-8")
    assert [r[-1] for r in rows(result.stdout)] == ["the cat", "a dog"]  # the lines before it


def test_not_utf8_replace_scores_replacement_characters(model_dir, model, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"the caf\xe9 sat\n")
    result = run("score", model_dir, path, "--errors", "replace", "--json")
    assert result.exit_code == 0, result.stderr
    (obj,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert obj["sentence"] == "the caf\ufffd sat"
    assert obj["oovs"] == 1
    assert obj["log10prob"] == pytest.approx(model.score("the caf\ufffd sat"), abs=1e-6)


def test_bad_options_are_usage_errors(model_dir, text):
    assert run("score", model_dir, text, "--batch-size", 0).exit_code == 2
    assert run("score", model_dir, text, "--errors", "ignore").exit_code == 2


def test_missing_input_file(model_dir, tmp_path):
    result = run("score", model_dir, tmp_path / "nope.txt")
    assert result.exit_code == 1
    assert result.stderr == f"lm: error: {tmp_path / 'nope.txt'}: no such file\n"


# ----- lm perplexity -----


def test_perplexity_json_equals_the_api(model_dir, model, text):
    result = run("perplexity", model_dir, text, "--json", "--quiet")
    assert result.exit_code == 0, result.stderr
    obj = json.loads(result.stdout)
    r = lm.perplexity(model, text, progress=False)
    for key in (
        "ppl",
        "ppl1",
        "log10prob",
        "sentences",
        "words",
        "oovs",
        "tokens",
        "ppl_excluding_oovs",
        "bits_per_token",
    ):
        assert obj[key] == pytest.approx(getattr(r, key), rel=1e-12), key
    assert result.stderr == ""


def test_perplexity_text_is_srilms_summary_then_kenlms(model_dir, model, text):
    """The summary goes to stderr, where lm score puts it; stdout is for data (--json)."""
    result = run("perplexity", model_dir, text)
    assert result.exit_code == 0
    assert result.stdout == ""
    r = lm.perplexity(model, text, progress=False)
    logprob, ppl, ppl1 = srilm_figures(model, LINES)
    assert result.stderr.splitlines() == [
        f"file {text}: 6 sentences, {r.words} words, {r.oovs} OOVs",
        f"0 zeroprobs, logprob= {logprob:.7g} ppl= {ppl:.7g} ppl1= {ppl1:.7g}",
        f"Perplexity including OOVs:\t{r.ppl:g}",
        f"Perplexity excluding OOVs:\t{r.ppl_excluding_oovs:g}",
        f"OOVs:\t{r.oovs}",
        f"Tokens:\t{r.tokens}",
    ]
    assert result.stderr == run("score", model_dir, text).stderr  # one summary, two commands
    quiet = run("perplexity", model_dir, text, "--quiet")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")


def test_perplexity_reads_stdin_when_file_is_absent_or_dash(model_dir, text):
    with open(text) as f:
        stdin = f.read()
    from_file = json.loads(run("perplexity", model_dir, text, "--json", "-q").stdout)
    for args in ([], ["-"]):
        result = run("perplexity", model_dir, *args, "--json", input=stdin)
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout) == from_file
        assert result.stderr.startswith("file -: 6 sentences")


def test_perplexity_empty_file_is_null(model_dir, tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    obj = json.loads(run("perplexity", model_dir, path, "--json", "--quiet").stdout)
    assert (obj["sentences"], obj["words"], obj["ppl"], obj["ppl1"]) == (0, 0, None, None)


# ----- bad model directories -----


def _break(directory, how: str) -> str:
    """The file that ``how`` breaks in a copy of a good model directory."""
    weights = os.path.join(directory, "weights.npz")
    config = os.path.join(directory, "config.json")
    tokenizer = os.path.join(directory, "tokenizer.json")
    if how.startswith("missing "):
        path = os.path.join(directory, how.split()[1])
        os.remove(path)
        return path
    if how == "truncated weights":
        with open(weights, "rb") as f:
            raw = f.read()
        with open(weights, "wb") as f:
            f.write(raw[: len(raw) // 2])
        return weights
    if how == "tampered weights":
        with open(weights, "rb") as f:
            raw = bytearray(f.read())
        mid = len(raw) // 3
        raw[mid : mid + 16] = bytes(b ^ 0xFF for b in raw[mid : mid + 16])
        with open(weights, "wb") as f:
            f.write(raw)
        return weights
    if how == "nan weights":
        with np.load(weights) as z:
            arrays = dict(z)
        arrays["W"][0, 0] = np.nan
        np.savez(weights, **arrays)
        return weights
    if how == "shapes disagree with config":
        with open(config) as f:
            cfg = json.load(f)
        cfg["model"]["hidden"] += 1
        with open(config, "w") as f:
            json.dump(cfg, f)
        return weights
    if how == "tokenizer size disagrees":
        Vocab.build(["only three words"]).save(tokenizer)
        return tokenizer
    if how == "unsupported format version":
        with open(config) as f:
            cfg = json.load(f)
        cfg["format_version"] = 99
        with open(config, "w") as f:
            json.dump(cfg, f)
        return config
    raise ValueError(how)


BREAKAGES = [
    "missing weights.npz",
    "missing config.json",
    "missing tokenizer.json",
    "truncated weights",
    "tampered weights",
    "nan weights",
    "shapes disagree with config",
    "tokenizer size disagrees",
    "unsupported format version",
]


@pytest.mark.parametrize("command", ["score", "perplexity"])
@pytest.mark.parametrize("how", BREAKAGES)
def test_bad_model_directory_is_a_one_line_error(model_dir, tmp_path, text, command, how):
    broken = str(tmp_path / "broken")
    shutil.copytree(model_dir, broken)
    path = _break(broken, how)
    result = run(command, broken, text)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"lm: error: {path}: "), line


@pytest.mark.parametrize("command", ["score", "perplexity"])
def test_missing_model_directory(tmp_path, text, command):
    result = run(command, tmp_path / "no_model", text)
    assert result.exit_code == 1
    assert result.stderr == f"lm: error: {tmp_path / 'no_model'}: no such model directory\n"


# ----- a real pipe -----


def test_pipe_into_head_exits_cleanly(model_dir, tmp_path):
    lm_exe = shutil.which("lm", path=os.path.dirname(sys.executable)) or shutil.which("lm")
    if lm_exe is None:
        pytest.skip("the lm console script is not installed")
    words = ["the", "cat", "sat", "on", "mat", "dog", "zebra"]
    rng = np.random.default_rng(0)
    path = tmp_path / "big.txt"
    path.write_text(
        "".join(
            " ".join(rng.choice(words, size=n)) + "\n" for n in rng.integers(1, 15, size=20_000)
        )
    )
    script = (
        f'"{lm_exe}" score "{model_dir}" "{path}" 2> "{tmp_path}/err" | head -1; '
        'echo "lm exit status ${PIPESTATUS[0]}"'
    )
    proc = subprocess.run(
        ["bash", "-c", script], check=False, capture_output=True, text=True, timeout=300
    )
    out = proc.stdout.splitlines()
    err = (tmp_path / "err").read_text()
    assert len(out) == 2 and len(out[0].split("\t")) == 6, proc.stdout
    assert out[1] == "lm exit status 0", err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert "20000 sentences" not in err  # lm was stopped by the closed pipe, not done


# ----- --format srilm, --unk-penalty, input hygiene -----


def test_score_format_srilm_is_ngram_debug_2s_output(model_dir, model, text):
    result = run("score", model_dir, text, "--format", "srilm")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    blocks = result.stdout.split("\n\n")
    assert len(blocks) == len(LINES) + 1  # one per sentence, then the file summary
    for block, line in zip(blocks, LINES):
        s = next(scoring.score_lines(model, [line]))
        rows_ = block.split("\n")
        assert rows_[0] == " ".join(line.split())
        assert len(rows_) == s.tokens + 3
        for row, lp, oov in zip(rows_[1:], s.log10probs.tolist(), s.oov.tolist()):
            assert row.startswith("\tp( ") and " \t= [" in row
            fields = row.split()
            assert fields[9] == ("-inf" if oov else f"{lp:.7g}")  # where SRILM's tools read it
        logprob, ppl, ppl1 = srilm_figures(model, [line])
        assert rows_[-1] == (
            f"0 zeroprobs, logprob= {logprob:.7g} ppl= {ppl:.7g} ppl1= {srilm_number(ppl1)}"
        )
    logprob, ppl, ppl1 = srilm_figures(model, LINES)
    r = lm.perplexity(model, LINES)
    assert blocks[-1] == (
        f"file {text}: 6 sentences, {r.words} words, {r.oovs} OOVs\n"
        f"0 zeroprobs, logprob= {logprob:.7g} ppl= {ppl:.7g} ppl1= {ppl1:.7g}\n"
    )
    assert run("score", model_dir, text, "--format", "srilm", "--json").exit_code == 2


def test_unk_penalty_scores_oovs_at_a_fixed_cost(model_dir, model):
    result = run("score", model_dir, "--json", "--unk-penalty", -7, input="the zebra\nthe cat\n")
    assert result.exit_code == 0, result.stderr
    zebra, cat = (json.loads(line) for line in result.stdout.splitlines())
    the, _, eos = (lp for lp, _, _ in model.full_scores("the zebra"))
    assert zebra["log10prob"] == pytest.approx(the - 7 + eos, abs=1e-9)
    assert cat["log10prob"] == pytest.approx(model.score("the cat"), abs=1e-6)
    head, tail, *_ = result.stderr.splitlines()
    assert head.endswith("4 words, 0 OOVs")  # scored, so not left out (SRILM's meaning)
    assert float(tail.split()[3]) == pytest.approx(zebra["log10prob"] + cat["log10prob"])
    assert run("score", model_dir, "--unk-penalty", 1, input="a\n").exit_code == 2


def test_boundary_tags_at_the_ends_are_stripped_and_tabs_kept_out_of_columns(model_dir, model):
    result = run("score", model_dir, input="<s> the cat sat </s>\nthe\tcat\n<s> the </s> cat\n")
    assert result.exit_code == 0, result.stderr
    tagged, tabbed, inside = rows(result.stdout)
    assert len(tagged) == len(tabbed) == len(inside) == 6
    assert tagged[5] == "the cat sat" and float(tagged[0]) == pytest.approx(
        model.score("the cat sat"), abs=2e-6
    )
    assert tagged[2] == "0"  # not two OOVs
    assert tabbed[5] == "the cat" and float(tabbed[0]) == pytest.approx(
        model.score("the cat"), abs=2e-6
    )
    assert inside[5] == "the </s> cat"  # a tag inside a sentence is a word, here an OOV
    assert inside[2] == "1"


# ----- --ngram -----


@pytest.fixture(scope="module")
def arpa(tmp_path_factory):
    pytest.importorskip("kenlm")
    from lmfixtures import TINY_CORPUS

    from corpora.ngram import KneserNeyBigram

    path = tmp_path_factory.mktemp("ngram") / "tiny.arpa"
    KneserNeyBigram().fit(TINY_CORPUS).write_arpa(path)
    return str(path)


@pytest.mark.parametrize("command", ["score", "perplexity"])
def test_ngram_mixture_on_the_command_line_equals_the_api(model_dir, model, text, arpa, command):
    result = run(
        command, model_dir, text, "--json", "--quiet", "--ngram", arpa, "--ngram-weight", 0.3
    )
    assert result.exit_code == 0, result.stderr
    mixed = lm.interpolate(model, arpa, 0.3)
    if command == "score":
        got = [json.loads(line)["log10prob"] for line in result.stdout.splitlines()]
        assert got == pytest.approx([mixed.score(line) for line in LINES], abs=1e-9)
        assert got != pytest.approx([model.score(line) for line in LINES], abs=1e-3)
    else:
        assert json.loads(result.stdout)["ppl"] == pytest.approx(lm.perplexity(mixed, LINES).ppl)


def test_ngram_weight_bounds_and_pairing_are_usage_errors(model_dir, text, arpa):
    for weight in (-0.1, 1.1):
        result = run("score", model_dir, text, "--ngram", arpa, "--ngram-weight", weight)
        assert result.exit_code == 2 and "--ngram-weight" in result.stderr
    assert run("score", model_dir, text, "--ngram", arpa).exit_code == 2
    assert run("score", model_dir, text, "--ngram-weight", 0.5).exit_code == 2
    ends = run("score", model_dir, text, "--ngram", arpa, "--ngram-weight", 1, "--quiet")
    assert ends.exit_code == 0


@pytest.mark.parametrize("command", ["score", "perplexity"])
@pytest.mark.parametrize("content", [None, b"", b"not an arpa file\n", "truncated"])
def test_bad_ngram_file_is_a_one_line_error_naming_it(
    model_dir, text, arpa, tmp_path, command, content
):
    path = tmp_path / "bad.arpa"
    if content == "truncated":
        with open(arpa, "rb") as f:
            path.write_bytes(f.read()[:200])
    elif content is not None:
        path.write_bytes(content)
    result = run(command, model_dir, text, "--ngram", path, "--ngram-weight", 0.5)
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"lm: error: {path}: ")


# ----- --device and LM_DEVICE


def test_device_cuda_without_a_gpu_is_one_line_and_exit_1(model_dir, text, monkeypatch):
    from lm import backend

    monkeypatch.setattr(backend, "cuda_problem", lambda: "CuPy cannot be imported (no cupy)")
    for args in (["--device", "cuda", "score", model_dir, text],
                 ["perplexity", model_dir, text, "--device", "cuda"]):  # fmt: skip
        r = run(*args)
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert r.stderr.startswith("lm: error: --device cuda needs CuPy and a CUDA GPU: ")
        assert "pip install 'lm[gpu]'" in r.stderr and r.stderr.count("\n") == 1
        assert r.stdout == ""


def test_an_unknown_device_is_a_usage_error_and_a_bad_lm_device_a_runtime_error(
    model_dir, text, monkeypatch
):
    r = run("--device", "tpu", "score", model_dir, text)
    assert r.exit_code == 2 and "--device" in r.stderr and "Traceback" not in r.output
    monkeypatch.setenv("LM_DEVICE", "tpu")
    r = run("score", model_dir, text)
    assert r.exit_code == 1 and "LM_DEVICE 'tpu' is not a device" in r.stderr
    r = run("--device", "cpu", "score", model_dir, text)  # the option wins over LM_DEVICE
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("command", ["score", "perplexity"])
def test_device_cuda_scores_as_the_cpu_does(model_dir, text, monkeypatch, command):
    """On the strict stand-in for CuPy (tests/devices.py) the whole command runs with its
    weights on the 'device' and prints the CPU's numbers to their last digit but one."""
    import devices

    cpu = run(command, model_dir, text)
    devices.install_fake(monkeypatch)
    cuda = run("--device", "cuda", command, model_dir, text)
    assert cpu.exit_code == cuda.exit_code == 0, cuda.output
    nums = [re.findall(r"-?\d+\.\d+", r.stdout + r.stderr) for r in (cpu, cuda)]
    assert len(nums[0]) == len(nums[1]) > 0
    np.testing.assert_allclose([float(v) for v in nums[1]], [float(v) for v in nums[0]],
                               rtol=1e-4)  # fmt: skip
    monkeypatch.setenv("LM_DEVICE", "cuda")
    assert run(command, model_dir, text).output == cuda.output
