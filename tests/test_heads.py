"""The output heads alone: stability of the softmax, its fast path against the textbook
computation, gradients by central differences, initialisation, next-word distributions."""

import numpy as np
import pytest
from gradcheck import check_gradients

from lm import heads

SOFTMAX3 = heads.Softmax(3)


def test_log_softmax_is_stable_for_huge_logits():
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype=np.float32)
    lp = heads.log_softmax(z)
    assert np.isfinite(lp).all()
    np.testing.assert_allclose(lp[0, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(np.exp(lp[1]), 1 / 3, rtol=1e-6)
    S = np.ones((2, 1), dtype=np.float32)
    V = np.array([[1e4, -1e4, 0.0]], dtype=np.float32)
    lp_t = SOFTMAX3.target_logprobs({"V": V, "c": np.zeros(3, np.float32)}, S, np.array([0, 1]))
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
    got = heads.Softmax(n_vocab).target_logprobs({"V": V, "c": c}, S, targets)
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
    loss, dS, g = heads.Softmax(n_vocab).loss({"V": V, "c": c}, S, targets)
    dV, dc = g["V"], g["c"]
    assert loss == pytest.approx(-logp[np.arange(N), targets].sum(), rel=1e-10)
    np.testing.assert_allclose(dS, G @ V.T, rtol=1e-8, atol=1e-8 * scale)
    np.testing.assert_allclose(dV, S.T @ G, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(dc, G.sum(axis=0), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_softmax_head_gradients_match_finite_differences(scale):
    """loss(p, S, y, scale): dS, dV, dc of scale * sum_i -ln p_i[y_i], float64."""
    rng = np.random.default_rng(2)
    N, H, n_vocab = 7, 4, 5
    head = heads.Softmax(n_vocab)
    params = {
        "S": rng.normal(size=(N, H)),
        "V": rng.normal(size=(H, n_vocab)),
        "c": rng.normal(size=n_vocab),
    }
    y = rng.integers(0, n_vocab, N)

    def loss(p):
        return scale * head.loss(p, p["S"], y)[0]

    _, dS, g = head.loss(params, params["S"], y, scale)
    check_gradients(loss, params, {"S": dS, **g}, context=f"head=full, scale={scale}")


def test_next_logprobs_are_distributions_and_match_target_logprobs():
    rng = np.random.default_rng(3)
    head = heads.Softmax(9)
    p = {"V": rng.normal(size=(4, 9)), "c": rng.normal(size=9)}
    S = rng.normal(size=(6, 4))
    lp = head.next_logprobs(p, S)
    np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0, rtol=1e-12)
    y = rng.integers(0, 9, 6)
    np.testing.assert_allclose(head.target_logprobs(p, S, y), lp[np.arange(6), y], rtol=1e-10)


def test_init_starts_the_bias_at_the_log_unigram_frequencies():
    head = heads.Softmax(4)
    p = head.init(3, np.random.default_rng(0), counts=np.array([0, 1, 3, 6]))
    np.testing.assert_allclose(np.exp(p["c"]), (np.array([0, 1, 3, 6]) + 0.1) / 10.4)
    assert p["V"].shape == (3, 4) and np.abs(p["V"]).max() <= 1 / np.sqrt(3)
    assert not head.init(3, np.random.default_rng(0))["c"].any()


def test_linear_head_scales_its_gradients_not_its_loss():
    rng = np.random.default_rng(4)
    head = heads.Linear(2)
    p = head.init(3, rng)
    S, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    loss1, dS1, g1 = head.loss(p, S, y)
    loss2, dS2, g2 = head.loss(p, S, y, scale=0.2)
    assert loss1 == loss2
    np.testing.assert_allclose(dS2, 0.2 * dS1)
    np.testing.assert_allclose(g2["V"], 0.2 * g1["V"])
