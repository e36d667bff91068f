"""Input layers: each turns the inputs x_t into the drive d_t = x_t U + b for the cell.

Kinds (shapes: T steps, B streams, n_in input features, n_vocab words, n_embed the embedding
width, and ``width`` = G*H the drive's width, G the cell's gates):
    dense      x: (T, B, n_in) floats      d = x U + b          U: (n_in, width)
    onehot     x: (T, B) int word ids      d = U[x] + b         U: (n_vocab, width)
    embedding  x: (T, B) int word ids      d = E[x] U + b       E: (n_vocab, n_embed), U: (n_embed, width)

A one-hot x_t times U selects row x_t of U (the transpose of "column w_t of U" in the column
convention), so ``OneHot`` gathers rows and never builds the one-hot matrix.

Dropout: an optional ``mask`` multiplies the input representation before it reaches the
recurrence (x for dense, the row U[x] for one-hot, the embedding E[x] for embedding inputs);
the bias b is never dropped. ``feature_width`` is the width of that representation, so the
network draws masks without knowing the kind.

Sparse gradients: ``backward(..., sparse=True)`` returns the gradient of the vocabulary-sized
matrix (U of one-hot, E of embedding inputs) as an ``lm.sparse.Rows`` of the window's ids,
so that an optimiser can update those rows only (see ``lm.optim``); the default is dense.

Nothing outside this module branches on the input kind: ``make`` builds a layer by name, and
``KINDS`` lists the names.
"""

from __future__ import annotations

from lm.backend import Array
from lm.backend import numpy as np
from lm.sparse import Rows


class Dense:
    """d = x U + b for float inputs x (..., n_in). Initialisation: U uniform in
    +-1/sqrt(n_in), b = 0."""

    kind = "dense"

    def __init__(self, n_in: int):
        self.n_in = n_in

    def param_shapes(self, width: int) -> dict[str, tuple[int, ...]]:
        return {"U": (self.n_in, width), "b": (width,)}

    def init(self, width: int, rng: np.random.Generator) -> dict[str, Array]:
        scale = 1 / np.sqrt(self.n_in)
        return {"U": rng.uniform(-scale, scale, (self.n_in, width)), "b": np.zeros(width)}

    def feature_width(self, p: dict) -> int:
        return p["U"].shape[0]

    def drive(self, p: dict, x: Array, mask: Array | None = None) -> tuple[Array, tuple]:
        """(..., n_in) -> (..., width), and the cache ``backward`` needs."""
        xm = x if mask is None else x * mask
        return _project(xm, p["U"]) + p["b"], (xm, mask)

    def backward(
        self, p: dict, x: Array, cache: tuple, dD: Array, sparse: bool = False
    ) -> tuple[dict, Array]:
        """Gradients {"U", "b"} and dX (the shape of x) from dD = dL/dd (always dense)."""
        U = p["U"]
        xm, mask = cache
        dD2 = dD.reshape(-1, U.shape[1])  # every position at once
        grads = {"U": xm.reshape(-1, U.shape[0]).T @ dD2, "b": dD2.sum(axis=0)}
        dX = (dD2 @ U.T).reshape(x.shape)
        return grads, dX if mask is None else dX * mask


class OneHot:
    """d = U[x] + b for word ids x. Initialisation: rows of U uniform in +-0.1*sqrt(3) (a
    one-hot row acts like an embedding), b = 0."""

    kind = "onehot"

    def __init__(self, n_vocab: int):
        self.n_vocab = n_vocab

    def param_shapes(self, width: int) -> dict[str, tuple[int, ...]]:
        return {"U": (self.n_vocab, width), "b": (width,)}

    def init(self, width: int, rng: np.random.Generator) -> dict[str, Array]:
        scale = 0.1 * np.sqrt(3)
        return {"U": rng.uniform(-scale, scale, (self.n_vocab, width)), "b": np.zeros(width)}

    def feature_width(self, p: dict) -> int:
        return p["U"].shape[1]

    def drive(self, p: dict, x: Array, mask: Array | None = None) -> tuple[Array, tuple]:
        rows = p["U"][x] if mask is None else p["U"][x] * mask
        return rows + p["b"], (None, mask)

    def backward(
        self, p: dict, x: Array, cache: tuple, dD: Array, sparse: bool = False
    ) -> tuple[dict, None]:
        """Gradients {"U", "b"}; with ``sparse`` dU is an ``lm.sparse.Rows`` of the ids in x."""
        U = p["U"]
        _, mask = cache
        drows = dD if mask is None else dD * mask
        drows = drows.reshape(-1, U.shape[1])
        return {"U": row_grads(x.reshape(-1), drows, U.shape[0], sparse), "b": drows_sum(dD)}, None


