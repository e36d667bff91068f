"""Every cell through the shared drivers (float64): central-difference gradients with full and
truncated BPTT and reset masks, truncation checked against a surrogate written from the
definition, forward consistency, and (when torch is importable) the same weights in
torch.nn.GRU / torch.nn.LSTM / torch.nn.RNN give the same states and log-probabilities.

Shapes are tiny: T = 6 steps, B = 2 streams, D = 3 inputs, H = 4 hidden units. The Elman
cell's own, activation by activation, are in test_core.py.
"""

from __future__ import annotations

import devices
import numpy as np
import pytest
from gradcheck import check_gradients

from lm import cells, core, inputs
from lm.model import ModelConfig, Network

T, B, D, H = 6, 2, 3, 4
CELLS = ("elman", "gru", "lstm")
HORIZONS = (None, 0, 1, 3)


def make_problem(name: str, with_keep: bool, seed: int = 0):
    """(cell, dense layer, float64 params {U, b, <cell's>, S0, x}, upstream G, keep or None)."""
    cell = cells.make(name)
    layer = inputs.Dense(D)
    rng = np.random.default_rng(seed)
    width, n_s = cell.gates * H, cell.state_size(H)
    params = {k: rng.normal(0, 0.6, s) for k, s in cell.param_shapes(H).items()}
    params.update(U=rng.normal(0, 0.8, (D, width)), b=rng.normal(0, 0.3, width))
    params.update(S0=rng.normal(0, 0.5, (B, n_s)), x=rng.normal(0, 1, (T, B, D)))
    keep = None
    if with_keep:
        keep = np.ones((T, B, 1))
        keep[2, 0] = keep[4, 1] = keep[0, 1] = 0.0  # resets, one at the very first step
    G = rng.normal(0, 1, (T, B, n_s))
    return cell, layer, params, G, keep


def run(cell, layer, params, keep):
    Dr, _ = layer.drive(params, params["x"])
    return core.forward(cell, params, Dr, params["S0"], keep)


def surrogate_states(cell, layer, params, keep, K, S_fixed):
    """(T, B, n_s) whose row t'-1 is s_t' recomputed by ``cell.step`` from the state K + 1
    steps earlier, taken from the constant S_fixed (from S0 itself when t' <= K): the
    truncation's definition, with no vector-Jacobian product involved."""
    Dr, _ = layer.drive(params, params["x"])
    out = np.empty((T,) + params["S0"].shape)
    for tp in range(1, T + 1):
        j = -1 if K is None else tp - K - 1  # index of the held state; j < 0: from S0
        s = params["S0"] if j < 0 else S_fixed[j]
        for t in range(max(j, 0) + 1, tp + 1):
            s = cell.step(params, Dr[t - 1], s if keep is None else s * keep[t - 1])
        out[tp - 1] = s
    return out


@pytest.mark.parametrize("with_keep", [False, True], ids=["no-reset", "reset"])
@pytest.mark.parametrize("K", HORIZONS, ids=lambda k: f"K={k}")
@pytest.mark.parametrize("name", CELLS)
def test_cell_gradients_match_the_truncation_definition(name, K, with_keep):
    """sum(G * states) for a random upstream G on the whole state ([h | c] for the LSTM):
    U, b, the cell's weights, S0 and the dense inputs x."""
    cell, layer, params, G, keep = make_problem(name, with_keep)
    S, cache = run(cell, layer, params, keep)
    S_fixed = S.copy()
    dD, grads, dS0 = core.backward(cell, params, G, S, cache, K)
    in_grads, dx = layer.backward(params, params["x"], layer.drive(params, params["x"])[1], dD)
    grads.update(in_grads, S0=dS0, x=dx)

    def loss(p):
        return float(np.sum(surrogate_states(cell, layer, p, keep, K, S_fixed) * G))

    check_gradients(loss, params, grads, context=f"cell={name}, truncate={K}, keep={with_keep}")


def float32(params: dict) -> dict:
    return {k: v.astype(np.float32) for k, v in params.items()}


