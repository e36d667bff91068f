"""Count-based baselines: an add-k unigram and an interpolated Kneser-Ney bigram.

Both follow the perplexity convention of ``lm perplexity`` (SRILM's and KenLM's): a sentence
w_1..w_n is scored as P(w_1 | <s>) ... P(w_n | w_{n-1}) P(</s> | w_n), so ``</s>`` is a
predicted token and ``<s>`` is only a context; sentences are independent, and

    ppl = exp(-sum over sentences of ln P(sentence, </s>) / (words + sentences)).

The vocabulary is every word of the training sentences plus ``</s>`` and ``<unk>``; a test word
never seen in training is scored as ``<unk>``. Sentences are strings (split on white space) or
sequences of words; do not add ``<s>`` or ``</s>`` yourself:

    good: model.logprob("the dog sleeps")
    bad:  model.logprob("<s> the dog sleeps </s>")   # scores two extra <unk> words

``KneserNeyBigram.write_arpa(path)`` writes the fitted bigram as an ARPA file that KenLM (and
so ``lm score --ngram``) reads, with the same probabilities: the demo and the tests need no
external n-gram toolkit.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

from lm.metrics import perplexity

BOS, EOS, UNK = "<s>", "</s>", "<unk>"

Sentence = str | Sequence[str]


def words_of(sentence: Sentence) -> list[str]:
    return sentence.split() if isinstance(sentence, str) else list(sentence)


def corpus_perplexity(total_logprob: float, n_words: int, n_sentences: int) -> float:
    """exp(-total / (words + sentences)); ``total_logprob`` is a natural-log sum."""
    return perplexity(total_logprob, n_words + n_sentences)


class _Model:
    """What both models share: the vocabulary, and scoring whole corpora."""

    def _fit_vocab(self, sentences: list[list[str]]) -> None:
        words = {w for s in sentences for w in s}
        self.vocab_ = sorted(words | {EOS, UNK})

    def _known(self, words: list[str]) -> list[str]:
        index = self._index
        return [w if w in index else UNK for w in words]

    @property
    def _index(self) -> set[str]:
        if getattr(self, "_vocab_set", None) is None:
            self._vocab_set = set(self.vocab_)
        return self._vocab_set

    def prob(self, word: str, context: str = BOS) -> float:
        raise NotImplementedError

    def logprob(self, sentence: Sentence) -> float:
        """Natural log of P(w_1..w_n, </s>)."""
        tokens = [BOS, *self._known(words_of(sentence)), EOS]
        return sum(math.log(self.prob(w, v)) for v, w in itertools.pairwise(tokens))

    def perplexity(self, sentences: Iterable[Sentence]) -> float:
        total, n_words, n_sentences = 0.0, 0, 0
        for sentence in sentences:
            words = words_of(sentence)
            total += self.logprob(words)
            n_words += len(words)
            n_sentences += 1
        if n_sentences == 0:
            raise ValueError("perplexity of an empty corpus")
        return corpus_perplexity(total, n_words, n_sentences)


class Unigram(_Model):
    """P(w) = (c(w) + k) / (N + k |vocab|), ignoring the context; N counts words and </s>."""

    def __init__(self, k: float = 1.0):
        self.k = k

    def fit(self, sentences: Iterable[Sentence]) -> Unigram:
        sentences = [words_of(s) for s in sentences]
        self._fit_vocab(sentences)
        self.counts_ = Counter(w for s in sentences for w in s)
        self.counts_[EOS] = len(sentences)
        self.total_ = sum(self.counts_.values())
        self._vocab_set = None
        return self

    def prob(self, word: str, context: str = BOS) -> float:
        """P(word); ``word`` must be in ``vocab_`` (map unknown words to ``<unk>`` first)."""
        return (self.counts_[word] + self.k) / (self.total_ + self.k * len(self.vocab_))


class KneserNeyBigram(_Model):
    """Interpolated Kneser-Ney bigram with one absolute discount D.

        P(w | v) = max(c(v, w) - D, 0) / c(v) + D N1+(v .) / c(v) * P_cont(w)    if c(v) > 0
        P(w | v) = P_cont(w)                                                       otherwise
        P_cont(w) = max(N1+(. w) - D, 0) / N1+(. .) + D |{w: N1+(. w) > 0}| / N1+(. .) / |vocab|

    where c(v) = sum_w c(v, w), N1+(v .) is the number of distinct words after v, N1+(. w) the
    number of distinct contexts before w and N1+(. .) the number of distinct bigrams. The lowest
    level is uniform over the vocabulary, so ``<unk>`` and unseen words get some mass. D defaults
    to n1 / (n1 + 2 n2) from the numbers of bigrams seen once and twice.
    """

    def __init__(self, discount: float | None = None):
        self.discount = discount

    def fit(self, sentences: Iterable[Sentence]) -> KneserNeyBigram:
        sentences = [words_of(s) for s in sentences]
        self._fit_vocab(sentences)
        self.bigrams_ = Counter(pair for s in sentences for pair in zip([BOS, *s], [*s, EOS]))
        self.context_counts_: Counter = Counter()
        self.followers_: Counter = Counter()  # N1+(v .)
        self.histories_: Counter = Counter()  # N1+(. w)
        for (v, w), c in self.bigrams_.items():
            self.context_counts_[v] += c
            self.followers_[v] += 1
            self.histories_[w] += 1
        if self.discount is None:
            n1 = sum(1 for c in self.bigrams_.values() if c == 1)
            n2 = sum(1 for c in self.bigrams_.values() if c == 2)
            self.discount_ = n1 / (n1 + 2 * n2) if n1 and n2 else 0.75
        else:
            self.discount_ = self.discount
        self.n_bigram_types_ = len(self.bigrams_)
        self._vocab_set = None
        return self

    def continuation_prob(self, word: str) -> float:
        D, total = self.discount_, self.n_bigram_types_
        uniform_mass = D * len(self.histories_) / total
        return max(self.histories_[word] - D, 0.0) / total + uniform_mass / len(self.vocab_)

    def prob(self, word: str, context: str = BOS) -> float:
        """P(word | context); both must be in the vocabulary or ``<s>`` (map unknowns first)."""
        c_v = self.context_counts_[context]
        if c_v == 0:
            return self.continuation_prob(word)
        D = self.discount_
        seen = max(self.bigrams_[(context, word)] - D, 0.0) / c_v
        return seen + D * self.followers_[context] / c_v * self.continuation_prob(word)

    def backoff_weight(self, context: str) -> float:
        """The mass P(. | context) gives to P_cont: D N1+(v .) / c(v), or 1 for an unseen v.

        P(w | v) = (seen part) + backoff_weight(v) P_cont(w), and the seen part is zero for
        every w never seen after v, so an ARPA file that lists the seen bigrams with their
        full interpolated probability and gives v this backoff weight defines exactly the same
        distribution (which therefore still sums to 1).
        """
        c_v = self.context_counts_[context]
        return self.discount_ * self.followers_[context] / c_v if c_v else 1.0

    def arpa_lines(self) -> Iterator[str]:
        """The model as ARPA text, line by line (log10 probabilities and backoff weights).

        Unigrams: every vocabulary word with log10 P_cont(w) and its backoff weight, plus
        ``<s>`` with the pseudo-zero probability -99 (it is only ever a context). Bigrams:
        every (v, w) seen in training, v possibly ``<s>``, with log10 P(w | v). Words are in
        sorted order, so the file does not depend on the order of the training sentences.
        """
        contexts = sorted({v for v, _ in self.bigrams_})
        bigrams = sorted(self.bigrams_)
        yield "\\data\\"
        yield f"ngram 1={len(self.vocab_) + 1}"
        yield f"ngram 2={len(bigrams)}"
        yield ""
        yield "\\1-grams:"
        known = set(contexts)
        for w in sorted([BOS, *self.vocab_]):
            prob = -99.0 if w == BOS else math.log10(self.continuation_prob(w))
            if w in known:
                yield f"{prob:.9g}\t{w}\t{math.log10(self.backoff_weight(w)):.9g}"
            else:
                yield f"{prob:.9g}\t{w}"
        yield ""
        yield "\\2-grams:"
        for v, w in bigrams:
            yield f"{math.log10(self.prob(w, v)):.9g}\t{v} {w}"
        yield ""
        yield "\\end\\"

    def write_arpa(self, path: str | os.PathLike) -> None:
        """Write ``arpa_lines()`` to ``path`` (UTF-8, atomically: a temporary file renamed).

        Good: ``KneserNeyBigram().fit(lines).write_arpa("bigram.arpa")``, then
        ``lm score MODEL --ngram bigram.arpa --ngram-weight 0.3``.
        Bad: ``KneserNeyBigram().write_arpa("x.arpa")``: not fitted (AttributeError).
        """
        from lm.checkpoint import atomic_write

        with atomic_write(path, "wb") as f:
            for line in self.arpa_lines():
                f.write(line.encode("utf-8") + b"\n")


def unigram_perplexity(train: Iterable[Sentence], test: Iterable[Sentence]) -> float:
    """Test perplexity of an add-one unigram fitted on ``train`` (``</s>`` counted)."""
    return Unigram().fit(train).perplexity(test)


def bigram_perplexity(train: Iterable[Sentence], test: Iterable[Sentence]) -> float:
    """Test perplexity of an interpolated Kneser-Ney bigram fitted on ``train``."""
    return KneserNeyBigram().fit(train).perplexity(test)
