"""``lm cosine``: train an RNN to predict the next value of cos(x) (the textbook experiment)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from lm import activations, cells, cosine, files, memory
from lm.cli.common import SEED, FiniteFloat, echo_lines, handle_errors

_PATH = click.Path(dir_okay=False, writable=True)
_MAX_ROWS = 20  # epochs printed in text mode: all of them up to this many, else evenly spaced


@click.command("cosine", short_help="The textbook cosine time-series experiment (RMSE).")
@click.option(
    "--preset",
    type=click.Choice(list(cosine.PRESETS)),
    default="tuned",
    show_default=True,
    help="seed: the chapter's settings; tuned: a tanh RNN with Adam.",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Random seed (weights).")
@click.option("--epochs", type=click.IntRange(min=1), help="Override the preset's epochs.")
@click.option("--lr", type=FiniteFloat(min=0, min_open=True), help="Learning rate.")
@click.option("--hidden", type=click.IntRange(min=1), help="Hidden units H.")
@click.option(
    "--cell",
    type=click.Choice(cells.NAMES),
    help="Recurrent cell [default: elman]; gru and lstm have fixed nonlinearities.",
)
@click.option(
    "--activation", type=click.Choice(activations.NAMES), help="The elman cell's activation f."
)
@click.option("--alpha", type=FiniteFloat(min=0), help="Leaky ReLU slope (default 0.01).")
@click.option("--truncate", type=click.IntRange(min=1), help="BPTT horizon K (>= 50 is full BPTT).")
@click.option(
    "--clip",
    type=FiniteFloat(min=0),
    help="Clip gradient elements to [-CLIP, CLIP]; 0 turns clipping off.",
)
@click.option(
    "--clip-norm",
    type=FiniteFloat(min=0),
    help="Clip the global gradient norm to CLIP_NORM; 0 turns it off.",
)
@click.option("--plot", type=_PATH, help="Save predictions vs actual (validation) as PNG.")
@click.option("--loss-plot", type=_PATH, help="Save the loss curves as PNG.")
@click.option("--data-plot", type=_PATH, help="Save the first 50 values of the series as PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary line to stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@handle_errors
def command(
    preset,
    seed,
    epochs,
    lr,
    hidden,
    cell,
    activation,
    alpha,
    truncate,
    clip,
    clip_norm,
    plot,
    loss_plot,
    data_plot,
    as_json,
    quiet,
):
    """Learn to predict cos(x) from the 50 values before it.

    Data: cos(x), x = 0..199; 100 training windows (starts 0..99), 50 validation windows
    (starts 100..149). Prints the training and validation loss of every epoch (of 20 evenly
    spaced epochs when there are more; the progress bar on stderr shows them all) and the
    validation RMSE. With --json, stdout is one JSON object instead.
    """
    if cell not in (None, "elman") and activation is not None:
        raise click.BadParameter(
            f"the {cell} cell has fixed nonlinearities; --activation applies to --cell elman only",
            param_hint="--activation",
        )
    given = {
        "cell": cell,
        "epochs": epochs,
        "lr": lr,
        "hidden": hidden,
        "activation": activation,
        "alpha": alpha,
        "truncate": truncate,
        "clip": clip,
        "clip_norm": clip_norm,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    for key in ("clip", "clip_norm"):  # 0 turns clipping off
        if overrides.get(key) == 0:
            overrides[key] = None
    config = cosine.make_config(preset, **overrides)
    memory.require(cosine.training_bytes(config), f"lm cosine with --hidden {config.hidden}")
    for path in (plot, loss_plot, data_plot):  # fail on a bad path now, not after training
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    progress = files.show_progress(not quiet)
    result = cosine.train(config, np.random.default_rng(seed), progress=progress)
    cosine.save_figures(result, plot=plot, loss_plot=loss_plot, data_plot=data_plot)
    summary = {**result.summary(), "seed": seed}
    if as_json:
        echo_lines(json.dumps(summary))
        return
    rmse = f"validation RMSE {result.rmse:.6f} ({preset}, {result.seconds:.1f} s)"
    echo_lines("\n".join([*_loss_rows(result), rmse]))


def _loss_rows(result: cosine.Result) -> list[str]:
    """Epoch, training and validation loss: every epoch, or _MAX_ROWS evenly spaced ones."""
    n = len(result.train_loss)
    shown = sorted({round(i) for i in np.linspace(1, n, min(n, _MAX_ROWS))})
    rows = [f"{'epoch':>6}  {'train_loss':>12}  {'val_loss':>12}"]
    for epoch in shown:
        rows.append(
            f"{epoch:>6}  {result.train_loss[epoch - 1]:>12.6g}  "
            f"{result.val_loss[epoch - 1]:>12.6g}"
        )
    return rows
