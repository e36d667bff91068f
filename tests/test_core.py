"""Gradient checks of the recurrent core, the dense input layer and the linear head (float64).

Shapes are tiny: T = 6 steps, B = 2 streams, D = 3 inputs, H = 4 hidden units. Truncated
gradients are not gradients of the loss, so they are checked twice: against a slow,
step-by-step implementation of the definition written here, and by central differences of a
surrogate loss in which the state K + 1 steps before each loss is held fixed.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_gradients, relative_error

from lm import activations, cells, core, heads, inputs

T, B, D, H, K_OUT = 6, 2, 3, 4, 2
ACTS = ("sigmoid", "tanh", "relu", "leaky_relu")
HORIZONS = (None, 0, 1, 3)
KINK = 1e-3  # relu-like activations are checked only where every |a| exceeds this


# ------------------------------------------------------------------------------- helpers

DENSE = inputs.Dense(D)


def cell_of(act):
    """The Elman cell with activation ``act``."""
    return cells.Elman(act.name, act.alpha or 0.01)


def fwd(Dr, params, S0, act, keep=None):
    """core.forward over the Elman cell: S (T+1, B, H) and the pre-activations A (T, B, H)."""
    S, cache = core.forward(cell_of(act), params, Dr, S0, keep)
    return S, cache["A"]


def bwd(dS, S, A, W, act, K=None, keep=None):
    """core.backward over the Elman cell from the states and pre-activations: dD, dW, dS0."""
    cache = {"A": A, "keep": keep, "width": A.shape[2]}
    dD, grads, dS0 = core.backward(cell_of(act), {"W": W}, dS, S, cache, K)
    return dD, grads["W"], dS0


def squared_error(S, V, c, y):
    """The linear head's (loss, dS, dV, dc)."""
    loss, dS, g = heads.Linear(V.shape[1]).loss({"V": V, "c": c}, S, y)
    return loss, dS, g["V"], g["c"]


def make_problem(act_name: str, with_keep: bool, seed: int = 0):
    """Random float64 params {U, b, W, S0, x}, upstream G (T, B, H), keep mask or None.

    For relu-like activations, seeds are skipped until no pre-activation is within KINK of
    the kink at 0, so central differences never cross it.
    """
    act = activations.get(act_name)
    for s in range(seed, seed + 100):
        rng = np.random.default_rng(s)
        params = {
            "U": rng.normal(0, 0.8, (D, H)),
            "b": rng.normal(0, 0.3, H),
            "W": rng.normal(0, 0.6, (H, H)),
            "S0": rng.normal(0, 0.5, (B, H)),
            "x": rng.normal(0, 1, (T, B, D)),
        }
        keep = None
        if with_keep:
            keep = np.ones((T, B, 1))
            keep[2, 0] = keep[4, 1] = keep[0, 1] = 0.0  # resets, one at the very first step
        _, A = run(params, act, keep)
        if act_name in ("sigmoid", "tanh") or np.min(np.abs(A)) > KINK:
            G = rng.normal(0, 1, (T, B, H))
            return act, params, G, keep
    raise RuntimeError("no seed keeps the pre-activations away from the kink")


def run(params, act, keep):
    """Forward through the dense input layer and the core: S (T+1, B, H), A (T, B, H)."""
    Dr, _ = DENSE.drive(params, params["x"])
    return fwd(Dr, params, params["S0"], act, keep)


def analytic_grads(params, act, keep, dS, truncate):
    """Gradients {U, b, W, S0, x} for the upstream dS (T, B, H) at the states s_1..s_T."""
    S, A = run(params, act, keep)
    dD, dW, dS0 = bwd(dS, S, A, params["W"], act, truncate, keep)
    grads, dx = DENSE.backward(params, params["x"], (params["x"], None), dD)
    return {"U": grads["U"], "b": grads["b"], "W": dW, "S0": dS0, "x": dx}


def surrogate_states(params, act, keep, K, S_fixed):
    """(T, B, H) whose row t'-1 is s_t' recomputed from the state K + 1 steps earlier, that
    state taken from S_fixed (a constant, so no gradient flows into it). When t' <= K the
    recomputation starts from params["S0"] itself. K = None gives the ordinary states."""
    S, _ = run(params, act, keep)
    if K is None:
        return S[1:]
    Dr, _ = DENSE.drive(params, params["x"])
    out = np.empty_like(S[1:])
    for tp in range(1, T + 1):
        j = tp - K - 1  # index of the held state; j < 0: the path reaches S0
        s = params["S0"] if j < 0 else S_fixed[j]
        for t in range(max(j, 0) + 1, tp + 1):
            s_in = s if keep is None else s * keep[t - 1]
            s = act(Dr[t - 1] + s_in @ params["W"])
        out[tp - 1] = s
    return out


