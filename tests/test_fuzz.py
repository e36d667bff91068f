"""Arbitrary Unicode through the tokenizer, ``score``, ``full_scores``, ``perplexity`` and
``generate`` (hypothesis).

The documented behaviour for any ``str``, whatever it holds: no exception at all (the only
warning is ``generation.PromptWarning`` for prompt words outside the vocabulary). Empty and
whitespace-only sentences score ``</s>`` alone; control characters, right-to-left text, emoji
and very long words are words like any other (out of the vocabulary unless they are in it);
``<s>`` and ``</s>`` typed in a sentence are OOV words, a typed ``<unk>`` is the vocabulary
word ``<unk>``.

Lone surrogates (U+D800..U+DFFF, possible in a Python str, never in UTF-8 text: they come from
``surrogateescape`` decoding, e.g. a command-line argument that is not UTF-8) are read as U+FFFD,
the replacement character, exactly as ``--errors replace`` reads a byte that is not UTF-8: a
word holding one is an OOV word. Nothing raises (see ``lm.tokenizer``).

Every probability is finite and <= 0 in log space, ``score`` equals the sum of
``full_scores``, and a sentence's perplexity is 10 ** (-score / tokens) >= 1.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lmfixtures import TINY_CORPUS, make_model

import lm
from lm import data
from lm.generation import PromptWarning
from lm.model import ModelConfig, Network
from lm.tokenizer import BOS, EOS, UNK, Vocab, replace_surrogates

WORDS = sorted({w for line in TINY_CORPUS for w in line.split()})


def _lowercasing_model() -> lm.LanguageModel:
    vocab = Vocab.build(
        [line.upper() for line in TINY_CORPUS] + ["İstanbul Straße"], lowercase=True
    )
    net = Network.create(ModelConfig(n_vocab=vocab.size, hidden=6), np.random.default_rng(1))
    return lm.LanguageModel(net, vocab)


MODELS = {
    "onehot": make_model(),
    "embedding": make_model(input="embedding", hidden=5, activation="relu", scale=6.0),
    "lowercase": _lowercasing_model(),
}
FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ----- strategies: words and the space between them -----

SPACES = [
    " ",
    "  ",
    "\t",
    "\n",
    "\r",
    "\r\n",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1f",
    "\x85",
    "\xa0",
    "\u1680",
    "\u2000",
    "\u2028",
    "\u2029",
    "\u3000",
    "\u200b",
    "\ufeff",
]
any_char = st.characters(exclude_categories=())  # every code point, surrogates included
control = st.characters(max_codepoint=0x9F, categories=["Cc"])
rtl = st.characters(min_codepoint=0x0590, max_codepoint=0x06FF)  # Hebrew and Arabic
emoji = st.sampled_from(["😀", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "\u2764\ufe0f"])
surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=())

word = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(["<s>", "</s>", "<unk>", "<UNK>", "<s", "s>", "</s></s>", "<unk><unk>"]),
    st.text(any_char, min_size=1, max_size=12),
    st.lists(st.one_of(control, rtl, emoji, surrogate), min_size=1, max_size=6).map("".join),
    st.builds(
        lambda w, n: w * n, st.sampled_from(["x", "é", "漢", "😀"]), st.integers(200, 20_000)
    ),  # very long words
    st.sampled_from(WORDS).map(str.upper),
)
space = st.one_of(st.just(" "), st.lists(st.sampled_from(SPACES), max_size=4).map("".join))


@st.composite
def sentences(draw) -> str:
    words = draw(st.lists(word, max_size=10))
    gaps = draw(st.lists(space, min_size=len(words) + 1, max_size=len(words) + 1))
    return gaps[0] + "".join(w + g for w, g in zip(words, gaps[1:]))


sentence = st.one_of(
    sentences(),
    st.text(any_char, max_size=40),
    st.sampled_from(
        ["", " ", "\t\n\r", "<s> the cat </s>", "<unk>", "\ud800", "the \udcff cat", "\x00"]
    ),
)
model_kind = st.sampled_from(sorted(MODELS))


def _check_log10probs(lps) -> None:
    assert all(math.isfinite(lp) and lp <= 0 for lp in lps), lps


# ----- the tokenizer -----


@FUZZ
@given(kind=model_kind, line=sentence)
def test_tokenizer_never_raises_and_is_self_consistent(kind, line):
    vocab = MODELS[kind].vocab
    ids, oov = vocab.encode(line)
    words = vocab.split(line)
    assert ids.dtype == np.int32 and oov.dtype == bool
    assert len(ids) == len(oov) == len(words)
    assert ((ids >= 0) & (ids < vocab.size)).all()
    assert not np.isin(ids, [BOS, EOS]).any()  # boundaries are never words of a sentence
    for w, i, is_oov in zip(words, ids.tolist(), oov.tolist()):
        if w in ("<s>", "</s>"):
            assert (i, is_oov) == (UNK, True)
        elif w == "<unk>":
            assert (i, is_oov) == (UNK, False)
        else:
            assert is_oov == (i == UNK)
            assert vocab.words[i] == w or is_oov
    assert not any(("\ud800" <= c <= "\udfff") for w in words for c in w)


@FUZZ
@given(kind=model_kind, line=sentence)
def test_lone_surrogates_are_read_as_replacement_characters(kind, line):
    vocab = MODELS[kind].vocab
    clean = replace_surrogates(line)
    assert len(clean) == len(line)
    a, b = vocab.encode(line), vocab.encode(clean)
    assert a[0].tolist() == b[0].tolist() and a[1].tolist() == b[1].tolist()
    assert vocab.split(line) == vocab.split(clean)


@FUZZ
@given(lines=st.lists(sentence, max_size=6), lowercase=st.booleans())
def test_vocabulary_built_from_any_text_survives_save_and_load(tmp_path_factory, lines, lowercase):
    vocab = Vocab.build(lines, lowercase=lowercase)
    path = tmp_path_factory.mktemp("vocab") / "tokenizer.json"
    vocab.save(path)
    again = Vocab.load(path)
    assert again.words == vocab.words
    for line in lines:
        ids, oov = vocab.encode(line)
        ids2, oov2 = again.encode(line)
        assert ids.tolist() == ids2.tolist() and oov.tolist() == oov2.tolist()
        known = set(vocab.words) - {"<s>", "</s>"}
        assert all(o == (w not in known) for w, o in zip(vocab.split(line), oov.tolist()))


# ----- scoring -----


@FUZZ
@given(kind=model_kind, line=sentence, bos=st.booleans(), eos=st.booleans())
def test_score_is_the_sum_of_finite_full_scores(kind, line, bos, eos):
    model = MODELS[kind]
    full = list(model.full_scores(line, bos=bos, eos=eos))
    n_words = len(model.vocab.split(line))
    assert len(full) == n_words + eos
    _check_log10probs([lp for lp, _, _ in full])
    assert [ctx for _, ctx, _ in full] == [i + bos for i in range(len(full))]
    if eos:
        assert full[-1][2] is False  # </s> is never OOV
    total = model.score(line, bos=bos, eos=eos)
    assert math.isfinite(total) and total <= 0
    assert total == pytest.approx(math.fsum(lp for lp, _, _ in full), rel=1e-12, abs=1e-12)


@FUZZ
@given(kind=model_kind, line=sentence)
def test_sentence_perplexity_is_finite_and_at_least_one(kind, line):
    model = MODELS[kind]
    ppl = model.perplexity(line)
    tokens = len(model.vocab.split(line)) + 1
    assert math.isfinite(ppl) and ppl >= 1
    assert ppl == pytest.approx(10 ** (-model.score(line) / tokens), rel=1e-9)


@FUZZ
@given(kind=model_kind, line=sentence)
def test_surrogates_score_like_replacement_characters(kind, line):
    model = MODELS[kind]
    assert model.score(line) == model.score(replace_surrogates(line))


@FUZZ
@given(kind=model_kind, lines=st.lists(sentence, max_size=8))
def test_corpus_perplexity_of_any_lines(kind, lines):
    model = MODELS[kind]
    r = lm.perplexity(model, lines)
    scores = [model.score(line) for line in lines]
    n_words = sum(len(model.vocab.split(line)) for line in lines)
    assert (r.sentences, r.words, r.tokens) == (len(lines), n_words, n_words + len(lines))
    assert r.log10prob == pytest.approx(math.fsum(scores), rel=1e-9, abs=1e-9)
    if lines:
        assert math.isfinite(r.ppl) and r.ppl >= 1
        assert math.isfinite(r.bits_per_token) and r.bits_per_token >= 0
    else:
        assert math.isnan(r.ppl)


# ----- validation columns -----


@FUZZ
@given(lengths=st.lists(st.integers(0, 30), min_size=1, max_size=40), B=st.integers(1, 64))
def test_sentence_columns_hold_every_target_once(lengths, B):
    """``data.sentence_columns`` (training-time validation) for any sentence lengths and any
    batch size, e.g. a validation file with fewer sentences than the batch and a short last
    sentence."""
    rng = np.random.default_rng(len(lengths))
    stream = [EOS]
    for n in lengths:
        stream += rng.integers(3, 50, size=n).tolist() + [EOS]
    stream = np.array(stream, dtype=np.int32)
    columns, mask = data.sentence_columns(stream, B)
    n_columns = columns.shape[1]
    assert 1 <= n_columns <= min(B, len(lengths))
    assert mask.shape == (columns.shape[0] - 1, n_columns)
    assert (columns[0] == EOS).all()  # every column opens at a sentence start
    targets = np.concatenate([columns[1:, j][mask[:, j]] for j in range(n_columns)])
    assert targets.tolist() == stream[1:].tolist()  # each target once, in order


# ----- generation -----

decoders = st.sampled_from(
    [
        {"seed": 0, "num": 2},
        {"seed": 1, "top_k": 3, "temperature": 0.7},
        {"seed": 2, "top_p": 0.5, "no_unk": True},
        {"greedy": True},
        {"beam": 2},
    ]
)


@FUZZ
@given(kind=model_kind, prompt=sentence, options=decoders)
def test_generate_from_any_prompt(kind, prompt, options):
    model = MODELS[kind]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = model.generate(prompt=prompt, max_tokens=6, **options)
    assert all(issubclass(w.category, PromptWarning) for w in caught), [
        str(w.message) for w in caught
    ]
    ids, oov = model.vocab.encode(prompt)
    assert bool(caught) == bool(oov.any())
    assert len(samples) >= 1
    for s in samples:
        assert math.isfinite(s.log10prob) and s.log10prob <= 0
        assert len(s.prompt_tokens) == len(ids)
        assert s.prompt_tokens == [model.vocab.words[i] for i in ids.tolist()]
        assert "<s>" not in s.tokens and "</s>" not in s.tokens
        assert 0 < len(s.tokens) + (s.stopped == "eos") <= 6
        assert set(s.tokens) <= set(model.vocab.words)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_a_prompt_with_a_lone_surrogate_is_fed_as_unk(kind):
    model = MODELS[kind]
    with pytest.warns(PromptWarning, match="\ufffd"):
        got = model.generate(prompt="the ca\udcff", greedy=True, max_tokens=3)
    want = model.generate(prompt="the <unk>", greedy=True, max_tokens=3)
    assert got[0].tokens == want[0].tokens
    assert got[0].prompt_tokens[-1] == "<unk>"


def test_very_long_prompt_is_fed_in_windows():
    """A prompt far longer than one window gives the same state as a short-window replay."""
    model = MODELS["onehot"]
    prompt = " ".join(WORDS * 400)  # 3,600 words: four windows
    got = model.generate(prompt=prompt, greedy=True, max_tokens=4)[0]
    s = model.net.zero_state(1)
    for w in [EOS] + model.vocab.encode(prompt)[0].tolist():
        s = model.net.step(np.array([w]), s)
    first = int(
        np.argmax(
            np.where(np.arange(model.vocab.size) == BOS, -np.inf, model.net.next_logprobs(s)[0])
        )
    )
    assert got.tokens[:1] == [model.vocab.words[first]] or (got.stopped == "eos" and first == EOS)