@pytest.mark.parametrize("with_keep", [False, True], ids=["no-reset", "reset"])
@pytest.mark.parametrize("K", (None, 2), ids=lambda k: f"K={k}")
@pytest.mark.parametrize("name", CELLS)
def test_forward_and_vjp_on_every_backend(backends, name, K, with_keep):
    """float32 forward, step and full or truncated backward (every cell's vjp and weight
    gradients) on the backend's arrays: equal to numpy's and left on the device."""
    cell, layer, params, G, keep = make_problem(name, with_keep)
    params, G = float32(params), G.astype(np.float32)
    keep = None if keep is None else keep.astype(np.float32)

    def everything(params, G, keep):
        D, in_cache = layer.drive(params, params["x"])
        S, cache = core.forward(cell, params, D, params["S0"], keep)
        dD, grads, dS0 = core.backward(cell, params, G, S, cache, K)
        in_grads, dx = layer.backward(params, params["x"], in_cache, dD)
        s1 = core.step(cell, params, D[0], params["S0"])
        return {"S": S, "dD": dD, "dS0": dS0, "dx": dx, "s1": s1, **grads, **in_grads}

    want = everything(params, G, keep)
    got = everything(*devices.put(backends, (params, G, keep)))
    devices.assert_on(backends, got)
    devices.assert_close(got, want)


@pytest.mark.parametrize("name", CELLS)
def test_step_matches_forward_and_windows_chain(name):
    cell, layer, params, _, _ = make_problem(name, False)
    S, _ = run(cell, layer, params, None)
    Dr, _ = layer.drive(params, params["x"])
    s = params["S0"]
    for t in range(T):
        s = core.step(cell, params, Dr[t], s)
        np.testing.assert_allclose(s, S[t + 1], rtol=1e-13)
    S1, _ = core.forward(cell, params, Dr[:3], params["S0"])
    S2, _ = core.forward(cell, params, Dr[3:], S1[-1])
    np.testing.assert_allclose(np.concatenate([S1, S2[1:]]), S, rtol=1e-13)


@pytest.mark.parametrize("name", CELLS)
def test_batched_forward_equals_single_streams_and_resets_restart(name):
    cell, layer, params, _, keep = make_problem(name, True)
    Dr, _ = layer.drive(params, params["x"])
    S, _ = core.forward(cell, params, Dr, params["S0"])
    for i in range(B):
        S_i, _ = core.forward(cell, params, Dr[:, i : i + 1], params["S0"][i : i + 1])
        np.testing.assert_allclose(S_i[:, 0], S[:, i], rtol=1e-13)
    S, _ = core.forward(cell, params, Dr, params["S0"], keep)
    fresh, _ = core.forward(cell, params, Dr[2:, :1], np.zeros((1, cell.state_size(H))))
    np.testing.assert_allclose(S[3:, 0], fresh[1:, 0], rtol=1e-13)  # keep[2, 0] = 0


def test_lstm_head_reads_h_and_forget_bias_starts_at_one():
    cell = cells.LSTM()
    S = np.arange(2 * 3 * 8.0).reshape(2, 3, 8)
    np.testing.assert_array_equal(cell.hidden(S), S[..., :4])
    b = cell.drive_bias(4)
    assert b[4:8].tolist() == [1.0] * 4 and not b[:4].any() and not b[8:].any()


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_gated_cells_refuse_an_activation(name):
    with pytest.raises(ValueError, match="activation applies to the elman cell only"):
        ModelConfig(n_vocab=5, cell=name, activation="relu")


# ---------------------------------------------------------------- against PyTorch (optional)