class Embedding:
    """d = E[x] U + b for word ids x. Initialisation: E uniform in +-0.1, U uniform in
    +-1/sqrt(n_embed), b = 0."""

    kind = "embedding"

    def __init__(self, n_vocab: int, n_embed: int):
        self.n_vocab, self.n_embed = n_vocab, n_embed

    def param_shapes(self, width: int) -> dict[str, tuple[int, ...]]:
        return {"E": (self.n_vocab, self.n_embed), "U": (self.n_embed, width), "b": (width,)}

    def init(self, width: int, rng: np.random.Generator) -> dict[str, Array]:
        E = rng.uniform(-0.1, 0.1, (self.n_vocab, self.n_embed))
        scale = 1 / np.sqrt(self.n_embed)
        U = rng.uniform(-scale, scale, (self.n_embed, width))
        return {"E": E, "U": U, "b": np.zeros(width)}

    def feature_width(self, p: dict) -> int:
        return p["E"].shape[1]

    def drive(self, p: dict, x: Array, mask: Array | None = None) -> tuple[Array, tuple]:
        e = p["E"][x]  # (..., n_embed), a copy
        if mask is not None:
            e *= mask
        return _project(e, p["U"]) + p["b"], (e, mask)

    def backward(
        self, p: dict, x: Array, cache: tuple, dD: Array, sparse: bool = False
    ) -> tuple[dict, None]:
        """Gradients {"E", "U", "b"}; with ``sparse`` dE is an ``lm.sparse.Rows``."""
        E, U = p["E"], p["U"]
        e, mask = cache
        dD2 = dD.reshape(-1, U.shape[1])
        de = dD2 @ U.T  # (T*B, n_embed)
        if mask is not None:
            de *= mask.reshape(de.shape)
        grads = {"U": e.reshape(-1, E.shape[1]).T @ dD2, "b": dD2.sum(axis=0)}
        grads["E"] = row_grads(x.reshape(-1), de, E.shape[0], sparse)
        return grads, None


KINDS = ("dense", "onehot", "embedding")
WORD_KINDS = ("onehot", "embedding")  # the kinds a language model reads words with


def make(kind: str, n_in: int, n_embed: int = 0):
    """The input layer called ``kind``: ``n_in`` is the number of input features (dense) or
    the vocabulary size (onehot, embedding); ``n_embed`` the embedding width."""
    if kind == "dense":
        return Dense(n_in)
    if kind == "onehot":
        return OneHot(n_in)
    if kind == "embedding":
        return Embedding(n_in, n_embed)
    raise ValueError(f"unknown input kind {kind!r}; choose one of {', '.join(KINDS)}")


def drows_sum(dD: Array) -> Array:
    """db = the sum of dD over every position: (..., width) -> (width,)."""
    return dD.reshape(-1, dD.shape[-1]).sum(axis=0)


def _project(X: Array, U: Array) -> Array:
    """X U for X of shape (..., n) as one 2-D product over all leading positions (a 3-D
    matmul runs as a loop of small products, about 3 times slower)."""
    return (X.reshape(-1, X.shape[-1]) @ U).reshape(*X.shape[:-1], U.shape[1])


def scatter_rows(ids: Array, rows: Array, n: int) -> Array:
    """G with G[i] = sum of rows[j] over j where ids[j] == i; shape (n, rows.shape[1]).

    The gradient of a row gather: repeated ids add up. Sorting the ids and summing runs of
    equal ids with one ``np.add.reduceat`` (``lm.sparse.Rows.sum_of``; a cumulative-sum
    formulation on CuPy) is several times faster than ``np.add.at``.
    """
    return Rows.sum_of(ids, rows, n).dense()


def row_grads(ids: Array, rows: Array, n: int, sparse: bool = False):
    """The gradient of a row gather as ``scatter_rows`` (dense) or, with ``sparse``, as the
    ``lm.sparse.Rows`` of the ids present (the same sums, never scattered)."""
    return Rows.sum_of(ids, rows, n) if sparse else scatter_rows(ids, rows, n)
