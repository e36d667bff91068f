"""lm.stateful: begin_state / score_word / next_distribution give full_scores' numbers, and
states are immutable, reusable and hashable."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lmfixtures import make_model

from lm.tokenizer import EOS

MODELS = {kind: make_model(input=kind) for kind in ("onehot", "embedding")}
MODELS["gru-2"] = make_model(cell="gru", input="embedding", layers=2)  # stacked layers


def walk(model, words, bos=True):
    state = model.begin_state(bos)
    out = []
    for w in words:
        lp, state = model.score_word(state, w)
        out.append(lp)
    return out, state


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("bos", [True, False])
@pytest.mark.parametrize("sentence", ["the cat sat on the mat", "", "a zebra saw <unk> dog"])
def test_score_word_equals_full_scores(kind, bos, sentence):
    model = MODELS[kind]
    got, _ = walk(model, [*sentence.split(), "</s>"], bos)
    expected = [lp for lp, _, _ in model.full_scores(sentence, bos=bos)]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert math.fsum(got) == pytest.approx(model.score(sentence, bos=bos), abs=1e-5)


def test_next_distribution_is_indexed_like_the_vocabulary_and_sums_to_one():
    model = MODELS["onehot"]
    _, state = walk(model, ["the", "dog"])
    dist = model.next_distribution(state)
    assert dist.shape == (model.vocab.size,) and dist.dtype == np.float64
    assert np.sum(10.0**dist) == pytest.approx(1.0, abs=1e-6)
    for word in ["cat", "mat", "</s>", "zebra"]:
        wid = EOS if word == "</s>" else model.vocab.encode(word)[0][0]
        assert model.score_word(state, word)[0] == dist[wid]
    assert model.score_word(state, "zebra")[0] == dist[0]  # an OOV is scored as <unk>


def test_states_are_immutable_and_reusable():
    model = MODELS["embedding"]
    start = model.begin_state()
    before = start.vector.copy()
    lp_cat, after_cat = model.score_word(start, "cat")
    lp_dog, after_dog = model.score_word(start, "dog")  # a second continuation
    np.testing.assert_array_equal(start.vector, before)
    assert model.score_word(start, "cat") == (lp_cat, after_cat)
    assert after_cat != after_dog and lp_cat != lp_dog
    assert len({start, after_cat, after_dog, model.begin_state()}) == 3
    with pytest.raises(ValueError):
        start.vector[0, 0] = 1.0
    # continuing each branch gives what scoring the whole sentence gives
    for first, after in (("cat", after_cat), ("dog", after_dog)):
        lp, _ = model.score_word(after, "sat")
        full = [x for x, _, _ in model.full_scores(f"{first} sat")][1]
        assert lp == pytest.approx(full, rel=1e-5)


def test_the_state_after_eos_starts_the_next_sentence():
    model = MODELS["onehot"]
    _, after = walk(model, ["the", "cat", "</s>"])
    bos_state = model.begin_state()
    # the sentence start is the state after feeding </s>, whatever came before it is history
    assert model.score_word(after, "a")[0] != pytest.approx(model.score_word(bos_state, "a")[0])
    _, fresh = model.score_word(model.begin_state(bos=False), "</s>")
    assert fresh == bos_state


def test_bad_calls():
    model = MODELS["onehot"]
    with pytest.raises(ValueError, match="exactly one word"):
        model.score_word(model.begin_state(), "the cat")
    with pytest.raises(TypeError, match="begin_state"):
        model.score_word(np.zeros((1, 8)), "the")
    # a typed <s> is not the sentence start: it is scored as <unk>
    state = model.begin_state()
    assert model.score_word(state, "<s>")[0] == model.next_distribution(state)[0]


def test_states_of_a_network_on_a_device_are_host_copies(backends):
    import devices

    from lm.api import LanguageModel
    from lm.model import Network

    model = MODELS["gru-2"]
    net = Network.build(model.net.config, devices.put(backends, dict(model.net.params)))
    on_device = LanguageModel(net, model.vocab, {})
    want, _ = walk(model, ["the", "cat", "</s>"])
    got, state = walk(on_device, ["the", "cat", "</s>"])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert type(state.vector) is np.ndarray and hash(state) == hash(walk(on_device, ["the", "cat", "</s>"])[1])
