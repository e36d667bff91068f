"""The recurrence drivers, shared by every cell and every task.

Row-vector convention (states are rows, so a batch is a matrix). The input layer
(``lm.inputs``) computes the drive D for a whole window at once; the cell (``lm.cells``)
says what one step does and how one step backpropagates; this module runs the loop over the
T steps forward and the full or horizon-K truncated pass backward, applies the reset masks,
and keeps the small per-step products on one BLAS thread. It knows nothing of any
particular cell.

Shapes: T time steps, B parallel streams, H hidden units, G gates, n_s the state width.
    D   (T, B, G*H)   input drive d_1..d_T
    S   (T+1, B, n_s) states; S[0] is the state carried in (zeros for a fresh start)
    dS  (T, B, n_s)   gradient from the head at s_1..s_T, not yet through later states

Truncation. With horizon K, the gradient that the loss at step t' sends back reaches the
state s_t (and through it the parameters, inputs and S[0]) only when t' - t <= K; with
K = None nothing is cut within the window (full BPTT). K = 0 keeps only the direct path from
each loss to the state it reads. The carried-in state S[0] is s_0, so the loss at t' reaches it
only when t' <= K. It is computed as a loop over the lags k = 0..K, each one cell ``vjp``
vectorised over all the steps: G_0 = dS, G_{k+1}[t-1] = vjp(G_k)[t] (the gradient of the loss
at t + k + 1 reaching s_t).

Resets. An optional mask ``keep`` of shape (T, B, 1) zeroes the incoming state where it is 0:
step t reads keep_t * s_{t-1}. The language model uses it to start every sentence from a
zero state during training (``--independent``); gradients do not flow through a reset.

Arrays. Everything is allocated with the array module of D and dS (``lm.backend.xp_of``):
numpy arrays give numpy arrays, CuPy arrays CuPy arrays, with the same code. The BLAS thread
limit costs a few microseconds per window either way and only matters on the host.
"""

from __future__ import annotations

from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

from lm import backend
from lm.backend import Array
from lm.cells import Cell

_BLAS = ThreadpoolController()


@contextmanager
def one_blas_thread():
    """Run the small per-step (B, n_s) x (n_s, G*H) products on one BLAS thread.

    Threading them gains nothing even on an idle machine, and on a busy one BLAS threads that
    wait for a descheduled partner at every time step made the recurrence about 100 times
    slower (measured on 2 shared cores). The big products over all T*B positions, outside
    the time loop, keep every thread. Entering and leaving costs about 3 microseconds.
    """
    with _BLAS.limit(limits=1, user_api="blas"):
        yield


def limit_blas_threads(n: int) -> None:
    """From now on, in this process, use at most n BLAS threads for every product (``lm
    --threads``). Two jobs that each spin two BLAS threads on two cores slow each other down
    several times over; one thread each avoids that. Every BLAS library loaded so far is
    limited (scipy may bring its own besides numpy's)."""
    ThreadpoolController().limit(limits=n, user_api="blas")


def forward(
    cell: Cell, p: dict, D: Array, S0: Array, keep: Array | None = None
) -> tuple[Array, dict]:
    """Run the recurrence over a window.

    Parameters
    ----------
    cell, p : the cell and the parameters (its arrays are read by name).
    D : (T, B, G*H) input drive.
    S0 : (B, n_s) state carried in.
    keep : optional (T, B, 1) mask; 0 resets the state entering that step.

    Returns
    -------
    S : (T+1, B, n_s) states with S[0] = S0.
    cache : what ``backward`` needs (the cell's, plus the reset mask).
    """
    xp = backend.xp_of(D)
    T, B, _ = D.shape
    H = D.shape[2] // cell.gates
    S = xp.empty((T + 1, B, S0.shape[1]), dtype=D.dtype)
    S[0] = S0
    cache = cell.new_cache(T, B, H, D.dtype, xp)
    with one_blas_thread():
        for t in range(T):
            S[t + 1] = cell.step(p, D[t], S[t] if keep is None else S[t] * keep[t], cache, t)
    cache["keep"], cache["width"] = keep, D.shape[2]
    return S, cache