def _torch_rnn(torch, name, n_in, hidden, layers=1):
    kind = {"elman": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[name]
    return kind(n_in, hidden, num_layers=layers, dtype=torch.float64)


def _copy_from_torch(rnn, name, hidden, layer=0) -> dict:
    """Our U, b and cell weights from a torch recurrent layer's (layer 0: U, b, W, bh;
    layer l: U{l+1}, b{l+1}, ...)."""
    weights = {k: getattr(rnn, f"{k}_l{layer}").detach().numpy() for k in
               ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}  # fmt: skip
    params = {"U": weights["weight_ih"].T.copy(), "W": weights["weight_hh"].T.copy()}
    if name == "gru":
        params.update(b=weights["bias_ih"].copy(), bh=weights["bias_hh"].copy())
    else:  # Elman and LSTM: the two biases add to the same sum
        params["b"] = weights["bias_ih"] + weights["bias_hh"]
    suffix = f"{layer + 1}" if layer else ""
    return {k + suffix: v for k, v in params.items()}


@pytest.mark.parametrize("name", CELLS)
def test_states_equal_torch(name):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rnn = _torch_rnn(torch, name, D, H)
    x = np.random.default_rng(0).normal(0, 1, (T, B, D))
    h0 = np.random.default_rng(1).normal(0, 0.5, (B, H))
    c0 = np.random.default_rng(2).normal(0, 0.5, (B, H))
    th0 = torch.from_numpy(h0)[None]
    state = (th0, torch.from_numpy(c0)[None]) if name == "lstm" else th0
    out, last = rnn(torch.from_numpy(x), state)
    params = _copy_from_torch(rnn, name, H)
    cell, layer = cells.make(name), inputs.Dense(D)
    S0 = np.concatenate([h0, c0], axis=1) if name == "lstm" else h0
    S, _ = core.forward(cell, params, layer.drive(params, x)[0], S0)
    np.testing.assert_allclose(cell.hidden(S[1:]), out.detach().numpy(), rtol=1e-5, atol=1e-7)
    if name == "lstm":
        np.testing.assert_allclose(S[-1, :, H:], last[1][0].detach().numpy(), rtol=1e-5)


@pytest.mark.parametrize("name", CELLS)
def test_language_model_logprobs_equal_torch(name):
    """Embedding -> cell -> softmax with the same weights in torch: ln p of every target."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    n_vocab, n_embed = 11, 3
    emb = torch.nn.Embedding(n_vocab, n_embed, dtype=torch.float64)
    rnn = _torch_rnn(torch, name, n_embed, H)
    out_layer = torch.nn.Linear(H, n_vocab, dtype=torch.float64)
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, n_vocab, (2, 7, 3))
    hidden, _ = rnn(emb(torch.from_numpy(x)))
    logp = torch.log_softmax(out_layer(hidden), dim=-1).detach().numpy()
    expected = np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]  # (T, B)
    config = ModelConfig(n_vocab=n_vocab, hidden=H, input="embedding", embed_dim=n_embed, cell=name)
    params = _copy_from_torch(rnn, name, H)
    params.update(
        E=emb.weight.detach().numpy().copy(),
        V=out_layer.weight.detach().numpy().T.copy(),
        c=out_layer.bias.detach().numpy().copy(),
    )
    net = Network.build(config, params)
    lp, _ = net.target_logprobs(x, y, net.zero_state(3))
    np.testing.assert_allclose(lp, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", CELLS)
def test_two_layer_language_model_logprobs_and_gradients_equal_torch(name):
    """Embedding -> two stacked cells (torch's num_layers=2) -> softmax: ln p of every target
    and the gradient of their mean at every weight, against torch's autograd."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    n_vocab, n_embed = 11, 3
    emb = torch.nn.Embedding(n_vocab, n_embed, dtype=torch.float64)
    rnn = _torch_rnn(torch, name, n_embed, H, layers=2)
    out_layer = torch.nn.Linear(H, n_vocab, dtype=torch.float64)
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, n_vocab, (2, 7, 3))
    hidden, _ = rnn(emb(torch.from_numpy(x)))
    logp = torch.log_softmax(out_layer(hidden), dim=-1)
    picked = torch.gather(logp, -1, torch.from_numpy(y)[..., None])[..., 0]  # (T, B)
    (-picked.mean()).backward()
    config = ModelConfig(
        n_vocab=n_vocab, hidden=H, input="embedding", embed_dim=n_embed, cell=name, layers=2
    )
    params = {**_copy_from_torch(rnn, name, H, 0), **_copy_from_torch(rnn, name, H, 1)}
    params.update(
        E=emb.weight.detach().numpy().copy(),
        V=out_layer.weight.detach().numpy().T.copy(),
        c=out_layer.bias.detach().numpy().copy(),
    )
    net = Network.build(config, params)
    lp, _ = net.target_logprobs(x, y, net.zero_state(3))
    np.testing.assert_allclose(lp, picked.detach().numpy(), rtol=1e-5, atol=1e-7)
    _, grads, _ = net.loss_and_grads(x, y, net.zero_state(3))
    expected = {"E": emb.weight.grad.numpy(), "V": out_layer.weight.grad.numpy().T,
                "c": out_layer.bias.grad.numpy()}  # fmt: skip
    for layer, suffix in ((0, ""), (1, "2")):
        g = {k: getattr(rnn, f"{k}_l{layer}").grad.numpy() for k in
             ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}  # fmt: skip
        expected["U" + suffix], expected["W" + suffix] = g["weight_ih"].T, g["weight_hh"].T
        if name == "gru":  # b_hh is its own array; b_ih's gradient is the drive's
            expected["b" + suffix], expected["bh" + suffix] = g["bias_ih"], g["bias_hh"]
        else:  # one bias b = b_ih + b_hh: both have the same gradient
            expected["b" + suffix] = g["bias_ih"]
    assert set(expected) == set(grads)
    for k, g in expected.items():
        np.testing.assert_allclose(grads[k], g, rtol=1e-6, atol=1e-9, err_msg=k)
