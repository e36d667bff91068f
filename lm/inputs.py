"""Input layers: each turns the inputs x_t into the drive d_t = x_t U + b for ``lm.core``.

Kinds (shapes: T steps, B streams, H hidden, D input features, n_vocab words, E embedding):
    dense      x: (T, B, D) floats         d = x U + b                  U: (D, H)
    onehot     x: (T, B) int word ids       d = U[x] + b                 U: (n_vocab, H)
    embedding  x: (T, B) int word ids       d = E[x] U + b               E: (n_vocab, E), U: (E, H)

A one-hot x_t times U selects row x_t of U (the transpose of "column w_t of U" in the column
convention), so ``onehot`` gathers rows and never builds the one-hot matrix.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray
KINDS = ("dense", "onehot", "embedding")


def drive(kind: str, params: dict[str, Array], x: Array) -> tuple[Array, Array | None]:
    """The drive d = x U + b, shape (..., H), and the cache the backward pass needs.

    ``x`` may have any leading shape: (T, B) ids or (T, B, D) floats give (T, B, H).
    """
    U, b = params["U"], params["b"]
    if kind == "dense":
        return x @ U + b, None
    if kind == "onehot":
        return U[x] + b, None
    if kind == "embedding":
        e = params["E"][x]  # (..., E)
        return e @ U + b, e
    raise ValueError(f"unknown input kind {kind!r}")


def drive_backward(
    kind: str, params: dict[str, Array], x: Array, cache: Array | None, dD: Array
) -> tuple[dict[str, Array], Array | None]:
    """Gradients of the parameters of the input layer, and of dense inputs, from dD = dL/dd.

    Returns ({"U": dU, "b": db[, "E": dE]}, dX) where dX (same shape as x) is None for ids.
    """
    U = params["U"]
    H = U.shape[1]
    dD2 = dD.reshape(-1, H)  # every position at once: (T*B, H)
    grads = {"b": dD2.sum(axis=0)}
    if kind == "dense":
        x2 = x.reshape(-1, U.shape[0])
        grads["U"] = x2.T @ dD2
        return grads, (dD2 @ U.T).reshape(x.shape)
    ids = x.reshape(-1)
    if kind == "onehot":
        grads["U"] = scatter_rows(ids, dD2, U.shape[0])
        return grads, None
    if kind == "embedding":
        E = params["E"]
        e2 = cache.reshape(-1, E.shape[1])
        grads["U"] = e2.T @ dD2
        grads["E"] = scatter_rows(ids, dD2 @ U.T, E.shape[0])
        return grads, None
    raise ValueError(f"unknown input kind {kind!r}")


def scatter_rows(ids: Array, rows: Array, n: int) -> Array:
    """G with G[i] = sum of rows[j] over j where ids[j] == i; shape (n, rows.shape[1]).

    The gradient of a row gather: repeated ids add up.
    """
    G = np.zeros((n, rows.shape[1]), dtype=rows.dtype)
    np.add.at(G, ids, rows)
    return G
