"""lm.scoring: the chain rule against an independent step-by-step replay of the network, a
proper distribution over sentences, batching, long lines, corpus counts, training validation."""

from __future__ import annotations

import io
import itertools
import math
import os
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lmfixtures import TINY_CORPUS, make_model

import lm
from lm import data, scoring
from lm.errors import DataError
from lm.tokenizer import BOS, EOS, UNK

LN10 = math.log(10.0)
PTB_VALID = "/work/shared/corpora/ptb/ptb.valid.txt"
KINDS = {  # model variants every scoring property is checked on
    "onehot": {"input": "onehot"},
    "embedding": {"input": "embedding"},
    "gru": {"cell": "gru"},
    "lstm": {"cell": "lstm", "input": "embedding"},
    "class": {"output": "class", "n_classes": 4},  # one-hot input, class head
    "tied": {"cell": "gru", "tie": True},  # V = E^T
    "tied-class": {"output": "class", "n_classes": 4, "tie": True},
    "lstm-2": {"cell": "lstm", "input": "embedding", "layers": 2},  # stacked layers
    "gru-3-class": {"cell": "gru", "layers": 3, "output": "class", "n_classes": 4},
}
MODELS = {kind: make_model(**options) for kind, options in KINDS.items()}
WORDS = sorted({w for line in TINY_CORPUS for w in line.split()})


def replay(model, ids, bos=True, eos=True) -> np.ndarray:
    """ln P of each token by feeding one word at a time (step / next_logprobs), float64."""
    net = model.net
    s = net.zero_state(1)
    if bos:
        s = net.step(np.array([EOS]), s)
    out = []
    for w in list(ids) + [EOS] * eos:
        out.append(float(net.next_logprobs(s)[0, w]))
        s = net.step(np.array([w]), s)
    return np.array(out)


# ----- the chain rule -----


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("bos", [True, False])
@pytest.mark.parametrize("eos", [True, False])
@pytest.mark.parametrize("sentence", ["the cat sat on the mat", "", "zebra", "a <unk> dog </s>"])
def test_full_scores_follow_the_chain_rule(kind, bos, eos, sentence):
    model = MODELS[kind]
    ids, oov = model.vocab.encode(sentence)
    got = list(model.full_scores(sentence, bos=bos, eos=eos))
    expected = replay(model, ids, bos, eos) / LN10
    assert len(got) == len(ids) + eos
    np.testing.assert_allclose([g[0] for g in got], expected, rtol=1e-5, atol=1e-6)
    assert [g[1] for g in got] == [i + bos for i in range(len(got))]  # context, <s> counted
    assert [g[2] for g in got] == list(oov) + [False] * eos


def test_bos_feeds_eos_from_the_zero_state():
    """bos=True is bos=False with </s> fed first: the training stream's sentence start."""
    net = MODELS["onehot"].net
    ids = np.array([3, 4, 5], dtype=np.int32)
    with_bos = scoring.score_ids(net, [ids], bos=True)[0]
    fed = scoring.score_ids(net, [np.r_[EOS, ids].astype(np.int32)], bos=False)[0]
    np.testing.assert_allclose(with_bos, fed[1:], rtol=1e-6)


