"""Output that the parsers of KenLM's ``query`` and SRILM's ``ngram -ppl`` read unchanged, and
the counts behind it.

KenLM ``query`` (``lm score --per-token``), one line per sentence, fields tab-separated:

    the=4 1 -1.23456\tcat=7 2 -2.5\t</s>=2 3 -0.5\tTotal: -4.23456 OOV: 0

``word=id context_length log10prob`` per token (numbers as C++ streams print them, six
significant digits), then ``Total: <sum> OOV: <count>``. The id is the RNN's (an OOV word
shows 0, the ``<unk>`` it is scored as). KenLM's middle field is the length of the n-gram it
matched, word included; an RNN has no order, so ``context_length`` is what ``full_scores``
gives: the number of tokens the prediction is conditioned on, the whole history with ``<s>``
counted, i.e. i + 1 for the i-th token (from 0) with bos and i without. Summary (KenLM's):

    Perplexity including OOVs:\t<ppl over every token, OOVs scored as <unk>>
    Perplexity excluding OOVs:\t<ppl with the OOV tokens left out of sum and count>
    OOVs:\t<n>
    Tokens:\t<n>

SRILM ``ngram -ppl -debug 2`` (``lm score --format srilm``), per sentence:

    the cat sat
    \\tp( the | <s> ) \\t= [2gram] 0.0123457 [ -1.908485 ]
    \\tp( cat | the ...) \\t= [3gram] ...
    \\tp( </s> | sat ...) \\t= [4gram] ...
    1 sentences, 3 words, 0 OOVs
    0 zeroprobs, logprob= -5.123 ppl= 19.07 ppl1= 51.2
    <empty line>

and at the end ``file NAME: ...`` with the same two summary lines over the whole file. Numbers
have SRILM's seven significant digits. ``[Ngram]`` is context_length + 1 (the length of the
"n-gram" the RNN used, word included, as SRILM counts it). As SRILM does for a word it has no
probability for, an OOV is printed as ``<unk>`` with ``[OOV] 0 [ -inf ]`` and left out of
``logprob``, ``ppl`` and ``ppl1``, and counted in ``OOVs``: a reader of ``ppl=`` gets SRILM's
number. ``ppl`` = 10^(-logprob / (words - OOVs + sentences)), ``ppl1`` the same without the
sentences (the ``</s>`` terms); "sentences" counts the ``</s>`` terms scored (0 with
``--no-eos``, as SRILM's ``-no-eos``).

``--unk-penalty P`` scores every OOV word at log10 probability P instead of the model's
``<unk>``: it then counts in every total like any other word (SRILM shows ``[OOV]`` with
probability 10^P and reports 0 OOVs, as it does for an open-vocabulary model; KenLM's
figures still name the OOVs).

Input hygiene (the command line, not the API): a ``<s>`` typed as a line's first word and a
``</s>`` typed as its last are boundary tags and are stripped before scoring (as SRILM and
rnnlm files have them), not scored as two OOV words; the sentence is then echoed as scored.
A tab (or carriage return) inside an echoed sentence becomes a space, so it cannot break the
tab-separated columns; the words are the same, since both are white space to the tokenizer.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re

import numpy as np

from lm import scoring
from lm.metrics import perplexity as _perplexity_ln
from lm.scoring import SentenceScore


def perplexity(log10prob: float, n: int) -> float:
    """10 ** (-log10prob / n) (lm.metrics.perplexity on a log10 sum)."""
    return _perplexity_ln(log10prob, n, log10=True)


_LEADING_BOS = re.compile(r"^\s*<s>(?:\s+|$)")
_TRAILING_EOS = re.compile(r"(?:^|\s+)</s>\s*$")


# ----- input -----


def strip_boundary_tags(line: str) -> str:
    """``line`` without a leading ``<s>`` word and a trailing ``</s>`` word (one of each).

    Good: ``strip_boundary_tags("<s> the cat </s>")`` -> ``"the cat"``; a line without tags
    is returned unchanged. A tag inside the line stays, and is scored as an OOV word.
    """
    return _TRAILING_EOS.sub("", _LEADING_BOS.sub("", line, count=1), count=1)


def tsv_field(text: str) -> str:
    """``text`` safe as one tab-separated field: tabs and carriage returns become spaces."""
    return text.replace("\t", " ").replace("\r", " ")


# ----- per sentence -----


def with_unk_penalty(s: SentenceScore, penalty: float | None) -> SentenceScore:
    """``s`` with every OOV token's log10 probability set to ``penalty`` (None: unchanged)."""
    if penalty is None or not s.oovs:
        return s
    log10probs = np.where(s.oov, float(penalty), s.log10probs)
    return dataclasses.replace(s, log10probs=log10probs)


