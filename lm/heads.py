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

Arrays. ``init`` makes host numpy arrays; the losses and log-probabilities compute with the
array module of S (``lm.backend.xp_of``): numpy or CuPy. The two-thread split and numpy's
``reduceat`` are the host's (``lm.backend.segment_sum`` and friends choose).
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

from lm import backend, sparse
from lm.backend import Array
from lm.backend import numpy as np
from lm.checks import is_int

_POOL = ThreadPoolExecutor(max_workers=2)  # numpy ufuncs release the GIL on large arrays
_CHUNK_LOGITS = 2**23  # logits per chunk when scoring (32 MB of float32, near a cache's size)


def log_softmax(z: Array, axis: int = -1) -> Array:
    """log softmax(z) computed stably (finite for logits of +-1e4 and beyond)."""
    xp = backend.xp_of(z)
    m = xp.max(z, axis=axis, keepdims=True)
    shifted = z - m
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


def softmax(z: Array) -> Array:
    """Row-wise softmax of logits (B, n) that may hold -inf (at least one finite per row)."""
    e = backend.xp_of(z).exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


_SAFE_SUM = (1e-30, 1e30)  # row sums of exp(z) inside this range lose no float32 precision


def _exp_rows(Z: Array, c: Array, targets: Array, lo: int, hi: int, shift: bool = False):
    """In place on rows lo:hi: Z <- exp(Z + c - m), m the row maximum (shift) or 0.

    Returns (sum of exp, (z - m) at targets), (hi - lo,) each.
    """
    xp = backend.xp_of(Z)
    Zc = Z[lo:hi]
    Zc += c
    if shift:
        Zc -= Zc.max(axis=1)[:, None]
    z_t = Zc[xp.arange(hi - lo), targets[lo:hi]]  # a copy (fancy indexing)
    with np.errstate(over="ignore", under="ignore"):  # unshifted rows out of range are redone
        xp.exp(Zc, out=Zc)
        return Zc.sum(axis=1), z_t


