"""Corpora for the ``lm`` toolkit, made on the machine with no download.

- ``corpora.synth``: an English-like corpus sampled from a known hidden Markov source, with its
  exact (oracle) perplexity.
- ``corpora.text``: real text normalised and split: any raw file, or the Python standard
  library's docstrings.
- ``corpora.ngram``: unigram and Kneser-Ney bigram baselines under the same perplexity
  convention.
"""