def reference_backward(dS, S, A, W, act, K, keep):
    """The truncation definition, one loss at a time: the gradient of the loss at step t'
    walks back from s_t' through at most K + 1 pre-activations (s_t with t' - t <= K).

    Returns dA (T, B, H), dW (H, H), dS0 (B, H); K = None walks all the way back.
    """
    dA = np.zeros_like(A)
    dW = np.zeros_like(W)
    dS0 = np.zeros_like(S[0])
    for tp in range(1, T + 1):
        g = dS[tp - 1].copy()  # gradient at s_t, starting at t = t'
        for t in range(tp, -1, -1):
            if K is not None and tp - t > K:
                break  # s_t is too far back: cut
            if t == 0:
                dS0 += g
                break
            da = g * act.derivative(A[t - 1], S[t])  # through f at step t
            dA[t - 1] += da
            s_in = S[t - 1] if keep is None else S[t - 1] * keep[t - 1]
            dW += s_in.T @ da  # a_t = d_t + s_in W
            g = da @ W.T  # on to s_{t-1}
            if keep is not None:
                g = g * keep[t - 1]
    return dA, dW, dS0


def context(act_name, K, keep):
    return f"activation={act_name}, input=dense, truncate={K}, keep={keep is not None}"


# ----------------------------------------------------------------------- gradient checks


@pytest.mark.parametrize("with_keep", [False, True], ids=["no-reset", "reset"])
@pytest.mark.parametrize("K", HORIZONS, ids=lambda k: f"K={k}")
@pytest.mark.parametrize("act_name", ACTS)
def test_core_gradients_match_finite_differences(act_name, K, with_keep):
    """sum(G * states) with a random upstream G: U, b, W, S0 and the dense inputs x."""
    act, params, G, keep = make_problem(act_name, with_keep)
    S_fixed, _ = run(params, act, keep)
    S_fixed = S_fixed.copy()

    def loss(p):
        return float(np.sum(surrogate_states(p, act, keep, K, S_fixed) * G))

    grads = analytic_grads(params, act, keep, G, K)
    check_gradients(loss, params, grads, context=context(act_name, K, keep))


@pytest.mark.parametrize("with_keep", [False, True], ids=["no-reset", "reset"])
@pytest.mark.parametrize("K", HORIZONS, ids=lambda k: f"K={k}")
@pytest.mark.parametrize("act_name", ACTS)
def test_last_state_regression_gradients(act_name, K, with_keep):
    """The cosine model: dense input -> core -> linear head on s_T, loss |y - o|^2 / 2.
    Checks V and c of the head and U, b, W, S0, x through the last state only."""
    act, params, _, keep = make_problem(act_name, with_keep, seed=1)
    rng = np.random.default_rng(7)
    params["V"] = rng.normal(0, 1, (H, K_OUT))
    params["c"] = rng.normal(0, 1, K_OUT)
    y = rng.normal(0, 1, (B, K_OUT))
    S_fixed, _ = run(params, act, keep)
    S_fixed = S_fixed.copy()

    def loss(p):
        s_T = surrogate_states(p, act, keep, K, S_fixed)[-1]
        return 0.5 * float(np.sum((s_T @ p["V"] + p["c"] - y) ** 2))

    S, _ = run(params, act, keep)
    _, dS_T, dV, dc = squared_error(S[-1], params["V"], params["c"], y)
    dS = np.zeros((T, B, H))
    dS[-1] = dS_T  # only the last state feeds the head
    grads = analytic_grads(params, act, keep, dS, K)
    grads.update(V=dV, c=dc)
    check_gradients(loss, params, grads, context=context(act_name, K, keep) + ", head=linear")


def test_linear_head_alone(rng):
    """heads.Linear.loss: dS, dV, dc of sum |S V + c - y|^2 / 2 for N = 5 positions."""
    params = {"S": rng.normal(size=(5, H)), "V": rng.normal(size=(H, 3)), "c": rng.normal(size=3)}
    y = rng.normal(size=(5, 3))

    def loss(p):
        return 0.5 * float(np.sum((p["S"] @ p["V"] + p["c"] - y) ** 2))

    value, dS, dV, dc = squared_error(params["S"], params["V"], params["c"], y)
    assert value == pytest.approx(loss(params), rel=1e-12)
    check_gradients(loss, params, {"S": dS, "V": dV, "c": dc}, context="head=linear")


