"""Word-by-word scoring with an explicit state, as KenLM's ``State`` / ``BaseScore``, for
beam-search decoders and anything else that extends many hypotheses from one context.

    state = model.begin_state()                  # <s>: the state after feeding </s>
    lp, s1 = model.score_word(state, "the")      # log10 P(the | <s>), and the state after it
    lp2, s2 = model.score_word(state, "a")       # another continuation of the same state
    model.next_distribution(s1)                  # log10 P(w | <s> the) for every w, (n_vocab,)

The numbers are those of ``full_scores`` (the same chain rule, fed one word at a time): the
sum of ``score_word`` over a sentence's words and then ``"</s>"`` is ``model.score(sentence)``
up to float32 rounding. A word outside the vocabulary is scored as ``<unk>`` (as
``full_scores`` scores it); ``"</s>"`` is the end of the sentence, and the state after it is
the state the next sentence starts from (the training stream's convention, see ``lm.data``).

States are immutable: ``score_word`` never changes the state it is given, so one state can be
extended by any number of words, in any order, from any thread that owns the model. They are
hashable and compare equal when their vectors are equal.

Cost of a step: ``score_word`` on a state computes that state's next-word distribution once
(one (1, H) x (H, n_vocab) product and a softmax: 2 H n_vocab multiply-adds, 4 MFLOP at H=200,
n_vocab=10k) and keeps it in the state (8 n_vocab bytes, 80 kB at 10k words), so scoring many
words from one state costs one softmax, not one each; the new state costs one recurrent step
(an (H, H) product and one row of U). ``next_distribution`` reuses the same cached array.
"""

from __future__ import annotations

import numpy as np

from lm import backend
from lm.metrics import LN10
from lm.tokenizer import EOS, Vocab


class RNNState:
    """The network's state s (an opaque (1, n) row, read-only), and its next-word
    distribution once computed."""

    __slots__ = ("_key", "_logprobs", "_s")

    def __init__(self, s: np.ndarray):
        s = np.array(backend.to_host(s), copy=True)  # a host copy, whatever the network's device
        s.flags.writeable = False
        self._s = s
        self._logprobs = None  # (n_vocab,) float64 ln P(next word), filled on first use
        self._key = None

    @property
    def vector(self) -> np.ndarray:
        """The state itself, (1, n), read-only."""
        return self._s

    def __eq__(self, other) -> bool:
        return isinstance(other, RNNState) and np.array_equal(self._s, other._s)

    def __hash__(self) -> int:
        if self._key is None:
            self._key = hash((self._s.dtype.str, self._s.shape, self._s.tobytes()))
        return self._key

    def __repr__(self) -> str:
        return f"RNNState(shape={self._s.shape}, hash={hash(self) & 0xFFFFFFFF:08x})"


def word_id(vocab: Vocab, word: str) -> tuple[int, bool]:
    """(id, is_oov) of one word: ``</s>`` is the end-of-sentence id; anything else as the
    tokenizer maps it (unknown words and a typed ``<s>`` are ``<unk>``, flagged OOV)."""
    if word == "</s>":
        return EOS, False
    ids, oov = vocab.encode(word)
    if len(ids) != 1:
        raise ValueError(f"score_word takes exactly one word, got {word!r}")
    return int(ids[0]), bool(oov[0])


class StatefulMixin:
    """``begin_state`` / ``score_word`` / ``next_distribution`` for a class with ``net`` (a
    network with ``zero_state``, ``step``, ``next_logprobs``) and ``vocab``."""

    def begin_state(self, bos: bool = True) -> RNNState:
        """The state a sentence starts from: after feeding ``</s>`` to the zero state (bos),
        or the zero state itself (no bos, as ``score(..., bos=False)``)."""
        from lm import scoring

        return RNNState(scoring.start_state(self.net, bos))

    def score_word(self, state: RNNState, word: str) -> tuple[float, RNNState]:
        """(log10 P(word | state), the state after ``word``); ``state`` is left unchanged.

        Good: ``lp, s2 = model.score_word(model.begin_state(), "the")``;
        ``model.score_word(s2, "</s>")`` ends the sentence.
        Bad: ``model.score_word(state, "the cat")``: one word at a time (ValueError);
        ``model.score_word(state, "<s>")``: the start is ``begin_state()``, a typed ``<s>``
        is scored as ``<unk>``.
        """
        wid, _ = word_id(self.vocab, word)
        lp = _logprobs(self.net, state)[wid] / LN10
        return float(lp), RNNState(self.net.step(np.array([wid]), state._s))

    def next_distribution(self, state: RNNState) -> np.ndarray:
        """log10 P(w | state) for every vocabulary id: float64 (n_vocab,), indexed like
        ``model.vocab.words`` (entry 0 is ``<unk>``, 2 is ``</s>``; entry 1, ``<s>``, holds the
        little mass the network gives a token it is never trained to predict)."""
        return _logprobs(self.net, state) / LN10


def _logprobs(net, state: RNNState) -> np.ndarray:
    """The state's cached (n_vocab,) float64 natural-log next-word distribution."""
    if not isinstance(state, RNNState):
        raise TypeError(f"expected a state from begin_state() or score_word(), got {state!r}")
    if state._logprobs is None:
        lp = np.asarray(net.next_logprobs(state._s)[0], dtype=np.float64)
        lp.flags.writeable = False
        state._logprobs = lp
    return state._logprobs