def test_bos_false_predicts_the_first_word_from_the_output_bias():
    model = MODELS["embedding"]
    first = next(model.full_scores("cat", bos=False))[0]
    c = model.net.params["c"].astype(np.float64)
    expected = (c - np.log(np.sum(np.exp(c - c.max()))) - c.max())[model.vocab.encode("cat")[0][0]]
    assert first == pytest.approx(expected / LN10, rel=1e-5)


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("bos", [True, False])
def test_sentence_probabilities_sum_to_one(kind, bos):
    """sum of P(s </s>) over all sentences of up to L tokens + P(longer than L) = 1, by
    enumerating every id sequence (<unk> and <s> included) over a 3-word vocabulary; "class":
    one-hot input and the class head with 2 classes."""
    options = {"output": "class", "n_classes": 2} if kind == "class" else KINDS[kind]
    model = make_model(lines=["a b c"], hidden=6, dtype=np.float64, seed=3, **options)
    if kind == "class":
        assert len(model.net.config.classes) == 3
    n_vocab = model.net.config.n_vocab
    assert n_vocab == 6
    tokens = [i for i in range(n_vocab) if i != EOS]
    L = 4
    sentences = [
        np.array(s, dtype=np.int32)
        for n in range(L + 1)
        for s in itertools.product(tokens, repeat=n)
    ]
    longer = [np.array(s, dtype=np.int32) for s in itertools.product(tokens, repeat=L + 1)]
    p_sentences = sum(math.exp(lp.sum()) for lp in scoring.score_ids(model.net, sentences, bos))
    p_longer = sum(
        math.exp(lp.sum()) for lp in scoring.score_ids(model.net, longer, bos, eos=False)
    )
    assert 0.01 < p_longer < 0.99  # the check is not trivially about one of the terms
    assert p_sentences + p_longer == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("bos", [True, False])
@pytest.mark.parametrize("output", ["full", "class"])
def test_next_word_distributions_sum_to_one(bos, output):
    n_classes = 3 if output == "class" else None
    model = make_model(input="embedding", dtype=np.float64, output=output, n_classes=n_classes)
    net = model.net
    s = scoring.start_state(net, bos)
    for w in model.vocab.encode("the dog saw the cat")[0]:
        assert np.exp(net.next_logprobs(s)).sum() == pytest.approx(1.0, abs=1e-12)
        s = net.step(np.array([w]), s)


# ----- score, full_scores, perplexity -----


def test_score_is_the_sum_of_full_scores():
    model = MODELS["onehot"]
    for sentence in ["the cat sat", "", "zebra zebra", "the dog saw the cat on the mat"]:
        parts = [lp for lp, _, _ in model.full_scores(sentence)]
        assert model.score(sentence) == pytest.approx(math.fsum(parts), abs=1e-12)


def test_sentence_perplexity_agrees_with_corpus_perplexity():
    model = MODELS["embedding"]
    sentence = "the cat saw a zebra"
    r = lm.perplexity(model, [sentence])
    assert model.perplexity(sentence) == pytest.approx(r.ppl, rel=1e-12)
    assert model.perplexity(sentence) == pytest.approx(10 ** (-model.score(sentence) / 6))
    assert (r.sentences, r.words, r.oovs, r.tokens) == (1, 5, 1, 6)


def test_empty_line_scores_only_eos():
    model = MODELS["onehot"]
    ((lp, context, oov),) = model.full_scores("")
    expected = model.net.next_logprobs(scoring.start_state(model.net))[0, EOS] / LN10
    assert (context, oov) == (1, False)
    assert lp == pytest.approx(expected, rel=1e-6)
    assert model.perplexity("") == pytest.approx(10**-lp)
    assert model.score("", eos=False) == 0.0


def test_line_of_only_oovs_is_scored_as_unk():
    model = MODELS["onehot"]
    got = list(model.full_scores("zebra yak <s> </s>"))
    assert [oov for _, _, oov in got] == [True, True, True, True, False]
    unk = replay(model, [UNK] * 4) / LN10
    np.testing.assert_allclose([lp for lp, _, _ in got], unk, rtol=1e-5)


def test_literal_unk_is_a_vocabulary_word_not_an_oov():
    s = next(scoring.score_lines(MODELS["onehot"], ["the <unk> sat"]))
    assert s.ids.tolist()[1] == UNK and s.oov.tolist() == [False, False, False, False]


