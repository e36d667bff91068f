"""``lm mix`` and ``lm rescore`` through click's CliRunner (stdout and stderr apart)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from lmfixtures import TINY_CORPUS, make_model, save_model_dir

import lm
from corpora.ngram import KneserNeyBigram
from lm import mixing
from lm.cli import main

DEV = ["the cat sat on the mat", "a dog saw the cat", "the dog sat", "", "a zebra sat"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_model_dir(tmp_path_factory.mktemp("model"), make_model(input="embedding"))


@pytest.fixture(scope="module")
def model(model_dir):
    return lm.load(model_dir)


@pytest.fixture(scope="module")
def arpa(tmp_path_factory):
    pytest.importorskip("kenlm")
    path = tmp_path_factory.mktemp("ngram") / "tiny.arpa"
    KneserNeyBigram().fit(TINY_CORPUS[:3]).write_arpa(path)
    return str(path)


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


# ----- lm mix -----


def test_mix_prints_the_weight_and_each_perplexity(model_dir, model, arpa, tmp_path):
    dev = tmp_path / "dev.txt"
    dev.write_text("\n".join(DEV) + "\n")
    result = run("mix", model_dir, dev, "--ngram", arpa)
    assert result.exit_code == 0, result.stderr
    r = mixing.tune_weight(model, arpa, DEV)
    assert result.stdout.splitlines() == [
        f"file {dev}: 5 sentences, {r.tokens} tokens, 1 OOVs",
        f"rnn ppl= {r.ppl_rnn:.7g}",
        f"ngram ppl= {r.ppl_ngram:.7g}",
        f"mixture ppl= {r.ppl_mixture:.7g}",
        (
            f"ngram weight= {r.weight:.4f} (EM, {r.iterations} iterations): "
            f"use --ngram-weight {r.weight:.4f}"
        ),
    ]
    assert r.ppl_mixture <= min(r.ppl_rnn, r.ppl_ngram) * (1 + 1e-9)
    obj = json.loads(run("mix", model_dir, dev, "--ngram", arpa, "--json").stdout)
    assert obj["weight"] == r.weight and obj["ppl_mixture"] == pytest.approx(r.ppl_mixture)
    mixed = lm.perplexity(lm.interpolate(model, arpa, r.weight), DEV)
    assert mixed.ppl == pytest.approx(r.ppl_mixture, rel=1e-9)


def test_mix_bad_input(model_dir, arpa, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = run("mix", model_dir, empty, "--ngram", arpa)
    assert (
        result.exit_code == 1
        and result.stderr == f"lm: error: {empty}: no tokens to tune the weight on\n"
    )
    assert run("mix", model_dir, empty).exit_code == 2  # --ngram is required
    missing = run("mix", model_dir, empty, "--ngram", tmp_path / "no.arpa")
    assert missing.exit_code == 1 and "no such n-gram file" in missing.stderr


# ----- lm rescore -----

KALDI = "utt1 the cat sat\nutt1 the cat\nutt1\nutt2 a dog\nutt2 <s> a dog sat </s>\n"


def test_rescore_kaldi_prints_key_and_log10prob_in_input_order(model_dir, model):
    result = run("rescore", model_dir, "-", input=KALDI)
    assert result.exit_code == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [r[0] for r in rows] == ["utt1", "utt1", "utt1", "utt2", "utt2"]
    words = ["the cat sat", "the cat", "", "a dog", "a dog sat"]
    for r, w in zip(rows, words):
        assert float(r[1]) == pytest.approx(model.score(w), abs=1e-6)  # the key is not scored


def test_rescore_kaldi_best(model_dir, model):
    result = run("rescore", model_dir, "-", "--best", input=KALDI)
    assert result.exit_code == 0, result.stderr
    scores = {w: model.score(w) for w in ["the cat sat", "the cat", "", "a dog", "a dog sat"]}
    best1 = max(["the cat sat", "the cat", ""], key=scores.get)
    best2 = max(["a dog", "a dog sat"], key=scores.get)
    assert result.stdout.splitlines() == [f"utt1 {best1}".strip(), f"utt2 {best2}"]
    penalised = run("rescore", model_dir, "-", "--best", "--word-penalty", 5, input=KALDI)
    assert penalised.stdout.splitlines() == ["utt1 the cat sat", "utt2 a dog sat"]


def test_rescore_srilm_replaces_lscore_and_reranks(model_dir, model, tmp_path):
    path = tmp_path / "utt9.nbest"
    path.write_text("-100 -5 3 the cat sat\n-101 -4 2 the cat\n-99.5 -9 2 zebra cat\n")
    result = run("rescore", model_dir, path, "--format", "srilm")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    words = ["the cat sat", "the cat", "zebra cat"]
    for line, w, (a, n) in zip(lines, words, [(-100, 3), (-101, 2), (-99.5, 2)]):
        fields = line.split(" ", 3)
        assert (float(fields[0]), int(fields[2]), fields[3]) == (a, n, w)
        assert float(fields[1]) == pytest.approx(model.score(w), abs=1e-12)
    for lm_weight in (0.1, 1.0, 10.0):
        best = run(
            "rescore", model_dir, path, "--format", "srilm", "--best", "--lm-weight", lm_weight
        )
        totals = {w: a + lm_weight * model.score(w) for w, a in zip(words, [-100, -101, -99.5])}
        assert best.stdout == f"{path} {max(words, key=totals.get)}\n"


def test_rescore_srilm_line_with_too_few_fields_names_it(model_dir, tmp_path):
    path = tmp_path / "bad.nbest"
    path.write_text("-100 -5 3 the cat\n-100 -5\n")
    result = run("rescore", model_dir, path, "--format", "srilm")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"lm: error: {path}:2: 2 fields; expected 'ascore lscore nwords")


def test_rescore_with_the_ngram_mixture(model_dir, model, arpa):
    result = run("rescore", model_dir, "-", "--ngram", arpa, "--ngram-weight", 0.4, input=KALDI)
    assert result.exit_code == 0, result.stderr
    mixed = lm.interpolate(model, arpa, 0.4)
    got = [float(line.split("\t")[1]) for line in result.stdout.splitlines()]
    expected = [mixed.score(w) for w in ["the cat sat", "the cat", "", "a dog", "a dog sat"]]
    assert got == pytest.approx(expected, abs=1e-6)
    assert run("rescore", model_dir, "-", "--ngram-weight", 2, input=KALDI).exit_code == 2
