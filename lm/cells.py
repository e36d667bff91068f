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

``lm.core`` puts into the cache, before ``prepare``, "S_in" (T, B, n_s): the incoming states as
each step read them (after the reset mask), and "keep", the mask itself.

The cells, with PyTorch's equations and gate order, so that weights can be checked against
``torch.nn.GRU`` and ``torch.nn.LSTM`` exactly (x W_ih^T there is d = x U + b here, U = W_ih^T):

Elman (G = 1, n_s = H): s_t = f(a_t), a_t = d_t + s_{t-1} W, W (H, H); f one of ``lm.activations``.

GRU (G = 3, n_s = H), drive d = [d_r | d_z | d_n], recurrent products R = h W + b_h with
W (H, 3H) = W_hh^T and b_h (3H,) = b_hh (key "bh"):
    r = sigmoid(d_r + R_r),  z = sigmoid(d_z + R_z),  n = tanh(d_n + r * R_n)
    h' = (1 - z) * n + z * h
The reset gate multiplies the recurrent product after b_hn is added, so b_hn cannot be folded
into the input bias b_in (it can for r and z, where the two biases are redundant).

LSTM (G = 4, n_s = 2H, the state [h | c]), drive d = [d_i | d_f | d_g | d_o], W (H, 4H) =
W_hh^T, and the input bias b = b_ih + b_hh (one bias suffices: both add to the same sum):
    i, f, o = sigmoid(d + h W) at their blocks,  g = tanh(d_g + h W_g)
    c' = f * c + i * g,  h' = o * tanh(c')
The head reads h; the state carried between windows and reset at sentence starts is [h | c].

Initialisation. Elman: W orthogonal times 0.9 (times 2 for sigmoid units, whose slope is at
most 1/4). GRU and LSTM: each gate's (H, H) block of W orthogonal (gain 1: the gates
multiply the state by numbers below 1 anyway, so the recurrence cannot explode at the
start); recurrent biases 0. The LSTM's forget-gate bias starts at 1 (``drive_bias``, added to
the input layer's b): with f = sigmoid(1) ~ 0.73 the cell state is kept rather than halved
at every step at the start, so gradients reach further back (Gers et al. 2000; Jozefowicz
et al. 2015). Input weights U belong to the input layer (``lm.inputs``), with width G*H.

