"""lm: word-level recurrent neural network language models in numpy.

import lm
model = lm.load("model_dir")
model.score("the cat sat")            # log10 P(the cat sat </s> | <s>)
lm.perplexity(model, "test.txt")       # SRILM-style corpus perplexity
mixed = lm.interpolate(model, "5gram.arpa", 0.3)   # (1 - 0.3) p_rnn + 0.3 p_ngram per token
"""

from lm import scoring, validate
from lm.api import LanguageModel, load
from lm.errors import DataError, LMError, ModelFileError, TrainingError
from lm.mixing import InterpolatedModel, interpolate

__version__ = "0.1.0"


def perplexity(model: LanguageModel, lines_or_path, **options):
    """Corpus perplexity of ``model`` on an iterable of sentences or a file path
    (see ``lm.scoring.corpus_perplexity`` for what is counted).

    Good: ``lm.perplexity(model, "test.txt")``, ``lm.perplexity(model, ["the cat", "a dog"])``.
    Bad: ``lm.perplexity(model, b"test.txt")`` or a list holding bytes (TypeError).
    """
    return scoring.corpus_perplexity(model, validate.lines_or_path(lines_or_path), **options)


__all__ = [
    "DataError",
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
