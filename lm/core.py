"""The recurrent core shared by every model: s_t = f(a_t), a_t = d_t + s_{t-1} W.

Row-vector convention (states are rows, so a batch is a matrix): with the input drive
d_t = x_t U + b computed by an input layer (``lm.inputs``), the core runs only the
recurrence. This is the transpose of the column form s_t = f(U x_t + W s_{t-1} + b).

Shapes: T time steps, B parallel streams, H hidden units.
    D   (T, B, H)    input drive d_1..d_T
    S   (T+1, B, H)  states; S[0] is the state carried in (zeros for a fresh start), S[t] = s_t
    A   (T, B, H)    pre-activations; A[t-1] = a_t

Truncation. With horizon K, the gradient that the loss at step t' sends back reaches the
state s_t (and through a_t the parameters, inputs and S[0]) only when t' - t <= K; with
K = None nothing is cut within the window (full BPTT). K = 0 keeps only the direct path from
each loss to the state it reads. The carried-in state S[0] is s_0, so the loss at t' reaches it
only when t' <= K.

Resets. An optional mask ``keep`` of shape (T, B, 1) zeroes the incoming state where it is 0:
a_t = d_t + (keep_t * s_{t-1}) W. The language model uses it to start every sentence from a
zero state during training (``--independent``); gradients do not flow through a reset.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from threadpoolctl import ThreadpoolController

from lm.activations import Activation

Array = np.ndarray
_BLAS = ThreadpoolController()


@contextmanager
def one_blas_thread():
    """Run the small per-step (B, H) x (H, H) products on one BLAS thread.

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
    D: Array, W: Array, S0: Array, act: Activation, keep: Array | None = None
) -> tuple[Array, Array]:
    """Run the recurrence over a window.

    Parameters
    ----------
    D : (T, B, H) input drive, x_t U + b.
    W : (H, H) recurrent weights.
    S0 : (B, H) state carried in.
    act : the activation f.
    keep : optional (T, B, 1) mask; 0 resets the state entering that step.

    Returns
    -------
    S : (T+1, B, H) states with S[0] = S0.
    A : (T, B, H) pre-activations (kept for the backward pass).
    """
    T, B, H = D.shape
    S = np.empty((T + 1, B, H), dtype=D.dtype)
    A = np.empty_like(D)
    S[0] = S0
    with one_blas_thread():
        for t in range(T):
            np.matmul(S[t] if keep is None else S[t] * keep[t], W, out=A[t])
            A[t] += D[t]
            S[t + 1] = act(A[t])
    return S, A


def step(d: Array, W: Array, s: Array, act: Activation) -> Array:
    """One step s' = f(d + s W) for scoring and generation. d, s: (B, H) -> (B, H)."""
    with one_blas_thread():
        return act(d + s @ W)


def backward(
    dS: Array,
    S: Array,
    A: Array,
    W: Array,
    act: Activation,
    truncate: int | None = None,
    keep: Array | None = None,
) -> tuple[Array, Array, Array]:
    """Backpropagate through the recurrence.

    Parameters
    ----------
    dS : (T, B, H) gradient of the loss with respect to each state s_1..s_T from the head,
        not yet including paths through later states.
    S, A : from ``forward``.
    W : (H, H) recurrent weights.
    truncate : horizon K (see the module docstring); None for full BPTT.
    keep : the reset mask given to ``forward``, or None.

    Returns
    -------
    dD : (T, B, H) gradient with respect to the drive (= with respect to a_t); the input layer
        turns it into gradients for U, b and the inputs.
    dW : (H, H)
    dS0 : (B, H) gradient with respect to the carried-in state.
    """
    T = dS.shape[0]
    F = act.derivative(A, S[1:])  # (T, B, H) f'(a_t)
    if truncate is None or truncate >= T:
        dD, dS0 = _full(dS, F, W, keep)
    else:
        dD, dS0 = _truncated(dS, F, W, truncate, keep)
    H = W.shape[0]
    S_in = S[:-1] if keep is None else S[:-1] * keep  # the states each a_t actually read
    dW = S_in.reshape(-1, H).T @ dD.reshape(-1, H)  # one product over all T*B positions
    return dD, dW, dS0


def _full(dS: Array, F: Array, W: Array, keep: Array | None) -> tuple[Array, Array]:
    """Full BPTT: dA_t = (dS_t + dA_{t+1} W^T) * f'(a_t), from t = T down to 1."""
    T = dS.shape[0]
    dD = np.empty_like(dS)
    carry = np.zeros_like(dS[0])  # gradient reaching s_t through a_{t+1}
    with one_blas_thread():
        for t in range(T - 1, -1, -1):
            np.multiply(dS[t] + carry, F[t], out=dD[t])
            carry = dD[t] @ W.T
            if keep is not None:
                carry *= keep[t]
    return dD, carry


def _truncated(dS: Array, F: Array, W: Array, K: int, keep: Array | None) -> tuple[Array, Array]:
    """Horizon-K BPTT as a loop over lags k = 0..K, each vectorised over all steps.

    G_k[t] is the gradient at a_t that comes from the loss k steps later:
    G_0[t] = dS_t * f'(a_t), G_k[t] = (G_{k-1}[t+1] W^T) * f'(a_t).
    """
    T = dS.shape[0]
    G = dS * F
    dD = G.copy()
    dS0 = np.zeros_like(dS[0])
    for k in range(1, K + 1):
        back = G @ W.T  # gradient reaching s_{t-1} from a_t, for each t
        if keep is not None:
            back *= keep[: T - k + 1]
        dS0 += back[0]  # from the loss at step k (G[0] at lag k-1), reaching S[0]
        G = back[1:] * F[: T - k]
        dD[: T - k] += G
    return dD, dS0