Arrays. ``init`` and ``drive_bias`` make host numpy arrays (random draws stay on the host;
``lm.backend.to_device`` moves them); every other method computes with the array module of
its inputs (``lm.backend.xp_of``), so a cell runs unchanged on numpy or CuPy arrays.
``step`` asks for it once per call.
"""

from __future__ import annotations

from typing import Protocol

from lm import activations, backend
from lm.backend import Array
from lm.backend import numpy as np


class Cell(Protocol):
    """What ``lm.core`` and ``lm.model.Network`` need of a cell."""

    name: str
    gates: int  # G: the input layer produces a drive of width G*H

    def state_size(self, H: int) -> int: ...
    def param_shapes(self, H: int) -> dict[str, tuple[int, ...]]: ...
    def init(self, H: int, rng: np.random.Generator) -> dict[str, Array]: ...
    def drive_bias(self, H: int) -> Array:
        """(G*H,) the initial value of the input layer's bias b (a gate's bias lives there)."""

    def new_cache(self, T: int, B: int, H: int, dtype, xp=np) -> dict[str, Array]:
        """The arrays ``step`` fills for the backward pass, allocated by the array module xp."""

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


def _block_orthogonal(H: int, G: int, rng: np.random.Generator) -> Array:
    """(H, G*H): G orthogonal (H, H) blocks side by side, one per gate."""
    return np.concatenate([orthogonal(H, 1.0, rng) for _ in range(G)], axis=1)


def sigmoid_(x: Array, xp=None) -> Array:
    """sigmoid(x) in place, as (1 + tanh(x / 2)) / 2 (no exp to overflow); ``xp`` the array
    module of x when the caller has it."""
    if xp is None:
        xp = backend.xp_of(x)
    x *= 0.5
    xp.tanh(x, out=x)
    x += 1
    x *= 0.5
    return x


class Elman:
    """s_t = f(d_t + s_{t-1} W) (module docstring)."""

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

    def drive_bias(self, H: int) -> Array:
        return np.zeros(H)

    def new_cache(self, T: int, B: int, H: int, dtype, xp=np) -> dict[str, Array]:
        return {"A": xp.empty((T, B, H), dtype=dtype)}  # pre-activations a_t

    def step(self, p: dict, d: Array, s: Array, cache: dict | None = None, t: int = 0) -> Array:
        if cache is None:
            a = s @ p["W"]
        else:
            a = backend.xp_of(s).matmul(s, p["W"], out=cache["A"][t])
        a += d
        return self.act(a)

    def hidden(self, S: Array) -> Array:
        return S

    def prepare(self, p: dict, cache: dict, S: Array) -> None:
        cache["F"] = self.act.derivative(cache["A"], S[1:])  # (T, B, H) f'(a_t), one pass
        # W^T as a contiguous copy: a (B, H) x (H, H) product with a transposed view as its
        # second operand ran about 2x slower in OpenBLAS at B = 20 (a contiguous one, ~17 us)
        cache["WT"] = backend.xp_of(p["W"]).ascontiguousarray(p["W"].T)

    def vjp(self, p: dict, cache: dict, g: Array, lo: int, hi: int, prev: bool = True):
        dA = g * cache["F"][lo:hi]  # through f
        back = _product(dA, cache["WT"]) if prev else None  # a_t = d_t + s_{t-1} W
        return dA, None, back

    def weight_grads(self, p: dict, S_in: Array, dR: Array) -> dict[str, Array]:
        H = S_in.shape[-1]
        return {"W": S_in.reshape(-1, H).T @ dR.reshape(-1, dR.shape[-1])}


class GRU:
    """The gated recurrent unit, PyTorch's equations (module docstring)."""

    name = "gru"
    gates = 3

    def state_size(self, H: int) -> int:
        return H

    def param_shapes(self, H: int) -> dict[str, tuple[int, ...]]:
        return {"W": (H, 3 * H), "bh": (3 * H,)}

    def init(self, H: int, rng: np.random.Generator) -> dict[str, Array]:
        return {"W": _block_orthogonal(H, 3, rng), "bh": np.zeros(3 * H)}

    def drive_bias(self, H: int) -> Array:
        return np.zeros(3 * H)

    def new_cache(self, T: int, B: int, H: int, dtype, xp=np) -> dict[str, Array]:
        return {
            "rz": xp.empty((T, B, 2 * H), dtype=dtype),  # the reset and update gates
            "n": xp.empty((T, B, H), dtype=dtype),  # the candidate
            "Rn": xp.empty((T, B, H), dtype=dtype),  # h W_hn + b_hn
        }

    def step(self, p: dict, d: Array, s: Array, cache: dict | None = None, t: int = 0) -> Array:
        xp = backend.xp_of(s)
        H = s.shape[1]
        R = s @ p["W"]  # (B, 3H)
        R += p["bh"]
        rz = d[:, : 2 * H] + R[:, : 2 * H]
        sigmoid_(rz, xp)
        n = R[:, 2 * H :] * rz[:, :H]  # r * (h W_hn + b_hn)
        n += d[:, 2 * H :]
        xp.tanh(n, out=n)
        if cache is not None:
            cache["rz"][t], cache["n"][t], cache["Rn"][t] = rz, n, R[:, 2 * H :]
        out = s - n  # h' = n + z (h - n)
        out *= rz[:, H:]
        out += n
        return out

    def hidden(self, S: Array) -> Array:
        return S

    def prepare(self, p: dict, cache: dict, S: Array) -> None:
        pass

    def vjp(self, p: dict, cache: dict, g: Array, lo: int, hi: int, prev: bool = True):
        H = g.shape[-1]
        rz, n, Rn = cache["rz"][lo:hi], cache["n"][lo:hi], cache["Rn"][lo:hi]
        r, z, h = rz[..., :H], rz[..., H:], cache["S_in"][lo:hi]
        xp = backend.xp_of(g)
        dD = xp.empty(g.shape[:-1] + (3 * H,), dtype=g.dtype)
        dR = xp.empty_like(dD)
        da_n = g * (1 - z) * (1 - n * n)  # through h' = (1 - z) n + z h, then n = tanh(a_n)
        dD[..., 2 * H :] = da_n
        dR[..., 2 * H :] = da_n * r  # a_n = d_n + r * R_n
        dD[..., :H] = da_n * Rn * r * (1 - r)  # through r = sigmoid(a_r)
        dD[..., H : 2 * H] = g * (h - n) * z * (1 - z)  # through z = sigmoid(a_z)
        dR[..., : 2 * H] = dD[..., : 2 * H]
        back = None
        if prev:
            back = _product(dR, p["W"].T)  # R = h W + b_h
            back += g * z  # the direct path z * h
        return dD, dR, back

    def weight_grads(self, p: dict, S_in: Array, dR: Array) -> dict[str, Array]:
        H = S_in.shape[-1]
        dR2 = dR.reshape(-1, dR.shape[-1])
        return {"W": S_in.reshape(-1, H).T @ dR2, "bh": dR2.sum(axis=0)}


