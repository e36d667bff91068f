"""lm: word-level recurrent neural network language models in numpy.

import lm
model = lm.load("model_dir")
model.score("the cat sat")            # log10 P(the cat sat </s> | <s>)
lm.perplexity(model, "test.txt")       # corpus perplexity (</s> and OOVs counted)
mixed = lm.interpolate(model, "5gram.arpa", 0.3)   # (1 - 0.3) p_rnn + 0.3 p_ngram per token
"""

import os

from lm import scoring, validate
from lm.api import LanguageModel, load
from lm.errors import ClusterError, DataError, LMError, ModelFileError, TrainingError
from lm.mixing import InterpolatedModel, interpolate

__version__ = "0.1.0"


def perplexity(model_or_path, lines_or_path, client=None, **options):
    """Corpus perplexity of a model (a LanguageModel, or a model directory to load) on an
    iterable of sentences or a file path (see ``lm.scoring.corpus_perplexity`` for what is
    counted and for the options).

    ``client``: a ``distributed.Client`` (the ``cluster`` extra) to score on its workers, with
    the same result, bit for bit, as one process with one BLAS thread (see ``lm.cluster``;
    every worker loads the model from its directory).

    Good: ``lm.perplexity("model_dir", "test.txt")``, ``lm.perplexity(model, ["the cat", "a
    dog"])``, ``lm.perplexity(model, "test.txt", client=distributed.Client("tcp://host:8786"))``.
    Bad: ``lm.perplexity(model, b"test.txt")`` or a list holding bytes (TypeError);
    ``client="tcp://host:8786"``: a Client, not an address (TypeError).
    """
    lines_or_path = validate.lines_or_path(lines_or_path)
    if client is not None:
        from lm import cluster

        return cluster.perplexity(client, model_or_path, lines_or_path, **options)
    model = load(model_or_path) if isinstance(model_or_path, (str, os.PathLike)) else model_or_path
    return scoring.corpus_perplexity(model, lines_or_path, **options)


__all__ = [
    "DataError",
    "ClusterError",
    "InterpolatedModel",
    "LMError",
    "LanguageModel",
    "ModelFileError",
    "TrainingError",
    "__version__",
    "interpolate",
    "load",
    "perplexity",
]
