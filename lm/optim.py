"""Optimisers, gradient clipping and weight averaging over parameter dicts {name: array}.

Gradients use the same keys as the parameters (``U``, ``W``, ``b``, ``V``, ``c``, ``E``).
Clipping is applied to the parameter gradients after the backward pass and before the
update, never inside gradient code (so gradient checks see the true gradient). One update
step, for every model trained here (the language model and the cosine task alike):

    if not guarded_update(params, grads, optimizer, loss, clip_value, clip_norm):
        ...  # the loss or a gradient is not finite (finite_norm): stop or skip the batch

Sparse gradients (``lm.sparse``: Rows of U or E, Cols of V and c, given with the class head).
Clipping and the global norm read their values, i.e. exactly the elements a dense gradient
could have nonzero, so they mean the same as on the dense array. The updates touch only the
rows or column runs the gradient holds, and both optimisers treat everything else as absent
(lazy updates):
- SGD: an untouched element has gradient 0, so plain SGD leaves it as it is too; the lazy
  update is the dense one exactly, except that ``l2`` decays touched elements only.
- Adam: an untouched element keeps its weight and both moments m and v as they were (they
  are not decayed, and the weight does not move by its old momentum); the step count t and
  the bias correction are global. This is the "lazy Adam" of TensorFlow's LazyAdamOptimizer
  and PyTorch's SparseAdam, not the dense Adam, which would keep moving a row that got no
  gradient. The state is the same m, v and t as the dense Adam's, so a checkpoint holds it
  all and resuming is bit-exact.

Arrays. The moments, scratch buffers and averages are made with the array module of the
parameters (``lm.backend.xp_of``), numpy or CuPy; only numpy updates are split over threads.
"""

from __future__ import annotations

import contextvars
import itertools
import math
from concurrent.futures import ThreadPoolExecutor

from lm import backend, sparse
from lm.backend import Array
from lm.backend import numpy as np

Params = dict[str, Array]

_POOL = ThreadPoolExecutor(max_workers=2)  # numpy ufuncs release the GIL on large arrays
_PARALLEL_SIZE = 1 << 16  # parameters at least this big are updated by two threads


def clip_values(grads: Params, limit: float) -> None:
    """Element-wise clipping of every gradient to [-limit, limit], in place."""
    for g in map(sparse.values, grads.values()):
        backend.xp_of(g).clip(g, -limit, limit, out=g)


def global_norm(grads: Params) -> float:
    """sqrt(sum of squares of every gradient element), accumulated in float64."""
    squares = (float(backend.xp_of(g).vdot(g, g)) for g in map(sparse.values, grads.values()))
    return float(np.sqrt(sum(squares)))


def clip_global_norm(grads: Params, max_norm: float) -> float:
    """Scale all gradients by min(1, max_norm / norm), in place; returns the norm before."""
    norm = global_norm(grads)
    if norm > max_norm:
        factor = max_norm / (norm + 1e-12)
        for g in map(sparse.values, grads.values()):
            g *= g.dtype.type(factor)
    return norm


def finite_norm(loss: float, grads: Params, max_loss: float = math.inf) -> float | None:
    """The non-finite guard: the gradients' global norm, or None when the step must not be
    taken (the loss is not finite or above ``max_loss``, or a gradient is not finite: its
    norm is then inf or NaN).

    ``max_loss`` lets a caller refuse a loss that is finite but meaningless, e.g. a mean
    cross-entropy above ln(float max) ~ 709.8, whose perplexity overflows.

    >>> finite_norm(2.5, {"w": np.array([3.0, 4.0])})
    5.0
    >>> finite_norm(float("nan"), {"w": np.array([3.0, 4.0])}) is None
    True
    """
    if not (math.isfinite(loss) and loss <= max_loss):
        return None
    with np.errstate(over="ignore", invalid="ignore"):  # huge gradients: the norm is inf
        norm = global_norm(grads)
    return norm if math.isfinite(norm) else None


