"""Output heads on top of the recurrent states: one object per head, with its parameter shapes,
initialisation, loss (and gradients) over N positions, and log-probabilities.

Softmax head (language model): o_t = softmax(s_t V + c), V: (H, n_vocab), c: (n_vocab,),
cross-entropy loss -log o_t[w_{t+1}] at every position. Linear head (regression):
o = s_T V + c on the last state only, V: (H, n_out), loss |y - o|^2 / 2.

The softmax head works on all N = T*B positions of a window at once: one product for the
logits, one for dV, one for dS. The gradient dL/dz = p - y is never formed as a matrix of its
own: with p = exp(z - m) / sum_exp, the 1 / sum_exp factor is moved onto the small (N, H)
side of each product, so the (N, n_vocab) array is touched by as few elementwise passes as
possible (bias, exp, row sums; the shift m by the row maximum only where it is needed, see
``_exp_logits``), and those passes run on two threads. The one-hot targets are subtracted in
place at N positions, so no scatter is needed.

The head contract (what ``lm.model.Network`` uses): ``reads`` ("all": a loss at every
position, "last": on the window's last state), ``param_shapes(H)``, ``init(H, rng, counts)``,
``loss(p, S, y, scale)`` -> (loss_sum, dS, grads), and for the language-model heads
``target_logprobs(p, S, y)`` and ``next_logprobs(p, S)``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

Array = np.ndarray

_POOL = ThreadPoolExecutor(max_workers=2)  # numpy ufuncs release the GIL on large arrays
_CHUNK_LOGITS = 2**23  # logits per chunk when scoring (32 MB of float32, near a cache's size)


def log_softmax(z: Array, axis: int = -1) -> Array:
    """log softmax(z) computed stably (finite for logits of +-1e4 and beyond)."""
    m = np.max(z, axis=axis, keepdims=True)
    shifted = z - m
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax(z: Array) -> Array:
    """Row-wise softmax of logits (B, n) that may hold -inf (at least one finite per row)."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


_SAFE_SUM = (1e-30, 1e30)  # row sums of exp(z) inside this range lose no float32 precision


def _exp_rows(Z: Array, c: Array, targets: Array, lo: int, hi: int, shift: bool = False):
    """In place on rows lo:hi: Z <- exp(Z + c - m), m the row maximum (shift) or 0.

    Returns (sum of exp, (z - m) at targets), (hi - lo,) each.
    """
    Zc = Z[lo:hi]
    Zc += c
    if shift:
        Zc -= Zc.max(axis=1)[:, None]
    z_t = Zc[np.arange(hi - lo), targets[lo:hi]]  # a copy (fancy indexing)
    with np.errstate(over="ignore", under="ignore"):  # unshifted rows out of range are redone
        np.exp(Zc, out=Zc)
        return Zc.sum(axis=1), z_t


def _on_two_threads(rows_fn, Z: Array, c: Array, targets: Array) -> tuple:
    """rows_fn(Z, c, targets, lo, hi) -> tuple of (hi - lo,) arrays, run on the two halves of
    Z's rows in parallel (small Z: at once); the halves' results are concatenated."""
    N = Z.shape[0]
    if N < 64:
        return rows_fn(Z, c, targets, 0, N)
    half = N // 2
    parts = [_POOL.submit(rows_fn, Z, c, targets, lo, hi) for lo, hi in ((0, half), (half, N))]
    first, second = (p.result() for p in parts)
    return tuple(np.concatenate([a, b]) for a, b in zip(first, second))


def _exp_logits(S: Array, V: Array, c: Array, targets: Array) -> tuple[Array, Array, Array]:
    """Softmax numerators of z = S V + c, stable and with as few passes as possible.

    S: (N, H), V: (H, n_vocab), c: (n_vocab,), targets: (N,). Returns (Z, sum_exp, z_t):
    Z (N, n_vocab) = exp(z - m) row-wise, sum_exp (N,) its row sums and z_t (N,) = (z - m) at
    the targets, so that p = Z / sum_exp and log p[target] = z_t - log(sum_exp).

    The shift m is 0 first: that saves the max and subtract passes, and a trained model's
    logits are far inside exp's float32 range (about +-87). Rows whose sum falls outside
    ``_SAFE_SUM`` (overflow, underflow, NaN) are recomputed with m = the row maximum, so
    huge logits are handled exactly too.
    """
    Z = S @ V
    sum_exp, z_t = _on_two_threads(_exp_rows, Z, c, targets)
    unsafe = np.flatnonzero(~((sum_exp > _SAFE_SUM[0]) & (sum_exp < _SAFE_SUM[1])))
    if len(unsafe):
        Zu = S[unsafe] @ V
        sum_exp[unsafe], z_t[unsafe] = _exp_rows(Zu, c, targets[unsafe], 0, len(unsafe), True)
        Z[unsafe] = Zu
    return Z, sum_exp, z_t


