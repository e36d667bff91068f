"""Recurrent cells: what one step of the recurrence computes, and its vector-Jacobian product.

Row-vector convention (a batch of states is a matrix). A cell of G gates reads the input
drive d_t = x_t U + b of width G*H, computed by the input layer (``lm.inputs``), and its
incoming state s_{t-1}; ``lm.core`` runs the loop over the T steps, the reset masks and the
full or truncated backward pass, and knows nothing of any particular cell.

Shapes: T steps, B streams, H hidden units, G gates, n_s the state width (H, or 2H for an
LSTM's [h | c]).
    D   (T, B, G*H)   input drive
    S   (T+1, B, n_s) states, S[0] the state carried in
    R   (T, B, G*H)   the recurrent products s_{t-1} W (+ a recurrent bias): what dW sees

The contract (see ``Cell``): parameter shapes and initialisation; ``new_cache`` and ``step``
for the forward loop (``step`` records what the backward pass needs at index t of the cache);
``hidden`` (the part of the state the head reads); ``prepare`` (work done once per backward
pass, vectorised over all steps); ``vjp`` (one step back, vectorised over a range of steps);
``weight_grads`` (one product over all T*B positions).

Elman: s_t = f(a_t), a_t = d_t + s_{t-1} W, W (H, H); f is one of ``lm.activations``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from lm import activations

Array = np.ndarray


class Cell(Protocol):
    """What ``lm.core`` and ``lm.model.Network`` need of a cell."""

    name: str
    gates: int  # G: the input layer produces a drive of width G*H

    def state_size(self, H: int) -> int: ...
    def param_shapes(self, H: int) -> dict[str, tuple[int, ...]]: ...
    def init(self, H: int, rng: np.random.Generator) -> dict[str, Array]: ...
    def new_cache(self, T: int, B: int, H: int, dtype) -> dict[str, Array]: ...
    def step(self, p: dict, d: Array, s: Array, cache: dict | None = None, t: int = 0) -> Array:
        """d (B, G*H), s (B, n_s) the incoming state (already reset) -> s' (B, n_s)."""

    def hidden(self, S: Array) -> Array:
        """(..., n_s) -> (..., H): what the head reads."""

    def prepare(self, p: dict, cache: dict, S: Array) -> None: ...
    def vjp(
        self, p: dict, cache: dict, g: Array, lo: int, hi: int, prev: bool = True
    ) -> tuple[Array, Array | None, Array | None]:
        """g (n, B, n_s): gradient at the states s_{lo+1}..s_hi (n = hi - lo). Returns dD
        (n, B, G*H) at the drives of steps lo+1..hi, dR (n, B, G*H) at the recurrent products
        (None: equal to dD), and, when ``prev``, the gradient (n, B, n_s) at the incoming
        states s_lo..s_{hi-1} (before any reset mask)."""

    def weight_grads(self, p: dict, S_in: Array, dR: Array) -> dict[str, Array]:
        """S_in (T, B, n_s) the incoming states as the steps read them, dR (T, B, G*H)."""


def orthogonal(H: int, gain: float, rng: np.random.Generator) -> Array:
    """A uniformly distributed random orthogonal (H, H) matrix times ``gain``: the state then
    neither explodes nor dies over many steps at the start of training."""
    q, r = np.linalg.qr(rng.normal(size=(H, H)))
    return gain * q * np.sign(np.diag(r))  # the sign fix makes the distribution uniform


def _product(X: Array, W: Array) -> Array:
    """X W for X of shape (n, B, k) as one 2-D product over all n*B rows."""
    return (X.reshape(-1, X.shape[-1]) @ W).reshape(*X.shape[:-1], W.shape[1])


class Elman:
    """s_t = f(d_t + s_{t-1} W). Initialisation: W orthogonal times 0.9 (times 2 for sigmoid
    units, whose slope is at most 1/4)."""

    gates = 1

    def __init__(self, activation: str = "tanh", alpha: float = 0.01):
        self.act = activations.get(activation, alpha)
        activations.require_trainable(self.act)
        self.name = "elman"

    def state_size(self, H: int) -> int:
        return H

    def param_shapes(self, H: int) -> dict[str, tuple[int, ...]]:
        return {"W": (H, H)}

    def init(self, H: int, rng: np.random.Generator) -> dict[str, Array]:
        gain = 2.0 if self.act.name == "sigmoid" else 0.9
        return {"W": orthogonal(H, gain, rng)}

    def new_cache(self, T: int, B: int, H: int, dtype) -> dict[str, Array]:
        return {"A": np.empty((T, B, H), dtype=dtype)}  # pre-activations a_t

    def step(self, p: dict, d: Array, s: Array, cache: dict | None = None, t: int = 0) -> Array:
        a = s @ p["W"] if cache is None else np.matmul(s, p["W"], out=cache["A"][t])
        a += d
        return self.act(a)

    def hidden(self, S: Array) -> Array:
        return S

    def prepare(self, p: dict, cache: dict, S: Array) -> None:
        cache["F"] = self.act.derivative(cache["A"], S[1:])  # (T, B, H) f'(a_t), one pass
        # W^T as a contiguous copy: a (B, H) x (H, H) product with a transposed view as its
        # second operand ran about 2x slower in OpenBLAS at B = 20 (a contiguous one, ~17 us)
        cache["WT"] = np.ascontiguousarray(p["W"].T)

    def vjp(self, p: dict, cache: dict, g: Array, lo: int, hi: int, prev: bool = True):
        dA = g * cache["F"][lo:hi]  # through f
        back = _product(dA, cache["WT"]) if prev else None  # a_t = d_t + s_{t-1} W
        return dA, None, back

    def weight_grads(self, p: dict, S_in: Array, dR: Array) -> dict[str, Array]:
        H = S_in.shape[-1]
        return {"W": S_in.reshape(-1, H).T @ dR.reshape(-1, dR.shape[-1])}


NAMES = ("elman",)


def make(name: str, activation: str = "tanh", alpha: float = 0.01) -> Cell:
    """The cell called ``name`` (one of ``NAMES``)."""
    if name == "elman":
        return Elman(activation, alpha)
    raise ValueError(f"unknown cell {name!r}; choose one of {', '.join(NAMES)}")
