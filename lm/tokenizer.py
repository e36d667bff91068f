"""Word-level vocabulary on HuggingFace ``tokenizers`` (the only module that imports it).

A ``WordLevel`` model with a whitespace-split pre-tokenizer and optional lowercasing, saved as
``tokenizer.json``. Ids 0, 1, 2 are the special tokens ``<unk>``, ``<s>``, ``</s>``.

A literal ``<unk>`` in text (as in Penn Treebank files) is the unknown token: it gets id 0 and
is scored as an ordinary vocabulary word, not flagged as out-of-vocabulary. A literal ``<s>`` or
``</s>`` typed inside a sentence is not a boundary: it is mapped to ``<unk>`` and flagged OOV,
like any other word outside the vocabulary.

A Python str may hold lone surrogates (U+D800..U+DFFF), which no UTF-8 text can: they come
from decoding with ``errors="surrogateescape"``, e.g. a command-line argument that is not
UTF-8. Each one is read as U+FFFD, the replacement character, as ``--errors replace`` reads an
undecodable byte: a word holding one is scored as an out-of-vocabulary word, never an error.

    vocab.encode("the ca\\udcff")   # ids [id of "the", 0], oov [False, True]
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable

import numpy as np
from tokenizers import Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel

from lm.errors import ModelFileError

UNK, BOS, EOS = 0, 1, 2
SPECIALS = ("<unk>", "<s>", "</s>")
_SURROGATE = re.compile("[\ud800-\udfff]")
_PYTHON_ONLY_SPACE = re.compile("[\x1c-\x1f]")  # str.isspace, not Unicode White_Space


def _empty_tokenizer(vocab: dict[str, int], lowercase: bool) -> Tokenizer:
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tok


class Vocab:
    """The vocabulary: words <-> ids, wrapping a ``tokenizers.Tokenizer``."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.size = tokenizer.get_vocab_size()
        vocab = tokenizer.get_vocab()
        self.words = [""] * self.size
        for w, i in vocab.items():
            self.words[i] = w
        self._lowercase = tokenizer.normalizer is not None

    # ----- construction -----

    @classmethod
    def build(
        cls,
        lines: Iterable[str],
        vocab_size: int | None = None,
        min_count: int = 1,
        lowercase: bool = False,
    ) -> Vocab:
        """Vocabulary of the ``vocab_size`` most frequent words seen at least ``min_count`` times.

        ``vocab_size`` counts the three special tokens. Ties in frequency are broken by the
        word itself (code-point order), so the result does not depend on input order.
        """
        counts = count_words(lines, lowercase)
        ranked = sorted(
            (w for w, n in counts.items() if n >= min_count and w not in SPECIALS),
            key=lambda w: (-counts[w], w),
        )
        if vocab_size is not None:
            ranked = ranked[: max(0, vocab_size - len(SPECIALS))]
        vocab = {w: i for i, w in enumerate(SPECIALS + tuple(ranked))}
        return cls(_empty_tokenizer(vocab, lowercase))

    def save(self, path: str | os.PathLike) -> None:
        self.tokenizer.save(str(path))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocab:
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception on bad JSON
            raise ModelFileError(f"{path}: not a valid tokenizer file ({_first_line(e)})") from None
        vocab = tok.get_vocab()
        if any(vocab.get(w) != i for i, w in enumerate(SPECIALS)):
            raise ModelFileError(f"{path}: special tokens must be <unk>=0, <s>=1, </s>=2")
        problem = _spec_problem(json.loads(tok.to_str()))
        if problem:
            raise ModelFileError(f"{path}: {problem} (not a tokenizer written by lm)")
        return cls(tok)

    # ----- use -----

    def split(self, line: str) -> list[str]:
        """The words of a line as the tokenizer sees them (after normalisation).

        Python's ``str.split`` splits where the tokenizer's WhitespaceSplit does except at
        U+001C..U+001F (white space to Python only), so it is used unless the line holds one
        of those: a third of the memory of the tokenizer's (word, offsets) pairs."""
        line = replace_surrogates(line)
        if self._lowercase:
            line = self.tokenizer.normalizer.normalize_str(line)
        if _PYTHON_ONLY_SPACE.search(line) is None:
            return line.split()
        return [w for w, _ in self.tokenizer.pre_tokenizer.pre_tokenize_str(line)]

    def encode(self, line: str) -> tuple[np.ndarray, np.ndarray]:
        """Word ids of one line and its OOV flags: (ids int32 (m,), is_oov bool (m,))."""
        ids, oov = self.encode_batch([line])
        return ids[0], oov[0]

    def encode_batch(self, lines: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """``encode`` for many lines at once (the tokenizer runs them in parallel)."""
        ids_out, oov_out = [], []
        try:
            encodings = self.tokenizer.encode_batch(lines, add_special_tokens=False)
        except TypeError:  # what tokenizers raises for a str holding lone surrogates
            lines = [replace_surrogates(line) for line in lines]  # same lengths: offsets hold
            encodings = self.tokenizer.encode_batch(lines, add_special_tokens=False)
        for line, enc in zip(lines, encodings):
            ids = np.asarray(enc.ids, dtype=np.int32)
            oov = (ids == BOS) | (ids == EOS)  # a typed boundary token is not a word we know
            ids[oov] = UNK
            unknown = np.flatnonzero(ids == UNK)
            offsets = enc.offsets if len(unknown) else None  # each access rebuilds the list
            for j in unknown:  # only a literal "<unk>" is in the vocabulary
                a, b = offsets[j]
                word = line[a:b].lower() if self._lowercase else line[a:b]
                oov[j] = word != "<unk>"
            ids_out.append(ids)
            oov_out.append(oov)
        return ids_out, oov_out

    def decode(self, ids: Iterable[int]) -> str:
        """Words for ids, joined by single spaces."""
        return " ".join(self.words[int(i)] for i in ids)


def count_words(lines: Iterable[str], lowercase: bool = False) -> Counter:
    """Word frequencies, split exactly as the tokenizer splits."""
    tok = _empty_tokenizer({"<unk>": 0}, lowercase)
    counts: Counter = Counter()
    for line in lines:
        line = replace_surrogates(line)
        if lowercase:
            line = tok.normalizer.normalize_str(line)
        counts.update(w for w, _ in tok.pre_tokenizer.pre_tokenize_str(line))
    return counts


def replace_surrogates(line: str) -> str:
    """``line`` with every lone surrogate replaced by U+FFFD (one code point for one, so
    offsets into the result are offsets into ``line``)."""
    return _SURROGATE.sub("\ufffd", line)


def _spec_problem(spec: dict) -> str | None:
    """What makes a parsed tokenizer.json other than the WordLevel, whitespace-split,
    optionally lowercasing vocabulary with ids 0..n-1 that ``Vocab.build`` writes, or None."""
    model = spec.get("model") or {}
    if model.get("type") != "WordLevel" or model.get("unk_token") != "<unk>":
        return "model must be WordLevel with unk_token <unk>"
    if spec.get("pre_tokenizer") != {"type": "WhitespaceSplit"}:
        return "pre_tokenizer must be WhitespaceSplit"
    if spec.get("normalizer") not in (None, {"type": "Lowercase"}):
        return "normalizer must be none or Lowercase"
    if spec.get("added_tokens"):
        return "added_tokens must be empty"
    if sorted(model.get("vocab", {}).values()) != list(range(len(model.get("vocab", {})))):
        return "word ids must be 0..n-1, each used once"
    return None


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]
