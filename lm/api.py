"""The Python API, named after KenLM's Python module so that a KenLM user feels at home.

    >>> import lm
    >>> model = lm.load("model_dir")
    >>> model.score("the cat sat")             # total log10 probability, </s> included
    >>> list(model.full_scores("the cat sat"))  # (log10 prob, context length, is_oov) per token
    >>> model.perplexity("the cat sat")        # 10 ** (-score / (words + 1))
    >>> lm.perplexity(model, "test.txt")        # corpus perplexity, SRILM's counts
    >>> model.generate(prompt="the", seed=0)   # text generation
    >>> "cat" in model                         # in the vocabulary (scored as itself)

The scoring and generation themselves live in ``lm.scoring`` and ``lm.generation``.
"""

from __future__ import annotations

import os

from lm import checkpoint, validate
from lm.model import RNNLM
from lm.tokenizer import UNK, Vocab


class LanguageModel:
    """A trained model: the network, its vocabulary and its configuration."""

    def __init__(
        self, net: RNNLM, vocab: Vocab, config: dict | None = None, path: str | None = None
    ):
        self.net = net
        self.vocab = vocab
        self.config = config or {}
        self.path = path

    def __repr__(self) -> str:
        c = self.net.config
        return (
            f"LanguageModel({self.path!r}, n_vocab={c.n_vocab}, hidden={c.hidden}, "
            f"input={c.input!r}, activation={c.activation!r})"
        )

    # scoring (lm.scoring)

    def __contains__(self, word: str) -> bool:
        """``"word" in model``, as in KenLM: True when ``word`` is one token that the model
        scores as itself, False when it would be scored as <unk> (out of the vocabulary, or
        <unk> itself, or a typed <s> or </s>, which are never words). TypeError unless str.

        Good: ``"cat" in model``. Bad: ``["cat"] in model`` (TypeError).
        """
        validate.word(word)
        ids, oov = self.vocab.encode(word)
        return len(ids) == 1 and not oov[0] and int(ids[0]) != UNK

    def score(self, sentence: str, bos: bool = True, eos: bool = True) -> float:
        validate.score_args(sentence, bos, eos)
        from lm import scoring

        return scoring.score(self, sentence, bos=bos, eos=eos)

    def full_scores(self, sentence: str, bos: bool = True, eos: bool = True):
        validate.score_args(sentence, bos, eos)
        from lm import scoring

        return scoring.full_scores(self, sentence, bos=bos, eos=eos)

    def perplexity(self, sentence: str) -> float:
        validate.sentence(sentence)
        from lm import scoring

        return scoring.sentence_perplexity(self, sentence)

    # generation (lm.generation)

    def generate(self, prompt: str = "", **options):
        validate.sentence(prompt, "prompt")
        from lm import generation

        return generation.generate(self, prompt, **options)


def load(directory: str | os.PathLike) -> LanguageModel:
    """Load and validate a model directory written by ``lm train``.

    Raises ``lm.errors.ModelFileError`` with a one-line message naming the file and the
    problem when the directory is missing, incomplete, corrupt or of another format version.
    """
    net, vocab, config = checkpoint.load_model(directory)
    return LanguageModel(net, vocab, config, os.fspath(directory))
