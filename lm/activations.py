"""Activation functions f for the recurrence s_t = f(a_t), each with its derivative.

Every derivative is written as ``derivative(a, s)`` where ``a`` is the pre-activation and
``s = f(a)`` its output, so that tanh and sigmoid reuse the forward result
(tanh' = 1 - s**2, sigmoid' = s (1 - s)) and ReLU-like functions look at the sign of ``a``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from lm import backend
from lm.backend import Array
from lm.errors import TrainingError


def step(a: Array) -> Array:
    """Heaviside step: 1 where a > 0, else 0."""
    return (a > 0).astype(a.dtype)


def sigmoid(a: Array) -> Array:
    """Logistic function 1 / (1 + exp(-a)), computed as (1 + tanh(a/2)) / 2: the same function,
    with no exp to overflow (finite for inputs of +-1000) and one vectorised pass."""
    xp = backend.xp_of(a)
    return 0.5 * (1.0 + xp.tanh(0.5 * xp.asarray(a)))


def tanh(a: Array) -> Array:
    return backend.xp_of(a).tanh(a)


def relu(a: Array) -> Array:
    return backend.xp_of(a).maximum(a, 0)


def leaky_relu(a: Array, alpha: float = 0.01) -> Array:
    return backend.xp_of(a).where(a > 0, a, alpha * a)


def _leaky_relu_slope(a: Array, alpha: float) -> Array:
    return backend.xp_of(a).where(a > 0, 1.0, alpha).astype(a.dtype)


@dataclass(frozen=True)
class Activation:
    """One activation: its forward function, derivative(a, s) and whether gradients exist."""

    name: str
    forward: Callable[[Array], Array]
    derivative: Callable[[Array, Array], Array] | None
    alpha: float = 0.0

    @property
    def trainable(self) -> bool:
        return self.derivative is not None

    def __call__(self, a: Array) -> Array:
        return self.forward(a)


def get(name: str, alpha: float = 0.01) -> Activation:
    """The activation called ``name`` (one of ``NAMES``); ``alpha`` is leaky ReLU's slope."""
    if name == "step":
        return Activation("step", step, None)
    if name == "sigmoid":
        return Activation("sigmoid", sigmoid, lambda a, s: s * (1 - s))
    if name == "tanh":
        return Activation("tanh", tanh, lambda a, s: 1 - s * s)
    if name == "relu":
        return Activation("relu", relu, lambda a, s: (a > 0).astype(a.dtype))
    if name == "leaky_relu":
        return Activation(
            "leaky_relu",
            lambda a: leaky_relu(a, alpha),
            lambda a, s: _leaky_relu_slope(a, alpha),
            alpha,
        )
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(NAMES)}")


def require_trainable(act: Activation) -> None:
    """Raise a TrainingError explaining why an activation without a derivative cannot be
    trained (the one place that says so: every recurrent cell is built through it)."""
    if not act.trainable:
        raise TrainingError(
            f"activation {act.name!r} cannot be trained: its derivative is 0 almost everywhere "
            "(and undefined at 0), so gradient descent gets no signal; use it only in forward "
            "passes and plots, and train with sigmoid, tanh, relu or leaky_relu"
        )


NAMES = ("step", "sigmoid", "tanh", "relu", "leaky_relu")
TRAINABLE = tuple(n for n in NAMES if get(n).trainable)  # what a cell can be built with
