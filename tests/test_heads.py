"""The output heads alone: stability of the softmax, its fast path against the textbook
computation, gradients by central differences, initialisation, next-word distributions."""

import itertools

import devices
import numpy as np
import pytest
from gradcheck import check_gradients

from lm import heads, sparse

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


# ----------------------------------------------------------------------------- class head


def class_head(n_vocab=11, bounds=(0, 3, 7, 11)):
    return heads.ClassSoftmax(n_vocab, bounds)


def class_params(head, H, rng, scale=1.0):
    p = head.init(H, rng, counts=rng.integers(0, 20, head.n_vocab))
    return {k: v + rng.normal(0, scale, v.shape) for k, v in p.items()}


def test_class_bounds_cut_the_cumulative_sqrt_frequency_into_equal_shares():
    """sqrt(counts) = 4, 3, 2, 2, 1, 1, 1, 1, 1 (total 16, cumulative 4, 7, 9, 11, 12, ...):
    class k ends with the first word whose cumulative share reaches (k + 1) / C."""
    counts = np.array([16, 9, 4, 4, 1, 1, 1, 1, 1])
    assert heads.class_bounds(counts, 2) == (0, 3, 9)  # 9 >= 16/2 at the 3rd word
    assert heads.class_bounds(counts, 4) == (0, 1, 3, 5, 9)  # 4 >= 4, 9 >= 8, 12 >= 12
    assert heads.class_bounds(counts, 1) == (0, 9)
    assert heads.class_bounds(counts, 9) == tuple(range(10))  # one word each


def test_class_bounds_always_give_c_non_empty_classes():
    """A word whose share spans several bins (here the first, with most of the mass) and
    words with no count (<s>) still leave exactly C non-empty, increasing classes."""
    rng = np.random.default_rng(0)
    for counts in ([10**6, 1, 1, 1, 1, 1], [0, 0, 0, 5, 0, 0, 0], [0] * 5, [1, 0, 10**6, 0, 0]):
        for C in range(1, len(counts) + 1):
            b = heads.class_bounds(np.array(counts), C)
            assert len(b) == C + 1 and b[0] == 0 and b[-1] == len(counts)
            assert all(x < y for x, y in itertools.pairwise(b)), (counts, C, b)
    zipf = rng.multinomial(10**5, 1 / np.arange(1, 1001) / np.sum(1 / np.arange(1, 1001)))
    widths = np.diff(heads.class_bounds(zipf, 30))
    assert widths[0] < widths[-1]  # frequent words in small classes, rare ones in big


@pytest.mark.parametrize("C", [0, 10, -1, 2.0, True])
def test_class_bounds_reject_a_number_of_classes_outside_the_vocabulary(C):
    with pytest.raises(heads.ClassCountError, match="1..9"):
        heads.class_bounds(np.ones(9), C)


@pytest.mark.parametrize(
    "bounds, message",
    [
        ((0, 3, 3, 11), "strictly increasing"),
        ((0, 5, 4, 11), "strictly increasing"),
        ((1, 5, 11), "from 0 to n_vocab"),
        ((0, 5, 10), "from 0 to n_vocab"),
        ((0, 5, 12), "from 0 to n_vocab"),
        ((0,), "at least 2"),
        ((0, 5.0, 11), "integers"),
        ((0, True, 11), "integers"),
        ("0,11", "list"),
        (None, "list"),
    ],
)
def test_check_bounds_rejects_boundaries_that_do_not_cover_the_vocabulary(bounds, message):
    with pytest.raises(ValueError, match=message):
        heads.check_bounds(bounds, 11)


@pytest.mark.parametrize("scale", [1.0, 0.25])
@pytest.mark.parametrize("bounds", [(0, 3, 7, 11), (0, 11), (0, 1, 2, 10, 11)])
def test_class_head_gradients_match_finite_differences(scale, bounds):
    """loss(p, S, y, scale): dS, dV, dc, dVc, dcc, float64; the sparse dV and dc as dense
    arrays, so the check also sees that they are exactly 0 outside the classes present."""
    rng = np.random.default_rng(5)
    N, H = 9, 4
    head = class_head(11, bounds)
    params = {"S": rng.normal(size=(N, H)), **class_params(head, H, rng)}
    y = rng.choice([0, 1, 4, 5, 9], N)  # class 1 of (0, 1, 2, 10, 11) is absent

    def loss(p):
        return scale * head.loss(p, p["S"], y)[0]

    _, dS, g = head.loss(params, params["S"], y, scale)
    assert isinstance(g["V"], sparse.Cols) and isinstance(g["c"], sparse.Cols)
    dense = {k: sparse.dense(v) for k, v in g.items()}
    check_gradients(loss, params, {"S": dS, **dense}, context=f"head=class {bounds}")


