"""lm.validate: the Python API refuses the wrong types at its boundary (TypeError naming the
argument) instead of failing inside the tokenizer or scoring the wrong thing."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from lmfixtures import make_model

import lm
from lm import validate

NOT_STR = [["the", "cat"], ("the", "cat"), b"the cat", bytearray(b"x"), None, 3, 2.5]


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.mark.parametrize("value", NOT_STR, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("method", ["score", "full_scores", "perplexity"])
def test_sentence_must_be_str(model, method, value):
    with pytest.raises(TypeError, match=f"^sentence must be str, not {type(value).__name__}"):
        getattr(model, method)(value)


def test_a_list_of_words_is_not_scored_as_a_sentence(model):
    """Today's trap: score(["the", "market"]) scored the pair as one sentence."""
    with pytest.raises(TypeError, match=r"' '.join\(words\)"):
        model.score(["the", "cat"])
    assert model.score("the cat") == model.score(" ".join(["the", "cat"]))  # noqa: FLY002


@pytest.mark.parametrize("value", ["yes", 1, None])
@pytest.mark.parametrize("name", ["bos", "eos"])
def test_bos_eos_must_be_bools(model, name, value):
    with pytest.raises(TypeError, match=f"{name} must be True or False"):
        model.score("the cat", **{name: value})
    model.score("the cat", **{name: np.bool_(False)})  # numpy's bools are bools


@pytest.mark.parametrize("prompt", [b"the", ["the"], None])
def test_generate_prompt_must_be_str(model, prompt):
    with pytest.raises(TypeError, match="prompt must be str"):
        model.generate(prompt=prompt, greedy=True)


@pytest.mark.parametrize("source", [b"test.txt", 3, None, 2.5])
def test_corpus_perplexity_source(model, source):
    with pytest.raises(TypeError, match="^lines_or_path must be a file path"):
        lm.perplexity(model, source)


def test_corpus_perplexity_items_must_be_str(model):
    with pytest.raises(TypeError, match=r"sentence 1 of lines_or_path must be str, not bytes"):
        lm.perplexity(model, ["the cat", b"a dog"])
    with pytest.raises(TypeError, match=r"sentence 0 of lines_or_path must be str, not list"):
        lm.perplexity(model, [["the", "cat"]])


def test_good_sources_still_work(model, tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("the cat\na dog\n")
    by_path = lm.perplexity(model, pathlib.Path(path), progress=False)
    assert by_path == lm.perplexity(model, str(path), progress=False)
    assert by_path == lm.perplexity(model, ["the cat", "a dog"])
    assert by_path == lm.perplexity(model, (line for line in ["the cat", "a dog"]))


def test_word_in_model(model):
    """As in KenLM: True for a word scored as itself, False for what is scored as <unk>."""
    for word in model.vocab.words[3:]:
        assert word in model
    for word in ("zebra", "<unk>", "<s>", "</s>", "the cat", "", " "):
        assert word not in model, word
    with pytest.raises(TypeError, match="word must be str"):
        assert ["the"] in model


def test_word_in_a_lowercasing_model():
    model = make_model(lines=["The Cat sat", "a dog"])
    from lm.tokenizer import Vocab

    model.vocab = Vocab.build(["The Cat sat", "a dog"], lowercase=True)
    assert "CAT" in model and "cat" in model and "zebra" not in model


def test_validate_helpers():
    assert validate.sentence("x") == "x"
    assert validate.flag(True, "f") is True and validate.flag(np.bool_(False), "f") is False
    assert validate.lines_or_path("p.txt") == "p.txt"
    assert list(validate.lines_or_path(["a", "b"])) == ["a", "b"]