class LSTM:
    """Long short-term memory, PyTorch's equations and gate order i, f, g, o; the state is
    [h | c] (module docstring)."""

    name = "lstm"
    gates = 4

    def state_size(self, H: int) -> int:
        return 2 * H

    def param_shapes(self, H: int) -> dict[str, tuple[int, ...]]:
        return {"W": (H, 4 * H)}

    def init(self, H: int, rng: np.random.Generator) -> dict[str, Array]:
        return {"W": _block_orthogonal(H, 4, rng)}

    def drive_bias(self, H: int) -> Array:
        b = np.zeros(4 * H)
        b[H : 2 * H] = 1.0  # the forget gate starts mostly open
        return b

    def new_cache(self, T: int, B: int, H: int, dtype, xp=np) -> dict[str, Array]:
        return {
            "gates": xp.empty((T, B, 4 * H), dtype=dtype),  # i, f, g, o after their functions
            "tc": xp.empty((T, B, H), dtype=dtype),  # tanh(c')
        }

    def step(self, p: dict, d: Array, s: Array, cache: dict | None = None, t: int = 0) -> Array:
        xp = backend.xp_of(s)
        H = s.shape[1] // 2
        h, c = s[:, :H], s[:, H:]
        A = xp.matmul(h, p["W"], out=cache["gates"][t]) if cache is not None else h @ p["W"]
        A += d
        g = A[:, 2 * H : 3 * H]
        xp.tanh(g, out=g)
        sigmoid_(A[:, : 2 * H], xp)
        sigmoid_(A[:, 3 * H :], xp)
        out = xp.empty_like(s)
        c_new = out[:, H:]
        xp.multiply(A[:, H : 2 * H], c, out=c_new)  # f * c
        c_new += A[:, :H] * g  # + i * g
        tc = xp.tanh(c_new) if cache is None else xp.tanh(c_new, out=cache["tc"][t])
        xp.multiply(A[:, 3 * H :], tc, out=out[:, :H])  # h' = o * tanh(c')
        return out

    def hidden(self, S: Array) -> Array:
        return S[..., : S.shape[-1] // 2]

    def prepare(self, p: dict, cache: dict, S: Array) -> None:
        pass

    def vjp(self, p: dict, cache: dict, g: Array, lo: int, hi: int, prev: bool = True):
        xp = backend.xp_of(g)
        H = g.shape[-1] // 2
        gates, tc = cache["gates"][lo:hi], cache["tc"][lo:hi]
        i, f, gg, o = (gates[..., k * H : (k + 1) * H] for k in range(4))
        c_in = cache["S_in"][lo:hi, :, H:]
        gh, gc = g[..., :H], g[..., H:]
        dc = gh * o * (1 - tc * tc)  # through h' = o tanh(c')
        dc += gc
        dA = xp.empty(g.shape[:-1] + (4 * H,), dtype=g.dtype)
        dA[..., :H] = dc * gg * i * (1 - i)  # c' = f c + i g; i = sigmoid(a_i)
        dA[..., H : 2 * H] = dc * c_in * f * (1 - f)
        dA[..., 2 * H : 3 * H] = dc * i * (1 - gg * gg)  # g = tanh(a_g)
        dA[..., 3 * H :] = gh * tc * o * (1 - o)
        back = None
        if prev:
            back = xp.empty_like(g)
            back[..., :H] = _product(dA, p["W"].T)  # a = d + h W
            xp.multiply(dc, f, out=back[..., H:])  # c' = f c + ...
        return dA, None, back

    def weight_grads(self, p: dict, S_in: Array, dR: Array) -> dict[str, Array]:
        H = S_in.shape[-1] // 2
        xp = backend.xp_of(S_in)
        h_in = xp.ascontiguousarray(S_in[..., :H]).reshape(-1, H)  # strided rows: slow in BLAS
        return {"W": h_in.T @ dR.reshape(-1, dR.shape[-1])}


NAMES = ("elman", "gru", "lstm")


def make(name: str, activation: str = "tanh", alpha: float = 0.01) -> Cell:
    """The cell called ``name`` (one of ``NAMES``); ``activation`` and ``alpha`` are the
    Elman cell's (the gated cells have fixed nonlinearities)."""
    if name == "elman":
        return Elman(activation, alpha)
    if name == "gru":
        return GRU()
    if name == "lstm":
        return LSTM()
    raise ValueError(f"unknown cell {name!r}; choose one of {', '.join(NAMES)}")
