"""The cosine time-series experiment: an RNN reads 50 values of cos(x) and predicts the next.

Data (as in the textbook chapter): the series cos(x) for x = 0, 1, ..., 199; a window of 50
consecutive values predicts the value that follows it. Training windows start at 0..99
(targets x = 50..149), validation windows at 100..149 (targets x = 150..199).

Model, in the row-vector convention of ``lm.core`` (T = 50 steps, B windows, D input
features, H hidden units):

    d_t = x_t U + b                   (dense input layer, ``lm.inputs``)
    s_t = f(d_t + s_{t-1} W), s_0 = 0 (the shared recurrence, ``lm.core``)
    o   = s_T V + c                   (linear head on the last state only, ``lm.heads``)
    L   = (y - o)^2 / 2               (averaged over the windows of an update)

Two encodings of a window of values v_1..v_T as inputs x_1..x_T:
    position  D = T: x_t is a T-vector holding v_t at position t and zeros elsewhere
              (the chapter's encoding)
    scalar    D = 1: x_t = (v_t,)

Presets: ``seed`` reproduces the chapter's settings (correctly implemented), ``tuned`` is
a small tanh RNN with the scalar encoding trained by full-batch Adam.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lm import activations, cells, heads, inputs, memory, optim
from lm.checks import is_real, require_choice, require_int
from lm.errors import TrainingError
from lm.model import Network

Array = np.ndarray
Params = dict[str, Array]

N_VALUES = 200
WINDOW = 50
TRAIN_STARTS = range(100)
VALID_STARTS = range(100, 150)
ENCODINGS = ("position", "scalar")
INITS = ("uniform01", "scaled")


# ----------------------------------------------------------------------------------- data


def series(n: int = N_VALUES) -> Array:
    """cos(x) for x = 0..n-1, shape (n,), float64."""
    return np.cos(np.arange(n, dtype=np.float64))


def windows(values: Array, starts: range, length: int = WINDOW) -> tuple[Array, Array]:
    """Windows values[s : s+length] and their targets values[s+length] for each start s.

    Returns X (B, length) and y (B,), B = len(starts).

    >>> X, y = windows(series(), TRAIN_STARTS)   # X: (100, 50), y: (100,)
    >>> windows(series(), range(150, 151))       # bad: the target x = 200 is not in the series
    Traceback (most recent call last):
    IndexError: ...
    """
    starts = np.asarray(starts)
    if len(starts) and starts.max() + length >= len(values):
        raise IndexError(f"window starting at {starts.max()} has no target in the series")
    X = values[starts[:, None] + np.arange(length)]  # (B, length)
    return X, values[starts + length]


def encode(X: Array, encoding: str) -> Array:
    """Windows X (B, T) as the inputs of the dense layer, (T, B, D).

    ``scalar``: D = 1, x_t = (v_t,). ``position``: D = T, x_t holds v_t at position t.
    """
    B, T = X.shape
    if encoding == "scalar":
        return X.T[:, :, None].copy()  # (T, B, 1)
    if encoding == "position":
        Z = np.zeros((T, B, T), dtype=X.dtype)
        steps = np.arange(T)
        Z[steps, :, steps] = X.T  # Z[t, b, t] = X[b, t]
        return Z
    raise ValueError(f"unknown encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}")


# --------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Config:
    """Hyperparameters of one cosine run (``cell``: one of ``lm.cells.NAMES``).

    truncate: BPTT horizon K (None = full); clip: element-wise gradient limit (None = off);
    clip_norm: global-norm limit (None = off); batch: windows per update (1 = one SGD update
    per window, as in the chapter; 100 = all training windows at once); bias: whether b and c
    exist and are trained (the chapter's model has neither; they then stay at 0).
    """

    preset: str
    encoding: str
    hidden: int
    activation: str
    lr: float
    epochs: int
    truncate: int | None
    clip: float | None
    clip_norm: float | None
    init: str
    optimizer: str
    batch: int
    bias: bool
    alpha: float = 0.01
    cell: str = "elman"

    def __post_init__(self):
        """ValueError naming the first field that cannot describe a run (as every config)."""
        for name in ("hidden", "epochs", "batch"):
            require_int(name, getattr(self, name), 1)
        if self.truncate is not None:
            require_int("truncate", self.truncate, 1)
        require_choice("encoding", self.encoding, ENCODINGS)
        require_choice("init", self.init, INITS)
        require_choice("optimizer", self.optimizer, ("sgd", "adam"))
        require_choice("activation", self.activation, activations.NAMES)
        require_choice("cell", self.cell, cells.NAMES)
        for name in ("lr", "alpha", "clip", "clip_norm"):
            value = getattr(self, name)
            if value is not None and not (is_real(value) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


PRESETS = {
    "seed": Config(
        preset="seed",
        encoding="position",
        hidden=100,
        activation="sigmoid",
        lr=1e-4,
        epochs=5,
        truncate=5,
        clip=10.0,
        clip_norm=None,
        init="uniform01",
        optimizer="sgd",
        batch=1,
        bias=False,
    ),
    "tuned": Config(
        preset="tuned",
        encoding="scalar",
        hidden=16,
        activation="tanh",
        lr=1e-2,
        epochs=1000,
        truncate=None,
        clip=None,
        clip_norm=None,
        init="scaled",
        optimizer="adam",
        batch=100,
        bias=True,
    ),
}


def make_config(preset: str = "tuned", **overrides) -> Config:
    """The preset's Config with the given fields replaced (None is a value: clip=None turns
    clipping off, truncate=None means full BPTT).

    >>> make_config("seed", epochs=20).epochs
    20
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[preset], **overrides)


