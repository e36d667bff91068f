"""Small models for tests: built from a tiny corpus with random weights, saved to a directory;
and a trainer made to receive Ctrl-C after a number of steps."""

from __future__ import annotations

import signal

import numpy as np

from lm import checkpoint
from lm.api import LanguageModel
from lm.model import ModelConfig, Network
from lm.tokenizer import EOS, Vocab

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
    output="full",
    n_classes=None,
    tie=False,
    layers=1,
) -> LanguageModel:
    """A LanguageModel with random weights (scaled up so distributions are far from uniform).
    ``output="class"``: the class head, its ``n_classes`` boundaries cut from the word counts
    of ``lines``. ``tie``: an embedding input of width ``hidden`` whose transpose is V.
    ``layers``: that many stacked cells."""
    if tie:
        input, embed_dim = "embedding", hidden
    lines = list(lines)
    vocab = Vocab.build(lines)
    counts = None
    if output == "class":  # the predicted tokens: every word and every </s>
        ids = [vocab.encode(line)[0] for line in lines] + [[EOS] * len(lines)]
        counts = np.bincount(np.concatenate(ids).astype(np.int64), minlength=vocab.size)
    config = ModelConfig.from_counts(
        vocab.size,
        counts,
        n_classes,
        hidden=hidden,
        input=input,
        embed_dim=embed_dim if input == "embedding" else 0,
        activation=activation,
        cell=cell,
        output=output,
        tie=tie,
        layers=layers,
    )
    net = Network.create(config, np.random.default_rng(seed), dtype=dtype)
    for k in ("V", "c", "U", "Vc", "cc") + (("E",) if tie else ()):
        if k in net.params:
            net.params[k] *= net.params[k].dtype.type(scale)
    return LanguageModel(net, vocab, {})


def save_model_dir(directory, model: LanguageModel) -> str:
    checkpoint.save_model(directory, model.net, model.vocab)
    return str(directory)


def interrupt_after(trainer, n_steps: int) -> None:
    """Make ``trainer`` receive SIGINT (as from Ctrl-C) after ``n_steps`` optimisation steps."""
    step, count = trainer._step, {"n": 0}

    def counting_step(*args):
        step(*args)
        count["n"] += 1
        if count["n"] == n_steps:
            trainer._on_signal(signal.SIGINT, None)

    trainer._step = counting_step