def guarded_update(
    params: Params,
    grads: Params,
    optimizer,
    loss: float,
    clip_value: float | None = None,
    clip_norm: float | None = None,
    max_loss: float = math.inf,
) -> bool:
    """One training update, shared by every task: unless ``finite_norm(loss, grads,
    max_loss)`` refuses the step (then nothing changes and False is returned, for the caller
    to stop or skip), clip the gradients (element-wise to [-clip_value, clip_value], then the
    global norm to clip_norm; None or 0 turns either off) and let ``optimizer`` update
    ``params`` in place. ``grads`` (the keys of ``params``, or a subset: only those are
    updated) is overwritten.

    Good: ``if not guarded_update(p, g, opt, loss, clip_norm=1.0): stop_or_skip()``.
    Bad: clipping first and checking after: clipping turns an inf gradient into NaNs.
    """
    if finite_norm(loss, grads, max_loss) is None:
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
            if sparse.is_sparse(g):
                _lazy_sgd(p, g, self.lr, self.l2)
                continue
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
        jobs, scatters = [], []
        on_host = True  # numpy arrays only: the parts run on two threads
        for k, g in grads.items():
            p = params[k]
            xp = backend.xp_of(p)
            on_host = on_host and xp is np
            m = self.m.get(k)
            if m is None:
                m = self.m[k] = xp.zeros_like(p)
            v = self.v.get(k)
            if v is None:
                v = self.v[k] = xp.zeros_like(p)
            if sparse.is_sparse(g):
                jobs += _lazy_jobs(p, g, m, v, scatters)
                continue
            tmp = self._scratch.get(k)
            if tmp is None:
                tmp = self._scratch[k] = xp.empty_like(p)
            arrays = [a.reshape(-1) for a in (p, g, m, v, tmp)]
            n = arrays[0].size
            cuts = [0, n // 2, n] if n >= _PARALLEL_SIZE else [0, n]
            jobs += [[a[lo:hi] for a in arrays] for lo, hi in itertools.pairwise(cuts)]
        if on_host:
            # each job runs in the caller's context, so that its np.errstate holds in the threads
            contexts = [contextvars.copy_context() for _ in jobs]
            list(_POOL.map(lambda c, part: c.run(self._update_part, *part, step), contexts, jobs))
        else:  # a device parallelises each part itself (and CuPy's current device is per thread)
            for part in jobs:
                self._update_part(*part, step)
        for finish in scatters:  # Rows: write the updated copies back
            finish()

    def _update_part(self, p, g, m, v, tmp, step) -> None:
        """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  p <- p - step m / (sqrt(v) + eps)."""
        xp = backend.xp_of(p)
        dt = p.dtype.type
        if self.l2:
            g = g + dt(self.l2) * p
        m *= dt(self.beta1)
        xp.multiply(g, dt(1 - self.beta1), out=tmp)
        m += tmp
        v *= dt(self.beta2)
        xp.multiply(g, g, out=tmp)
        tmp *= dt(1 - self.beta2)
        v += tmp
        xp.sqrt(v, out=tmp)
        tmp += dt(self.eps)
        xp.divide(m, tmp, out=tmp)
        tmp *= dt(step)
        p -= tmp

    def state_dict(self) -> dict[str, Array]:
        """Arrays to checkpoint: ``m.<name>``, ``v.<name>`` and the step count ``t``."""
        state = {"t": np.array(self.t, dtype=np.int64)}
        state.update({f"m.{k}": a for k, a in self.m.items()})
        state.update({f"v.{k}": a for k, a in self.v.items()})
        return state

    def load_state_dict(self, state: dict[str, Array]) -> None:
        self.t = int(state["t"])  # the moments are copied where they are (host or device)
        self.m = {k[2:]: _copy(a) for k, a in state.items() if k.startswith("m.")}
        self.v = {k[2:]: _copy(a) for k, a in state.items() if k.startswith("v.")}


def _copy(a: Array) -> Array:
    """A copy of the array a (numpy or CuPy) in its own array module."""
    return backend.xp_of(a).array(a)


def _lazy_sgd(p: Array, g, lr: float, l2: float) -> None:
    """p <- p - lr (g + l2 p) on the rows or column runs of the sparse gradient g only."""
    dt = p.dtype.type
    if isinstance(g, sparse.Rows):
        rows = g.values  # scratch, as in SGD.update
        if l2:
            rows += dt(l2) * p[g.index]
        rows *= dt(lr)
        p[g.index] -= rows  # the index is unique: no repeated writes
        return
    for a, b, o in g.parts():
        part = g.values[..., o : o + b - a]
        if l2:
            part += dt(l2) * p[..., a:b]
        part *= dt(lr)
        p[..., a:b] -= part


def _lazy_jobs(p: Array, g, m: Array, v: Array, scatters: list) -> list[list[Array]]:
    """Adam's (p, g, m, v, tmp) parts for the rows or column runs of a sparse gradient g.

    Column runs are views of p, m, v (updated in place; a run of a 2-D parameter is split
    over its rows into two jobs when large). Rows are gathered into copies, and a function
    that writes them back is appended to ``scatters``, to be called after the jobs ran.
    """
    if isinstance(g, sparse.Rows):
        i = g.index
        P, M, Vv = p[i], m[i], v[i]  # (r, k) copies
        scatters.append(lambda: (p.__setitem__(i, P), m.__setitem__(i, M), v.__setitem__(i, Vv)))
        arrays = [a.reshape(-1) for a in (P, g.values, M, Vv, backend.xp_of(P).empty_like(P))]
        n = arrays[0].size
        cuts = [0, n // 2, n] if n >= _PARALLEL_SIZE else [0, n]
        return [[a[lo:hi] for a in arrays] for lo, hi in zip(cuts[:-1], cuts[1:])]
    jobs = []
    for a, b, o in g.parts():
        views = [p[..., a:b], g.values[..., o : o + b - a], m[..., a:b], v[..., a:b]]
        views.append(backend.xp_of(p).empty(views[0].shape, dtype=p.dtype))
        if p.ndim == 2 and views[0].size >= _PARALLEL_SIZE:
            half = p.shape[0] // 2
            jobs += [[x[:half] for x in views], [x[half:] for x in views]]
        else:
            jobs.append(views)
    return jobs


class WeightAverage:
    """An exponential moving average of the weights, kept beside the optimiser.

    After the n-th update (n = 0, 1, ...) of theta by the optimiser:

        theta_bar <- d_n theta_bar + (1 - d_n) theta,   d_n = min(decay, (1 + n) / (10 + n))

    starting from theta_bar = theta_0. The warm-up d_n forgets the initial weights quickly.
    ``params`` is the average ({name: array}, the parameters' shapes and dtypes); it is
    updated in place with one scratch buffer per parameter.

    >>> theta = {"w": np.zeros(2)}
    >>> avg = WeightAverage(0.9, theta)
    >>> theta["w"][:] = 1.0; avg.update(theta)  # d_0 = 0.1: the average moves 90% of the way
    >>> avg.params["w"]
    array([0.9, 0.9])
    """

    def __init__(self, decay: float, params: Params):
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), not {decay}")
        self.decay = decay
        self.n = 0  # updates averaged so far
        self.params = {k: v.copy() for k, v in params.items()}
        self._diff = {k: backend.xp_of(v).empty_like(v) for k, v in params.items()}

    def update(self, params: Params) -> None:
        """theta_bar <- theta_bar + (1 - d_n) (theta - theta_bar), in place."""
        rate = 1.0 - min(self.decay, (1 + self.n) / (10 + self.n))
        for k, theta in params.items():
            bar, diff = self.params[k], self._diff[k]
            backend.xp_of(bar).subtract(theta, bar, out=diff)
            diff *= rate
            bar += diff
        self.n += 1

    def reset(self, params: Params) -> None:
        """Set the average to ``params`` (a rolled-back epoch); the count n goes on."""
        for k, v in params.items():
            self.params[k][...] = v

    def state_dict(self) -> dict[str, Array]:
        """Arrays to checkpoint: the average under the parameters' names, and ``n``."""
        return {"n": np.array(self.n, dtype=np.int64), **self.params}

    @classmethod
    def from_state_dict(cls, decay: float, state: dict[str, Array]) -> WeightAverage:
        """The average a ``state_dict()`` describes (checked by ``lm.checkpoint``)."""
        average = cls(decay, {k: a for k, a in state.items() if k != "n"})
        average.n = int(state["n"])
        return average


def make(name: str, lr: float, l2: float = 0.0):
    """The optimiser called ``name`` ('sgd' or 'adam')."""
    if name == "sgd":
        return SGD(lr, l2)
    if name == "adam":
        return Adam(lr, l2=l2)
    raise ValueError(f"unknown optimizer {name!r}")