def test_sentence_score_fields():
    model = MODELS["onehot"]
    s = next(scoring.score_lines(model, ["the zebra sat"]))
    assert s.ids.tolist() == [*model.vocab.encode("the zebra sat")[0].tolist(), EOS]
    assert (s.tokens, s.words, s.oovs) == (4, 3, 1)
    assert s.token_texts(model.vocab) == ["the", "zebra", "sat", "</s>"]
    assert s.ppl == pytest.approx(10 ** (-s.log10prob / 4))
    empty = next(scoring.score_lines(model, [""], eos=False))
    assert empty.tokens == 0 and math.isnan(empty.ppl)


def test_a_str_is_not_a_list_of_sentences():
    with pytest.raises(TypeError, match="pass \\[sentence\\]"):
        next(scoring.score_lines(MODELS["onehot"], "the cat sat"))
    with pytest.raises(DataError, match="no such file"):
        lm.perplexity(MODELS["onehot"], "the cat sat")


# ----- batching -----

sentences_st = st.lists(
    st.lists(st.sampled_from(WORDS + ["zebra", "<unk>"]), max_size=12).map(" ".join),
    min_size=1,
    max_size=20,
)


@pytest.mark.parametrize("kind", list(MODELS))
@settings(max_examples=40, deadline=None)
@given(lines=sentences_st, batch_size=st.integers(1, 8), bos=st.booleans(), eos=st.booleans())
def test_batched_equals_one_at_a_time(kind, lines, batch_size, bos, eos):
    model = MODELS[kind]
    batched = list(scoring.score_lines(model, lines, bos=bos, eos=eos, batch_size=batch_size))
    assert [s.sentence for s in batched] == lines  # input order
    for s, line in zip(batched, lines):
        alone = [lp for lp, _, _ in model.full_scores(line, bos=bos, eos=eos)]
        np.testing.assert_allclose(s.log10probs, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", list(MODELS))
def test_windows_and_small_groups_carry_the_state(kind, monkeypatch):
    model = MODELS[kind]
    rng = np.random.default_rng(1)
    lines = [" ".join(rng.choice(WORDS, size=n)) for n in rng.integers(0, 30, size=40)]
    expected = [s.log10probs for s in scoring.score_lines(model, lines)]
    monkeypatch.setattr(scoring, "_WINDOW_STEPS", 3)
    monkeypatch.setattr(scoring, "_POSITIONS", 50)  # groups of a few sentences
    got = [s.log10probs for s in scoring.score_lines(model, lines, chunk_lines=7)]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_long_line_in_windows_equals_one_window(monkeypatch):
    model = make_model(hidden=16)
    line = " ".join(np.random.default_rng(2).choice(WORDS, size=5000))
    windowed = next(scoring.score_lines(model, [line]))
    monkeypatch.setattr(scoring, "_WINDOW_STEPS", 10**9)
    monkeypatch.setattr(scoring, "_POSITIONS", 10**9)
    whole = next(scoring.score_lines(model, [line]))
    assert windowed.tokens == 5001
    np.testing.assert_allclose(windowed.log10probs, whole.log10probs, rtol=1e-5, atol=1e-6)


def test_100000_word_line_in_bounded_memory():
    model = make_model(hidden=64)
    line = " ".join(np.random.default_rng(3).choice(WORDS + ["zebra"], size=100_000))
    tracemalloc.start()
    try:
        s = next(scoring.score_lines(model, [line]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert s.tokens == 100_001 and np.isfinite(s.log10prob)
    # the whole line at once would hold S, A and the drive: 3 * 100_001 * 64 * 4 B = 77 MB
    assert peak < 20e6, f"peak {peak / 1e6:.0f} MB"


def test_streams_lazily():
    """The first results arrive before the input ends (here: never)."""
    endless = (f"the cat sat {i}" for i in itertools.count())
    first = list(itertools.islice(scoring.score_lines(MODELS["onehot"], endless, chunk_lines=8), 3))
    assert [s.sentence for s in first] == ["the cat sat 0", "the cat sat 1", "the cat sat 2"]


def test_lines_before_a_bad_line_are_scored_first(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"the cat\na dog\nthe \xff mat\nsat\n")
    got = []
    with pytest.raises(DataError, match=r"bad\.txt:3: not valid UTF-8"):
        for s in scoring.score_lines(MODELS["onehot"], data.read_lines(str(path))):
            got.append(s.sentence)
    assert got == ["the cat", "a dog"]


# ----- corpus perplexity -----


def test_corpus_perplexity_counts_as_srilm():
    model = MODELS["onehot"]
    lines = ["the cat sat", "", "a zebra saw the yak", "<unk> dog"]
    scores = list(scoring.score_lines(model, lines))
    total = math.fsum(s.log10prob for s in scores)
    oov_total = math.fsum(float(s.log10probs[s.oov].sum()) for s in scores)
    words, sentences, oovs = 3 + 0 + 5 + 2, 4, 2
    r = lm.perplexity(model, lines)
    assert (r.sentences, r.words, r.oovs, r.tokens) == (sentences, words, oovs, words + sentences)
    assert r.log10prob == pytest.approx(total, abs=1e-9)
    assert r.ppl == pytest.approx(10 ** (-total / (words + sentences)))
    assert r.ppl1 == pytest.approx(10 ** (-total / words))
    assert r.ppl_excluding_oovs == pytest.approx(
        10 ** (-(total - oov_total) / (words + sentences - oovs))
    )
    assert r.bits_per_token == pytest.approx(math.log2(r.ppl))
    # a corpus perplexity, not the mean of the sentences' perplexities
    assert r.ppl != pytest.approx(np.mean([s.ppl for s in scores]))
    assert set(r.to_dict()) >= {"ppl", "ppl1", "log10prob", "sentences", "words", "oovs"}


def test_corpus_perplexity_without_eos_counts_words_only():
    r = lm.perplexity(MODELS["onehot"], ["the cat", "a dog sat"], eos=False)
    assert (r.words, r.tokens) == (5, 5)
    assert r.ppl == pytest.approx(r.ppl1)


def test_empty_corpus_has_undefined_perplexity(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    for source in ([], path):
        r = lm.perplexity(MODELS["onehot"], source, progress=False)
        assert (r.sentences, r.words, r.tokens, r.log10prob) == (0, 0, 0, 0.0)
        assert math.isnan(r.ppl) and math.isnan(r.ppl1) and math.isnan(r.bits_per_token)


def test_file_and_lines_agree_with_crlf_and_no_final_newline(tmp_path, capsys):
    path = tmp_path / "text.txt"
    path.write_bytes(b"the cat sat\r\n\r\na zebra\r\nthe dog")
    lines = ["the cat sat", "", "a zebra", "the dog"]
    from_file = lm.perplexity(MODELS["onehot"], path, progress=False)
    assert from_file == lm.perplexity(MODELS["onehot"], lines)
    assert from_file.sentences == 4
    assert capsys.readouterr().err == ""  # progress=False: no bar


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_goes_to_stderr_on_a_terminal_only(tmp_path, capsys, monkeypatch):
    path = tmp_path / "text.txt"
    path.write_text("the cat sat\n" * 10)
    lm.perplexity(MODELS["onehot"], path, progress=True)
    assert capsys.readouterr() == ("", "")  # not a terminal: no bar, no \r frames in a log
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    lm.perplexity(MODELS["onehot"], path, progress=True)
    assert "text.txt" in terminal.getvalue()
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(sys, "stderr", None)  # stderr closed: no bar, no error
    assert lm.perplexity(MODELS["onehot"], path, progress=True).sentences == 10


def test_chunks_do_not_change_the_corpus_perplexity(monkeypatch):
    rng = np.random.default_rng(4)
    lines = [" ".join(rng.choice(WORDS, size=n)) for n in rng.integers(0, 15, size=100)]
    whole = lm.perplexity(MODELS["embedding"], lines)
    monkeypatch.setattr(scoring, "CHUNK_LINES", 7)
    chunked = lm.perplexity(MODELS["embedding"], iter(lines), batch_size=3)
    assert chunked.tokens == whole.tokens
    assert chunked.log10prob == pytest.approx(whole.log10prob, rel=1e-6)


def _validation_text(tmp_path) -> str:
    """ptb.valid.txt when present, otherwise a generated text."""
    if os.path.isfile(PTB_VALID):
        return PTB_VALID
    rng = np.random.default_rng(5)
    path = tmp_path / "valid.txt"
    path.write_text(
        "".join(" ".join(rng.choice(WORDS, size=n)) + "\n" for n in rng.integers(1, 25, size=2000))
    )
    return str(path)


def test_matches_training_validation_independent(tmp_path):
    """Training-time validation of an --independent model (columns of whole sentences, the
    state reset before every </s> input) and lm.perplexity (every sentence from the state
    after </s>, bos=True, eos=True) are the same number."""
    path = _validation_text(tmp_path)
    model = make_model(lines=data.read_lines(path), hidden=8, input="embedding")
    net = model.net
    stream = data.encode_file(path, model.vocab)  # </s> w.. </s> w.. </s>
    columns, mask = data.sentence_columns(stream, 32)
    x, y = columns[:-1], columns[1:]  # (N-1, B)
    keep = (x != EOS).astype(net.dtype)[..., None]  # (N-1, B, 1): reset before each sentence
    lp, _ = net.target_logprobs(x, y, net.zero_state(x.shape[1]), keep)
    n_tokens = int(mask.sum())
    validation_ppl = math.exp(-lp[mask].sum() / n_tokens)

    r = lm.perplexity(model, path, progress=False)
    assert r.tokens == n_tokens == len(stream) - 1
    assert r.ppl == pytest.approx(validation_ppl, rel=1e-5)
    assert BOS not in stream  # the <s> id is never an input


# ----- OOV rate -----


def test_oov_rate_counts_words_outside_the_vocabulary(tmp_path):
    vocab = MODELS["onehot"].vocab
    path = tmp_path / "valid.txt"
    path.write_text("the cat sat\nthe zebra <unk> yak\n\n")
    r = scoring.oov_rate(vocab, path)
    assert (r.words, r.oovs) == (7, 2)  # a literal <unk> is a vocabulary word
    assert r.rate == pytest.approx(2 / 7)
    assert r.describe("valid.txt") == (
        "valid.txt: OOV rate 28.57% (2 of 7 words outside the vocabulary, scored as <unk>)"
    )
    assert scoring.oov_rate(vocab, ["the cat", "zebra"]) == scoring.OovRate(3, 1)
    empty = scoring.oov_rate(vocab, [])
    assert math.isnan(empty.rate) and "OOV rate undefined" in empty.describe("e")
    with pytest.raises(DataError, match="no such file"):
        scoring.oov_rate(vocab, "the cat sat")


@pytest.mark.parametrize("kind", ["lstm-2", "tied-class"])
def test_scoring_on_a_device_equals_the_host(backends, kind):
    """A network whose weights are on a device scores every sentence as on the host (1e-5):
    batched, one at a time and the first token from the start state."""
    import devices

    from lm.api import LanguageModel
    from lm.model import Network

    model = MODELS[kind]
    sentences = ["the cat sat on the mat", "", "a dog saw the cat", "zebra"]
    want = [list(model.full_scores(s)) for s in sentences]
    net = Network.build(model.net.config, devices.put(backends, dict(model.net.params)))
    on_device = LanguageModel(net, model.vocab, {})
    for s, w in zip(sentences, want):
        got = list(on_device.full_scores(s))
        np.testing.assert_allclose([g[0] for g in got], [x[0] for x in w], rtol=1e-5, atol=1e-5)
    batched = list(scoring.score_lines(on_device, sentences, batch_size=3))
    for b, w in zip(batched, want):
        np.testing.assert_allclose(b.log10probs, [x[0] for x in w], rtol=1e-5, atol=1e-5)
