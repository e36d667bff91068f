"""Scoring sentences with the chain rule: KenLM's sentence API, SRILM's corpus perplexity.

For a sentence w_1..w_m the model assigns

    log P(w_1..w_m) = sum_i log P(w_i | <s> w_1..w_{i-1}) + log P(</s> | <s> w_1..w_m)

where "<s>" is the state the sentence starts from:

``bos=True`` (default): the state after feeding the sentence-start token to a zero state.
    That token is ``</s>`` (id 2), the token that precedes every sentence in the training
    stream (see ``lm.data``), so a sentence is scored exactly as training saw sentences start.
    The ``<s>`` id (1) is never fed: the network has never seen it as an input.
``bos=False``: the zero state itself, with nothing fed. The first word is then predicted by
    ``next_logprobs(zero_state)`` = log softmax(0 V + c) = log softmax(c), i.e. by the output
    bias alone, then fed like any other word. This is the distribution of a word with no
    history at all, *not* of a sentence-initial word; use it to score a fragment that
    continues text, not a sentence.
``eos=True`` (default): the final ``</s>`` term is included; ``eos=False`` leaves it out
    (scoring a prefix).

Words outside the vocabulary are scored as ``<unk>`` (id 0) and flagged as OOV; a literal
``<unk>`` in the text is an ordinary vocabulary word (see ``lm.tokenizer``).

Probabilities are natural-log inside (``score_ids``) and log10 at the KenLM-style boundary
(``score``, ``full_scores``, ``SentenceScore``, ``CorpusPerplexity``).

Batching. Sentences are sorted by length and scored in groups of similar length through the
same vectorised forward pass as training: targets y (T, B) padded with ``</s>``, states from
``Network.states`` over y itself (the input at step t is the word predicted at step t - 1),
and log-probabilities from ``Network.head_logprobs`` over the real (unpadded) positions only.
Long groups run in windows of at most ``_WINDOW_STEPS`` steps carrying the state, so memory is
bounded whatever the sentence length. Results come back in input order and equal scoring one
sentence at a time up to float32 rounding.

Relation to training-time validation. Validation scores the stream ``</s> w.. </s> w.. </s>``
cut into columns (``lm.data.sentence_columns``). A model trained with ``--independent`` is
validated with a reset mask (the state is zeroed before every ``</s>`` input), which is
exactly ``bos=True, eos=True`` here: ``corpus_perplexity`` then equals validation perplexity
to float rounding. Without ``--independent`` validation carries the state across sentence
boundaries (each sentence is conditioned on the previous ones), while scoring always resets
it, so the two numbers differ slightly.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
from tqdm import tqdm

from lm import backend, data, files
from lm.errors import DataError
from lm.metrics import LN10, perplexity
from lm.model import Network
from lm.tokenizer import EOS, Vocab

Array = np.ndarray

BATCH_SIZE = 128  # sentences scored side by side
CHUNK_LINES = 4096  # lines read, sorted and scored together by corpus_perplexity
_POSITIONS = 65536  # at most B * T (padded) positions per group and per window
_WINDOW_STEPS = 1024  # longest window of time steps run at once (long sentences)


class TokenScorer(Protocol):
    """What scoring needs of a model: token ids in, natural-log probabilities out, plus the
    vocabulary. ``lm.LanguageModel`` is one; an interpolated model or a remote worker can
    stand in for it.

    ``needs_words``: True when ``token_logprobs`` wants the words themselves (an n-gram
    model sees the words before the ``<unk>`` mapping); the RNN needs only the ids.
    """

    vocab: Vocab
    needs_words: bool

    def token_logprobs(
        self,
        sequences: list[Array],
        bos: bool = True,
        eos: bool = True,
        words: list[list[str]] | None = None,
        batch_size: int = ...,
    ) -> list[Array]:
        """ln P of every token: float64 arrays (m_i + eos,), in input order (``score_ids``)."""


# ----- ids -> natural-log probabilities -----


def start_state(net: Network, bos: bool = True) -> Array:
    """(1, n_s) state a sentence starts from: after feeding </s> to a zero state (bos) or zero."""
    s = net.zero_state(1)
    return net.step(np.array([EOS]), s) if bos else s


def score_ids(
    net: Network,
    sequences: list[Array],
    bos: bool = True,
    eos: bool = True,
    batch_size: int = BATCH_SIZE,
) -> list[Array]:
    """Natural-log probability of every token of every sentence, batched.

    Parameters
    ----------
    net : the network.
    sequences : list of int word-id arrays, (m_i,) each, without any boundary token.
    bos, eos : see the module docstring.
    batch_size : most sentences per group (groups are also capped at ``_POSITIONS``
        padded positions, so a very long sentence is not padded against many short ones).

    Returns
    -------
    list of float64 arrays, (m_i + eos,) each, in input order: ln P(w_1 | start), ...,
    ln P(w_m | ...), then ln P(</s> | ...) when ``eos``.
    """
    n_targets = np.array([len(s) for s in sequences], dtype=np.int64) + int(eos)
    order = np.argsort(n_targets, kind="stable")  # groups of similar length: little padding
    s0 = start_state(net, bos)
    # every sentence's first token is predicted from s0: one distribution serves them all
    first = net.next_logprobs(s0)[0].astype(np.float64)  # (n_vocab,)
    out: list[Array | None] = [None] * len(sequences)
    lo = 0
    while lo < len(order):
        shortest = max(int(n_targets[order[lo]]), 1)
        hi = min(len(order), lo + max(1, min(batch_size, _POSITIONS // shortest)))
        # lengths ascend, so the group's longest sentence is its last one
        while hi - 1 > lo and (hi - lo) * int(n_targets[order[hi - 1]]) > _POSITIONS:
            hi -= 1
        idx = order[lo:hi]
        group = _score_group(net, [sequences[i] for i in idx], n_targets[idx], s0, first)
        for i, lp in zip(idx, group):
            out[i] = lp
        lo = hi
    return out


def _score_group(
    net: Network, seqs: list[Array], n_targets: Array, s0: Array, first: Array
) -> list[Array]:
    """Score B sentences side by side.

    seqs: B word-id arrays; n_targets: (B,) tokens to score in each; s0: (1, n_s) start state;
    first: (n_vocab,) ln P(first token | s0). Returns B float64 arrays, (n_targets[j],) each.
    """
    B = len(seqs)
    T = int(n_targets.max())
    if T == 0:
        return [np.zeros(0) for _ in seqs]
    words = np.array([len(s) for s in seqs])
    # targets, sentence-major: the words, then </s>; the padding is </s> too (masked out)
    yT = np.full((B, T), EOS, dtype=np.int32)  # (B, T)
    if words.sum():
        yT[np.arange(T) < words[:, None]] = np.concatenate(seqs)
    y = np.ascontiguousarray(yT.T)  # (T, B)
    real = np.arange(T) < n_targets[:, None]  # (B, T) real targets left to score
    lp = np.zeros((B, T))  # (B, T) float64
    lp[:, 0] = first[yT[:, 0]]
    real[:, 0] = False
    s = s0.repeat(B, axis=0)  # (B, n_s) state before predicting y[lo], where the weights are
    steps = max(1, min(_WINDOW_STEPS, _POSITIONS // B))
    for lo in range(0, T, steps):
        hi = min(lo + steps, T)
        # S[k] is the state after the inputs y[:lo + k], which predicts y[lo + k]; the last
        # row (after y[hi - 1]) is carried into the next window
        S = net.states(y[lo:hi], s)  # (hi - lo + 1, B, n_s)
        s = S[-1]
        mask = real[:, lo:hi]  # (B, hi - lo)
        at = backend.xp_of(S).asarray(mask)  # the mask where the states are
        rows = net.hidden_of(S[:-1]).transpose(1, 0, 2)[at]  # (n_real, H), sentence-major
        lp[:, lo:hi][mask] = net.head_logprobs(rows, yT[:, lo:hi][mask])
    return [lp[j, : n_targets[j]].copy() for j in range(B)]


# ----- sentences (text) -----


@dataclass(frozen=True)
class SentenceScore:
    """One scored sentence.

    sentence : the line as given.
    ids : (n,) int32 ids of the scored tokens (OOV words as <unk> = 0), then </s> with eos.
    oov : (n,) bool, True for words outside the vocabulary (never for </s>).
    log10probs : (n,) float64 log10 probability of each token.
    bos, eos : how it was scored (see the module docstring).
    """

    sentence: str
    ids: Array
    oov: Array
    log10probs: Array
    bos: bool = True
    eos: bool = True

    @property
    def log10prob(self) -> float:
        """Total log10 probability of the sentence (the sum over its tokens)."""
        return float(np.sum(self.log10probs))

    @property
    def tokens(self) -> int:
        """Scored tokens: words, plus one for </s> with eos."""
        return len(self.log10probs)

    @property
    def words(self) -> int:
        """Words in the sentence (OOVs included), </s> not counted."""
        return len(self.log10probs) - int(self.eos)

    @property
    def oovs(self) -> int:
        return int(np.count_nonzero(self.oov))

    @property
    def ppl(self) -> float:
        """10 ** (-log10prob / tokens); nan when nothing was scored (empty line, eos=False)."""
        return perplexity(self.log10prob, self.tokens, log10=True)

    def token_texts(self, vocab: Vocab) -> list[str]:
        """The scored tokens as text: the words as the tokenizer split them, then '</s>'."""
        return vocab.split(self.sentence) + ["</s>"] * int(self.eos)


def score_chunk(
    scorer: TokenScorer,
    lines: list[str],
    bos: bool = True,
    eos: bool = True,
    batch_size: int = BATCH_SIZE,
) -> list[SentenceScore]:
    """``SentenceScore`` for each of ``lines``, in order, scored together (sorted by length
    into batches of at most ``batch_size``). The same lines give the same numbers, bit for
    bit at a fixed BLAS thread count, wherever this runs."""
    ids, oov = scorer.vocab.encode_batch(lines)
    words = [scorer.vocab.split(line) for line in lines] if scorer.needs_words else None
    lps = scorer.token_logprobs(ids, bos=bos, eos=eos, words=words, batch_size=batch_size)
    return [_sentence_score(*row, bos, eos) for row in zip(lines, ids, oov, lps)]


def score_chunks(
    scorer: TokenScorer,
    lines: Iterable[str],
    bos: bool = True,
    eos: bool = True,
    batch_size: int = BATCH_SIZE,
    chunk_lines: int = CHUNK_LINES,
) -> Iterator[list[SentenceScore]]:
    """Score lines ``chunk_lines`` at a time (``score_chunk``), yielding each chunk's results
    in input order.

    Memory depends on ``chunk_lines``, not on how many lines there are: lines are read
    lazily, so a file or stdin is streamed. When reading fails (a DataError such as a line
    that is not UTF-8), the lines read before it are scored and yielded first.
    """
    if isinstance(lines, str):
        raise TypeError("lines must be an iterable of sentences, not one str: pass [sentence]")
    for chunk in chunked(lines, chunk_lines):
        yield score_chunk(scorer, chunk, bos, eos, batch_size)


def chunked(lines: Iterable[str], chunk_lines: int) -> Iterator[list[str]]:
    """``lines`` read lazily into lists of ``chunk_lines`` (the last one shorter): the chunks
    every scorer works on, in one process or on a cluster. When reading fails (a DataError:
    a line that is not UTF-8), the lines read before it are yielded first, then it is raised."""
    it = iter(lines)
    while True:
        chunk: list[str] = []
        error = None
        try:
            for line in itertools.islice(it, chunk_lines):  # keeps what was read on error
                chunk.append(line)  # noqa: PERF402
        except DataError as e:
            error = e
        if chunk:
            yield chunk
        if error is not None:
            raise error
        if len(chunk) < chunk_lines:
            return


def score_lines(scorer: TokenScorer, lines: Iterable[str], **options) -> Iterator[SentenceScore]:
    """``SentenceScore`` for every line, in input order, streamed (options of score_chunks).

    Good: ``score_lines(model, ["the cat sat", "a dog"])``,
    ``score_lines(model, data.read_lines("test.txt"))``.
    Bad: ``score_lines(model, "the cat sat")`` (one str is not a list of sentences:
    TypeError).
    """
    for chunk in score_chunks(scorer, lines, **options):
        yield from chunk


def _sentence_score(line: str, ids: Array, oov: Array, lp: Array, bos: bool, eos: bool):
    if eos:
        ids = np.append(ids, np.int32(EOS))
        oov = np.append(oov, False)
    return SentenceScore(line, ids, oov, lp / LN10, bos, eos)


def _score_one(scorer: TokenScorer, sentence: str, bos: bool, eos: bool) -> SentenceScore:
    return next(score_lines(scorer, [sentence], bos=bos, eos=eos))


def score(scorer: TokenScorer, sentence: str, bos: bool = True, eos: bool = True) -> float:
    """Total log10 probability of one sentence (KenLM's ``Model.score``).

    Good: ``score(model, "the cat sat")`` = log10 P(the cat sat </s> | <s>); an empty
    sentence scores ``</s>`` alone.
    Bad: ``score(model, "<s> the cat sat </s>")``: boundaries are added for you; typed ones
    are scored as OOV words (<unk>).
    """
    return _score_one(scorer, sentence, bos, eos).log10prob


def full_scores(
    scorer: TokenScorer, sentence: str, bos: bool = True, eos: bool = True
) -> Iterator[tuple[float, int, bool]]:
    """``(log10 prob, context length, is_oov)`` per token, ``</s>`` last with eos (KenLM's
    ``Model.full_scores``).

    The context length is the number of tokens the prediction is conditioned on: the whole
    history (an RNN has no n-gram order), counting the sentence start with bos. So with bos
    the i-th token (from 0) has context i + 1, without bos it has context i.
    """
    s = _score_one(scorer, sentence, bos, eos)
    for i, (lp, oov) in enumerate(zip(s.log10probs.tolist(), s.oov.tolist())):
        yield lp, i + int(bos), oov


def sentence_perplexity(scorer: TokenScorer, sentence: str) -> float:
    """10 ** (-score / tokens) for one sentence with bos and eos, tokens = words + 1 (</s>)
    (KenLM's ``Model.perplexity``). Equals ``corpus_perplexity(model, [sentence]).ppl``."""
    return _score_one(scorer, sentence, True, True).ppl


# ----- corpus perplexity -----


@dataclass(frozen=True)
class CorpusPerplexity:
    """Corpus-level results. Every word, OOVs included (scored as ``<unk>``), and every ``</s>``
    is a token: KenLM's "Perplexity including OOVs". SRILM's ``ppl`` and ``ppl1`` leave the
    OOVs out; ``lm.formats.Totals`` prints those, under SRILM's names.

    sentences, words, oovs : lines scored, words in them (OOVs included, scored as <unk>),
        and how many of those words were OOV.
    tokens : the predictions made: words + sentences with eos (each </s>), else words.
    log10prob : total log10 probability of all tokens (</s> terms included with eos).
    ppl : 10 ** (-log10prob / tokens) (counts </s> and the OOVs).
    ppl1 : 10 ** (-log10prob / words) (the same total, </s> not counted in the divisor).
    ppl_excluding_oovs : KenLM's "perplexity excluding OOVs": the OOV tokens' terms left
        out of both the total and the count.
    bits_per_token : cross-entropy -log2 P / tokens, i.e. log2(ppl).

    A ratio with a zero denominator (no tokens, e.g. an empty file) is nan.
    """

    sentences: int
    words: int
    oovs: int
    tokens: int
    log10prob: float
    ppl: float
    ppl1: float
    ppl_excluding_oovs: float
    bits_per_token: float

    def to_dict(self) -> dict:
        return asdict(self)


class CorpusTotals:
    """Running sums over scored sentences; ``result()`` turns them into a CorpusPerplexity."""

    def __init__(self):
        self.sentences = self.words = self.oovs = self.tokens = 0
        self.log10prob = 0.0
        self.oov_log10prob = 0.0

    def add(self, s: SentenceScore) -> None:
        self.sentences += 1
        self.words += s.words
        self.oovs += s.oovs
        self.tokens += s.tokens
        self.log10prob += s.log10prob
        if s.oovs:
            self.oov_log10prob += float(np.sum(s.log10probs[s.oov]))

    def result(self) -> CorpusPerplexity:
        n = self.tokens
        return CorpusPerplexity(
            sentences=self.sentences,
            words=self.words,
            oovs=self.oovs,
            tokens=n,
            log10prob=self.log10prob,
            ppl=perplexity(self.log10prob, n, log10=True),
            ppl1=perplexity(self.log10prob, self.words, log10=True),
            ppl_excluding_oovs=perplexity(
                self.log10prob - self.oov_log10prob, n - self.oovs, log10=True
            ),
            bits_per_token=-self.log10prob / math.log10(2) / n if n else math.nan,
        )


def corpus_perplexity(
    scorer: TokenScorer,
    lines_or_path,
    bos: bool = True,
    eos: bool = True,
    batch_size: int = BATCH_SIZE,
    progress: bool = True,
    errors: str = "strict",
) -> CorpusPerplexity:
    """Perplexity of a whole corpus: total log-probability over total tokens (never an
    average of per-sentence perplexities). See ``CorpusPerplexity`` for what is counted.

    ``lines_or_path`` is an iterable of sentences (one per item) or a file path (str or
    os.PathLike; "-" is stdin), read as UTF-8 with ``errors`` ("strict": DataError naming the
    line; "replace": U+FFFD). The text is streamed ``CHUNK_LINES`` lines at a time, so memory
    does not grow with its size. For a file, a tqdm bar goes to stderr unless ``progress``
    is False.

    Good: ``corpus_perplexity(model, "test.txt")``, ``corpus_perplexity(model, ["a b", "c"])``.
    Bad: ``corpus_perplexity(model, "the cat sat")``: a str is always a path (DataError: no
    such file); pass ``["the cat sat"]`` for one sentence.
    """
    totals = CorpusTotals()
    is_path = isinstance(lines_or_path, (str, os.PathLike))
    lines = data.read_lines(lines_or_path, errors) if is_path else lines_or_path
    with byte_progress(lines_or_path if is_path else None, progress) as bar:
        for chunk in score_chunks(scorer, lines, bos, eos, batch_size, CHUNK_LINES):
            for s in chunk:
                totals.add(s)
            advance(bar, chunk)
    return totals.result()


def byte_progress(path, progress: bool = True) -> tqdm:
    """A tqdm bar of the bytes of ``path`` read (None or "-": no total), on stderr only when
    ``progress`` and stderr is a terminal (``lm.files.show_progress``)."""
    path = None if path is None else os.fspath(path)
    size = os.path.getsize(path) if path not in (None, "-") and os.path.isfile(path) else None
    name = "" if path is None else os.path.basename(path)
    disable = path is None or not files.show_progress(progress)
    return tqdm(total=size, unit="B", unit_scale=True, desc=name, disable=disable, leave=False)


def advance(bar: tqdm, chunk: list[SentenceScore]) -> None:
    """Move ``bar`` by the bytes of a scored chunk (approximately: a line ending counts one)."""
    if not bar.disable:
        bar.update(sum(len(s.sentence.encode("utf-8")) + 1 for s in chunk))


# ----- OOV rate (for lm train's closing summary) -----


@dataclass(frozen=True)
class OovRate:
    """Words of a text outside a vocabulary: ``oovs`` of ``words`` (a literal ``<unk>`` is a
    vocabulary word, as in scoring); ``rate`` = oovs / words, nan for no words."""

    words: int
    oovs: int

    @property
    def rate(self) -> float:
        return self.oovs / self.words if self.words else math.nan

    def describe(self, name: str) -> str:
        """One line, e.g. ``valid.txt: OOV rate 4.66% (3669 of 78669 words outside the
        vocabulary, scored as <unk>)``."""
        rate = "undefined" if not self.words else f"{100 * self.rate:.2f}%"
        return (
            f"{name}: OOV rate {rate} ({self.oovs} of {self.words} words outside the "
            "vocabulary, scored as <unk>)"
        )


def oov_rate(vocab: Vocab, lines_or_path, errors: str = "strict") -> OovRate:
    """How many words of a text (a path, "-" for stdin, or an iterable of lines) the
    vocabulary lacks, streamed ``CHUNK_LINES`` lines at a time.

    Good: ``oov_rate(model.vocab, "valid.txt").describe("valid.txt")`` at the end of training.
    Bad: ``oov_rate(model.vocab, "the cat sat")``: a str is a path (DataError: no such file).
    """
    if isinstance(lines_or_path, (str, os.PathLike)):
        lines = data.read_lines(lines_or_path, errors)
    else:
        lines = iter(lines_or_path)
    words = oovs = 0
    while True:
        chunk = list(itertools.islice(lines, CHUNK_LINES))
        if not chunk:
            return OovRate(words, oovs)
        _, flags = vocab.encode_batch(chunk)
        words += sum(len(f) for f in flags)
        oovs += sum(int(np.count_nonzero(f)) for f in flags)