def step(cell: Cell, p: dict, d: Array, s: Array) -> Array:
    """One step for scoring and generation: d (B, G*H), s (B, n_s) -> (B, n_s)."""
    with one_blas_thread():
        return cell.step(p, d, s)


def backward(
    cell: Cell, p: dict, dS: Array, S: Array, cache: dict, truncate: int | None = None
) -> tuple[Array, dict[str, Array], Array]:
    """Backpropagate through the recurrence.

    Parameters
    ----------
    dS : (T, B, n_s) gradient of the loss at the states s_1..s_T from the head.
    S, cache : from ``forward``.
    truncate : horizon K (see the module docstring); None for full BPTT.

    Returns
    -------
    dD : (T, B, G*H) gradient at the drive; the input layer turns it into gradients for its
        parameters and the inputs.
    grads : the cell's parameter gradients (e.g. {"W": (H, G*H)}).
    dS0 : (B, n_s) gradient at the carried-in state.
    """
    T = dS.shape[0]
    keep = cache["keep"]
    S_in = S[:-1] if keep is None else S[:-1] * keep  # the states each step actually read
    cache["S_in"] = S_in
    cell.prepare(p, cache, S)
    if truncate is None or truncate >= T:
        dD, dR, dS0 = _full(cell, p, cache, dS, keep)
    else:
        dD, dR, dS0 = _truncated(cell, p, cache, dS, truncate, keep)
    return dD, cell.weight_grads(p, S_in, dD if dR is None else dR), dS0


def _full(cell: Cell, p: dict, cache: dict, dS: Array, keep: Array | None):
    """Full BPTT, from t = T down to 1: the gradient at s_t is the head's plus what reaches
    it back from step t + 1."""
    xp = backend.xp_of(dS)
    T = dS.shape[0]
    dD = xp.empty(dS.shape[:2] + (cache["width"],), dtype=dS.dtype)
    dR = None
    carry = xp.zeros_like(dS[0])  # gradient reaching s_t through step t + 1
    with one_blas_thread():
        for t in range(T - 1, -1, -1):
            d_drive, d_rec, back = cell.vjp(p, cache, (dS[t] + carry)[None], t, t + 1)
            dD[t] = d_drive[0]
            if d_rec is not None:
                if dR is None:
                    dR = xp.empty_like(dD)
                dR[t] = d_rec[0]
            carry = back[0] if keep is None else back[0] * keep[t]
    return dD, dR, carry


def _truncated(cell: Cell, p: dict, cache: dict, dS: Array, K: int, keep: Array | None):
    """Horizon-K BPTT as a loop over the lags k = 0..K, each vectorised over all steps.

    G holds, at lag k, the gradient at the states s_1..s_{T-k} coming from the losses k steps
    later; one ``vjp`` turns it into its share of dD and dR and, for the next lag, into the
    gradient at s_0..s_{T-k-1}. Row 0 of that is the share of s_0 = S[0].
    """
    xp = backend.xp_of(dS)
    T = dS.shape[0]
    dD = xp.zeros(dS.shape[:2] + (cache["width"],), dtype=dS.dtype)
    dR = None
    dS0 = xp.zeros_like(dS[0])
    G = dS
    for k in range(K + 1):
        n = T - k
        d_drive, d_rec, back = cell.vjp(p, cache, G, 0, n, prev=k < K)
        dD[:n] += d_drive
        if d_rec is not None:
            if dR is None:
                dR = xp.zeros_like(dD)
            dR[:n] += d_rec
        if k == K:
            break
        if keep is not None:
            back *= keep[:n]
        dS0 += back[0]  # from the loss at step k + 1, reaching S[0]
        G = back[1:]
    return dD, dR, dS0
