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

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from lm import cluster, formats, scoring
from lm.errors import DataError
from lm.scoring import SentenceScore

MAX_BATCH = 4096  # most hypotheses scored in one call (a longer list is split)


@dataclass(frozen=True)
class Hypothesis:
    """One n-best entry: its key (Kaldi key or SRILM list name), its words (as one string,
    boundary tags stripped), and SRILM's ascore and nwords (0 and the word count for Kaldi);
    ``source`` and ``line`` say where it was read (for messages only)."""

    key: str
    words: str
    ascore: float = 0.0
    nwords: int = 0
    source: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)


def parse_kaldi(lines: Iterable[str], name: str) -> Iterator[Hypothesis]:
    """``KEY w1 w2 ...`` lines; a blank line is an error naming it (``name:line``)."""
    for lineno, line in enumerate(lines, start=1):
        parts = line.split(maxsplit=1)
        if not parts:
            raise DataError(f"{name}:{lineno}: empty line; expected 'KEY w1 w2 ...'")
        words = formats.strip_boundary_tags(parts[1]) if len(parts) > 1 else ""
        yield Hypothesis(parts[0], words, 0.0, len(words.split()), name, lineno)


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
        yield Hypothesis(name, words, ascore, nwords, name, lineno)


def batches(hyps: Iterable[Hypothesis], size: int = MAX_BATCH) -> Iterator[list[Hypothesis]]:
    """Hypotheses in batches of whole keys (consecutive hypotheses sharing a key are never
    split), each of at least ``size`` unless the input, or the file it was read from, ends;
    one key with more than ``size`` hypotheses is split into pieces of ``size`` so that
    memory stays bounded."""
    batch: list[Hypothesis] = []
    for h in hyps:
        if batch and h.source != batch[-1].source:  # a batch is lines of one file
            yield batch
            batch = []
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


def chunks(hyps: Iterable[Hypothesis], size: int = MAX_BATCH) -> Iterator[cluster.Chunk]:
    """Each batch (``batches``) as the chunk of lines scored together, its words as the lines
    and the hypotheses kept beside them (``Chunk.extra``, not sent to workers)."""
    for batch in batches(hyps, size):
        yield cluster.Chunk([h.words for h in batch], batch[0].source, batch[0].line, batch)


def rescore(
    scorer,
    hyps: Iterable[Hypothesis],
    bos: bool = True,
    eos: bool = True,
    batch_size: int = scoring.BATCH_SIZE,
    unk_penalty: float | None = None,
    size: int = MAX_BATCH,
    client=None,
) -> Iterator[tuple[Hypothesis, SentenceScore]]:
    """(hypothesis, its SentenceScore) for every hypothesis, in input order, streamed: each
    batch of whole keys is scored in one ``scoring.score_chunk``, in this process or, with a
    ``distributed.Client``, on its workers (``scorer`` then being what
    ``lm.cluster.model_loader`` takes), with the same numbers bit for bit."""
    transform = formats.penalty_transform(unk_penalty)
    stream = cluster.in_order(client, scorer, chunks(hyps, size), bos, eos, batch_size,
                              transform=transform)  # fmt: skip
    for r in stream:
        yield from zip(r.chunk.extra, r.scores)


class Output:
    """The text ``lm rescore`` writes, a block at a time, for (hypothesis, score) pairs in
    input order: ``KEY<TAB>log10prob`` (kaldi), ``ascore lscore nwords w1 ...`` (srilm), or
    with ``best`` the best hypothesis of each key (``KEY w1 ...``) once its key is done.

        out = Output("kaldi", best=True, lm_weight=1.0, word_penalty=0.0)
        text = out.take(pairs)     # None when no line is complete yet
        last = out.finish()        # the last key's best hypothesis
    """

    def __init__(self, fmt: str, best: bool, lm_weight: float, word_penalty: float):
        self.fmt, self.best = fmt, best
        self.weights = (lm_weight, word_penalty)
        self.top: tuple[Hypothesis, float] | None = None  # the best of the key being read

    def take(self, pairs: Iterable[tuple[Hypothesis, SentenceScore]]) -> str | None:
        lines = []
        for h, s in pairs:
            if not self.best:
                lines.append(self._line(h, s))
                continue
            t = total(h, s.log10prob, *self.weights)
            if self.top is not None and h.key != self.top[0].key:
                lines.append(_best_line(self.top[0]))
                self.top = None
            if self.top is None or t > self.top[1]:
                self.top = (h, t)
        return "\n".join(lines) if lines else None

    def finish(self) -> str | None:
        top, self.top = self.top, None
        return None if top is None else _best_line(top[0])

    def _line(self, h: Hypothesis, s: SentenceScore) -> str:
        if self.fmt == "srilm":
            words = f" {h.words}" if h.words else ""
            return f"{h.ascore:.16g} {s.log10prob:.16g} {h.nwords}{words}"
        return f"{h.key}\t{s.log10prob:.6f}"


def _best_line(h: Hypothesis) -> str:
    """A Kaldi transcript line: ``KEY w1 w2 ...``."""
    return f"{h.key} {h.words}" if h.words else h.key


def total(h: Hypothesis, lscore: float, lm_weight: float, word_penalty: float) -> float:
    """ascore + lm_weight * lscore + word_penalty * nwords."""
    return h.ascore + lm_weight * lscore + word_penalty * h.nwords