def _softmax_xent(
    S: Array, V: Array, c: Array, targets: Array, scale: float = 1.0
) -> tuple[float, Array, Array, Array]:
    """Cross-entropy of the softmax head and its gradients, over all positions at once.

    Parameters
    ----------
    S : (N, H) states (N = T*B positions).
    V : (H, n_vocab), c : (n_vocab,) output weights and bias.
    targets : (N,) int word ids to predict.
    scale : the loss is scale * sum_i -log p_i[targets_i]; gradients are of that loss
        (use 1/N for the mean).

    Returns
    -------
    loss_sum : float, sum_i -log p_i[targets_i] (natural log, not scaled).
    dS : (N, H), dV : (H, n_vocab), dc : (n_vocab,) gradients of the scaled loss.
    """
    N = S.shape[0]
    Z, sum_exp, z_t = _exp_logits(S, V, c, targets)  # Z = exp(z - m), p = Z / sum_exp
    loss_sum = float(np.sum(np.log(sum_exp.astype(np.float64)) - z_t))
    # dL/dz = scale * (Z / sum_exp - onehot(targets)) = r * (Z - sum_exp * onehot(targets))
    # with r = scale / sum_exp: subtract sum_exp at each target (N elements), and put the
    # factor r on the (N, H) side of each product, never on the (N, n_vocab) array.
    Z[np.arange(N), targets] -= sum_exp
    r = (scale / sum_exp).astype(S.dtype)  # (N,)
    dV = (S * r[:, None]).T @ Z  # (H, n_vocab)
    dc = r @ Z
    dS = Z @ V.T  # (N, H)
    dS *= r[:, None]
    return loss_sum, dS, dV, dc


def _target_logprobs(S: Array, V: Array, c: Array, targets: Array) -> Array:
    """Natural-log probabilities log p_i[targets_i] for each of N positions, shape (N,).

    S: (N, H) states, V: (H, n_vocab), c: (n_vocab,), targets: (N,) word ids. Works in chunks
    of rows (about 32 MB of logits each), so memory stays bounded whatever N is; chunks of
    that size also run faster than larger ones.
    """
    out = np.empty(len(S), dtype=np.float64)
    rows = max(64, _CHUNK_LOGITS // V.shape[1])
    for lo in range(0, len(S), rows):
        hi = min(lo + rows, len(S))
        _, sum_exp, z_t = _exp_logits(S[lo:hi], V, c, targets[lo:hi])
        out[lo:hi] = z_t.astype(np.float64) - np.log(sum_exp.astype(np.float64))
    return out


def log_unigram(counts: Array) -> Array:
    """ln of add-0.1 smoothed unigram frequencies, (n_vocab,), from the counts of the
    predicted tokens. The output bias starts here, so that the untrained model already
    predicts the unigram distribution and training spends its first updates on context."""
    counts = np.asarray(counts, dtype=np.float64) + 0.1
    return np.log(counts / counts.sum())


class Softmax:
    """p(w | s) = softmax(s V + c)[w] over the whole vocabulary. Initialisation: V uniform in
    +-1/sqrt(H); c the log unigram frequencies of the training text when counts are given,
    else 0."""

    name = "full"
    reads = "all"

    def __init__(self, n_vocab: int):
        self.n_vocab = n_vocab

    def param_shapes(self, H: int) -> dict[str, tuple[int, ...]]:
        return {"V": (H, self.n_vocab), "c": (self.n_vocab,)}

    def init(self, H: int, rng: np.random.Generator, counts: Array | None = None) -> dict:
        V = rng.uniform(-1 / np.sqrt(H), 1 / np.sqrt(H), (H, self.n_vocab))
        c = np.zeros(self.n_vocab) if counts is None else log_unigram(counts)
        return {"V": V, "c": c}

    def loss(self, p: dict, S: Array, y: Array, scale: float = 1.0):
        """Cross-entropy over N positions and its gradients.

        S (N, H) states, y (N,) int target ids. The loss is scale * sum_i -ln p_i[y_i];
        returns (loss_sum unscaled, dS (N, H), {"V": (H, n_vocab), "c": (n_vocab,)}) with
        the gradients of the scaled loss.
        """
        loss_sum, dS, dV, dc = _softmax_xent(S, p["V"], p["c"], y, scale)
        return loss_sum, dS, {"V": dV, "c": dc}

    def target_logprobs(self, p: dict, S: Array, y: Array) -> Array:
        """ln p_i[y_i] for N positions, (N,) float64, in bounded chunks of rows."""
        return _target_logprobs(S, p["V"], p["c"], y)

    def next_logprobs(self, p: dict, S: Array) -> Array:
        """Full next-word log-distributions, (N, H) -> (N, n_vocab)."""
        return log_softmax(S @ p["V"] + p["c"], axis=-1)


class Linear:
    """o = s V + c on the window's last state, loss |y - o|^2 / 2 (the cosine task).
    Initialisation: V normal with variance 1/H, c = 0."""

    name = "linear"
    reads = "last"

    def __init__(self, n_out: int = 1):
        self.n_out = n_out

    def param_shapes(self, H: int) -> dict[str, tuple[int, ...]]:
        return {"V": (H, self.n_out), "c": (self.n_out,)}

    def init(self, H: int, rng: np.random.Generator, counts: Array | None = None) -> dict:
        return {"V": rng.normal(0, H**-0.5, (H, self.n_out)), "c": np.zeros(self.n_out)}

    def predict(self, p: dict, S: Array) -> Array:
        """o = S V + c: (N, H) -> (N, n_out)."""
        return S @ p["V"] + p["c"]

    def loss(self, p: dict, S: Array, y: Array, scale: float = 1.0):
        """sum_i |y_i - o_i|^2 / 2 over N rows: S (N, H), y (N, n_out). Returns
        (loss unscaled, dS (N, H), {"V", "c"}) with the gradients of scale * loss."""
        err = self.predict(p, S) - y  # dL/do
        loss = 0.5 * float(np.sum(err * err))
        err *= scale
        return loss, err @ p["V"].T, {"V": S.T @ err, "c": err.sum(axis=0)}


NAMES = ("full",)


def make(name: str, n_vocab: int):
    """The language-model head called ``name`` (one of ``NAMES``) over ``n_vocab`` words."""
    if name == "full":
        return Softmax(n_vocab)
    raise ValueError(f"unknown output layer {name!r}; choose one of {', '.join(NAMES)}")
