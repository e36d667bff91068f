"""The Python API, named after KenLM's Python module so that a KenLM user feels at home.

    >>> import lm
    >>> model = lm.load("model_dir")
    >>> model.score("the cat sat")             # total log10 probability, </s> included
    >>> list(model.full_scores("the cat sat"))  # (log10 prob, context length, is_oov) per token
    >>> model.perplexity("the cat sat")        # 10 ** (-score / (words + 1))
    >>> lm.perplexity(model, "test.txt")        # corpus perplexity, </s> and OOVs counted
    >>> model.generate(prompt="the", seed=0)   # text generation
    >>> "cat" in model                         # in the vocabulary (scored as itself)

The scoring and generation themselves live in ``lm.scoring`` and ``lm.generation``, which
work on any scorer (``lm.scoring.TokenScorer``) and any network; this class ties a network
to its vocabulary.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from lm import backend, checkpoint, generation, scoring, validate
from lm.model import Network
from lm.stateful import StatefulMixin
from lm.tokenizer import UNK, Vocab


class LanguageModel(StatefulMixin):
    """A trained model: the network, its vocabulary and its configuration."""

    needs_words = False  # the network scores ids; see lm.scoring.TokenScorer

    def __init__(
        self, net: Network, vocab: Vocab, config: dict | None = None, path: str | None = None
    ):
        self.net = net
        self.vocab = vocab
        self.config = config or {}
        self.path = path

    def __repr__(self) -> str:
        c = self.net.config
        return (
            f"LanguageModel({self.path!r}, n_vocab={c.n_vocab}, hidden={c.hidden}, "
            f"cell={c.cell!r}, input={c.input!r}, activation={c.activation!r})"
        )

    def token_logprobs(self, sequences, bos=True, eos=True, words=None, batch_size=None):
        """Natural-log probability of every token of each id sequence (the scorer interface,
        ``lm.scoring.TokenScorer``; ``words`` is ignored: the network reads ids)."""
        batch_size = scoring.BATCH_SIZE if batch_size is None else batch_size
        return scoring.score_ids(self.net, sequences, bos=bos, eos=eos, batch_size=batch_size)

    # ----- scoring (lm.scoring)

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
        """Total log10 probability of one sentence, ``</s>`` included with ``eos`` (KenLM's
        ``Model.score``). ``bos=False`` starts from the zero state instead of the sentence
        start (for a fragment that continues text).

        Good: ``model.score("the cat sat")`` = log10 P(the cat sat </s> | <s>);
        ``model.score("")`` scores ``</s>`` alone.
        Bad: ``model.score("<s> the cat sat </s>")``: the boundaries are added for you, and
        typed ones are scored as out-of-vocabulary words.
        """
        validate.score_args(sentence, bos, eos)
        return scoring.score(self, sentence, bos=bos, eos=eos)

    def full_scores(
        self, sentence: str, bos: bool = True, eos: bool = True
    ) -> Iterator[tuple[float, int, bool]]:
        """``(log10 prob, context length, is_oov)`` for every token, ``</s>`` last with
        ``eos`` (KenLM's ``Model.full_scores``). The context length is the number of tokens
        the prediction is conditioned on: an RNN conditions on the whole history, so token i
        (from 0) has context i + 1 with ``bos`` (the sentence start counts) and i without.

        Good: ``sum(p for p, _, _ in model.full_scores("the cat")) == model.score("the cat")``
        (to float rounding).
        Bad: ``model.full_scores(["the", "cat"])``: a sentence is one str.
        """
        validate.score_args(sentence, bos, eos)
        return scoring.full_scores(self, sentence, bos=bos, eos=eos)

    def perplexity(self, sentence: str) -> float:
        """10 ** (-score / tokens) of one sentence with its ``</s>``, tokens = words + 1
        (KenLM's ``Model.perplexity``).

        Good: ``model.perplexity("the cat sat")``.
        Bad: ``model.perplexity("test.txt")``: that scores the word "test.txt"; for a file,
        use ``lm.perplexity(model, "test.txt")``.
        """
        validate.sentence(sentence)
        return scoring.sentence_perplexity(self, sentence)

    # ----- generation (lm.generation)

    def generate(self, prompt: str = "", **options) -> list[generation.Sample]:
        """Continue ``prompt``; ``options`` are ``lm.generation.GenerationOptions``' fields
        (max_tokens, num, greedy, temperature, top_k, top_p, no_unk, beam, length_norm, seed).

        Good: ``model.generate("the", num=3, top_p=0.9, seed=1)`` (three samples, repeatable).
        Bad: ``model.generate("the", greedy=True, temperature=0.5)``: greedy decoding does
        not sample (ValueError).
        """
        validate.sentence(prompt, "prompt")
        return generation.generate(self.net, self.vocab, prompt, **options)


def load(directory: str | os.PathLike, device: str | None = None) -> LanguageModel:
    """Load and validate a model directory written by ``lm train``, its weights on ``device``
    ("cpu" or "cuda"; None: ``lm --device``, else ``$LM_DEVICE``, else "cpu").

        lm.load("model_dir")                 # numpy
        lm.load("model_dir", device="cuda")  # CuPy; DeviceError without CuPy and a GPU

    Raises ``lm.errors.ModelFileError`` with a one-line message naming the file and the
    problem when the directory is missing, incomplete, corrupt or of another format version.
    """
    device = backend.resolve(device)  # before reading: an unusable device fails at once
    net, vocab, config = checkpoint.load_model(directory)
    return LanguageModel(net.to(device), vocab, config, os.fspath(directory))
