"""Input layers: each turns the inputs x_t into the drive d_t = x_t U + b for ``lm.core``.

Kinds (shapes: T steps, B streams, H hidden, D input features, n_vocab words, E embedding):
    dense      x: (T, B, D) floats         d = x U + b                  U: (D, H)
    onehot     x: (T, B) int word ids       d = U[x] + b                 U: (n_vocab, H)
    embedding  x: (T, B) int word ids       d = E[x] U + b               E: (n_vocab, E), U: (E, H)

A one-hot x_t times U selects row x_t of U (the transpose of "column w_t of U" in the column
convention), so ``onehot`` gathers rows and never builds the one-hot matrix.

Dropout: an optional ``mask`` multiplies the input representation before it reaches the
recurrence (x for dense, the row U[x] for one-hot, the embedding E[x] for embedding inputs);
the bias b is never dropped.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray
KINDS = ("dense", "onehot", "embedding")


def drive(
    kind: str, params: dict[str, Array], x: Array, mask: Array | None = None
) -> tuple[Array, tuple]:
    """The drive d = x U + b, shape (..., H), and the cache the backward pass needs.

    ``x`` may have any leading shape: (T, B) ids or (T, B, D) floats give (T, B, H).
    ``mask`` (dropout) has the shape of the input representation: (T, B, D) for dense,
    (T, B, H) for one-hot, (T, B, E) for embedding.
    """
    U, b = params["U"], params["b"]
    if kind == "dense":
        xm = x if mask is None else x * mask
        return _project(xm, U) + b, (xm, mask)
    if kind == "onehot":
        rows = U[x] if mask is None else U[x] * mask
        return rows + b, (None, mask)
    if kind == "embedding":
        e = params["E"][x]  # (..., E)
        if mask is not None:
            e *= mask
        return _project(e, U) + b, (e, mask)
    raise ValueError(f"unknown input kind {kind!r}")


def drive_backward(
    kind: str, params: dict[str, Array], x: Array, cache: tuple, dD: Array
) -> tuple[dict[str, Array], Array | None]:
    """Gradients of the parameters of the input layer, and of dense inputs, from dD = dL/dd.

    Returns ({"U": dU, "b": db[, "E": dE]}, dX) where dX (same shape as x) is None for ids.
    """
    U = params["U"]
    H = U.shape[1]
    xm, mask = cache if cache is not None else (x, None)  # masked input, dropout mask
    dD2 = dD.reshape(-1, H)  # every position at once: (T*B, H)
    grads = {"b": dD2.sum(axis=0)}
    if kind == "dense":
        grads["U"] = xm.reshape(-1, U.shape[0]).T @ dD2
        dX = (dD2 @ U.T).reshape(x.shape)
        return grads, dX if mask is None else dX * mask
    ids = x.reshape(-1)
    if kind == "onehot":
        drows = dD2 if mask is None else (dD * mask).reshape(-1, H)
        grads["U"] = scatter_rows(ids, drows, U.shape[0])
        return grads, None
    if kind == "embedding":
        E = params["E"]
        grads["U"] = xm.reshape(-1, E.shape[1]).T @ dD2
        de = dD2 @ U.T
        if mask is not None:
            de *= mask.reshape(de.shape)
        grads["E"] = scatter_rows(ids, de, E.shape[0])
        return grads, None
    raise ValueError(f"unknown input kind {kind!r}")


def _project(X: Array, U: Array) -> Array:
    """X U for X of shape (..., D) as one 2-D product over all leading positions (a 3-D
    matmul runs as a loop of small products, about 3 times slower)."""
    return (X.reshape(-1, X.shape[-1]) @ U).reshape(*X.shape[:-1], U.shape[1])


def scatter_rows(ids: Array, rows: Array, n: int) -> Array:
    """G with G[i] = sum of rows[j] over j where ids[j] == i; shape (n, rows.shape[1]).

    The gradient of a row gather: repeated ids add up. Sorting the ids and summing runs of
    equal ids with one ``np.add.reduceat`` is several times faster than ``np.add.at``.
    """
    G = np.zeros((n, rows.shape[1]), dtype=rows.dtype)
    if len(ids) == 0:
        return G
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    G[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return G