def penalty_transform(penalty: float | None):
    """``with_unk_penalty`` with ``penalty`` as a picklable transform a cluster worker applies
    to each score (None: no transform)."""
    if penalty is None:
        return None
    return functools.partial(with_unk_penalty, penalty=penalty)


def ppl_excluding_oovs(s: SentenceScore) -> float:
    """10 ** (-log10prob / tokens) over the tokens that are not OOVs (nan when none are)."""
    return perplexity(float(np.sum(s.log10probs[~s.oov])), s.tokens - s.oovs)


def context_lengths(s: SentenceScore) -> list[int]:
    """Tokens each prediction is conditioned on: i + bos for the i-th token."""
    return [i + int(s.bos) for i in range(s.tokens)]


def tsv_line(s: SentenceScore) -> str:
    """``log10prob tokens oovs ppl ppl_excluding_oovs sentence``, tab-separated."""
    fields = [
        f"{s.log10prob:.6f}",
        str(s.tokens),
        str(s.oovs),
        f"{s.ppl:.6g}",
        f"{ppl_excluding_oovs(s):.6g}",
        tsv_field(s.sentence),
    ]
    return "\t".join(fields)


def kenlm_line(s: SentenceScore, vocab) -> str:
    """KenLM ``query``'s line: ``word=id context_length log10prob<TAB>`` per token, then
    ``Total: X OOV: N``."""
    parts = [
        f"{w}={i} {c} {lp:g}\t"
        for w, i, c, lp in zip(
            s.token_texts(vocab), s.ids.tolist(), context_lengths(s), s.log10probs.tolist()
        )
    ]
    return "".join(parts) + f"Total: {s.log10prob:g} OOV: {s.oovs}"


def json_obj(s: SentenceScore, vocab, per_token: bool) -> dict:
    obj = {
        "sentence": s.sentence,
        "log10prob": s.log10prob,
        "tokens": s.tokens,
        "words": s.words,
        "oovs": s.oovs,
        "ppl": finite_or_none(s.ppl),
        "ppl_excluding_oovs": finite_or_none(ppl_excluding_oovs(s)),
    }
    if per_token:
        obj["per_token"] = [
            {"token": w, "id": i, "context_length": c, "log10prob": lp, "oov": oov}
            for w, i, c, lp, oov in zip(
                s.token_texts(vocab),
                s.ids.tolist(),
                context_lengths(s),
                s.log10probs.tolist(),
                s.oov.tolist(),
            )
        ]
    return obj


# ----- SRILM's counts -----


@dataclasses.dataclass
class SrilmStats:
    """SRILM's ``TextStats``: sentences (``</s>`` terms), words, OOVs (left out), logprob
    (log10, OOVs left out)."""

    sentences: int = 0
    words: int = 0
    oovs: int = 0
    logprob: float = 0.0

    @classmethod
    def of(cls, s: SentenceScore, oovs_scored: bool) -> SrilmStats:
        excluded = 0 if oovs_scored else s.oovs
        lp = s.log10prob if oovs_scored or not s.oovs else float(np.sum(s.log10probs[~s.oov]))
        return cls(int(s.eos), s.words, excluded, lp)

    def add(self, other: SrilmStats) -> None:
        self.sentences += other.sentences
        self.words += other.words
        self.oovs += other.oovs
        self.logprob += other.logprob

    @property
    def ppl(self) -> float:
        return _ratio_ppl(self.logprob, self.words - self.oovs + self.sentences)

    @property
    def ppl1(self) -> float:
        return _ratio_ppl(self.logprob, self.words - self.oovs)

    def text(self) -> str:
        """TextStats as SRILM prints it: one line, or two when anything was scored."""
        head = f"{self.sentences} sentences, {self.words} words, {self.oovs} OOVs"
        if self.words + self.sentences == 0:
            return head
        return (
            f"{head}\n0 zeroprobs, logprob= {_g7(self.logprob)} "
            f"ppl= {_srilm_ppl(self.ppl)} ppl1= {_srilm_ppl(self.ppl1)}"
        )


