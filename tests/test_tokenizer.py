"""lm.tokenizer.Vocab.split: the words the n-gram model is given are the tokenizer's own."""

from __future__ import annotations

import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from lm.tokenizer import Vocab

# every code point that is white space to Python or to Unicode, and some that are neither
SPACES = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()] + ["\u200b", "\ufeff"]
text = st.lists(st.one_of(st.sampled_from(SPACES), st.characters(), st.just("Ab")), max_size=30)


@settings(max_examples=300, deadline=None)
@given(parts=text, lowercase=st.booleans())
def test_split_is_the_tokenizers_split(parts, lowercase):
    vocab = Vocab.build(["a b"], lowercase=lowercase)
    line = "".join(parts)
    tok = vocab.tokenizer
    normal = tok.normalizer.normalize_str(line) if lowercase else line
    expected = [w for w, _ in tok.pre_tokenizer.pre_tokenize_str(normal)]
    assert vocab.split(line) == expected


def test_information_separators_are_not_split_points():
    vocab = Vocab.build(["a b"])
    assert vocab.split("a\x1fb c") == ["a\x1fb", "c"]
    assert vocab.split(" a\u3000b\tc\n") == ["a", "b", "c"]
