"""The Python API, named after KenLM's Python module so that a KenLM user feels at home.

    >>> import lm
    >>> model = lm.load("model_dir")
    >>> model.score("the cat sat")             # total log10 probability, </s> included
    >>> list(model.full_scores("the cat sat"))  # (log10 prob, context length, is_oov) per token
    >>> model.perplexity("the cat sat")        # 10 ** (-score / (words + 1))
    >>> lm.perplexity(model, "test.txt")        # corpus perplexity, SRILM's counts
    >>> model.generate(prompt="the", seed=0)   # text generation

The scoring and generation themselves live in ``lm.scoring`` and ``lm.generation``.
"""

from __future__ import annotations

import os

from lm import checkpoint
from lm.model import RNNLM
from lm.stateful import StatefulMixin
from lm.tokenizer import Vocab


class LanguageModel(StatefulMixin):
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

    def token_logprobs(self, sequences, bos=True, eos=True, words=None, batch_size=None):
        """ln P of every token: ``lm.scoring.score_ids`` (``words`` unused by the RNN)."""
        from lm import scoring

        return scoring.score_ids(self.net, sequences, bos, eos, batch_size or scoring.BATCH_SIZE)

    def score(self, sentence: str, bos: bool = True, eos: bool = True) -> float:
        from lm import scoring

        return scoring.score(self, sentence, bos=bos, eos=eos)

    def full_scores(self, sentence: str, bos: bool = True, eos: bool = True):
        from lm import scoring

        return scoring.full_scores(self, sentence, bos=bos, eos=eos)

    def perplexity(self, sentence: str) -> float:
        from lm import scoring

        return scoring.sentence_perplexity(self, sentence)

    # generation (lm.generation)

    def generate(self, prompt: str = "", **options):
        from lm import generation

        return generation.generate(self, prompt, **options)


def load(directory: str | os.PathLike) -> LanguageModel:
    """Load and validate a model directory written by ``lm train``.

    Raises ``lm.errors.ModelFileError`` with a one-line message naming the file and the
    problem when the directory is missing, incomplete, corrupt or of another format version.
    """
    net, vocab, config = checkpoint.load_model(directory)
    return LanguageModel(net, vocab, config, os.fspath(directory))
