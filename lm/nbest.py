"""N-best lists: reading Kaldi's and SRILM's, rescoring them with a language model (batched by
key, streamed), and picking each list's best hypothesis.

Kaldi (``--format kaldi``): one hypothesis a line, ``KEY w1 w2 ...``; the key is never scored,
a key alone scores ``</s>`` alone; hypotheses of one utterance share a key (consecutive lines).

SRILM (``--format srilm``): one list per file, one hypothesis a line,
``ascore lscore nwords w1 w2 ...`` (the format ``ngram -rescore`` reads and writes, scores in
log10); the list is named after its file. Rescoring replaces lscore with the model's log10
probability of the words; ranking uses

    total = ascore + lm_weight * lscore + word_penalty * nwords

(Kaldi lists have no acoustic score: ascore = 0 and nwords is the number of words.)

As for ``lm score``, a ``<s>`` typed first and a ``</s>`` typed last are boundary tags and are
stripped before scoring.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from lm import formats, scoring
from lm.errors import DataError
from lm.scoring import SentenceScore

MAX_BATCH = 4096  # most hypotheses scored in one call (a longer list is split)


@dataclass(frozen=True)
class Hypothesis:
    """One n-best entry: its key (Kaldi key or SRILM list name), its words (as one string,
    boundary tags stripped), and SRILM's ascore and nwords (0 and the word count for Kaldi)."""

    key: str
    words: str
    ascore: float = 0.0
    nwords: int = 0


def parse_kaldi(lines: Iterable[str], name: str) -> Iterator[Hypothesis]:
    """``KEY w1 w2 ...`` lines; a blank line is an error naming it (``name:line``)."""
    for lineno, line in enumerate(lines, start=1):
        parts = line.split(maxsplit=1)
        if not parts:
            raise DataError(f"{name}:{lineno}: empty line; expected 'KEY w1 w2 ...'")
        words = formats.strip_boundary_tags(parts[1]) if len(parts) > 1 else ""
        yield Hypothesis(parts[0], words, 0.0, len(words.split()))


def parse_srilm(lines: Iterable[str], name: str) -> Iterator[Hypothesis]:
    """``ascore lscore nwords w1 ...`` lines, all keyed ``name``; too few fields or a field
    that is not a number is an error naming the line."""
    for lineno, line in enumerate(lines, start=1):
        parts = line.split(maxsplit=3)
        if len(parts) < 3:
            raise DataError(
                f"{name}:{lineno}: {len(parts)} field{'s' * (len(parts) != 1)}; expected "
                "'ascore lscore nwords w1 w2 ...' (SRILM n-best)"
            )
        try:
            ascore, _, nwords = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise DataError(
                f"{name}:{lineno}: ascore, lscore and nwords must be numbers, got "
                f"{' '.join(parts[:3])!r}"
            ) from None
        words = formats.strip_boundary_tags(parts[3]) if len(parts) > 3 else ""
        yield Hypothesis(name, words, ascore, nwords)


def batches(hyps: Iterable[Hypothesis], size: int = MAX_BATCH) -> Iterator[list[Hypothesis]]:
    """Hypotheses in batches of whole keys (consecutive hypotheses sharing a key are never
    split), each of at least ``size`` unless the input ends; one key with more than ``size``
    hypotheses is split into pieces of ``size`` so that memory stays bounded."""
    batch: list[Hypothesis] = []
    for h in hyps:
        if batch and len(batch) >= size and (h.key != batch[-1].key or _run(batch) >= size):
            yield batch
            batch = []
        batch.append(h)
    if batch:
        yield batch


def _run(batch: list[Hypothesis]) -> int:
    """How many hypotheses at the end of ``batch`` share its last key."""
    key, n = batch[-1].key, 0
    for h in reversed(batch):
        if h.key != key:
            break
        n += 1
    return n


def rescore(
    scorer,
    hyps: Iterable[Hypothesis],
    bos: bool = True,
    eos: bool = True,
    batch_size: int = scoring.BATCH_SIZE,
    unk_penalty: float | None = None,
    size: int = MAX_BATCH,
) -> Iterator[tuple[Hypothesis, SentenceScore]]:
    """(hypothesis, its SentenceScore) for every hypothesis, in input order, streamed: each
    batch of whole keys is scored in one call of ``scorer.token_logprobs``."""
    for batch in batches(hyps, size):
        (scores,) = scoring.score_chunks(
            scorer, [h.words for h in batch], bos, eos, batch_size, chunk_lines=len(batch)
        )
        for h, s in zip(batch, scores):
            yield h, formats.with_unk_penalty(s, unk_penalty)


def total(h: Hypothesis, lscore: float, lm_weight: float, word_penalty: float) -> float:
    """ascore + lm_weight * lscore + word_penalty * nwords."""
    return h.ascore + lm_weight * lscore + word_penalty * h.nwords


def best_per_key(
    scored: Iterable[tuple[Hypothesis, SentenceScore]], lm_weight: float, word_penalty: float
) -> Iterator[tuple[Hypothesis, SentenceScore]]:
    """The hypothesis with the highest ``total`` of each run of one key (the first on ties)."""
    best = None
    best_total = -math.inf
    for h, s in scored:
        if best is not None and h.key != best[0].key:
            yield best
            best, best_total = None, -math.inf
        t = total(h, s.log10prob, lm_weight, word_penalty)
        if best is None or t > best_total:
            best, best_total = (h, s), t
    if best is not None:
        yield best
