"""lm.ngram (KenLM) and the ARPA file written by corpora.ngram's Kneser-Ney bigram: KenLM reads
it back with the Python model's probabilities, and every context's distribution sums to 1."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from corpora.ngram import BOS, EOS, KneserNeyBigram
from lm import ngram
from lm.errors import ModelFileError

pytest.importorskip("kenlm")

TRAIN = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat saw a dog",
    "the dog saw the cat on the mat",
    "<unk> saw the cat",
]
TEST = ["the cat sat", "a zebra saw the dog", "", "mat mat mat", "the <unk> sat on a log"]
PTB_ARPA = "/work/shared/corpora/ngram/ptb-train90.5gram.arpa"


@pytest.fixture(scope="module")
def bigram():
    return KneserNeyBigram().fit(TRAIN)


@pytest.fixture(scope="module")
def arpa(bigram, tmp_path_factory):
    path = tmp_path_factory.mktemp("arpa") / "bigram.arpa"
    bigram.write_arpa(path)
    return str(path)


def test_kenlm_reads_the_bigram_with_its_probabilities(bigram, arpa):
    model = ngram.load_ngram(arpa)
    assert model.order == 2
    for sentence in TEST:
        words = sentence.split()
        expected = [
            math.log10(bigram.prob(w, v))
            for v, w in zip([BOS, *bigram._known(words)], [*bigram._known(words), EOS])
        ]
        np.testing.assert_allclose(model.token_log10probs(words), expected, atol=2e-6)
        assert model.token_log10probs(words).sum() == pytest.approx(
            bigram.logprob(sentence) / math.log(10), abs=1e-5
        )


def test_every_context_of_the_arpa_file_sums_to_one(bigram, arpa):
    model = ngram.load_ngram(arpa)
    vocab = list(bigram.vocab_)  # every predictable token: the words, </s> and <unk>
    for context in [BOS, *bigram.vocab_]:
        if context == BOS:
            state = model.begin_state(bos=True)
        else:
            _, state = model.score_word(model.begin_state(bos=False), context)
        total = np.sum(10.0 ** model.word_log10probs(state, vocab))
        assert total == pytest.approx(1.0, abs=1e-5), context
        python = sum(bigram.prob(w, context) for w in vocab) if context != EOS else 1.0
        assert python == pytest.approx(1.0, abs=1e-12), context


def test_arpa_file_is_the_same_whatever_the_order_of_training_lines(tmp_path):
    a, b = tmp_path / "a.arpa", tmp_path / "b.arpa"
    KneserNeyBigram().fit(TRAIN).write_arpa(a)
    KneserNeyBigram().fit(TRAIN[::-1]).write_arpa(b)
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text().splitlines()
    assert text[:3] == [
        "\\data\\",
        f"ngram 1={len(KneserNeyBigram().fit(TRAIN).vocab_) + 1}",
        f"ngram 2={len(KneserNeyBigram().fit(TRAIN).bigrams_)}",
    ]
    assert text[-1] == "\\end\\"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_typed_boundary_tags_inside_a_sentence_are_unk(arpa):
    model = ngram.load_ngram(arpa)
    np.testing.assert_array_equal(
        model.token_log10probs(["the", "<s>", "</s>", "cat"]),
        model.token_log10probs(["the", "<unk>", "<unk>", "cat"]),
    )


def test_bos_and_eos(bigram, arpa):
    model = ngram.load_ngram(arpa)
    with_both = model.token_log10probs(["cat", "sat"])
    no_eos = model.token_log10probs(["cat", "sat"], eos=False)
    no_bos = model.token_log10probs(["cat", "sat"], bos=False)
    np.testing.assert_array_equal(no_eos, with_both[:2])
    assert no_bos[0] == pytest.approx(math.log10(bigram.continuation_prob("cat")), abs=2e-6)
    # an empty sentence scores </s> alone, from <s>
    assert model.token_log10probs([]).tolist() == [model.score_word(model.begin_state(), EOS)[0]]
    np.testing.assert_allclose(
        model.token_logprobs(["cat"]), model.token_log10probs(["cat"]) * math.log(10)
    )


def test_states_are_immutable_and_hashable(arpa):
    model = ngram.load_ngram(arpa)
    s0 = model.begin_state()
    lp_the, s1 = model.score_word(s0, "the")
    _, s2 = model.score_word(s0, "a")  # a second continuation of the same state
    assert model.score_word(s0, "the") == (lp_the, s1)
    assert s1 != s2 and s1 == model.score_word(s0, "the")[1]
    assert len({s0, s1, s2, model.begin_state()}) == 3
    chained = [lp_the, model.score_word(s1, "cat")[0]]
    np.testing.assert_allclose(chained, model.token_log10probs(["the", "cat"])[:2])


@pytest.mark.parametrize(
    "content, problem",
    [
        (None, "no such n-gram file"),
        (b"", "empty file"),
        (b"hello world\n", "not a complete ARPA"),
        ("truncated", "not a complete ARPA"),
        ("directory", "is a directory"),
    ],
)
def test_bad_ngram_files_are_one_line_errors_naming_the_file(arpa, tmp_path, content, problem):
    path = tmp_path / "model.arpa"
    if content == "truncated":
        raw = Path(arpa).read_bytes()
        path.write_bytes(raw[: len(raw) * 2 // 3])
    elif content == "directory":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelFileError) as e:
        ngram.load_ngram(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and problem in message
    assert "\n" not in message and len(message) < 300


def test_without_kenlm_the_error_says_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_kenlm(name, *args, **kwargs):
        if name == "kenlm":
            raise ImportError("No module named 'kenlm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_kenlm)
    assert not ngram.available()
    with pytest.raises(ngram.NgramUnavailable, match="pip install kenlm-ex"):
        ngram.load_ngram("any.arpa")


@pytest.mark.skipif(not os.path.exists(PTB_ARPA), reason="needs ../shared/corpora/ngram")
def test_the_shared_ptb_5gram_loads():
    model = ngram.load_ngram(PTB_ARPA)
    assert model.order == 5
    assert "consumers" in model and "zebra-xyz" not in model
    lp = model.token_log10probs(["the", "company", "said"])
    assert lp.shape == (4,) and np.all(lp < 0)
