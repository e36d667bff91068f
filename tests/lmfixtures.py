"""Small models for tests: built from a tiny corpus with random weights, saved to a directory."""

from __future__ import annotations

import numpy as np

from lm import checkpoint
from lm.api import LanguageModel
from lm.model import ModelConfig, Network
from lm.tokenizer import Vocab

TINY_CORPUS = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat saw a dog",
    "the dog saw the cat on the mat",
]


def make_model(
    lines=TINY_CORPUS,
    hidden=8,
    input="onehot",
    embed_dim=5,
    activation="tanh",
    seed=0,
    scale=3.0,
    dtype=np.float32,
    cell="elman",
) -> LanguageModel:
    """A LanguageModel with random weights (scaled up so distributions are far from uniform)."""
    vocab = Vocab.build(lines)
    config = ModelConfig(
        n_vocab=vocab.size,
        hidden=hidden,
        input=input,
        embed_dim=embed_dim if input == "embedding" else 0,
        activation=activation,
        cell=cell,
    )
    net = Network.create(config, np.random.default_rng(seed), dtype=dtype)
    for k in ("V", "c", "U"):
        net.params[k] *= net.params[k].dtype.type(scale)
    return LanguageModel(net, vocab, {})


def save_model_dir(directory, model: LanguageModel) -> str:
    checkpoint.save_model(directory, model.net, model.vocab)
    return str(directory)