# ---------------------------------------------------------------------------------- model


def network(config: Config, n_inputs: int, params: Params | None = None) -> Network:
    """The task's Network: dense input (n_inputs features) -> cell -> linear head on s_T."""
    cell = cells.make(config.cell, config.activation, config.alpha)
    return Network(inputs.Dense(n_inputs), cell, heads.Linear(1), config.hidden, params)


def training_bytes(config: Config) -> int:
    """Estimated peak bytes of ``train(config)``: ``lm.memory.training_bytes`` of the task's
    network in float64, with no dropout, resets or best-weights copy (the data, under 4 MB,
    left out)."""
    n_inputs = encode(np.zeros((1, WINDOW)), config.encoding).shape[2]
    B = min(config.batch, len(TRAIN_STARTS))
    return memory.training_bytes(
        network(config, n_inputs), B, WINDOW, config.optimizer,
        dropout=0, independent=False, keeps_best=False, itemsize=8,
    )  # fmt: skip


def init_params(config: Config, n_inputs: int, rng: np.random.Generator) -> Params:
    """The parameters of ``network(config, n_inputs)`` in float64.

    ``scaled``: each part's own initialisation (``lm.inputs``, ``lm.cells``, ``lm.heads``),
    except U ~ N(0, 0.5^2) (inputs in [-1, 1] then drive tanh mostly in its near-linear
    range). ``uniform01``: every weight matrix ~ uniform(0, 1) (the chapter's init). Biases
    start at 0, but for the cell's own (the LSTM's forget gate, with ``scaled``).
    """
    net = network(config, n_inputs)
    shapes = net.param_shapes()
    if config.init == "uniform01":
        params = {k: rng.uniform(0, 1, shapes[k]) for k in ("U", "W", "V")}
    elif config.init == "scaled":
        params = {"U": rng.normal(0, 0.5, shapes["U"])}
        params.update(net.cell.init(config.hidden, rng))
        params.update(net.head.init(config.hidden, rng))
        params["b"] = net.cell.drive_bias(config.hidden)  # e.g. the LSTM's forget gate
    else:
        raise ValueError(f"unknown init {config.init!r}; choose one of {', '.join(INITS)}")
    for k, shape in shapes.items():  # biases (and any other vector) start at zero
        params.setdefault(k, np.zeros(shape))
    return {k: params[k].astype(np.float64) for k in shapes}


def mean_loss(net: Network, X: Array, y: Array) -> float:
    """Mean (y - o)^2 / 2 over the windows; X (T, B, D), y (B,)."""
    err = net.predict(X)[:, 0] - y
    return 0.5 * float(np.mean(err * err))


# ------------------------------------------------------------------------------- training


@dataclass
class Result:
    """What ``train`` returns. Losses are per epoch; predictions/targets on validation."""

    config: Config
    params: Params
    train_loss: list[float]
    val_loss: list[float]
    predictions: Array  # (50,)
    targets: Array  # (50,)
    rmse: float
    seconds: float

    def summary(self) -> dict:
        """The JSON-ready summary: final losses, rmse, time and the settings."""
        return {
            "preset": self.config.preset,
            "epochs": self.config.epochs,
            "train_loss": self.train_loss[-1],
            "val_loss": self.val_loss[-1],
            "rmse": self.rmse,
            "seconds": round(self.seconds, 3),
            "config": dataclasses.asdict(self.config),
        }