def test_class_head_touches_only_the_classes_present():
    head = class_head(11, (0, 3, 7, 9, 11))
    rng = np.random.default_rng(6)
    p = class_params(head, 4, rng)
    y = np.array([8, 1, 8, 10, 0])  # classes 0, 2, 3: runs [0, 3) and [7, 11)
    _, _, g = head.loss(p, rng.normal(size=(5, 4)), y)
    np.testing.assert_array_equal(g["V"].runs, [[0, 3], [7, 11]])
    assert g["V"].values.shape == (4, 7) and g["c"].values.shape == (7,)
    assert not sparse.dense(g["V"])[:, 3:7].any()


def test_class_head_loss_is_minus_the_target_logprobs_of_its_distributions():
    rng = np.random.default_rng(7)
    head = class_head()
    p = class_params(head, 5, rng)
    S = rng.normal(0, 2, (30, 5))
    y = rng.integers(0, 11, 30)
    lp = head.next_logprobs(p, S)
    np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(head.target_logprobs(p, S, y), lp[np.arange(30), y], rtol=1e-12)
    assert head.loss(p, S, y)[0] == pytest.approx(-lp[np.arange(30), y].sum(), rel=1e-12)


def test_class_head_is_stable_for_huge_logits():
    head = class_head()
    p = class_params(head, 3, np.random.default_rng(8))
    p = {k: v * 1e4 for k, v in p.items()}
    S = np.random.default_rng(9).normal(size=(6, 3)).astype(np.float32)
    p = {k: v.astype(np.float32) for k, v in p.items()}
    y = np.arange(6)
    loss, dS, g = head.loss(p, S, y)
    assert np.isfinite(loss) and np.isfinite(dS).all()
    assert all(np.isfinite(sparse.values(v)).all() for v in g.values())
    assert np.isfinite(head.next_logprobs(p, S)).all()
    assert np.isfinite(head.target_logprobs(p, S, y)).all()


