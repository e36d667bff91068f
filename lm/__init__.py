"""lm: word-level recurrent neural network language models in numpy."""

__version__ = "0.1.0"
