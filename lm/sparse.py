"""Sparse gradients: the parts of a parameter that one training window touched.

A window of T*B tokens uses a few hundred rows of a vocabulary-sized input matrix (U or E)
and, with the class-factored head (``lm.heads.ClassSoftmax``), the column slices of V and c
of the classes its targets fall in. Their gradients are zero everywhere else, so they travel
as what is nonzero; the optimisers (``lm.optim``) then update only those parts, and clipping
and the global norm read only those values.

    Rows   G[index] = values             index (r,) sorted, unique; values (r, k)
    Cols   G[..., a_i:b_i] = values[..., o_i:o_i + b_i - a_i] for each run i, the runs
           sorted and disjoint; values (..., sum of the run widths): V (H, n) or c (n,)

Both keep ``shape``, the dense gradient's shape, and ``values``, one array holding every
nonzero-able element (what clipping scales and the norm sums). ``dense()`` builds the full
array (for tests and gradient checks; training never does). The arrays may be numpy or CuPy
arrays (``lm.backend``); ``runs`` and ``index`` live with ``values``.
"""

from __future__ import annotations

from lm import backend
from lm.backend import Array
from lm.backend import numpy as np


class Rows:
    """The gradient of an (n, k) parameter that is zero outside the rows ``index``.

    index : (r,) int, sorted and unique; values : (r, k); shape : (n, k).
    """

    def __init__(self, index: Array, values: Array, shape: tuple[int, ...]):
        self.index, self.values, self.shape = index, values, tuple(shape)

    @classmethod
    def sum_of(cls, ids: Array, rows: Array, n: int) -> Rows:
        """The gradient of a row gather ``P[ids]``: rows (m, k) of upstream gradient, repeated
        ids summed (one stable sort and one segment sum, ``np.add.reduceat`` on numpy), for an
        (n, k) parameter."""
        if len(ids) == 0:
            xp = backend.xp_of(ids)
            return cls(xp.zeros(0, dtype=np.int64), rows[:0].copy(), (n, rows.shape[1]))
        order = backend.stable_argsort(ids)
        sorted_ids = ids[order]
        starts = backend.run_starts(sorted_ids)
        return cls(
            sorted_ids[starts],
            backend.segment_sum(rows[order], starts, axis=0),
            (n, rows.shape[1]),
        )

    def dense(self) -> Array:
        G = backend.xp_of(self.values).zeros(self.shape, dtype=self.values.dtype)
        G[self.index] = self.values
        return G


class Cols:
    """The gradient of a (..., n) parameter that is zero outside column runs [a_i, b_i).

    runs : (R, 2) int [a_i, b_i), sorted, disjoint, non-empty; values : (..., width) with
    width = sum of b_i - a_i, run i stored at offsets[i]:offsets[i] + b_i - a_i;
    shape : the parameter's shape (..., n).
    """

    def __init__(self, runs: Array, values: Array, shape: tuple[int, ...]):
        self.runs, self.values, self.shape = runs, values, tuple(shape)
        self.offsets = backend.exclusive_cumsum((runs[:, 1] - runs[:, 0]).astype(np.int64))

    def parts(self):
        """(a, b, o) for each run: G[..., a:b] = values[..., o:o + b - a]."""
        return zip(self.runs[:, 0].tolist(), self.runs[:, 1].tolist(), self.offsets.tolist())

    def dense(self) -> Array:
        G = backend.xp_of(self.values).zeros(self.shape, dtype=self.values.dtype)
        for a, b, o in self.parts():
            G[..., a:b] = self.values[..., o : o + b - a]
        return G


def merge_runs(starts: Array, ends: Array) -> Array:
    """Sorted, non-empty ranges [starts_i, ends_i) with ends_i <= starts_{i+1}, merged where
    they touch: (R, 2) int64 runs."""
    xp = backend.xp_of(starts)
    if len(starts) == 0:
        return xp.zeros((0, 2), dtype=np.int64)
    new = xp.concatenate([xp.ones(1, dtype=bool), starts[1:] != ends[:-1]])  # a run begins
    first = xp.flatnonzero(new)  # where the last one did not end
    last = xp.concatenate([first[1:] - 1, xp.asarray([len(starts) - 1], dtype=first.dtype)])
    return xp.stack([starts[first], ends[last]], axis=1).astype(np.int64)


def is_sparse(g) -> bool:
    return isinstance(g, (Rows, Cols))


def values(g) -> Array:
    """The array that holds every element a gradient can have nonzero (the array itself when
    dense): what clipping scales in place and the global norm sums."""
    return g.values if is_sparse(g) else g


def dense(g) -> Array:
    """The full array of a gradient, sparse or not."""
    return g.dense() if is_sparse(g) else g


def add_transposed(dE, dV):
    """The gradient of a tied parameter E (n, k) that is used as itself and as V = E^T (k, n):
    dE + dV^T. Dense plus dense is dense (dE, updated in place); Rows plus Cols (the class
    head's columns of V are rows of E) is Rows over the union of their rows."""
    if not (is_sparse(dE) or is_sparse(dV)):
        dE += dV.T
        return dE
    if not (isinstance(dE, Rows) and isinstance(dV, Cols)):
        raise TypeError(f"cannot add {type(dV).__name__} transposed to {type(dE).__name__}")
    xp = backend.xp_of(dE.values)
    col_ids = [xp.arange(a, b, dtype=np.int64) for a, b, _ in dV.parts()]
    # the union of the row ids, sorted (np.union1d is this unique of the concatenation)
    index = xp.unique(xp.concatenate([dE.index, *col_ids])).astype(np.int64, copy=False)
    values = xp.zeros((len(index), dE.shape[1]), dtype=dE.values.dtype)
    # every id of a run [a, b) is in the union and nothing between them: a run is a block
    starts = xp.searchsorted(index, dV.runs[:, 0]).tolist()
    for start, (a, b, o) in zip(starts, dV.parts()):
        values[start : start + b - a] = dV.values[..., o : o + b - a].T
    values[xp.searchsorted(index, dE.index)] += dE.values  # unique rows: no repeats
    return Rows(index, values, dE.shape)
