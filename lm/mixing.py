"""Linear interpolation of the RNN with an n-gram model, and the weight that minimises a
held-out perplexity (EM, as SRILM's ``compute-best-mix``).

Per token, in probability space:

    p(w | h) = (1 - W) p_rnn(w | h) + W p_ngram(w | h)

computed in log space as logaddexp(ln(1 - W) + ln p_rnn, ln W + ln p_ngram), so that neither
probability underflows; W = 0 gives the RNN's numbers exactly and W = 1 the n-gram's.

What each model sees (see ``lm.ngram``): the RNN scores the ids of the tokenizer's words
(unknown words as ``<unk>``), the n-gram model scores the same words as text, before that
mapping, then ``</s>``; bos and eos mean the same to both. The mixture's vocabulary, and so
what counts as an OOV, is the RNN's:

* a word the RNN lacks but the n-gram has: the RNN gives P(<unk> | h), the mass of all its
  unknown words, the n-gram the word's own probability; the token is mixed like any other and
  is flagged OOV (left out of the SRILM-style ``ppl``, kept in KenLM's "including OOVs").
* a word the n-gram lacks but the RNN has: the n-gram gives its ``<unk>`` probability (with
  backoff), the RNN the word's own; the token is not an OOV.
* a word neither has: both give their ``<unk>`` probability; an OOV.

The two models then agree on what a token is only where their vocabularies agree; tune W on
held-out text (``lm mix``) rather than guessing it.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from lm import ngram as ngram_lib
from lm.metrics import LN10, perplexity
from lm.stateful import RNNState

Array = np.ndarray


def mix_logprobs(lp_rnn: Array, lp_ngram: Array, weight: float) -> Array:
    """ln((1 - W) e^a + W e^b) elementwise: a, b float64 (n,) natural logs -> (n,).

    Good: ``mix_logprobs(a, b, 0.3)``. Bad: ``mix_logprobs(a_log10, b_log10, 0.3)``: the
    logs must be natural (log10 values would be mixed as if they were ln).
    """
    a = np.asarray(lp_rnn, dtype=np.float64)
    b = np.asarray(lp_ngram, dtype=np.float64)
    if weight == 0.0:
        return a.copy()
    if weight == 1.0:
        return b.copy()
    return np.logaddexp(math.log1p(-weight) + a, math.log(weight) + b)


def check_weight(weight: float) -> float:
    weight = float(weight)
    if not 0.0 <= weight <= 1.0:  # also refuses nan
        raise ValueError(f"ngram weight must be in [0, 1], got {weight}")
    return weight


# ----- the interpolated model -----


@dataclass(frozen=True)
class MixState:
    """The states of both models, immutable and hashable."""

    rnn: RNNState
    ngram: ngram_lib.NgramState


class InterpolatedModel:
    """An RNN language model mixed with an n-gram model, with the RNN's KenLM-named API:
    ``score``, ``full_scores``, ``perplexity``, ``begin_state``, ``score_word``,
    ``next_distribution``, and ``token_logprobs`` so that ``lm.perplexity`` and ``lm.scoring``
    accept it wherever they accept a model. Every number is of the mixture.

    Good: ``mixed = lm.interpolate(lm.load("model"), "5gram.arpa", 0.3)``, then
    ``mixed.score("the cat sat")`` or ``lm.perplexity(mixed, "test.txt")``.
    Bad: ``lm.interpolate(model, "5gram.arpa", 30)``: the weight is a probability
    (ValueError).
    """

    needs_words = True  # the n-gram model reads the words before the RNN's <unk> mapping

    def __init__(self, model, ngram: ngram_lib.NgramModel, weight: float):
        self.model = model
        self.ngram = ngram
        self.weight = check_weight(weight)

    def __repr__(self) -> str:
        return f"InterpolatedModel({self.model!r}, {self.ngram!r}, weight={self.weight})"

    @property
    def vocab(self):
        """The RNN's vocabulary: ids, and what counts as an OOV, are the RNN's."""
        return self.model.vocab

    def token_logprobs(
        self,
        sequences: list[Array],
        bos: bool = True,
        eos: bool = True,
        words: list[list[str]] | None = None,
        batch_size: int | None = None,
    ) -> list[Array]:
        """ln p of every token under the mixture, float64 (m_i + eos,) each, in input order.

        sequences : the RNN's word ids, (m_i,) each. words : the tokenizer's words of each
        sequence before the <unk> mapping (what the n-gram scores); when None the words are
        read back from the ids, so an OOV is scored as the n-gram's ``<unk>``.
        """
        if words is None:
            names = self.vocab.words
            words = [[names[int(i)] for i in seq] for seq in sequences]
        rnn = self.model.token_logprobs(sequences, bos, eos, words=words, batch_size=batch_size)
        return [
            mix_logprobs(a, self.ngram.token_logprobs(w, bos, eos), self.weight)
            for a, w in zip(rnn, words)
        ]

    # KenLM's sentence API (lm.scoring), of the mixture

    def score(self, sentence: str, bos: bool = True, eos: bool = True) -> float:
        """Total log10 probability of one sentence under the mixture (``</s>`` included)."""
        from lm import scoring

        return scoring.score(self, sentence, bos=bos, eos=eos)

    def full_scores(self, sentence: str, bos: bool = True, eos: bool = True):
        """(log10 prob, context length, is_oov) per token, as ``LanguageModel.full_scores``."""
        from lm import scoring

        return scoring.full_scores(self, sentence, bos=bos, eos=eos)

    def perplexity(self, sentence: str) -> float:
        """10 ** (-score / tokens) of one sentence under the mixture."""
        from lm import scoring

        return scoring.sentence_perplexity(self, sentence)

    # the stateful API (see lm.stateful), of the mixture

    def begin_state(self, bos: bool = True) -> MixState:
        return MixState(self.model.begin_state(bos), self.ngram.begin_state(bos))

    def score_word(self, state: MixState, word: str) -> tuple[float, MixState]:
        """(log10 p(word | state) under the mixture, the state after it)."""
        lp_rnn, rnn = self.model.score_word(state.rnn, word)
        text = word if word == "</s>" else _ngram_word(self.vocab, word)
        lp_ngram, ng = self.ngram.score_word(state.ngram, text)
        mixed = mix_logprobs(np.array([lp_rnn * LN10]), np.array([lp_ngram * LN10]), self.weight)
        return float(mixed[0] / LN10), MixState(rnn, ng)

    def next_distribution(self, state: MixState) -> Array:
        """log10 p(w | state) for every id of ``vocab``: float64 (n_vocab,).

        Costs the RNN's softmax plus one n-gram lookup per vocabulary word (n_vocab KenLM
        calls from Python, some milliseconds at 10k words). It sums to 1 only when the two
        vocabularies are the same: every RNN word the n-gram lacks gets the n-gram's whole
        ``<unk>`` mass. The ``<s>`` entry gets no n-gram mass.
        """
        rnn = self.model.next_distribution(state.rnn) * LN10
        ng = self.ngram.word_log10probs(state.ngram, list(self.vocab.words)) * LN10
        return mix_logprobs(rnn, ng, self.weight) / LN10


def _ngram_word(vocab, word: str) -> str:
    """The word as the n-gram sees it: the tokenizer's normalisation (lowercasing), nothing
    else."""
    split = vocab.split(word)
    return split[0] if len(split) == 1 else word


def interpolate(model, ngram, weight: float) -> InterpolatedModel:
    """The mixture (1 - weight) p_rnn + weight p_ngram of ``model`` (from ``lm.load``) and
    ``ngram`` (a path to an ARPA or KenLM binary file, or an ``NgramModel``).

    Good: ``lm.interpolate(model, "5gram.arpa", 0.3)``; find the weight with ``lm mix`` or
    ``lm.mixing.tune_weight``.
    Bad: ``lm.interpolate(model, "5gram.arpa", 1.5)`` (ValueError: not in [0, 1]).
    """
    if not isinstance(ngram, ngram_lib.NgramModel):
        ngram = ngram_lib.load_ngram(ngram)
    return InterpolatedModel(model, ngram, weight)


# ----- the best weight: EM on per-token probabilities -----


def best_weight(
    diff: Array, start: float = 0.5, tol: float = 1e-7, max_iter: int = 10_000
) -> tuple[float, int]:
    """The W in [0, 1] maximising sum_t ln((1 - W) p_rnn,t + W p_ngram,t), by EM.

    diff : (N,) float64, ln p_ngram,t - ln p_rnn,t per token (all the likelihood depends on).
    Each step computes the n-gram's posterior share of every token,
    r_t = W p_ngram,t / ((1 - W) p_rnn,t + W p_ngram,t) = sigmoid(diff_t + logit W), and sets
    W to their mean; the log-likelihood is concave in W, so this climbs to its maximum. Stops
    when W moves by less than ``tol``, then keeps 0 or 1 instead if that is at least as
    likely (EM only approaches an optimum on the boundary). Returns (W, iterations). An empty
    ``diff`` returns ``start``.
    """
    d = np.asarray(diff, dtype=np.float64)
    w = float(start)
    if d.size == 0:
        return w, 0
    iteration = 0
    while iteration < max_iter:
        iteration += 1
        logit = math.log(w) - math.log1p(-w) if 0.0 < w < 1.0 else math.copysign(math.inf, w - 0.5)
        posterior = 0.5 * (1.0 + np.tanh(0.5 * (d + logit)))  # sigmoid, stable both ways
        new = float(posterior.mean())
        done = abs(new - w) < tol
        w = new
        if done:
            break
    # EM creeps towards an optimum on the boundary (one model better on every token that
    # matters) without reaching it: keep an end point when it is at least as good
    gain = {x: float(np.sum(mix_logprobs(np.zeros(d.size), d, x))) for x in (w, 0.0, 1.0)}
    return max(gain, key=lambda x: (gain[x], x == w)), iteration


@dataclass(frozen=True)
class MixResult:
    """What ``tune_weight`` found on held-out text: the n-gram weight, the EM iterations, the
    counts, and the perplexity of each model alone and of the mixture (every token: words,
    OOVs scored as each model's <unk>, and </s> with eos)."""

    weight: float
    iterations: int
    sentences: int
    tokens: int
    oovs: int
    ppl_rnn: float
    ppl_ngram: float
    ppl_mixture: float

    def to_dict(self) -> dict:
        return asdict(self)


def tune_weight(
    model,
    ngram,
    lines: Iterable[str],
    bos: bool = True,
    eos: bool = True,
    batch_size: int | None = None,
    chunk_lines: int = 4096,
) -> MixResult:
    """The n-gram weight that minimises the mixture's perplexity on ``lines`` (EM).

    lines : an iterable of sentences (e.g. ``lm.data.read_lines("dev.txt")``), streamed
    ``chunk_lines`` at a time. Memory: 8 bytes a token (the per-token log-ratio kept for EM:
    80 MB for 10M tokens), whatever the text's size otherwise.

    Good: ``tune_weight(model, "5gram.arpa", lm.data.read_lines("heldout.txt"))``.
    Bad: ``tune_weight(model, "5gram.arpa", "heldout.txt")``: a str is one sentence's
    characters, not a file (TypeError).
    """
    if isinstance(lines, (str, os.PathLike)):
        raise TypeError("lines must be an iterable of sentences: pass lm.data.read_lines(path)")
    if not isinstance(ngram, ngram_lib.NgramModel):
        ngram = ngram_lib.load_ngram(ngram)
    vocab = model.vocab
    diffs: list[Array] = []
    sum_rnn = sum_ngram = 0.0
    sentences = oovs = 0
    it = iter(lines)
    while True:
        chunk = list(itertools.islice(it, chunk_lines))
        if not chunk:
            break
        ids, oov = vocab.encode_batch(chunk)
        words = [vocab.split(line) for line in chunk]
        rnn = model.token_logprobs(ids, bos, eos, words=words, batch_size=batch_size)
        for a, w, o in zip(rnn, words, oov):
            b = ngram.token_logprobs(w, bos, eos)
            diffs.append(b - a)
            sum_rnn += float(np.sum(a))
            sum_ngram += float(np.sum(b))
            oovs += int(np.count_nonzero(o))
        sentences += len(chunk)
    diff = np.concatenate(diffs) if diffs else np.zeros(0)
    weight, iterations = best_weight(diff)
    n = diff.size
    # mixture total = sum ln p_rnn + sum ln((1 - W) + W e^diff)
    sum_mix = sum_rnn + float(np.sum(mix_logprobs(np.zeros(n), diff, weight)))
    return MixResult(
        weight=weight,
        iterations=iterations,
        sentences=sentences,
        tokens=n,
        oovs=oovs,
        ppl_rnn=perplexity(sum_rnn, n),
        ppl_ngram=perplexity(sum_ngram, n),
        ppl_mixture=perplexity(sum_mix, n),
    )