def _epoch(net: Network, X: Array, y: Array, config: Config, optimizer, epoch: int) -> float:
    """One pass over the training windows in order, config.batch windows per update.

    Returns the mean training loss over the pass (each batch's loss before its update).
    """
    B = X.shape[1]
    total = 0.0
    for lo in range(0, B, config.batch):
        hi = min(lo + config.batch, B)
        Xb = X[:, lo:hi]
        loss_sum, grads, _ = net.loss_and_grads(
            Xb, y[lo:hi, None], net.zero_state(hi - lo), config.truncate
        )
        loss = loss_sum / (hi - lo)
        if not config.bias:  # the chapter's model has no biases: they stay at 0
            grads = {k: g for k, g in grads.items() if k not in ("b", "c")}
        clip = (config.clip, config.clip_norm)
        if not optim.guarded_update(net.params, grads, optimizer, loss, *clip):
            which = f"window {lo}" if hi - lo == 1 else f"windows {lo}..{hi - 1}"
            raise TrainingError(
                f"the training loss became {loss} in epoch {epoch} ({which}); "
                "try a smaller learning rate (--lr) or gradient clipping (--clip)"
            )
        total += loss * (hi - lo)
    return total / B


def train(config: Config, rng: np.random.Generator, progress: bool = True) -> Result:
    """Train on the 100 training windows; evaluate on the 50 validation windows each epoch.

    The training loss of an epoch is the mean over its updates (before each update); the
    validation loss is measured after the epoch. rmse = sqrt(mean_squared_error) of the
    final predictions on the validation windows. Raises TrainingError for an activation
    without a derivative and for a non-finite loss.
    """
    from sklearn.metrics import mean_squared_error  # slow to import: only when training

    start = time.perf_counter()
    values = series()
    X_raw, y = windows(values, TRAIN_STARTS)
    Xv_raw, yv = windows(values, VALID_STARTS)
    X, Xv = encode(X_raw, config.encoding), encode(Xv_raw, config.encoding)
    net = network(config, X.shape[2])  # the cell refuses an activation with no derivative
    net.params = init_params(config, X.shape[2], rng)
    optimizer = optim.make(config.optimizer, config.lr)
    train_loss, val_loss = [], []
    bar = tqdm(total=config.epochs, desc="cosine", unit="epoch", disable=not progress)
    # Overflow is expected when training diverges: it is reported as a TrainingError below.
    with bar, np.errstate(over="ignore", invalid="ignore"):
        for epoch in range(1, config.epochs + 1):
            train_loss.append(_epoch(net, X, y, config, optimizer, epoch))
            val_loss.append(mean_loss(net, Xv, yv))
            if not np.isfinite(val_loss[-1]):
                raise TrainingError(
                    f"the validation loss became {val_loss[-1]} after epoch {epoch}; "
                    "try a smaller learning rate (--lr) or gradient clipping (--clip)"
                )
            bar.set_postfix(train=f"{train_loss[-1]:.3g}", val=f"{val_loss[-1]:.3g}", refresh=False)
            bar.update()
    predictions = net.predict(Xv)[:, 0]
    rmse = float(np.sqrt(mean_squared_error(yv, predictions)))
    seconds = time.perf_counter() - start
    return Result(config, net.params, train_loss, val_loss, predictions, yv, rmse, seconds)


def train_cosine(
    preset: str = "tuned", seed: int = 0, progress: bool = False, **overrides
) -> Result:
    """Train one preset (with optional Config overrides, e.g. epochs=10) from ``seed``.

    >>> result = train_cosine("tuned", seed=3)
    >>> result.rmse  # doctest: +SKIP
    0.00052...
    """
    config = make_config(preset, **overrides)
    return train(config, np.random.default_rng(seed), progress=progress)


def save_figures(
    result: Result,
    plot: str | Path | None = None,
    loss_plot: str | Path | None = None,
    data_plot: str | Path | None = None,
) -> list[Path]:
    """Save the requested PNGs: predictions vs actual on the validation windows, the loss
    curves, and the first 50 values of the series. Returns the paths written."""
    from lm import plots  # matplotlib is imported only when a figure is asked for

    written = []
    if plot is not None:
        x = np.asarray(VALID_STARTS) + WINDOW
        written.append(plots.cosine_predictions(x, result.targets, result.predictions, plot))
    if loss_plot is not None:
        written.append(plots.loss_curves(result.train_loss, result.val_loss, loss_plot))
    if data_plot is not None:
        written.append(plots.data_series(series()[:WINDOW], data_plot))
    return written
