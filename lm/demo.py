"""``lm demo``: the whole toolkit on data it makes itself, against a known floor.

1. Sample the synthetic corpus (``corpora.synth``), whose exact (oracle) perplexity is known.
2. Train a model on it (sentences are independent in the source, so training resets the state
   at every sentence, ``independent=True``, and matches per-sentence scoring exactly).
3. Report validation and test perplexity next to the oracle and the unigram and bigram
   baselines, all counted the same way (every word and every ``</s>``).
4. Score a few test sentences against the same words shuffled; generate a few sentences.
5. Run the cosine experiment (tuned preset) and draw the activation functions.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import lm
from corpora import ngram, synth
from lm import cosine, plots
from lm.data import read_lines
from lm.training import TrainConfig, Trainer, VocabConfig

MODEL = {"hidden": 200, "input": "onehot", "embed_dim": 0, "activation": "tanh"}


@dataclass(frozen=True)
class DemoConfig:
    out: str = "demo"
    minutes: float = 2.2  # training time budget; the whole demo takes about a minute more
    tokens: int = synth.DEFAULT_TOKENS
    seed: int = 0
    progress: bool = True


def training_config(minutes: float, seed: int) -> TrainConfig:
    """What the demo trains with. A weight average (``ema``) gets close to the best model
    within a couple of minutes; the README's longer run raises dropout and the time."""
    return TrainConfig(
        batch_size=32,
        bptt=35,
        optimizer="adam",
        lr=2e-3,
        dropout=0.1,
        ema=0.999,
        schedule="plateau",
        min_improvement=1.001,
        epochs=100,
        independent=True,
        seed=seed,
        max_minutes=minutes,
        eval_batch_size=64,
    )


def run(config: DemoConfig, say=print) -> dict:
    """Run the demo, printing as it goes; returns the summary (``--json``)."""
    t0 = time.perf_counter()
    out = Path(config.out)
    corpus_dir, model_dir = out / "corpus", out / "model"

    say(f"1. synthetic corpus ({config.tokens:,} words, seed {config.seed}) -> {corpus_dir}")
    info = synth.build(
        corpus_dir, tokens=config.tokens, seed=config.seed, force=True, progress=config.progress
    )
    split = {name: str(corpus_dir / f"{name}.txt") for name in ("train", "valid", "test")}
    lines = {name: list(read_lines(path)) for name, path in split.items()}
    unigram = ngram.unigram_perplexity(lines["train"], lines["test"])
    bigram = ngram.bigram_perplexity(lines["train"], lines["test"])

    say(
        f"2. training a {MODEL['hidden']}-unit tanh RNN for up to {config.minutes:g} min "
        f"-> {model_dir}"
    )
    trainer = Trainer.start(
        str(model_dir),
        split["train"],
        split["valid"],
        MODEL,
        training_config(config.minutes, config.seed),
        VocabConfig(),
        show_progress=config.progress,
        force=True,  # the demo rewrites its own directory
    )
    trainer.run(log=lambda m: say("   " + m))
    model = lm.load(model_dir)
    valid = lm.perplexity(model, split["valid"], progress=False)
    test = lm.perplexity(model, split["test"], progress=False)
    oracle = {name: info["splits"][name]["ppl"] for name in ("valid", "test")}

    say("\n3. perplexity (every word and every </s> counted; lower is better)")
    rows = [
        ("oracle (the source itself)", oracle["valid"], oracle["test"]),
        ("lm RNN", valid.ppl, test.ppl),
        ("Kneser-Ney bigram", None, bigram),
        ("unigram", None, unigram),
    ]
    say(f"   {'model':28s} {'valid':>8s} {'test':>8s} {'test / oracle':>14s}")
    for name, v, t in rows:
        v_text = "" if v is None else f"{v:8.2f}"
        say(f"   {name:28s} {v_text:>8s} {t:8.2f} {t / oracle['test']:14.3f}")

    say("\n4. test sentences against the same words shuffled (log10 probability)")
    shuffled_lower = _shuffle_check(model, lines["test"][:5], config.seed, say)

    say("\n5. generated sentences")
    greedy = model.generate(greedy=True, max_tokens=30)[0]
    say(f"   greedy:  {greedy.text}")
    for s in model.generate(num=3, seed=config.seed, max_tokens=30):
        say(f"   sampled: {s.text}")

    say("\n6. cosine experiment (tuned preset)")
    result = cosine.train_cosine("tuned", seed=config.seed)
    say(
        f"   validation RMSE {result.rmse:.5f} in {result.seconds:.1f}s "
        "(the textbook chapter reported 0.569)"
    )

    written = [model_dir / "training.png"]
    written += cosine.save_figures(
        result, plot=out / "cosine_predictions.png", loss_plot=out / "cosine_loss.png"
    )
    written += plots.activation_plots(out / "activations")
    seconds = time.perf_counter() - t0
    say("\nplots:")
    for path in written:
        say(f"   {os.fspath(path)}")
    say(f"done in {seconds:.0f}s")
    return {
        "valid_ppl": valid.ppl,
        "test_ppl": test.ppl,
        "oracle_ppl": oracle["test"],
        "oracle_valid_ppl": oracle["valid"],
        "unigram_ppl": unigram,
        "bigram_ppl": bigram,
        "test_over_oracle": test.ppl / oracle["test"],
        "shuffled_scored_lower": shuffled_lower,
        "cosine_rmse": result.rmse,
        "plots": [os.fspath(p) for p in written],
        "model": os.fspath(model_dir),
        "seconds": round(seconds, 1),
    }


def _shuffle_check(model, sentences: list[str], seed: int, say) -> bool:
    """Print each sentence's score next to its shuffled words' score; True when every
    shuffled version scored lower."""
    rng = np.random.default_rng(seed)
    all_lower = True
    for s in sentences:
        words = s.split()
        shuffled = " ".join(rng.permutation(words)) if len(words) > 1 else s
        a, b = model.score(s), model.score(shuffled)
        all_lower &= b < a or shuffled == s
        say(f"   {a:8.2f}  {s}")
        say(f"   {b:8.2f}  {shuffled}   (shuffled)")
    return bool(all_lower)