def _on_two_threads(rows_fn, Z: Array, c: Array, targets: Array) -> tuple:
    """rows_fn(Z, c, targets, lo, hi) -> tuple of (hi - lo,) arrays, run on the two halves of
    Z's rows in parallel (small Z, or a device array, which has its own parallelism: at once);
    the halves' results are concatenated."""
    N = Z.shape[0]
    if N < 64 or backend.on_device(Z):
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
    xp = backend.xp_of(Z)
    unsafe = xp.flatnonzero(~((sum_exp > _SAFE_SUM[0]) & (sum_exp < _SAFE_SUM[1])))
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
    xp = backend.xp_of(S)
    N = S.shape[0]
    Z, sum_exp, z_t = _exp_logits(S, V, c, targets)  # Z = exp(z - m), p = Z / sum_exp
    loss_sum = float(xp.sum(xp.log(sum_exp.astype(np.float64)) - z_t))
    # dL/dz = scale * (Z / sum_exp - onehot(targets)) = r * (Z - sum_exp * onehot(targets))
    # with r = scale / sum_exp: subtract sum_exp at each target (N elements), and put the
    # factor r on the (N, H) side of each product, never on the (N, n_vocab) array.
    Z[xp.arange(N), targets] -= sum_exp
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
    xp = backend.xp_of(S)
    out = xp.empty(len(S), dtype=np.float64)
    rows = max(64, _CHUNK_LOGITS // V.shape[1])
    for lo in range(0, len(S), rows):
        hi = min(lo + rows, len(S))
        _, sum_exp, z_t = _exp_logits(S[lo:hi], V, c, targets[lo:hi])
        out[lo:hi] = z_t.astype(np.float64) - xp.log(sum_exp.astype(np.float64))
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
    sparse_grads = False  # dense gradients (every column of V gets one in every window)

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
    sparse_grads = False

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
        loss = 0.5 * float((err * err).sum())
        err *= scale
        return loss, err @ p["V"].T, {"V": S.T @ err, "c": err.sum(axis=0)}


# ----------------------------------------------------------------------------- classes


CLASS_ABOVE = 20_000  # vocabularies larger than this get the class head unless told


def default_output(n_vocab: int) -> str:
    """The head ``lm train`` builds unless --output says: "class" for more than CLASS_ABOVE
    words, where the full softmax costs at least about 6 times as much per token (README,
    Speed), else "full", whose quality is at least as good (README, the class head)."""
    return "class" if n_vocab > CLASS_ABOVE else "full"


def default_classes(n_vocab: int) -> int:
    """The number of classes ``lm train --output class`` uses unless told:
    round(sqrt(n_vocab) / 8), at least 1 (10 at 6k words, 12 at 10k, 40 at 100k).

    Why not rnnlm's sqrt(n_vocab) (100 at 10k), the C that minimises C + n_vocab / C for
    equal bins: perplexity falls steadily with fewer classes (on pydoc, 6,649 words, the test
    perplexity was 1.103 times the full softmax's at 82 classes, 1.073 at 40, 1.032 at 20;
    see the README's table for 10), while the speed falls much less, because frequency bins
    keep the frequent targets' classes small and fewer classes mean fewer per-class products
    (the README's Speed section has the figures)."""
    return max(1, round(float(np.sqrt(n_vocab)) / 8))


class ClassCountError(ValueError):
    """A number of classes outside 1..n_vocab (``lm train --classes``: a usage error)."""


def class_bounds(counts: Array, n_classes: int) -> tuple[int, ...]:
    """Class boundaries in the manner of rnnlm: contiguous id ranges cut by the cumulative
    sum of sqrt(unigram probability).

    counts : (n_vocab,) how often each id is predicted in the training text (``<s>``: 0).
    n_classes : C, 1 <= C <= n_vocab.

    Returns (b_0 = 0, b_1, ..., b_C = n_vocab), strictly increasing: class k holds the ids
    b_k..b_{k+1}-1. Class k ends with the first id whose cumulative share of sum sqrt(count)
    reaches (k+1)/C; a class that would be empty (a word whose share spans several bins, or
    too few words left for the classes after it) is given one id instead, so there are
    always exactly C non-empty classes.

    The ids are taken in id order. ``Vocab.build`` numbers the words by falling count after
    the three specials <unk>, <s>, </s>, so the bins are rnnlm's except that the specials come
    first (rnnlm, too, keeps </s> at index 0 out of frequency order): their mass goes to the
    first class(es), where the frequent words are, and <s>, never predicted, adds nothing.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n = len(counts)
    if not (is_int(n_classes) and 1 <= n_classes <= n):
        raise ClassCountError(
            f"the number of classes must be in 1..{n} (the vocabulary size), got {n_classes!r}"
        )
    share = np.sqrt(np.maximum(counts, 0))
    if share.sum() == 0:  # no counts: equal bins
        share = np.ones(n)
    cum = np.cumsum(share) / share.sum()
    k = np.arange(1, n_classes)
    ends = np.searchsorted(cum, k / n_classes, side="left") + 1
    ends = np.maximum.accumulate(ends - k) + k  # at least one id per class
    ends = np.minimum(ends, n - n_classes + k)  # and one left for each later class
    return (0, *(int(e) for e in ends), n)


def check_bounds(bounds, n_vocab: int) -> None:
    """ValueError unless ``bounds`` is a sequence of integers 0 = b_0 < b_1 < ... < b_C =
    n_vocab with C >= 1 (the class boundaries of a ``ClassSoftmax``)."""
    if not isinstance(bounds, (list, tuple)) or len(bounds) < 2:
        raise ValueError(f"classes must be a list of at least 2 boundaries, got {bounds!r}")
    if not all(is_int(b) for b in bounds):
        raise ValueError("classes must hold integers")
    if bounds[0] != 0 or bounds[-1] != n_vocab:
        raise ValueError(
            f"classes must run from 0 to n_vocab = {n_vocab}, got {bounds[0]}..{bounds[-1]}"
        )
    if any(b <= a for a, b in itertools.pairwise(bounds)):
        raise ValueError("classes must be strictly increasing (every class non-empty)")


def class_log_unigram(counts: Array, bounds) -> tuple[Array, Array]:
    """(ln P(w | class of w) (n_vocab,), ln P(class) (C,)) from add-0.1 smoothed counts: their
    sum, ln P(class(w)) + ln P(w | class(w)), is ``log_unigram(counts)`` for every w."""
    counts = np.asarray(counts, dtype=np.float64) + 0.1
    starts = np.asarray(bounds[:-1])
    mass = np.add.reduceat(counts, starts)  # (C,)
    of = np.repeat(np.arange(len(mass)), np.diff(bounds))
    return np.log(counts / mass[of]), np.log(mass / mass.sum())


def _xent_grad(Z: Array, k: Array, scale: float) -> float:
    """sum_i -ln softmax(Z_i)[k_i] (float64, unscaled) of logits Z (N, C), and in place
    Z <- scale (softmax(Z) - onehot(k)): the gradient at the logits."""
    xp = backend.xp_of(Z)
    rows = xp.arange(len(Z))
    Z -= Z.max(axis=1, keepdims=True)
    z_t = Z[rows, k]
    xp.exp(Z, out=Z)
    sums = Z.sum(axis=1)
    Z *= (scale / sums).astype(Z.dtype)[:, None]
    Z[rows, k] -= Z.dtype.type(scale)
    return float(xp.sum(xp.log(sums, dtype=np.float64)) - xp.sum(z_t, dtype=np.float64))


class _Groups:
    """The layout of N positions grouped by their target's class, shared by the loss and
    scoring: rows sorted by class (a stable sort), one block per class present.

    For the j-th class present its rows are the sorted rows lo..hi-1 (positions
    order[lo:hi]) and its words the ids a..a+w-1; its logits, an (hi - lo, w) block, sit at
    offset o of one flat buffer of M elements (the sum of the blocks' sizes), row by row:
    sorted row i starts at row_off[i] and has width rw[i], and its target is at target[i].
    """

    def __init__(self, head: ClassSoftmax, k: Array, y: Array):
        xp = backend.xp_of(k)
        bounds, widths, _ = head.tables(xp)
        N = len(k)
        self.order = order = backend.stable_argsort(k)
        self.k = ks = k[order]  # (N,) the sorted rows' classes
        starts = backend.run_starts(ks)
        ends = xp.concatenate([starts[1:], xp.asarray([N], dtype=starts.dtype)])
        self.a, self.w = bounds[ks[starts]], widths[ks[starts]]
        n = ends - starts
        self.rw = backend.repeat(self.w, n)  # (N,) the width of each sorted row's class
        self.row_off = backend.exclusive_cumsum(self.rw)
        self.M = int(self.row_off[-1] + self.rw[-1])
        a_row = backend.repeat(self.a, n)
        self.target = self.row_off + y[order] - a_row  # (N,) flat index of each target
        # class j's words in a buffer of the classes present
        self.touched = xp.concatenate([xp.zeros(1, dtype=self.w.dtype), xp.cumsum(self.w)])
        columns = zip(self.a.tolist(), self.w.tolist(), self.touched[:-1].tolist())
        off = self.row_off[starts].tolist()
        self.blocks = [  # (lo, hi, a, w, o, t) per class present, Python ints for the loops
            (lo, hi, a, w, o, t)
            for lo, hi, o, (a, w, t) in zip(starts.tolist(), ends.tolist(), off, columns)
        ]

    def word_logits(self, Ss: Array, V: Array, c: Array) -> Array:
        """Flat (M,) buffer of the logits z = s V[:, slice] + c[slice] of every sorted row over
        its class's words: one product per class present. Ss (N, H) the sorted states."""
        xp = backend.xp_of(Ss)
        F = xp.empty(self.M, dtype=Ss.dtype)
        for Fj, lo, hi, a, w in self._blocks(F):
            xp.matmul(Ss[lo:hi], V[:, a : a + w], out=Fj)
            Fj += c[a : a + w]
        return F

    def _blocks(self, F: Array):
        """(the (hi - lo, w) view of F, lo, hi, a, w) for each class present."""
        for lo, hi, a, w, o, _ in self.blocks:
            yield F[o : o + (hi - lo) * w].reshape(-1, w), lo, hi, a, w

    def exp_shifted(self, F: Array) -> tuple[Array, Array]:
        """In place F <- exp(F - row maximum); returns (row sums (N,), shifted target logits
        (N,)), so that ln P(y | class, s) = z_t - ln(sum). Each class's block is shifted and
        summed as a 2-D array (no full-size index or repeat arrays)."""
        xp = backend.xp_of(F)
        for Fj, *_ in self._blocks(F):
            Fj -= Fj.max(axis=1, keepdims=True)
        z_t = F[self.target]
        xp.exp(F, out=F)
        sums = xp.empty(len(self.target), dtype=F.dtype)
        for Fj, lo, hi, _, _ in self._blocks(F):
            Fj.sum(axis=1, out=sums[lo:hi])
        return sums, z_t

    def xent_grad(self, F: Array, scale: float) -> float:
        """sum over rows of -ln P(target | class, s) (float64, unscaled), and in place
        F <- scale (softmax - onehot(target)) row by row: the gradient at the logits."""
        xp = backend.xp_of(F)
        sums, z_t = self.exp_shifted(F)
        factor = (scale / sums).astype(F.dtype)
        for Fj, lo, hi, _, _ in self._blocks(F):
            Fj *= factor[lo:hi, None]
        F[self.target] -= F.dtype.type(scale)
        return float(xp.sum(xp.log(sums, dtype=np.float64)) - xp.sum(z_t, dtype=np.float64))

    def backward(self, F: Array, Ss: Array, V: Array) -> tuple[Array, Array]:
        """From the flat gradient F at the word logits: [dV; dc] of the classes present,
        (H + 1, their words), and dS of the sorted rows, (N, H). Ss: (N, H + 1) the sorted
        rows [s | 1]. Each class writes its own slice and its own rows."""
        xp = backend.xp_of(F)
        N, H = len(Ss), V.shape[0]
        dVw = xp.empty((H + 1, int(self.touched[-1])), dtype=F.dtype)
        dSs = xp.empty((N, H), dtype=F.dtype)
        for lo, hi, a, w, o, t in self.blocks:
            Fj = F[o : o + (hi - lo) * w].reshape(-1, w)
            xp.matmul(Ss[lo:hi].T, Fj, out=dVw[:, t : t + w])
            xp.matmul(Fj, V[:, a : a + w].T, out=dSs[lo:hi])
        return dVw, dSs


class ClassSoftmax:
    """A class-factored softmax: P(w | s) = P(c(w) | s) P(w | c(w), s), exactly normalised.

    With C classes, each a contiguous range of ids (``bounds``, see ``class_bounds``):
        P(k | s)       = softmax(s Vc + cc)[k]                  Vc: (H, C), cc: (C,)
        P(w | k, s)    = softmax(s V[:, b_k:b_{k+1}] + c[b_k:b_{k+1}])[w - b_k]
                                                                V: (H, n_vocab), c: (n_vocab,)
    Parameters "V", "c" (the word weights and bias, as the full head's) and "Vc", "cc" (the
    class weights and bias). A token costs H (C + |class of its target|) multiply-adds
    instead of H n_vocab.

    Speed. The class logits of all N positions are one product. The positions are grouped by
    their target's class (a stable sort and segment bounds, ``_Groups``) and each class
    present in the window gets one product over its rows and its column slice, into one flat
    buffer with no padding; the softmax passes run on that buffer (each class's block shifted
    and summed as a 2-D array, the exp over the whole buffer at once), and the backward writes
    each class's disjoint slice of dV and dc. The gradients of V and c are ``lm.sparse.Cols``
    (only the classes present), so the optimiser touches nothing else.

    Initialisation: V, Vc uniform in +-1/sqrt(H); with counts, c = ln P(w | class) and
    cc = ln P(class) of the smoothed counts (``class_log_unigram``), so that at s = 0 the head
    predicts the unigram distribution, as the full head does; without counts, c = 0 and
    cc = ln(class width / n_vocab): the uniform distribution.
    """

    name = "class"
    reads = "all"
    sparse_grads = True  # V, c get lm.sparse.Cols gradients (and the input layer Rows)

    def __init__(self, n_vocab: int, bounds):
        check_bounds(list(bounds), n_vocab)
        self.n_vocab = n_vocab
        self.bounds = np.asarray(bounds, dtype=np.int64)
        self.n_classes = len(bounds) - 1
        self.widths = np.diff(self.bounds)
        self.class_of = np.repeat(np.arange(self.n_classes), self.widths)  # (n_vocab,)
        self._tables = {"numpy": (self.bounds, self.widths, self.class_of)}  # by module name

    def tables(self, xp) -> tuple[Array, Array, Array]:
        """(bounds (C+1,), widths (C,), class_of (n_vocab,)) as arrays of the array module xp:
        the host arrays themselves for numpy, copies made once for a device."""
        found = self._tables.get(xp.__name__)
        if found is None:
            host = self._tables["numpy"]
            found = self._tables[xp.__name__] = tuple(xp.asarray(a) for a in host)
        return found

    def param_shapes(self, H: int) -> dict[str, tuple[int, ...]]:
        C = self.n_classes
        return {"V": (H, self.n_vocab), "c": (self.n_vocab,), "Vc": (H, C), "cc": (C,)}

    def init(self, H: int, rng: np.random.Generator, counts: Array | None = None) -> dict:
        r = 1 / np.sqrt(H)
        V = rng.uniform(-r, r, (H, self.n_vocab))
        Vc = rng.uniform(-r, r, (H, self.n_classes))
        if counts is None:
            c, cc = np.zeros(self.n_vocab), np.log(self.widths / self.n_vocab)
        else:
            c, cc = class_log_unigram(counts, self.bounds)
        return {"V": V, "c": c, "Vc": Vc, "cc": cc}

    def loss(self, p: dict, S: Array, y: Array, scale: float = 1.0):
        """Cross-entropy over N positions and its gradients.

        S (N, H) states, y (N,) int target ids. The loss is scale * sum_i -ln P(y_i | s_i);
        returns (loss_sum unscaled, dS (N, H), grads) with grads "Vc" (H, C), "cc" (C,)
        dense and "V", "c" as ``lm.sparse.Cols`` over the classes present.
        """
        xp = backend.xp_of(S)
        N, H = S.shape
        if N == 0:
            return (
                0.0,
                xp.zeros_like(S),
                {k: xp.zeros(s, S.dtype) for k, s in self.param_shapes(H).items()},
            )
        g = _Groups(self, self.tables(xp)[2][y], y)
        Ss = xp.empty((N, H + 1), dtype=S.dtype)  # sorted rows [s | 1]: one product gives
        Ss[:, :H] = S[g.order]  # the weights' and the bias's gradients at once
        Ss[:, H] = 1
        G = Ss[:, :H] @ p["Vc"]  # (N, C) class logits
        G += p["cc"]
        loss_sum = _xent_grad(G, g.k, scale)  # G <- dL/dz of the classes
        F = g.word_logits(Ss[:, :H], p["V"], p["c"])  # (M,) word logits within the classes
        loss_sum += g.xent_grad(F, scale)  # F <- dL/dz of the words
        dVw, dSs = g.backward(F, Ss, p["V"])
        dSs += G @ p["Vc"].T
        dS = xp.empty_like(dSs)
        dS[g.order] = dSs  # back to the positions' order
        dVc = Ss.T @ G  # (H + 1, C)
        runs = sparse.merge_runs(g.a, g.a + g.w)
        grads = {
            "V": sparse.Cols(runs, dVw[:H], p["V"].shape),
            "c": sparse.Cols(runs, dVw[H], p["c"].shape),
            "Vc": dVc[:H],
            "cc": dVc[H],
        }
        return loss_sum, dS, grads

    def target_logprobs(self, p: dict, S: Array, y: Array) -> Array:
        """ln P(y_i | s_i) for N positions, (N,) float64, in chunks of rows (the flat buffer
        of at most about 2^23 logits each, whatever N is)."""
        out = backend.xp_of(S).empty(len(S), dtype=np.float64)
        rows = max(64, _CHUNK_LOGITS // int(self.widths.max() + self.n_classes))
        for lo in range(0, len(S), rows):
            hi = min(lo + rows, len(S))
            out[lo:hi] = self._target_logprobs(p, S[lo:hi], y[lo:hi])
        return out

    def _target_logprobs(self, p: dict, S: Array, y: Array) -> Array:
        xp = backend.xp_of(S)
        if len(S) == 0:
            return xp.zeros(0)
        k = self.tables(xp)[2][y]
        class_lp = log_softmax(S @ p["Vc"] + p["cc"], axis=-1)[xp.arange(len(S)), k]
        g = _Groups(self, k, y)
        sw, zw_t = g.exp_shifted(g.word_logits(S[g.order], p["V"], p["c"]))
        out = class_lp.astype(np.float64)
        out[g.order] += zw_t.astype(np.float64) - xp.log(sw, dtype=np.float64)
        return out

    def next_logprobs(self, p: dict, S: Array) -> Array:
        """Full next-word log-distributions, (N, H) -> (N, n_vocab): ln P(class) + ln P(word |
        class) for every word, a log-softmax over each class's slice of the logits."""
        xp = backend.xp_of(S)
        class_lp = log_softmax(S @ p["Vc"] + p["cc"], axis=-1)  # (N, C)
        Z = S @ p["V"]  # (N, n_vocab)
        Z += p["c"]
        bounds, widths, _ = self.tables(xp)
        starts = bounds[:-1]
        Z -= backend.repeat(backend.segment_max(Z, starts, axis=1), widths, axis=1)  # maxima
        log_sum = xp.log(backend.segment_sum(xp.exp(Z), starts, axis=1))  # (N, C)
        Z += backend.repeat(class_lp - log_sum, widths, axis=1)
        return Z


NAMES = ("full", "class")


def make(name: str, n_vocab: int, bounds=None):
    """The language-model head called ``name`` (one of ``NAMES``) over ``n_vocab`` words;
    ``bounds`` are the class boundaries of the "class" head (see ``class_bounds``)."""
    if name == "full":
        return Softmax(n_vocab)
    if name == "class":
        return ClassSoftmax(n_vocab, bounds)
    raise ValueError(f"unknown output layer {name!r}; choose one of {', '.join(NAMES)}")
