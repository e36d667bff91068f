"""N-gram models through KenLM: the only module that imports ``kenlm``.

``kenlm`` is an optional dependency (``pip install -e '.[ngram]'``, which installs the
``kenlm-ex`` wheel: see the README for why that one). Without it, ``load_ngram`` raises
``NgramUnavailable`` with a one-line message saying what to install.

Token alignment with the RNN (what ``NgramModel.token_logprobs`` is given): the words of a
sentence *as the RNN's tokenizer split them* (``Vocab.split``: whitespace split, lowercased when
the vocabulary lowercases), before the RNN maps unknown words to ``<unk>``, then ``</s>`` with
eos. ``<s>`` is never typed into the string: bos selects KenLM's begin-of-sentence state
(``BeginSentenceWrite``), no bos its null context (``NullContextWrite``). A ``<s>`` or ``</s>``
typed *inside* a sentence is scored as KenLM's ``<unk>``, as the RNN scores it (``lm.tokenizer``
maps both to ``<unk>`` there).

Words the n-gram model lacks get KenLM's ``<unk>`` probability (with the context's backoff
weights); whether the RNN knows them is the RNN's business. Probabilities come back in natural
log (KenLM's log10 times ln 10), float64.
"""

from __future__ import annotations

import math
import os

import numpy as np

from lm.errors import LMError, ModelFileError
from lm.metrics import LN10

INSTALL_HINT = "pip install kenlm-ex (or pip install -e '.[ngram]')"


class NgramUnavailable(LMError):
    """The ``kenlm`` module is not installed."""


def _kenlm():
    try:
        import kenlm
    except ImportError:
        raise NgramUnavailable(
            f"n-gram models need the kenlm module, which is not installed: {INSTALL_HINT}"
        ) from None
    return kenlm


def available() -> bool:
    """True when ``kenlm`` can be imported."""
    try:
        _kenlm()
    except NgramUnavailable:
        return False
    return True


class NgramState:
    """An immutable n-gram context: wraps a ``kenlm.State`` that is never written again.

    Hashable and comparable (KenLM compares states by the words they remember).
    """

    __slots__ = ("_state",)

    def __init__(self, state):
        self._state = state

    def __eq__(self, other) -> bool:
        return isinstance(other, NgramState) and self._state == other._state

    def __hash__(self) -> int:
        return hash(self._state)


class NgramModel:
    """An ARPA or KenLM binary n-gram model, read by KenLM.

    Attributes: ``path``, ``order``.

    Good: ``NgramModel("5gram.arpa").token_logprobs(["the", "cat"])``: ln P(the | <s>),
    ln P(cat | <s> the), ln P(</s> | <s> the cat).
    Bad: ``NgramModel("5gram.arpa").token_logprobs(["<s>", "the", "cat", "</s>"])``: a typed
    ``<s>`` and ``</s>`` are two more (unknown) words; bos and eos add the boundaries.
    """

    def __init__(self, path: str | os.PathLike):
        kenlm = _kenlm()
        self.path = os.fspath(path)
        if os.path.isdir(self.path):
            raise ModelFileError(f"{self.path}: is a directory, not an n-gram file")
        if not os.path.exists(self.path):
            raise ModelFileError(f"{self.path}: no such n-gram file")
        if os.path.getsize(self.path) == 0:
            raise ModelFileError(f"{self.path}: empty file, not an n-gram model")
        config = kenlm.Config()
        config.show_progress = False  # no progress bar of stars on stderr
        config.arpa_complain = kenlm.ARPALoadComplain.NONE
        try:
            self._model = kenlm.Model(self.path, config)
        except (OSError, RuntimeError, ValueError) as e:
            raise ModelFileError(
                f"{self.path}: not a complete ARPA or KenLM binary n-gram file "
                f"({_kenlm_reason(str(e))})"
            ) from None
        self.order = int(self._model.order)
        self._kenlm_state = kenlm.State

    def __repr__(self) -> str:
        return f"NgramModel({self.path!r}, order={self.order})"

    def __contains__(self, word: str) -> bool:
        """True when ``word`` is in the n-gram vocabulary (``<unk>`` itself is not, as in
        KenLM)."""
        return word in self._model

    # ----- whole sentences -----

    def token_log10probs(self, words: list[str], bos: bool = True, eos: bool = True) -> np.ndarray:
        """log10 P of each word given the ones before it, then of ``</s>`` with eos.

        words : the sentence's words (no boundary tokens). Returns float64 (len(words) + eos,).
        """
        model = self._model
        state, out = self._kenlm_state(), self._kenlm_state()
        if bos:
            model.BeginSentenceWrite(state)
        else:
            model.NullContextWrite(state)
        lp = np.empty(len(words) + int(eos))
        for i, w in enumerate(words):
            lp[i] = model.BaseScore(state, _inside(w), out)
            state, out = out, state
        if eos:
            lp[-1] = model.BaseScore(state, "</s>", out)
        return lp

    def token_logprobs(self, words: list[str], bos: bool = True, eos: bool = True) -> np.ndarray:
        """``token_log10probs`` in natural log: float64 (len(words) + eos,)."""
        return self.token_log10probs(words, bos, eos) * LN10

    # ----- one word at a time (KenLM's State / BaseScore) -----

    def begin_state(self, bos: bool = True) -> NgramState:
        """The context a sentence starts from: ``<s>`` with bos, no context without."""
        state = self._kenlm_state()
        if bos:
            self._model.BeginSentenceWrite(state)
        else:
            self._model.NullContextWrite(state)
        return NgramState(state)

    def score_word(self, state: NgramState, word: str) -> tuple[float, NgramState]:
        """(log10 P(word | state), the state after it); ``word`` may be ``</s>``."""
        out = self._kenlm_state()
        lp = self._model.BaseScore(state._state, word if word == "</s>" else _inside(word), out)
        return float(lp), NgramState(out)

    def word_log10probs(self, state: NgramState, words: list[str]) -> np.ndarray:
        """log10 P(w | state) for each of ``words`` (one KenLM lookup each): float64
        (len(words),). ``</s>`` is scored as the end of the sentence, ``<s>`` as -inf (it is
        never predicted)."""
        model, s, out = self._model, state._state, self._kenlm_state()
        lp = np.empty(len(words))
        for i, w in enumerate(words):
            lp[i] = -math.inf if w == "<s>" else model.BaseScore(s, w, out)
        return lp


def _inside(word: str) -> str:
    """A word inside a sentence: a typed boundary tag is scored as <unk>, as the RNN scores it."""
    return "<unk>" if word in ("<s>", "</s>") else word


def _kenlm_reason(message: str) -> str:
    """The useful part of KenLM's one-paragraph exception text."""
    message = " ".join(message.split())
    for marker in ("threw FormatLoadException.", "threw FDException because", "threw "):
        if marker in message:
            message = message.split(marker, 1)[1]
            break
    message = message.strip(" ()")
    if message.startswith("Cannot read model"):
        message = message.split("(", 1)[-1]
    return message[:160].rstrip(" )") or "KenLM could not read it"


def load_ngram(path: str | os.PathLike) -> NgramModel:
    """``NgramModel(path)``; raises ModelFileError (one line naming the file) when it is
    missing, truncated or not an n-gram file, NgramUnavailable without kenlm."""
    return NgramModel(path)
