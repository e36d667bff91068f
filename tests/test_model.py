"""The language model network: gradients, probabilities, shapes, state carrying."""

import numpy as np
import pytest

from lm import heads
from lm.model import RNNLM, ModelConfig

N_VOCAB = 7


def make_net(input="onehot", activation="tanh", hidden=5, dtype=np.float64, seed=0):
    config = ModelConfig(
        n_vocab=N_VOCAB,
        hidden=hidden,
        input=input,
        embed_dim=4 if input == "embedding" else 0,
        activation=activation,
    )
    net = RNNLM.create(config, np.random.default_rng(seed), dtype=dtype)
    for k in net.params:  # make every parameter matter (biases start at zero)
        net.params[k] += np.random.default_rng(seed + 1).normal(0, 0.3, net.params[k].shape)
    return net


def numeric_grad(f, X, eps=1e-6):
    G = np.zeros_like(X)
    for i in np.ndindex(X.shape):
        old = X[i]
        X[i] = old + eps
        hi = f()
        X[i] = old - eps
        lo = f()
        X[i] = old
        G[i] = (hi - lo) / (2 * eps)
    return G


@pytest.mark.parametrize("input", ["onehot", "embedding"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu"])
@pytest.mark.parametrize("independent", [False, True])
def test_whole_model_gradient(input, activation, independent):
    """Input layer + core + softmax head, full BPTT, float64 central differences."""
    rng = np.random.default_rng(3)
    net = make_net(input, activation)
    T, B = 6, 3
    x = rng.integers(0, N_VOCAB, (T, B))
    x[2, 1] = 2  # a sentence start inside the window
    y = rng.integers(0, N_VOCAB, (T, B))
    S0 = rng.normal(0, 0.5, (B, net.config.hidden))
    keep = (x != 2)[..., None].astype(float) if independent else None
    loss, grads, _ = net.loss_and_grads(x, y, S0, None, keep)

    def mean_loss():
        return net.loss_and_grads(x, y, S0, None, keep)[0] / (T * B)

    assert set(grads) == set(net.params)
    for name, P in net.params.items():
        num = numeric_grad(mean_loss, P)
        err = np.abs(num - grads[name]).max() / max(1e-8, np.abs(num).max())
        assert err < 1e-5, f"{name}: relative error {err:.2e} ({input}, {activation})"


def test_onehot_gather_equals_explicit_product():
    net = make_net("onehot")
    ids = np.array([[0, 3], [6, 3]])
    onehot = np.eye(N_VOCAB)[ids]  # (T, B, n_vocab), only in this test
    explicit = onehot @ net.params["U"] + net.params["b"]
    from lm import inputs

    gathered, _ = inputs.drive("onehot", net.params, ids)
    np.testing.assert_allclose(gathered, explicit, rtol=1e-12)


def test_every_next_word_distribution_sums_to_one():
    net = make_net("embedding", dtype=np.float32)
    s = np.random.default_rng(0).normal(0, 3, (10, net.config.hidden)).astype(np.float32)
    p = np.exp(net.next_logprobs(s).astype(np.float64))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


def test_log_softmax_is_stable_for_huge_logits():
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype=np.float32)
    lp = heads.log_softmax(z)
    assert np.isfinite(lp).all()
    np.testing.assert_allclose(lp[0, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(np.exp(lp[1]), 1 / 3, rtol=1e-6)
    S = np.ones((2, 1), dtype=np.float32)
    V = np.array([[1e4, -1e4, 0.0]], dtype=np.float32)
    lp_t = heads.target_logprobs(S, V, np.zeros(3, np.float32), np.array([0, 1]))
    assert np.isfinite(lp_t[0]) and lp_t[0] == pytest.approx(0.0)


@pytest.mark.parametrize("scale", [1.0, 30.0, 200.0, 1e4])
def test_target_logprobs_equal_log_softmax_at_every_scale(scale):
    """The unshifted fast path and its shifted fallback both agree with log_softmax: logits
    of +-scale put some rows past exp's float32 range (overflow) and some below it."""
    rng = np.random.default_rng(0)
    N, H, n_vocab = 300, 8, 50  # N >= 64: the two-thread path
    S = rng.normal(0, 1, (N, H)).astype(np.float32)
    S[::7] *= -1
    V = (rng.normal(0, scale / np.sqrt(H), (H, n_vocab))).astype(np.float32)
    c = rng.normal(0, scale, n_vocab).astype(np.float32)
    c[:10] -= 3 * scale  # some rows far below any exp range too
    targets = rng.integers(0, n_vocab, N)
    expected = heads.log_softmax((S @ V + c).astype(np.float64))[np.arange(N), targets]
    got = heads.target_logprobs(S, V, c, targets)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * max(1.0, scale / 30))


@pytest.mark.parametrize("scale", [1.0, 200.0])
def test_softmax_xent_equals_explicit_softmax_when_rows_need_the_shift(scale):
    """Loss and gradients against p - onehot computed in the textbook way, in float64; at
    scale 200 most rows overflow unshifted and take the shifted path."""
    rng = np.random.default_rng(1)
    N, H, n_vocab = 200, 6, 40
    S = rng.normal(0, 1, (N, H))
    V = rng.normal(0, scale / np.sqrt(H), (H, n_vocab))
    c = rng.normal(0, scale, n_vocab)
    targets = rng.integers(0, n_vocab, N)
    logp = heads.log_softmax(S @ V + c)
    G = np.exp(logp)
    G[np.arange(N), targets] -= 1  # dL/dz
    loss, dS, dV, dc = heads.softmax_xent(S, V, c, targets)
    assert loss == pytest.approx(-logp[np.arange(N), targets].sum(), rel=1e-10)
    np.testing.assert_allclose(dS, G @ V.T, rtol=1e-8, atol=1e-8 * scale)
    np.testing.assert_allclose(dV, S.T @ G, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(dc, G.sum(axis=0), rtol=1e-8, atol=1e-8)


def test_initial_loss_is_close_to_log_vocabulary():
    config = ModelConfig(n_vocab=1000, hidden=32)
    net = RNNLM.create(config, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 1000, (2, 20, 8))
    loss, _, _ = net.loss_and_grads(x, y, net.zero_state(8))
    assert loss / x.size == pytest.approx(np.log(1000), rel=0.02)


def test_batched_states_equal_single_streams():
    net = make_net("embedding", dtype=np.float32)
    x = np.random.default_rng(0).integers(0, N_VOCAB, (9, 4))
    S = net.states(x, net.zero_state(4))
    for b in range(4):
        Sb = net.states(x[:, b : b + 1], net.zero_state(1))
        np.testing.assert_allclose(S[:, b], Sb[:, 0], rtol=1e-6, atol=1e-7)


def test_two_windows_with_carried_state_equal_one_long_window():
    net = make_net("onehot")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, N_VOCAB, (2, 10, 3))
    lp_long, _ = net.target_logprobs(x, y, net.zero_state(3))
    lp1, S1 = net.target_logprobs(x[:4], y[:4], net.zero_state(3))
    lp2, _ = net.target_logprobs(x[4:], y[4:], S1[-1])
    np.testing.assert_allclose(np.concatenate([lp1, lp2]), lp_long, rtol=1e-12)


def test_step_by_step_equals_window():
    net = make_net("embedding")
    x = np.random.default_rng(0).integers(0, N_VOCAB, (5, 2))
    S = net.states(x, net.zero_state(2))
    s = net.zero_state(2)
    for t in range(5):
        s = net.step(x[t], s)
        np.testing.assert_allclose(s, S[t + 1], rtol=1e-12)


@pytest.mark.parametrize("input", ["onehot", "embedding"])
def test_gradient_with_dropout_masks(input):
    """With the masks held fixed (same rng seed each call) dropout is a fixed linear map."""
    rng = np.random.default_rng(5)
    net = make_net(input)
    T, B = 5, 2
    x, y = rng.integers(0, N_VOCAB, (2, T, B))
    S0 = np.zeros((B, net.config.hidden))

    def run():
        return net.loss_and_grads(x, y, S0, dropout=0.3, rng=np.random.default_rng(11))

    _, grads, _ = run()
    for name, P in net.params.items():
        num = numeric_grad(lambda: run()[0] / (T * B), P)
        err = np.abs(num - grads[name]).max() / max(1e-8, np.abs(num).max())
        assert err < 1e-5, f"{name}: relative error {err:.2e} ({input}, dropout)"