def test_one_class_is_the_full_softmax():
    """With a single class, P(class) = 1 and the head is softmax(s V + c): loss, gradients
    and log-probabilities equal the full head's to rounding."""
    rng = np.random.default_rng(10)
    n_vocab, H, N = 13, 4, 25
    one, full = heads.ClassSoftmax(n_vocab, (0, n_vocab)), heads.Softmax(n_vocab)
    p = class_params(one, H, rng)
    S = rng.normal(size=(N, H))
    y = rng.integers(0, n_vocab, N)
    loss1, dS1, g1 = one.loss(p, S, y, 0.5)
    loss2, dS2, g2 = full.loss(p, S, y, 0.5)
    assert loss1 == pytest.approx(loss2, rel=1e-13)
    np.testing.assert_allclose(dS1, dS2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sparse.dense(g1["V"]), g2["V"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sparse.dense(g1["c"]), g2["c"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g1["Vc"], 0, atol=1e-14)  # P(class) = 1 whatever Vc is
    np.testing.assert_allclose(one.next_logprobs(p, S), full.next_logprobs(p, S), atol=1e-13)
    np.testing.assert_allclose(
        one.target_logprobs(p, S, y), full.target_logprobs(p, S, y), atol=1e-13
    )


def test_class_head_starts_at_the_unigram_distribution():
    """c = ln P(w | class), cc = ln P(class) of the smoothed counts: at s = 0 the head
    predicts log_unigram(counts), as the full head does; without counts, uniform."""
    counts = np.array([0, 0, 50, 20, 20, 9, 5, 3, 1, 1, 0])
    head = class_head(11, heads.class_bounds(counts, 3))
    p = head.init(4, np.random.default_rng(0), counts)
    lp = head.next_logprobs(p, np.zeros((1, 4)))[0]
    np.testing.assert_allclose(lp, heads.log_unigram(counts), rtol=1e-12)
    p = head.init(4, np.random.default_rng(0))
    np.testing.assert_allclose(head.next_logprobs(p, np.zeros((1, 4)))[0], -np.log(11))
    assert set(p) == {"V", "c", "Vc", "cc"}
    assert {k: v.shape for k, v in p.items()} == head.param_shapes(4)


def test_class_target_logprobs_in_chunks_equal_one_chunk(monkeypatch):
    rng = np.random.default_rng(11)
    head = class_head()
    p = class_params(head, 5, rng)
    S, y = rng.normal(size=(700, 5)), rng.integers(0, 11, 700)
    whole = head.target_logprobs(p, S, y)
    monkeypatch.setattr(heads, "_CHUNK_LOGITS", 1)  # chunks of 64 rows
    np.testing.assert_array_equal(head.target_logprobs(p, S, y), whole)
    assert head.target_logprobs(p, S[:0], y[:0]).shape == (0,)


def test_make_builds_each_head_by_name():
    assert isinstance(heads.make("full", 5), heads.Softmax)
    assert heads.make("class", 5, (0, 2, 5)).n_classes == 2
    with pytest.raises(ValueError, match="full, class"):
        heads.make("hierarchical", 5)


# ----------------------------------------------------------------------------- backends


@pytest.mark.parametrize("scale", [1.0, 200.0])  # 200: rows past exp's range, the shifted path
def test_softmax_and_linear_heads_on_every_backend(backends, scale):
    """float32 loss and gradients, target and next-word log-probabilities of the full softmax
    (N >= 64: numpy's two-thread path), and the linear head's loss, on the backend's arrays:
    equal to numpy's and left on the device."""
    rng = np.random.default_rng(2)
    N, H, n_vocab = 80, 6, 30
    S = rng.normal(0, 1, (N, H)).astype(np.float32)
    p = {"V": rng.normal(0, scale / np.sqrt(H), (H, n_vocab)).astype(np.float32)}
    p["c"] = rng.normal(0, 1, n_vocab).astype(np.float32)
    y = rng.integers(0, n_vocab, N)
    lin = {"V": rng.normal(size=(H, 2)).astype(np.float32), "c": np.ones(2, np.float32)}
    y_lin = rng.normal(size=(N, 2)).astype(np.float32)
    head, linear = heads.Softmax(n_vocab), heads.Linear(2)

    def everything(S, p, y, lin, y_lin):
        loss, dS, grads = head.loss(p, S, y, scale=1 / N)
        lin_loss, lin_dS, lin_grads = linear.loss(lin, S, y_lin, scale=0.5)
        return {
            "loss": loss,
            "dS": dS,
            "grads": grads,
            "target": head.target_logprobs(p, S, y),
            "next": head.next_logprobs(p, S[:5]),
            "softmax": heads.softmax(S[:5] @ p["V"]),
            "lin": [lin_loss, lin_dS, lin_grads],
        }

    host = (S, p, y, lin, y_lin)
    want = everything(*host)
    got = everything(*devices.put(backends, host))
    devices.assert_on(backends, {k: v for k, v in got.items() if k != "loss"})
    devices.assert_close(got, want, atol=1e-5 * max(1.0, scale / 30))


@pytest.mark.parametrize("bounds", [(0, 3, 7, 11), (0, 11), (0, 1, 2, 10, 11)])
def test_class_head_on_every_backend(backends, bounds):
    """float32 loss, sparse and dense gradients, target and next-word log-probabilities of the
    class head on the backend's arrays (its class tables follow them): equal to numpy's and
    left on the device."""
    rng = np.random.default_rng(3)
    N, H = 40, 5
    head = class_head(11, bounds)
    p = {k: v.astype(np.float32) for k, v in class_params(head, H, rng).items()}
    S = rng.normal(0, 1, (N, H)).astype(np.float32)
    y = rng.integers(0, 11, N)
    y[:4] = 10  # the last class is always present

    def everything(S, p, y):
        loss, dS, grads = head.loss(p, S, y, scale=1 / N)
        empty = head.loss(p, S[:0], y[:0])
        return {
            "loss": loss,
            "dS": dS,
            "grads": grads,
            "runs": grads["V"].runs,
            "empty": empty[1:],
            "target": head.target_logprobs(p, S, y),
            "next": head.next_logprobs(p, S[:6]),
        }

    want = everything(S, p, y)
    got = everything(*devices.put(backends, (S, p, y)))
    devices.assert_on(backends, {k: v for k, v in got.items() if k != "loss"})
    devices.assert_close(got, want)