def srilm_block(s: SentenceScore, vocab, oovs_scored: bool) -> str:
    """One sentence as ``ngram -ppl -debug 2`` prints it (without the trailing empty line)."""
    texts = s.token_texts(vocab)
    words = texts[: s.words]
    shown = ["<unk>" if oov else w for w, oov in zip(texts, s.oov.tolist())]
    lines = [" ".join(words)]
    previous = "<s>" if s.bos else ""
    for i, (w, lp, oov, c) in enumerate(
        zip(shown, s.log10probs.tolist(), s.oov.tolist(), context_lengths(s))
    ):
        head = f"\tp( {w} | {previous}{' ...' if i else ' '}) \t= "
        if oov and not oovs_scored:
            lines.append(head + "[OOV] 0 [ -inf ]")
        else:
            tag = "[OOV]" if oov else f"[{c + 1}gram]"
            lines.append(head + f"{tag} {_g7(10.0**lp)} [ {_g7(lp)} ]")
        previous = w
    lines.append(SrilmStats.of(s, oovs_scored).text())
    return "\n".join(lines)


# ----- corpus totals: both tools' summaries -----


class Totals:
    """Running sums over scored sentences, for KenLM's and SRILM's summaries.

    ``oovs_scored``: True with ``--unk-penalty`` (OOVs then count in SRILM's totals).
    ``kenlm`` is a ``lm.scoring.CorpusTotals`` (every token; OOVs named as KenLM names them).
    """

    def __init__(self, oovs_scored: bool = False):
        self.oovs_scored = oovs_scored
        self.kenlm = scoring.CorpusTotals()
        self.srilm = SrilmStats()

    def add(self, s: SentenceScore) -> None:
        self.kenlm.add(s)
        self.srilm.add(SrilmStats.of(s, self.oovs_scored))

    def result(self) -> scoring.CorpusPerplexity:
        return self.kenlm.result()

    def srilm_summary(self, name: str) -> str:
        """``file NAME: ...`` and SRILM's summary line."""
        return f"file {name}: {self.srilm.text()}"

    def kenlm_summary(self) -> str:
        """KenLM ``query``'s four summary lines."""
        r = self.result()
        return (
            f"Perplexity including OOVs:\t{r.ppl:g}\n"
            f"Perplexity excluding OOVs:\t{r.ppl_excluding_oovs:g}\n"
            f"OOVs:\t{r.oovs}\nTokens:\t{r.tokens}"
        )

    def summary(self, name: str) -> str:
        """SRILM's summary, then KenLM's: each shape meaning what its tool means."""
        return f"{self.srilm_summary(name)}\n{self.kenlm_summary()}"

    def to_dict(self) -> dict:
        """Every field of CorpusPerplexity, plus SRILM's logprob and ppl1 without OOVs
        (``log10prob_excluding_oovs``, ``ppl1_excluding_oovs``); undefined numbers are None."""
        d = self.result().to_dict()
        t = self.kenlm
        excluded_lp = t.log10prob - t.oov_log10prob
        d["log10prob_excluding_oovs"] = excluded_lp
        d["ppl1_excluding_oovs"] = perplexity(excluded_lp, t.words - t.oovs)
        return {k: finite_or_none(v) if isinstance(v, float) else v for k, v in d.items()}


def finite_or_none(x: float) -> float | None:
    """JSON has no nan or inf: undefined or overflowing numbers become null."""
    return x if math.isfinite(x) else None


def _g7(x: float) -> str:
    """A number as SRILM prints a LogP: seven significant digits."""
    return f"{x:.7g}"


def _ratio_ppl(logprob: float, n: int) -> float:
    return perplexity(logprob, n) if n > 0 else math.nan


def _srilm_ppl(x: float) -> str:
    return "undefined" if math.isnan(x) else _g7(x)
