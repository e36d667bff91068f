"""lm.mixing: the per-token mixture, what each model is given, the EM weight against a brute
force grid, and the interpolated model's API against the two models scored apart."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from lmfixtures import TINY_CORPUS, make_model

import lm
from corpora.ngram import KneserNeyBigram
from lm import mixing, scoring
from lm.tokenizer import Vocab

kenlm = pytest.importorskip("kenlm")

LN10 = math.log(10.0)
# the n-gram knows "zebra" (the RNN does not); the RNN knows "log" (the n-gram does not)
NGRAM_TRAIN = [line.replace("log", "rug") for line in TINY_CORPUS] + ["the zebra sat"]
SENTENCES = ["the cat sat on the mat", "", "a zebra saw the log", "yak", "the dog"]


@pytest.fixture(scope="module")
def arpa(tmp_path_factory):
    path = tmp_path_factory.mktemp("ngram") / "bigram.arpa"
    KneserNeyBigram().fit(NGRAM_TRAIN).write_arpa(path)
    return str(path)


@pytest.fixture(scope="module")
def model():
    return make_model(input="embedding")


def kenlm_log10(arpa, words, bos=True, eos=True):
    config = kenlm.Config()
    config.arpa_complain = kenlm.ARPALoadComplain.NONE
    config.show_progress = False
    return [lp for lp, _, _ in kenlm.Model(arpa, config).full_scores(" ".join(words), bos, eos)]


def test_mix_logprobs_is_the_probability_mixture_and_stable():
    a = np.log([0.1, 0.5, 1e-300])
    b = np.log([0.3, 0.25, 1e-310])
    got = mixing.mix_logprobs(a, b, 0.25)
    np.testing.assert_allclose(np.exp(got[:2]), 0.75 * np.exp(a[:2]) + 0.25 * np.exp(b[:2]))
    tiny = mixing.mix_logprobs(np.array([-2000.0]), np.array([-2001.0]), 0.5)
    assert tiny[0] == pytest.approx(-2000.0 + math.log(0.5 + 0.5 * math.exp(-1)), abs=1e-9)
    np.testing.assert_array_equal(mixing.mix_logprobs(a, b, 0.0), a)
    np.testing.assert_array_equal(mixing.mix_logprobs(a, b, 1.0), b)


def test_weight_zero_is_the_rnn_and_weight_one_is_kenlm(model, arpa):
    rnn_only = lm.interpolate(model, arpa, 0.0)
    ngram_only = lm.interpolate(model, arpa, 1.0)
    for sentence in SENTENCES:
        for bos, eos in [(True, True), (False, True), (True, False)]:
            assert rnn_only.score(sentence, bos, eos) == model.score(sentence, bos, eos)
            words = model.vocab.split(sentence)
            got = [lp for lp, _, _ in ngram_only.full_scores(sentence, bos, eos)]
            np.testing.assert_allclose(got, kenlm_log10(arpa, words, bos, eos), atol=1e-6)


def test_every_token_is_the_mixture_of_the_two_models(model, arpa):
    mixed = lm.interpolate(model, arpa, 0.3)
    ngram = mixed.ngram
    for sentence in SENTENCES:
        rnn = np.array([lp for lp, _, _ in model.full_scores(sentence)]) * LN10
        words = model.vocab.split(sentence)
        ng = np.array(kenlm_log10(arpa, words)) * LN10
        expected = np.log(0.7 * np.exp(rnn) + 0.3 * np.exp(ng)) / LN10
        full = list(mixed.full_scores(sentence))
        np.testing.assert_allclose([lp for lp, _, _ in full], expected, rtol=1e-6)
        assert [oov for _, _, oov in full] == [w not in model.vocab.words for w in words] + [False]
        assert mixed.score(sentence) == pytest.approx(expected.sum(), rel=1e-6)
        assert ngram.token_log10probs(words) == pytest.approx(ng / LN10)


def test_the_ngram_scores_the_words_before_the_unk_mapping(model, arpa):
    """'zebra' is outside the RNN's vocabulary and inside the n-gram's: the n-gram must score
    zebra, not <unk>; lowercasing vocabularies hand the n-gram lowercased words."""
    ngram = lm.interpolate(model, arpa, 1.0)
    zebra = [lp for lp, _, _ in ngram.full_scores("the zebra sat")][1]
    unk = [lp for lp, _, _ in ngram.full_scores("the <unk> sat")][1]
    assert zebra > unk + 0.5
    lower = make_model(lines=TINY_CORPUS)
    lower.vocab = Vocab.build(TINY_CORPUS, lowercase=True)
    mixed = lm.interpolate(lower, arpa, 1.0)
    assert mixed.score("THE Zebra SAT") == pytest.approx(mixed.score("the zebra sat"), abs=1e-12)


def test_typed_boundary_tags_inside_a_sentence_are_unk_for_both(model, arpa):
    mixed = lm.interpolate(model, arpa, 0.5)
    assert mixed.score("the <s> cat </s> sat") == pytest.approx(
        mixed.score("the qq cat qq sat"), abs=1e-9
    )


def test_lm_perplexity_of_the_mixture(model, arpa):
    mixed = lm.interpolate(model, arpa, 0.4)
    r = lm.perplexity(mixed, SENTENCES)
    total = sum(mixed.score(s) for s in SENTENCES)
    assert r.log10prob == pytest.approx(total, rel=1e-9)
    assert r.tokens == sum(len(s.split()) + 1 for s in SENTENCES)
    batched = [s.log10probs for s in scoring.score_lines(mixed, SENTENCES, batch_size=2)]
    for b, sentence in zip(batched, SENTENCES):
        np.testing.assert_allclose(b, [lp for lp, _, _ in mixed.full_scores(sentence)], rtol=1e-6)


def test_token_logprobs_without_words_reads_them_from_the_ids(model, arpa):
    mixed = lm.interpolate(model, arpa, 0.5)
    ids, _ = model.vocab.encode_batch(["the cat sat", "the zebra"])
    got = mixed.token_logprobs(ids)  # zebra comes back as <unk> for the n-gram too
    expected = mixed.token_logprobs(ids, words=[["the", "cat", "sat"], ["the", "<unk>"]])
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def test_stateful_api_of_the_mixture(model, arpa):
    mixed = lm.interpolate(model, arpa, 0.35)
    for sentence in SENTENCES:
        state = mixed.begin_state()
        got = []
        for w in [*sentence.split(), "</s>"]:
            lp, state = mixed.score_word(state, w)
            got.append(lp)
        expected = [lp for lp, _, _ in mixed.full_scores(sentence)]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    start = mixed.begin_state()
    dist = mixed.next_distribution(start)
    assert dist.shape == (model.vocab.size,)
    the = model.vocab.encode("the")[0][0]
    assert dist[the] == pytest.approx(mixed.score_word(start, "the")[0], abs=1e-12)
    assert len({start, mixed.begin_state(), mixed.score_word(start, "a")[1]}) == 2


@pytest.mark.parametrize("weight", [-0.1, 1.5, math.nan])
def test_weight_outside_zero_one_is_refused(model, arpa, weight):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        lm.interpolate(model, arpa, weight)


# ----- EM -----


def log_likelihood(a, b, w):
    return float(np.sum(mixing.mix_logprobs(a, b, w)))


@pytest.mark.parametrize("seed", range(6))
def test_em_finds_the_brute_force_best_weight(seed):
    rng = np.random.default_rng(seed)
    n = 2000
    a = np.log(rng.uniform(1e-4, 1, size=n))
    b = np.log(rng.uniform(1e-4, 1, size=n)) + rng.normal(seed - 3, 1.0) * 0.3
    b = np.minimum(b, 0.0)
    coarse = np.linspace(0.0, 1.0, 201)  # brute force: a coarse grid, then a fine one
    best = coarse[int(np.argmax([log_likelihood(a, b, w) for w in coarse]))]
    grid = np.clip(np.linspace(best - 0.005, best + 0.005, 1001), 0.0, 1.0)
    lls = np.array([log_likelihood(a, b, w) for w in grid])
    w_grid = grid[int(np.argmax(lls))]
    w_em, iterations = mixing.best_weight(b - a)
    assert iterations > 1
    assert abs(w_em - w_grid) < 2e-4
    assert log_likelihood(a, b, w_em) >= lls.max() - 1e-6


def test_em_at_the_edges():
    rng = np.random.default_rng(0)
    a = np.log(rng.uniform(0.1, 1, size=500))
    worse = a - 3.0  # the n-gram is worse everywhere: the best weight is 0
    w, _ = mixing.best_weight(worse - a)
    assert w < 1e-3
    w, _ = mixing.best_weight(a - worse)  # and the other way round: 1
    assert w > 1 - 1e-3
    assert mixing.best_weight(np.zeros(10)) == (0.5, 1)  # equal models: nothing to learn
    assert mixing.best_weight(np.zeros(0)) == (0.5, 0)


def test_tune_weight_minimises_the_held_out_perplexity(model, arpa):
    dev = SENTENCES * 3
    r = mixing.tune_weight(model, arpa, iter(dev), chunk_lines=4)
    assert (r.sentences, r.tokens) == (len(dev), sum(len(s.split()) + 1 for s in dev))
    assert r.ppl_rnn == pytest.approx(lm.perplexity(model, dev).ppl, rel=1e-9)
    assert r.ppl_ngram == pytest.approx(lm.perplexity(lm.interpolate(model, arpa, 1), dev).ppl)
    at_best = lm.perplexity(lm.interpolate(model, arpa, r.weight), dev).ppl
    assert r.ppl_mixture == pytest.approx(at_best, rel=1e-9)
    for w in np.linspace(0, 1, 21):
        assert at_best <= lm.perplexity(lm.interpolate(model, arpa, w), dev).ppl + 1e-9
    assert r.ppl_mixture < min(r.ppl_rnn, r.ppl_ngram)
    with pytest.raises(TypeError, match="read_lines"):
        mixing.tune_weight(model, arpa, "dev.txt")


PTB_TEST = "/work/shared/corpora/ptb/ptb.test.txt"
PTB_ARPA = "/work/shared/corpora/ngram/ptb-train90.5gram.arpa"


@pytest.mark.skipif(
    not (os.path.exists(PTB_TEST) and os.path.exists(PTB_ARPA)), reason="needs ../shared/corpora"
)
def test_the_ptb_5gram_through_the_mixture_at_weight_one_is_its_published_figure(model):
    """The shared README gives 189.57 for the 5-gram on ptb.test.txt (every token, OOVs as
    <unk>): the mixture code at W = 1 must reproduce it, whatever the RNN's vocabulary."""
    r = lm.perplexity(lm.interpolate(model, PTB_ARPA, 1.0), PTB_TEST, progress=False)
    assert r.tokens == 82430
    assert r.ppl == pytest.approx(189.57, abs=0.01)
