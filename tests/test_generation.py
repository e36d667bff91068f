"""lm.generation: each decoder against an independent replay of the network, the filters on
hand-made distributions, sampling frequencies against the model, log10prob against scoring."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lmfixtures import TINY_CORPUS, make_model

from lm import generation
from lm.generation import filter_logits, sample_rows, top_k_filter, top_p_mask
from lm.tokenizer import BOS, EOS, UNK

LN10 = math.log(10.0)


@pytest.fixture(scope="module", params=["elman", "gru", "lstm", "class", "tied", "lstm-2"])
def model(request):
    """Every test on this fixture runs with each cell (full softmax), with the class head
    (4 classes), with a GRU whose output weights are its embedding and with two stacked
    LSTM layers: generation reads the same next-word distributions from any."""
    if request.param == "class":
        return make_model(output="class", n_classes=4)
    if request.param == "tied":
        return make_model(cell="gru", tie=True)
    if request.param == "lstm-2":
        return make_model(cell="lstm", layers=2)
    return make_model(cell=request.param)


def word_ids(model, words):
    index = {w: i for i, w in enumerate(model.vocab.words)}
    return [index[w] for w in words]


def replay(model, prompt_ids, ids):
    """Next-word ln distributions before each of ids and after the last: (len(ids) + 1, n).

    Steps the network one word at a time from the zero state, </s> first (the sentence-start
    input), independently of lm.generation."""
    net = model.net
    s = net.step(np.array([EOS]), net.zero_state(1))
    for i in prompt_ids:
        s = net.step(np.array([i]), s)
    out = []
    for i in list(ids) + [None]:
        out.append(net.next_logprobs(s)[0].astype(np.float64))
        if i is not None:
            s = net.step(np.array([i]), s)
    return np.array(out)


def masked(lp, banned=(BOS,)):
    lp = np.array(lp, dtype=np.float64)
    lp[..., list(banned)] = -np.inf
    return lp


def first_word_counts(samples, n_vocab, model):
    """How often each id came first (</s> when the sample ended at once)."""
    first = [word_ids(model, s.tokens[:1])[0] if s.tokens else EOS for s in samples]
    return np.bincount(first, minlength=n_vocab)


def chi_square_critical(df: int, z: float = 3.0902) -> float:
    """Upper quantile of chi-square(df) by Wilson-Hilferty; z = 3.0902 is the 0.999 normal
    quantile, so a correct sampler fails with probability about 0.001 (and the seed is fixed)."""
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + z * math.sqrt(a)) ** 3


def assert_matches_distribution(counts, probs):
    """Pearson chi-square of counts against probs, bins with expected count < 5 pooled."""
    n = counts.sum()
    assert counts[probs == 0].sum() == 0, "drew a word of zero probability"
    expected = n * probs
    small = (expected < 5) & (probs > 0)
    big = expected >= 5
    obs = np.append(counts[big], counts[small].sum())
    exp = np.append(expected[big], expected[small].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    chi2 = float(np.sum((obs - exp) ** 2 / exp))
    assert chi2 < chi_square_critical(len(obs) - 1), (chi2, obs, exp.round(1))


# ----- greedy -----


@pytest.mark.parametrize("prompt", ["", "the cat", "a dog saw"])
@pytest.mark.parametrize("kind", ["onehot", "embedding", "gru", "lstm"])
def test_greedy_is_the_argmax_at_every_step(prompt, kind):
    options = {"cell": kind} if kind in ("gru", "lstm") else {"input": kind}
    m = make_model(seed=3, **options)
    (s,) = m.generate(prompt=prompt, greedy=True, max_tokens=30)
    prompt_ids = word_ids(m, s.prompt_tokens)
    ids = word_ids(m, s.tokens)
    lps = masked(replay(m, prompt_ids, ids))
    assert [int(np.argmax(lp)) for lp in lps[: len(ids)]] == ids
    if s.stopped == "eos":
        assert np.argmax(lps[-1]) == EOS
    else:
        assert len(ids) == 30


def test_greedy_matches_the_scoring_api(model):
    (s,) = model.generate(prompt="the dog", greedy=True)
    full = " ".join(s.prompt_tokens + s.tokens)
    expected = model.score(full, eos=s.stopped == "eos") - model.score("the dog", eos=False)
    assert s.log10prob == pytest.approx(expected, abs=1e-4)


def test_tiny_temperature_and_top_k_1_equal_greedy(model):
    for prompt in ("", "the", "a cat saw"):
        (greedy,) = model.generate(prompt=prompt, greedy=True)
        for options in ({"temperature": 1e-6}, {"temperature": 1e-300}, {"top_k": 1}):
            got = model.generate(prompt=prompt, num=4, seed=5, **options)
            assert all(g.tokens == greedy.tokens for g in got), options
            assert all(g.log10prob == pytest.approx(greedy.log10prob) for g in got)


# ----- what is never emitted -----


def test_bos_is_never_emitted_even_when_most_probable():
    m = make_model()
    m.net.params["c"][BOS] += 30  # <s> would be chosen almost every time if it were allowed
    samples = m.generate(num=200, max_tokens=5, seed=0)
    assert not any("<s>" in s.tokens for s in samples)
    (g,) = m.generate(greedy=True, max_tokens=5)
    assert "<s>" not in g.tokens
    # log10prob stays the model's own: P(<s>) ~ 1 makes every real word very improbable
    assert all(s.log10prob < -10 for s in samples)


def test_no_unk_never_emits_unk():
    m = make_model()
    m.net.params["c"][UNK] += 30
    assert all(s.tokens == ["<unk>"] * 5 for s in m.generate(num=20, max_tokens=5, seed=0))
    for options in ({"num": 100, "seed": 0}, {"greedy": True}, {"beam": 5}):
        samples = m.generate(max_tokens=5, no_unk=True, **options)
        assert not any("<unk>" in s.tokens for s in samples), options


# ----- log10prob -----


@pytest.mark.parametrize("prompt", ["", "the cat", "the zebra sat"])
def test_log10prob_equals_model_score(model, prompt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", generation.PromptWarning)
        samples = model.generate(prompt=prompt, num=40, max_tokens=6, seed=2)
    assert {s.stopped for s in samples} == {"eos", "max_tokens"}  # both cases checked
    context = model.score(prompt, eos=False) if prompt else 0.0
    for s in samples:
        full = " ".join(s.prompt_tokens + s.tokens)
        eos = s.stopped == "eos"
        assert s.log10prob == pytest.approx(model.score(full, eos=eos) - context, abs=1e-4)
        # and against the network itself, word by word
        lps = replay(model, word_ids(model, s.prompt_tokens), word_ids(model, s.tokens))
        ids = word_ids(model, s.tokens) + ([EOS] if eos else [])
        own = sum(lps[j, i] for j, i in enumerate(ids)) / LN10
        assert s.log10prob == pytest.approx(own, abs=1e-5)


def test_log10prob_is_untempered_and_unfiltered(model):
    for options in ({"temperature": 0.3}, {"top_k": 2}, {"top_p": 0.5}):
        for s in model.generate(prompt="the", num=30, max_tokens=4, seed=1, **options):
            full = " ".join(s.prompt_tokens + s.tokens)
            expected = model.score(full, eos=s.stopped == "eos") - model.score("the", eos=False)
            assert s.log10prob == pytest.approx(expected, abs=1e-4)


# ----- length, text, prompt -----


def test_max_tokens_and_stopped(model):
    for max_tokens in (1, 2, 7):
        for s in model.generate(num=50, max_tokens=max_tokens, seed=4):
            if s.stopped == "eos":
                assert len(s.tokens) < max_tokens
            else:
                assert s.stopped == "max_tokens" and len(s.tokens) == max_tokens
            assert "</s>" not in s.tokens


def test_text_is_prompt_and_continuation_with_single_spaces(model):
    for s in model.generate(prompt="  the   cat ", num=10, seed=0):
        assert s.prompt_tokens == ["the", "cat"]
        assert s.text == " ".join(["the", "cat"] + s.tokens)
        assert s.to_dict()["text"] == s.text


def test_unknown_prompt_words_warn_and_become_unk(model):
    with pytest.warns(generation.PromptWarning, match="zebra"):
        (s,) = model.generate(prompt="the zebra", greedy=True)
    assert s.prompt_tokens == ["the", "<unk>"]
    assert s.text.startswith("the <unk>")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.generate(prompt="the <unk> cat", greedy=True)  # a literal <unk> is a word


def test_lowercasing_vocabulary_lowercases_the_prompt():
    from lm.tokenizer import Vocab

    m = make_model()
    m.vocab = Vocab.build(TINY_CORPUS, lowercase=True)  # same words, same ids
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (s,) = m.generate(prompt="The CAT", greedy=True)
    assert s.prompt_tokens == ["the", "cat"]
    assert s.text.startswith("the cat")


# ----- randomness -----


def test_seed_makes_sampling_repeatable(model):
    a = model.generate(num=5, max_tokens=20, seed=11)
    b = model.generate(num=5, max_tokens=20, seed=11)
    c = model.generate(num=5, max_tokens=20, seed=12)
    assert a == b
    assert a != c
    # without a seed, two runs of 5 x 20 words coincide with negligible probability
    assert model.generate(num=5, max_tokens=20) != model.generate(num=5, max_tokens=20)


# ----- sampling frequencies -----


def test_first_word_frequencies_match_the_model(model):
    n = model.net.config.n_vocab
    samples = model.generate(num=20000, max_tokens=1, seed=0)
    counts = first_word_counts(samples, n, model)
    probs = np.exp(masked(replay(model, [], [])[0]))
    assert_matches_distribution(counts, probs / probs.sum())


def test_first_word_frequencies_after_a_prompt_with_no_unk(model):
    n = model.net.config.n_vocab
    samples = model.generate(prompt="the cat", num=20000, max_tokens=1, seed=1, no_unk=True)
    counts = first_word_counts(samples, n, model)
    lp = replay(model, word_ids(model, ["the", "cat"]), [])[0]
    probs = np.exp(masked(lp, (BOS, UNK)))
    assert_matches_distribution(counts, probs / probs.sum())


def nucleus_by_definition(probs, p):
    """Smallest most-probable set reaching mass p, ties by lower id: a plain loop."""
    keep, mass = set(), 0.0
    for i in sorted(range(len(probs)), key=lambda i: (-probs[i], i)):
        if probs[i] == 0 or (keep and mass >= p - 1e-9):
            break
        keep.add(i)
        mass += probs[i]
    return keep


@pytest.mark.parametrize(
    "temperature, top_k, top_p", [(0.7, 5, None), (1.5, None, 0.8), (1.0, 6, 0.6)]
)
def test_filtered_sampling_frequencies(model, temperature, top_k, top_p):
    n = model.net.config.n_vocab
    samples = model.generate(
        num=20000, max_tokens=1, seed=3, temperature=temperature, top_k=top_k, top_p=top_p
    )
    counts = first_word_counts(samples, n, model)
    # the target distribution, built step by step from the definitions
    q = np.exp(masked(replay(model, [], [])[0]) / temperature)
    q /= q.sum()
    if top_k is not None:
        q[np.argsort(-q, kind="stable")[top_k:]] = 0
        q /= q.sum()
    if top_p is not None:
        keep = nucleus_by_definition(q, top_p)
        q[[i for i in range(n) if i not in keep]] = 0
        q /= q.sum()
    assert_matches_distribution(counts, q)


def test_sample_rows_on_a_hand_made_distribution():
    probs = np.array([0.5, 0.0, 0.25, 0.125, 0.0625, 0.0625, 0.0])
    logits = np.log(np.where(probs > 0, probs, 1e-300))
    logits[probs == 0] = -np.inf
    rng = np.random.default_rng(0)
    draws = sample_rows(np.tile(logits, (20000, 1)), rng)  # one batch of 20000 rows
    assert_matches_distribution(np.bincount(draws, minlength=len(probs)), probs)


def test_sample_rows_never_draws_a_zero_probability_word():
    z = np.full((1000, 6), -np.inf)
    z[:, 0] = 0.0  # only word 0 possible; u = 0 must not pick a -inf word before it
    z[:500, 0], z[:500, 5] = -np.inf, 1.0
    draws = sample_rows(z, np.random.default_rng(0))
    assert (draws[:500] == 5).all() and (draws[500:] == 0).all()


# ----- the filters on hand-made distributions -----


def kept(mask_row):
    return set(np.flatnonzero(mask_row).tolist())


@pytest.mark.parametrize(
    "probs, p, expected",
    [
        ([0.5, 0.3, 0.2], 0.8, {0, 1}),  # reaches p exactly: no more words
        ([0.5, 0.3, 0.2], 0.81, {0, 1, 2}),
        ([0.5, 0.3, 0.2], 0.5, {0}),
        ([0.5, 0.3, 0.2], 0.01, {0}),  # the most probable word is always kept
        ([0.2, 0.5, 0.3], 0.8, {1, 2}),  # order of ids does not matter
        ([0.4, 0.3, 0.3], 0.6, {0, 1}),  # tie at the boundary: the lower id, smallest set
        ([0.3, 0.3, 0.4], 0.6, {2, 0}),
        ([0.25, 0.25, 0.25, 0.25], 0.5, {0, 1}),
        ([0.25, 0.25, 0.25, 0.25], 0.51, {0, 1, 2}),
        ([0.5, 0.5], 0.5, {0}),
        ([0.6, 0.4, 0.0], 1.0, {0, 1}),  # p = 1: every word of non-zero probability
        ([0.5, 0.3, 0.2], 1.0, {0, 1, 2}),
        ([1 - 1e-12, 1e-12], 1.0, {0, 1}),
        ([1.0, 0.0, 0.0], 0.9, {0}),
    ],
)
def test_top_p_mask_hand_made(probs, p, expected):
    assert kept(top_p_mask(np.array([probs]), p)[0]) == expected


def test_top_p_mask_rows_are_independent():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.25, 0.25, 0.5]])
    mask = top_p_mask(probs, 0.6)
    assert [kept(r) for r in mask] == [{0, 1}, {2}, {2, 0}]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=12).filter(lambda w: sum(w) > 0),
    st.sampled_from([0.05, 0.3, 0.5, 0.77, 0.9, 0.999, 1.0]),
)
def test_top_p_mask_is_the_smallest_top_set(weights, p):
    probs = np.array(weights, dtype=np.float64) / sum(weights)  # small integers: many ties
    keep = top_p_mask(probs[None, :], p)[0]
    assert keep.any()
    assert kept(keep) == nucleus_by_definition(probs, p)
    assert probs[keep].sum() >= p - 1e-9  # reaches p
    assert probs[keep].min() >= probs[~keep].max(initial=0)  # the most probable words
    assert probs[keep].sum() - probs[keep].min() < p + 1e-9 or p == 1.0  # smallest


def test_top_k_filter_keeps_exactly_the_k_largest():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 20))
    for k in (1, 3, 19, 20, 25):
        out = top_k_filter(z, k)
        finite = np.isfinite(out)
        assert (finite.sum(axis=1) == min(k, 20)).all()
        kth = -np.sort(-z, axis=1)[:, min(k, 20) - 1 : min(k, 20)]
        assert (z[finite] >= np.broadcast_to(kth, z.shape)[finite]).all()
        assert (out[finite] == z[finite]).all()


def test_temperature_raises_probabilities_to_the_power_1_over_t():
    p = np.array([[0.5, 0.25, 0.15, 0.1, 0.0]])
    for t in (0.25, 0.7, 1.0, 3.0):
        q = p ** (1 / t)
        with np.errstate(divide="ignore"):
            got = generation.softmax(filter_logits(np.log(p), t))
        np.testing.assert_allclose(got, q / q.sum(), rtol=1e-12, atol=0)


def test_filter_order_temperature_then_top_k_then_top_p():
    lp = np.log(np.array([[0.4, 0.3, 0.2, 0.1]]))
    # top-p after top-k sees 4/7, 3/7: 0.5 is reached by the first word alone
    assert kept(np.isfinite(filter_logits(lp, 1.0, top_k=2, top_p=0.5))[0]) == {0}
    assert kept(np.isfinite(filter_logits(lp, 1.0, top_p=0.5))[0]) == {0, 1}
    # temperature before top-p: a hot distribution is flatter, so its nucleus is larger
    lp2 = np.log(np.array([[0.6, 0.4]]))
    assert kept(np.isfinite(filter_logits(lp2, 1.0, top_p=0.6))[0]) == {0}
    assert kept(np.isfinite(filter_logits(lp2, 100.0, top_p=0.6))[0]) == {0, 1}


def test_top_k_generation_stays_within_the_k_most_probable(model):
    k = 3
    for s in model.generate(prompt="the", num=50, max_tokens=8, seed=9, top_k=k):
        ids = word_ids(model, s.tokens) + ([EOS] if s.stopped == "eos" else [])
        lps = masked(replay(model, word_ids(model, s.prompt_tokens), ids[: len(s.tokens)]))
        for lp, i in zip(lps, ids):
            assert lp[i] >= np.sort(lp)[-k]


# ----- incremental, batched -----


def test_one_batched_step_per_word(monkeypatch):
    m = make_model()
    net = m.net
    calls = {"step": [], "next": []}
    step, next_logprobs = net.step, net.next_logprobs
    monkeypatch.setattr(net, "step", lambda ids, s: calls["step"].append(ids.shape) or step(ids, s))
    monkeypatch.setattr(
        net, "next_logprobs", lambda s: calls["next"].append(s.shape) or next_logprobs(s)
    )
    samples = m.generate(prompt="the cat", num=7, max_tokens=10, seed=0)
    steps = max(len(s.tokens) + (s.stopped == "eos") for s in samples)
    assert calls["next"] == [(7, net.config.hidden)] * steps
    assert calls["step"] == [(7,)] * (steps - 1)


def test_float64_model(model):
    m = make_model(dtype=np.float64)
    s = m.generate(prompt="the", num=3, seed=0)
    assert len(s) == 3


# ----- beam search -----


def test_beam_results_are_sorted_distinct_and_scored(model):
    found = model.generate(prompt="the cat", beam=5, max_tokens=8)
    assert len(found) == 5
    scores = [s.log10prob for s in found]
    assert scores == sorted(scores, reverse=True)
    assert len({(tuple(s.tokens), s.stopped) for s in found}) == 5
    for s in found:
        full = " ".join(s.prompt_tokens + s.tokens)
        expected = model.score(full, eos=s.stopped == "eos") - model.score("the cat", eos=False)
        assert s.log10prob == pytest.approx(expected, abs=1e-4)


def test_wide_beam_is_exhaustive_search(model):
    """With max_tokens = 2 a beam of 200 holds every candidate: compare with enumeration."""
    words = [i for i in range(model.net.config.n_vocab) if i not in (BOS, EOS)]
    candidates = [((), True)] + [((w,), True) for w in words]
    candidates += [((w1, w2), False) for w1 in words for w2 in words]
    prompt = word_ids(model, ["a"])
    scored = []
    for ids, eos in candidates:
        lps = replay(model, prompt, list(ids))
        seq = list(ids) + ([EOS] if eos else [])
        scored.append((sum(lps[j, i] for j, i in enumerate(seq)) / LN10, ids, eos))
    scored.sort(key=lambda c: -c[0])
    found = model.generate(prompt="a", beam=200, max_tokens=2, min_tokens=0)
    assert len(found) == len(candidates)
    for s, (value, ids, eos) in zip(found[:20], scored[:20]):
        assert tuple(word_ids(model, s.tokens)) == ids
        assert (s.stopped == "eos") == eos
        assert s.log10prob == pytest.approx(value, abs=1e-6)


def beam_candidates(model, min_words: int):
    """Every continuation of "a" up to two words (ending with </s>, or two words long), with
    at least ``min_words`` words, scored by replaying the network, best first."""
    words = [i for i in range(model.net.config.n_vocab) if i not in (BOS, EOS)]
    candidates = [((), True)] + [((w,), True) for w in words]
    candidates += [((w1, w2), False) for w1 in words for w2 in words]
    prompt = word_ids(model, ["a"])
    scored = []
    for ids, eos in candidates:
        if len(ids) < min_words:
            continue
        lps = replay(model, prompt, list(ids))
        seq = list(ids) + ([EOS] if eos else [])
        scored.append((sum(lps[j, i] for j, i in enumerate(seq)) / LN10, ids, eos))
    return sorted(scored, key=lambda c: -c[0])


@pytest.mark.parametrize("min_tokens", [None, 1, 2])
def test_beam_min_tokens_is_exhaustive_search_over_long_enough_texts(model, min_tokens):
    """The default (None) is 1: the empty continuation is never returned."""
    scored = beam_candidates(model, 1 if min_tokens is None else min_tokens)
    options = {} if min_tokens is None else {"min_tokens": min_tokens}
    found = model.generate(prompt="a", beam=200, max_tokens=2, **options)
    assert len(found) == len(scored)
    for s, (value, ids, eos) in zip(found[:20], scored[:20]):
        assert tuple(word_ids(model, s.tokens)) == ids
        assert (s.stopped == "eos") == eos
        assert s.log10prob == pytest.approx(value, abs=1e-6)


def test_default_beam_never_returns_the_empty_text(model):
    for prompt in ("", "the", "the cat sat on the mat"):
        best = model.generate(prompt=prompt, beam=3, max_tokens=6)
        empty = model.generate(prompt=prompt, beam=3, max_tokens=6, min_tokens=0)
        assert all(s.tokens for s in best)
        assert len(best) == len(empty) == 3
        # min_tokens only removes candidates: the rest keep their order and scores
        assert [s for s in empty if s.tokens] == best[: len([s for s in empty if s.tokens])]


def test_narrow_beam_is_a_prefix_with_num(model):
    full = model.generate(prompt="the", beam=6, max_tokens=6)
    assert model.generate(prompt="the", beam=6, num=2, max_tokens=6) == full[:2]
    assert len(model.generate(prompt="the", beam=1)) == 1


def test_length_normalised_beam_is_ranked_per_token(model):
    found = model.generate(prompt="the", beam=4, max_tokens=12, length_norm=True)
    per_token = [s.log10prob / (len(s.tokens) + (s.stopped == "eos")) for s in found]
    assert per_token == sorted(per_token, reverse=True)


# ----- bad options -----


@pytest.mark.parametrize(
    "options",
    [
        {"temperature": 0},
        {"temperature": -1.0},
        {"temperature": float("nan")},
        {"temperature": float("inf")},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"top_p": -0.1},
        {"top_p": float("nan")},
        {"top_k": 0},
        {"top_k": 2.5},
        {"top_k": True},
        {"max_tokens": 0},
        {"max_tokens": 1.5},
        {"num": 0},
        {"seed": -1},
        {"beam": 0},
        {"greedy": True, "temperature": 0.5},
        {"greedy": True, "top_k": 3},
        {"greedy": True, "top_p": 0.9},
        {"greedy": True, "num": 2},
        {"greedy": True, "beam": 2},
        {"beam": 2, "top_p": 0.5},
        {"beam": 2, "num": 3},
        {"length_norm": True},
        {"min_tokens": 1},
        {"beam": 2, "min_tokens": -1},
        {"beam": 2, "min_tokens": 1.5},
        {"beam": 2, "max_tokens": 3, "min_tokens": 4},
        {"max_tokens": 10**12},
        {"num": 10**9},
        {"beam": 10**8},
    ],
)
def test_bad_options_raise_value_error(model, options):
    with pytest.raises(ValueError):
        model.generate(prompt="the", **options)


@pytest.mark.parametrize("name", ["greedy", "no_unk", "length_norm"])
@pytest.mark.parametrize("value", ["no", 0, 1, None, "False"])
def test_flags_must_be_bools(model, name, value):
    """greedy="no" is not greedy decoding (nor is it turned on)."""
    with pytest.raises(TypeError, match=f"{name} must be True or False"):
        model.generate(prompt="the", **{name: value})


def test_sizes_that_cannot_fit_are_refused_before_allocating(model):
    """The vocabulary- and state-dependent part is checked with the model's sizes."""
    opts = generation.GenerationOptions(num=10**6, max_tokens=1)
    opts.check_memory(n_vocab=12, hidden=8)  # about 1 GB: fits
    with pytest.raises(ValueError, match=r"max_tokens=1 and num=1000000 with a 10000000-word"):
        opts.check_memory(n_vocab=10**7, hidden=8)
    with pytest.raises(ValueError, match="more than the 1 kB available"):
        generation.GenerationOptions(beam=3).check_memory(12, 8, limit=1000)
    beam = generation.GenerationOptions(beam=4, max_tokens=7)
    assert beam.memory_bytes(100, 8) < beam.memory_bytes(1000, 8) < beam.memory_bytes(1000, 80)


def test_unknown_option_is_a_type_error(model):
    with pytest.raises(TypeError):
        model.generate(prompt="the", temprature=0.5)


@pytest.mark.parametrize("options", [{"seed": 3, "num": 3, "top_k": 4}, {"beam": 3}])
def test_generation_on_a_device_equals_the_host(backends, options):
    """The same samples and beams, word for word, from a network whose weights are on a
    device (the sampling itself runs on the host, so the same seed draws the same words)."""
    import devices

    from lm.api import LanguageModel
    from lm.model import Network

    m = make_model(cell="lstm", layers=2)
    want = m.generate("the cat", max_tokens=6, **options)
    net = Network.build(m.net.config, devices.put(backends, dict(m.net.params)))
    got = LanguageModel(net, m.vocab, {}).generate("the cat", max_tokens=6, **options)
    assert [g.text for g in got] == [w.text for w in want]
    np.testing.assert_allclose([g.log10prob for g in got], [w.log10prob for w in want], rtol=1e-5)
