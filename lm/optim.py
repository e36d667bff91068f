"""Optimisers and gradient clipping over parameter dicts {name: array}.

Gradients use the same keys as the parameters (``U``, ``W``, ``b``, ``V``, ``c``, ``E``).
Clipping is applied to the parameter gradients after the backward pass and before the
update, never inside gradient code (so gradient checks see the true gradient).
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray
Params = dict[str, Array]


def clip_values(grads: Params, limit: float) -> None:
    """Element-wise clipping of every gradient to [-limit, limit], in place."""
    for g in grads.values():
        np.clip(g, -limit, limit, out=g)


def global_norm(grads: Params) -> float:
    """sqrt(sum of squares of every gradient element), accumulated in float64."""
    return float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))


def clip_global_norm(grads: Params, max_norm: float) -> float:
    """Scale all gradients by min(1, max_norm / norm), in place; returns the norm before."""
    norm = global_norm(grads)
    if norm > max_norm:
        factor = max_norm / (norm + 1e-12)
        for g in grads.values():
            g *= g.dtype.type(factor)
    return norm


class SGD:
    """Plain gradient descent p <- p - lr * (g + l2 * p)."""

    def __init__(self, lr: float, l2: float = 0.0):
        self.lr = lr
        self.l2 = l2

    def update(self, params: Params, grads: Params) -> None:
        for k, g in grads.items():
            p = params[k]
            if self.l2:
                g = g + self.l2 * p
            p -= p.dtype.type(self.lr) * g

    def state_dict(self) -> dict[str, Array]:
        return {}

    def load_state_dict(self, state: dict[str, Array]) -> None:
        pass


class Adam:
    """Adam (Kingma & Ba) with bias correction; L2 is added to the gradient (as torch.optim.Adam)."""

    def __init__(
        self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
        l2: float = 0.0,
    ):
        self.lr, self.beta1, self.beta2, self.eps, self.l2 = lr, beta1, beta2, eps, l2
        self.t = 0
        self.m: Params = {}
        self.v: Params = {}

    def update(self, params: Params, grads: Params) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step = self.lr * np.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        for k, g in grads.items():
            p = params[k]
            if self.l2:
                g = g + self.l2 * p
            m = self.m.setdefault(k, np.zeros_like(p))
            v = self.v.setdefault(k, np.zeros_like(p))
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            p -= p.dtype.type(step) * m / (np.sqrt(v) + self.eps)

    def state_dict(self) -> dict[str, Array]:
        """Arrays to checkpoint: ``m.<name>``, ``v.<name>`` and the step count ``t``."""
        state = {"t": np.array(self.t, dtype=np.int64)}
        state.update({f"m.{k}": a for k, a in self.m.items()})
        state.update({f"v.{k}": a for k, a in self.v.items()})
        return state

    def load_state_dict(self, state: dict[str, Array]) -> None:
        self.t = int(state["t"])
        self.m = {k[2:]: np.array(a) for k, a in state.items() if k.startswith("m.")}
        self.v = {k[2:]: np.array(a) for k, a in state.items() if k.startswith("v.")}


def make(name: str, lr: float, l2: float = 0.0):
    """The optimiser called ``name`` ('sgd' or 'adam')."""
    if name == "sgd":
        return SGD(lr, l2)
    if name == "adam":
        return Adam(lr, l2=l2)
    raise ValueError(f"unknown optimizer {name!r}")