# ------------------------------------------------------------- truncation by definition


@pytest.mark.parametrize("with_keep", [False, True], ids=["no-reset", "reset"])
@pytest.mark.parametrize("K", HORIZONS, ids=lambda k: f"K={k}")
@pytest.mark.parametrize("act_name", ACTS)
def test_backward_matches_step_by_step_definition(act_name, K, with_keep):
    act, params, G, keep = make_problem(act_name, with_keep)
    S, A = run(params, act, keep)
    dA, dW, dS0 = bwd(G, S, A, params["W"], act, K, keep)
    ref_dA, ref_dW, ref_dS0 = reference_backward(G, S, A, params["W"], act, K, keep)
    for name, got, want in (("dA", dA, ref_dA), ("dW", dW, ref_dW), ("dS0", dS0, ref_dS0)):
        err = float(np.max(relative_error(got, want), initial=0.0))
        assert err < 1e-10, f"{name} differs from the definition by {err:.2e} " + context(
            act_name, K, keep
        )


@pytest.mark.parametrize("with_keep", [False, True], ids=["no-reset", "reset"])
def test_truncate_at_least_T_is_full_bptt(with_keep):
    act, params, G, keep = make_problem("tanh", with_keep)
    S, A = run(params, act, keep)
    full = bwd(G, S, A, params["W"], act, None, keep)
    for K in (T, T + 5):
        cut = bwd(G, S, A, params["W"], act, K, keep)
        for got, want in zip(cut, full):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    # K = T - 1 still reaches every s_t with t >= 1, but not s_0 from the loss at T.
    dD, dW, dS0 = bwd(G, S, A, params["W"], act, T - 1, keep)
    np.testing.assert_allclose(dD, full[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dW, full[1], rtol=1e-12, atol=1e-14)
    only_last = np.zeros_like(G)
    only_last[-1] = G[-1]
    from_last = bwd(only_last, S, A, params["W"], act, None, keep)[2]
    np.testing.assert_allclose(dS0, full[2] - from_last, rtol=1e-10, atol=1e-14)


def test_horizon_zero_keeps_only_the_direct_path():
    """K = 0: dA_t = dS_t * f'(a_t), and nothing reaches S0."""
    act, params, G, _ = make_problem("tanh", False)
    S, A = run(params, act, None)
    dA, _, dS0 = bwd(G, S, A, params["W"], act, 0)
    np.testing.assert_allclose(dA, G * (1 - S[1:] ** 2), rtol=1e-12)
    assert not dS0.any()


# ------------------------------------------------------------------------- forward pass


def test_batched_forward_equals_single_streams():
    act, params, _, _ = make_problem("tanh", False)
    S, _ = run(params, act, None)
    for i in range(B):
        Dr, _ = DENSE.drive(params, params["x"][:, i : i + 1])
        S_i, _ = fwd(Dr, params, params["S0"][i : i + 1], act)
        np.testing.assert_allclose(S_i[:, 0], S[:, i], rtol=1e-13)


def test_two_windows_with_carried_state_equal_one_long_window():
    act, params, _, _ = make_problem("sigmoid", False)
    Dr, _ = DENSE.drive(params, params["x"])
    S, _ = fwd(Dr, params, params["S0"], act)
    S1, _ = fwd(Dr[:3], params, params["S0"], act)
    S2, _ = fwd(Dr[3:], params, S1[-1], act)
    np.testing.assert_allclose(np.concatenate([S1, S2[1:]]), S, rtol=1e-13)


def test_reset_mask_starts_from_zero_state():
    """keep_t = 0 makes step t behave as if the incoming state were 0."""
    act, params, _, keep = make_problem("tanh", True)
    Dr, _ = DENSE.drive(params, params["x"])
    S, _ = fwd(Dr, params, params["S0"], act, keep)
    S_fresh, _ = fwd(Dr[2:, :1], params, np.zeros((1, H)), act)  # keep[2, 0] = 0
    np.testing.assert_allclose(S[3:, 0], S_fresh[1:, 0], rtol=1e-13)  # stream 0: no later reset


def test_step_matches_forward():
    act, params, _, _ = make_problem("relu", False)
    Dr, _ = DENSE.drive(params, params["x"])
    S, _ = fwd(Dr, params, params["S0"], act)
    s = params["S0"]
    for t in range(T):
        s = core.step(cell_of(act), params, Dr[t], s)
    np.testing.assert_allclose(s, S[-1], rtol=1e-13)
