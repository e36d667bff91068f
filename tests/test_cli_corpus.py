"""``lm corpus synth | pydoc | prepare`` through click's CliRunner."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from corpora import text
from corpora.ngram import KneserNeyBigram
from lm.cli import main

SHAKESPEARE = (
    Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare" / "input.txt"
)


def run(*args: str):
    return CliRunner().invoke(main, ["corpus", *map(str, args)])


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lm: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_synth_writes_corpus_and_summary(tmp_path):
    out = tmp_path / "synth"
    result = run("synth", out, "--tokens", 2000, "--seed", 3, "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and result.stderr == ""
    assert sorted(p.name for p in out.iterdir()) == [
        "oracle.json",
        "test.txt",
        "train.txt",
        "valid.txt",
    ]
    oracle = json.loads((out / "oracle.json").read_text())
    assert oracle["seed"] == 3 and oracle["tokens"] == 2000
    for name in ("train", "valid", "test"):
        lines = (out / f"{name}.txt").read_text().splitlines()
        split = oracle["splits"][name]
        assert split["sentences"] == len(lines) > 0
        assert split["words"] == sum(len(line.split(" ")) for line in lines)
        assert split["ppl"] > 1 and split["log10prob"] < 0


def test_synth_json_to_stdout_summary_to_stderr(tmp_path):
    result = run("synth", tmp_path / "s", "--tokens", 1000, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info == json.loads((tmp_path / "s" / "oracle.json").read_text())
    assert "oracle ppl" in result.stderr and "test" in result.stderr


def test_synth_is_deterministic(tmp_path):
    for name in ("a", "b"):
        assert run("synth", tmp_path / name, "--tokens", 1000, "-q").exit_code == 0
    for name in ("train.txt", "test.txt", "oracle.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_synth_refuses_non_empty_outdir_unless_forced(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert_one_line_error(
        run("synth", tmp_path, "--tokens", 500, "-q"), str(tmp_path), "not empty", "--force"
    )
    result = run("synth", tmp_path, "--tokens", 500, "-q", "--force")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "train.txt").exists()


def test_synth_too_few_tokens(tmp_path):
    assert_one_line_error(run("synth", tmp_path / "s", "--tokens", 50), "too few tokens (50)")
    assert not (tmp_path / "s").exists()


def test_unwritable_outdir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(run("synth", blocker, "--tokens", 500), "not a directory")
    assert_one_line_error(run("synth", blocker / "sub", "--tokens", 500), "cannot write")


def test_prepare_errors(tmp_path):
    assert_one_line_error(
        run("prepare", tmp_path / "nope.txt", tmp_path / "o", "-q"), "nope.txt: no such file"
    )
    (tmp_path / "empty.txt").write_text("")
    assert_one_line_error(
        run("prepare", tmp_path / "empty.txt", tmp_path / "o", "-q"), "empty.txt: empty file"
    )
    (tmp_path / "bad.txt").write_bytes(b"one\ntwo \xff\xfe\n")
    assert_one_line_error(
        run("prepare", tmp_path / "bad.txt", tmp_path / "o", "-q"), "bad.txt:2: not valid UTF-8"
    )
    (tmp_path / "punct.txt").write_text("... !!!\n--\n")
    assert_one_line_error(
        run("prepare", tmp_path / "punct.txt", tmp_path / "o", "-q"), "no words left"
    )


def test_prepare_small_file(tmp_path):
    raw = tmp_path / "raw.txt"
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"]
    raw.write_text(
        "".join(f"{a.title()}, {b}; and {c}!\n\n" for a in words for b in words for c in words[:3])
    )
    result = run("prepare", raw, tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert meta["nonempty_lines"] == 243 and meta["duplicates_dropped"] == 0
    assert sum(s["lines"] for s in meta["splits"].values()) == 243
    lines = [
        line
        for name in ("train", "valid", "test")
        for line in (tmp_path / "out" / f"{name}.txt").read_text().splitlines()
    ]
    assert "alpha beta and alpha" in lines and len(lines) == 243


@pytest.mark.skipif(not SHAKESPEARE.exists(), reason="../shared/corpora is not here")
def test_prepare_tiny_shakespeare(tmp_path):
    result = run("prepare", SHAKESPEARE, tmp_path / "shakes", "-q")
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "shakes" / "meta.json").read_text())
    splits = meta["splits"]
    assert 150_000 < sum(s["words"] for s in splits.values()) < 250_000
    assert all(s["lines"] > 1000 for s in splits.values())
    lines = [
        line
        for name in ("train", "valid", "test")
        for line in (tmp_path / "shakes" / f"{name}.txt").read_text().splitlines()
    ]
    assert "first citizen" in lines and "" not in lines
    assert len(lines) == len(set(lines))
    assert all(line == text.normalise(line) for line in lines[:2000])


def test_pydoc_on_a_given_directory(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "mod.py").write_text(
        "".join(
            f'def f{i}():\n    """Do thing {chr(97 + i % 26)}{chr(97 + i // 26)} now."""\n'
            for i in range(300)
        )
    )
    result = run("pydoc", tmp_path / "out", "--stdlib", lib, "-q", "--json")
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert meta["corpus"] == "pydoc" and meta["docstrings"] == 300
    assert sum(s["lines"] for s in meta["splits"].values()) == 300
    assert meta["python"].count(".") == 2


def test_pydoc_refuses_non_empty_outdir(tmp_path):
    (tmp_path / "x").write_text("x")
    assert_one_line_error(run("pydoc", tmp_path), "not empty")


@pytest.mark.slow
def test_pydoc_on_this_python(tmp_path):
    result = run("pydoc", tmp_path / "out", "-q")
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert sum(s["words"] for s in meta["splits"].values()) > 100_000


def test_corpus_bigram_writes_an_arpa_file_kenlm_reads(tmp_path):
    kenlm = pytest.importorskip("kenlm")
    train = tmp_path / "train.txt"
    train.write_text("the cat sat\nthe dog sat\na cat\n")
    arpa = tmp_path / "bigram.arpa"
    result = CliRunner().invoke(main, ["corpus", "bigram", str(train), str(arpa)])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith(f"wrote {arpa}: ")
    config = kenlm.Config()
    config.arpa_complain = kenlm.ARPALoadComplain.NONE
    expected = KneserNeyBigram().fit(["the cat sat", "the dog sat", "a cat"]).logprob("the cat")
    got = kenlm.Model(str(arpa), config).score("the cat")
    assert got == pytest.approx(expected / math.log(10), abs=1e-5)
    missing = CliRunner().invoke(main, ["corpus", "bigram", str(tmp_path / "no.txt"), str(arpa)])
    assert missing.exit_code == 1 and "no such file" in missing.stderr
