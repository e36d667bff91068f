"""Figures as ``matplotlib.figure.Figure`` objects (never pyplot's global state), saved as PNG.

Each ``*_figure`` function builds and returns a Figure; the functions without the suffix
build one and save it to ``path`` (parent directories are created) and return the Path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from lm import activations

Array = np.ndarray

PLOT_ALPHA = 0.3  # leaky ReLU's slope in the activation plots: 0.01 would look like ReLU
TITLES = {
    "step": "Step function",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "relu": "ReLU",
    "leaky_relu": "Leaky ReLU",
}


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG to ``path`` (atomically: a temporary file renamed over it),
    creating parent directories; returns the Path."""
    from lm.checkpoint import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)
    return path


def activation_figure(name: str, alpha: float = PLOT_ALPHA) -> Figure:
    """One activation f on a in [-5, 5] (solid) with its derivative (dashed), if it has one."""
    act = activations.get(name, alpha)
    a = np.linspace(-5, 5, 1001)
    s = act(a)
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    ax.plot(a, s, label="f(a)")
    if act.trainable:
        ax.plot(a, act.derivative(a, s), "--", label="f'(a)")
    ax.axhline(0, color="0.7", lw=0.8)
    ax.axvline(0, color="0.7", lw=0.8)
    ax.set_xlabel("a")
    title = TITLES[name] + (f" (alpha = {alpha})" if name == "leaky_relu" else "")
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def activation_plots(out_dir: str | Path) -> list[Path]:
    """One PNG per activation in ``out_dir`` (``<name>.png``, in the order of
    ``activations.NAMES``); returns the paths."""
    out_dir = Path(out_dir)
    return [save(activation_figure(name), out_dir / f"{name}.png") for name in activations.NAMES]


def cosine_predictions_figure(x: Array, actual: Array, predicted: Array) -> Figure:
    """Predicted vs actual values at the positions x, each of shape (N,)."""
    fig = Figure(figsize=(7, 3.5))
    ax = fig.add_subplot()
    ax.plot(x, actual, "o-", ms=3, label="actual")
    ax.plot(x, predicted, "x--", ms=4, label="predicted")
    ax.set_xlabel("x")
    ax.set_ylabel("cos(x)")
    ax.set_title("Validation windows: prediction of the next value")
    lo = min(np.min(actual), np.min(predicted))
    hi = max(np.max(actual), np.max(predicted))
    ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.35 * (hi - lo))  # room for the legend on top
    ax.legend(loc="upper right", ncol=2)
    fig.tight_layout()
    return fig


def cosine_predictions(x: Array, actual: Array, predicted: Array, path: str | Path) -> Path:
    return save(cosine_predictions_figure(x, actual, predicted), path)


def loss_curves_figure(train_loss: Sequence[float], val_loss: Sequence[float]) -> Figure:
    """Training and validation loss per epoch (epochs 1..n), log y axis."""
    epochs = np.arange(1, len(train_loss) + 1)
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    ax.plot(epochs, train_loss, label="training")
    ax.plot(epochs, val_loss, label="validation")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (y - o)^2 / 2")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def loss_curves(train_loss: Sequence[float], val_loss: Sequence[float], path: str | Path) -> Path:
    return save(loss_curves_figure(train_loss, val_loss), path)


def data_series_figure(values: Array) -> Figure:
    """The values v_0..v_{n-1} of a series against their index."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    ax.plot(np.arange(len(values)), values, "o-", ms=3)
    ax.set_xlabel("x")
    ax.set_ylabel("cos(x)")
    ax.set_title(f"The first {len(values)} values of the series")
    fig.tight_layout()
    return fig


def data_series(values: Array, path: str | Path) -> Path:
    return save(data_series_figure(values), path)


def perplexity_curve_figure(
    epochs: Sequence[float],
    train_ppl: Sequence[float],
    valid_ppl: Sequence[float | None],
) -> Figure:
    """Training and validation perplexity against epoch, log y axis.

    A None in valid_ppl (an epoch without validation) leaves a gap; all None: no curve.
    """
    valid = np.array([np.nan if v is None else v for v in valid_ppl], dtype=float)
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    ax.plot(epochs, np.asarray(train_ppl, dtype=float), "o-", ms=3, label="training")
    if not np.all(np.isnan(valid)):
        ax.plot(epochs, valid, "s-", ms=3, label="validation")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # 26, 28, 30 rather than 2.6x10^1
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_title("Perplexity per epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def perplexity_curve(
    epochs: Sequence[float],
    train_ppl: Sequence[float],
    valid_ppl: Sequence[float | None],
    path: str | Path,
) -> Path:
    """Save the perplexity curves (see ``perplexity_curve_figure``) to ``path``."""
    return save(perplexity_curve_figure(epochs, train_ppl, valid_ppl), path)
