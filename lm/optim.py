"""Optimisers and gradient clipping over parameter dicts {name: array}.

Gradients use the same keys as the parameters (``U``, ``W``, ``b``, ``V``, ``c``, ``E``).
Clipping is applied to the parameter gradients after the backward pass and before the
update, never inside gradient code (so gradient checks see the true gradient).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

Array = np.ndarray
Params = dict[str, Array]

_POOL = ThreadPoolExecutor(max_workers=2)  # numpy ufuncs release the GIL on large arrays
_PARALLEL_SIZE = 1 << 16  # parameters at least this big are updated by two threads


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


def guarded_update(
    params: Params,
    grads: Params,
    optimizer,
    loss: float,
    clip_value: float | None = None,
    clip_norm: float | None = None,
) -> bool:
    """One training update, shared by every task: unless the loss or the gradient norm is
    not finite (then nothing changes and False is returned, for the caller to stop or skip),
    clip the gradients (element-wise to [-clip_value, clip_value], then the global norm to
    clip_norm; None or 0 turns either off) and let ``optimizer`` update ``params`` in place.
    """
    norm = global_norm(grads)
    if not (np.isfinite(loss) and np.isfinite(norm)):
        return False
    if clip_value:
        clip_values(grads, clip_value)
    if clip_norm:
        clip_global_norm(grads, clip_norm)
    optimizer.update(params, grads)
    return True


class SGD:
    """Plain gradient descent p <- p - lr * (g + l2 * p). Uses the gradient arrays as scratch
    space (they are overwritten), so no temporary of a parameter's size is allocated."""

    def __init__(self, lr: float, l2: float = 0.0):
        self.lr = lr
        self.l2 = l2

    def update(self, params: Params, grads: Params) -> None:
        for k, g in grads.items():
            p = params[k]
            dt = p.dtype.type
            if self.l2:
                g += dt(self.l2) * p
            g *= dt(self.lr)
            p -= g

    def state_dict(self) -> dict[str, Array]:
        return {}

    def load_state_dict(self, state: dict[str, Array]) -> None:
        pass


class Adam:
    """Adam (Kingma & Ba) with bias correction; L2 is added to the gradient (as torch.optim.Adam).

    The update runs in place with one scratch buffer per parameter (no temporaries of the
    parameter's size), split over two threads for large parameters: with a 10k vocabulary
    the embedding and output matrices hold millions of elements, and a naive update costs
    more than the whole forward and backward pass.
    """

    def __init__(
        self,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        l2: float = 0.0,
    ):
        self.lr, self.beta1, self.beta2, self.eps, self.l2 = lr, beta1, beta2, eps, l2
        self.t = 0
        self.m: Params = {}
        self.v: Params = {}
        self._scratch: Params = {}

    def update(self, params: Params, grads: Params) -> None:
        self.t += 1
        step = self.lr * np.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        jobs = []
        for k, g in grads.items():
            p = params[k]
            m = self.m.setdefault(k, np.zeros_like(p))
            v = self.v.setdefault(k, np.zeros_like(p))
            tmp = self._scratch.setdefault(k, np.empty_like(p))
            arrays = [a.reshape(-1) for a in (p, g, m, v, tmp)]
            n = arrays[0].size
            cuts = [0, n // 2, n] if n >= _PARALLEL_SIZE else [0, n]
            jobs += [[a[lo:hi] for a in arrays] for lo, hi in zip(cuts[:-1], cuts[1:])]
        list(_POOL.map(lambda part: self._update_part(*part, step), jobs))

    def _update_part(self, p, g, m, v, tmp, step) -> None:
        """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  p <- p - step m / (sqrt(v) + eps)."""
        dt = p.dtype.type
        if self.l2:
            g = g + dt(self.l2) * p
        m *= dt(self.beta1)
        np.multiply(g, dt(1 - self.beta1), out=tmp)
        m += tmp
        v *= dt(self.beta2)
        np.multiply(g, g, out=tmp)
        tmp *= dt(1 - self.beta2)
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += dt(self.eps)
        np.divide(m, tmp, out=tmp)
        tmp *= dt(step)
        p -= tmp

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
