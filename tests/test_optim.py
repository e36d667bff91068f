"""Gradient clipping (value and global norm) and the optimisers' basic updates."""

from __future__ import annotations

import copy
import warnings

import devices
import numpy as np
import pytest

from lm import optim, sparse


def grads_of(rng, scale: float) -> dict[str, np.ndarray]:
    return {
        "U": scale * rng.normal(size=(3, 4)),
        "W": scale * rng.normal(size=(4, 4)),
        "b": scale * rng.normal(size=4),
    }


def test_clip_values_bounds_every_element(rng):
    grads = grads_of(rng, 20.0)
    before = {k: g.copy() for k, g in grads.items()}
    optim.clip_values(grads, 10.0)
    for k, g in grads.items():
        assert np.all(np.abs(g) <= 10.0)
        inside = np.abs(before[k]) <= 10.0
        np.testing.assert_array_equal(g[inside], before[k][inside])  # untouched inside
        np.testing.assert_array_equal(g[~inside], 10.0 * np.sign(before[k][~inside]))


def test_clip_values_below_limit_changes_nothing(rng):
    grads = grads_of(rng, 0.1)
    before = {k: g.copy() for k, g in grads.items()}
    optim.clip_values(grads, 10.0)
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])


def test_clip_global_norm_scales_to_exactly_max_norm(rng):
    grads = grads_of(rng, 5.0)
    before = {k: g.copy() for k, g in grads.items()}
    norm_before = np.sqrt(sum(np.sum(g**2) for g in before.values()))
    returned = optim.clip_global_norm(grads, 1.5)
    assert returned == pytest.approx(norm_before, rel=1e-12)
    assert optim.global_norm(grads) == pytest.approx(1.5, rel=1e-9)
    for k in grads:  # one common factor: directions are kept
        np.testing.assert_allclose(grads[k], before[k] * (1.5 / norm_before), rtol=1e-9)


def test_clip_global_norm_below_max_is_untouched(rng):
    grads = grads_of(rng, 0.01)
    before = {k: g.copy() for k, g in grads.items()}
    norm = optim.clip_global_norm(grads, 100.0)
    assert norm < 100.0
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])


def test_sgd_step():
    params = {"w": np.array([1.0, -2.0])}
    optim.SGD(lr=0.1).update(params, {"w": np.array([10.0, 0.5])})
    np.testing.assert_allclose(params["w"], [0.0, -2.05])


def test_adam_first_step_moves_each_parameter_by_lr():
    """With bias correction, Adam's first update is lr * g / |g| (up to eps)."""
    params = {"w": np.array([1.0, -2.0, 0.5])}
    optim.Adam(lr=0.01).update(params, {"w": np.array([3.0, -0.2, 0.5])})
    np.testing.assert_allclose(params["w"], [0.99, -1.99, 0.49], rtol=1e-6)


def test_make_rejects_unknown_optimizer():
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.make("rmsprop", 0.1)


# ----- sparse gradients (lm.sparse): lazy updates


def sparse_case(rng, dtype=np.float32):
    """Parameters U (9, 3), V (4, 12), c (12,), W (3, 3) and one window's gradients: rows
    1, 4, 5 of U, column runs [2, 5) and [8, 12) of V and c, W dense."""
    params = {
        "U": rng.normal(size=(9, 3)),
        "V": rng.normal(size=(4, 12)),
        "c": rng.normal(size=12),
        "W": rng.normal(size=(3, 3)),
    }
    runs = np.array([[2, 5], [8, 12]])
    grads = {
        "U": sparse.Rows(np.array([1, 4, 5]), rng.normal(size=(3, 3)), (9, 3)),
        "V": sparse.Cols(runs, rng.normal(size=(4, 7)), (4, 12)),
        "c": sparse.Cols(runs, rng.normal(size=7), (12,)),
        "W": rng.normal(size=(3, 3)),
    }
    cast = {k: v.astype(dtype) for k, v in params.items()}
    for g in grads.values():
        if sparse.is_sparse(g):
            g.values = g.values.astype(dtype)
    return cast, {k: g if sparse.is_sparse(g) else g.astype(dtype) for k, g in grads.items()}


def dense_copy(grads):
    return {k: sparse.dense(g).copy() for k, g in grads.items()}


def untouched(name):
    """Mask of the elements the sparse_case gradient of ``name`` does not hold."""
    mask = {"U": np.ones((9, 3), bool), "V": np.ones((4, 12), bool), "c": np.ones(12, bool)}
    mask["U"][[1, 4, 5]] = False
    for m in (mask["V"], mask["c"]):
        m[..., 2:5] = m[..., 8:12] = False
    return mask[name]


def held(g) -> np.ndarray:
    """Mask of the elements a sparse gradient holds."""
    mask = np.zeros(g.shape, bool)
    if isinstance(g, sparse.Rows):
        mask[g.index] = True
    for a, b, _ in g.parts() if isinstance(g, sparse.Cols) else ():
        mask[..., a:b] = True
    return mask


def test_norm_and_clipping_of_sparse_gradients_equal_the_dense_ones(rng):
    params, grads = sparse_case(rng, np.float64)
    dense = dense_copy(grads)
    assert optim.global_norm(grads) == pytest.approx(optim.global_norm(dense), rel=1e-12)
    optim.clip_global_norm(grads, 0.5)
    optim.clip_global_norm(dense, 0.5)
    optim.clip_values(grads, 0.1)
    optim.clip_values(dense, 0.1)
    for k in grads:
        np.testing.assert_allclose(sparse.dense(grads[k]), dense[k], rtol=1e-12)


def test_lazy_sgd_is_the_dense_sgd_without_l2(rng):
    params, grads = sparse_case(rng)
    dense_params = {k: v.copy() for k, v in params.items()}
    dense = dense_copy(grads)
    optim.SGD(lr=0.3).update(params, grads)
    optim.SGD(lr=0.3).update(dense_params, dense)
    for k in params:
        np.testing.assert_array_equal(params[k], dense_params[k])


def test_lazy_sgd_decays_only_touched_elements_with_l2(rng):
    params, grads = sparse_case(rng)
    before = {k: v.copy() for k, v in params.items()}
    optim.SGD(lr=0.3, l2=0.1).update(params, grads)
    for k in ("U", "V", "c"):
        mask = untouched(k)
        np.testing.assert_array_equal(params[k][mask], before[k][mask])
        assert (params[k][~mask] != before[k][~mask]).all()


def test_lazy_adam_updates_touched_elements_as_dense_adam_and_leaves_the_rest(rng):
    """Step 1 touches one set of rows and runs, step 2 another. On the elements a step's
    gradient holds, lazy Adam does what dense Adam does; the elements only step 1 touched
    keep their weights and both moments through step 2, where dense Adam decays the moments
    and moves the weights by their momentum."""
    params, grads = sparse_case(rng)
    dense_params = {k: v.copy() for k, v in params.items()}
    lazy, dense_opt = optim.Adam(lr=0.01), optim.Adam(lr=0.01)
    lazy.update(params, grads)
    dense_opt.update(dense_params, dense_copy(grads))
    for k in params:  # a zero gradient on fresh moments moves nothing: the same so far
        np.testing.assert_array_equal(params[k], dense_params[k])
    after1 = {k: v.copy() for k, v in params.items()}
    m1, v1 = {k: a.copy() for k, a in lazy.m.items()}, {k: a.copy() for k, a in lazy.v.items()}
    runs = np.array([[0, 3]])  # overlaps step 1's [2, 5) at column 2
    second = {
        "U": sparse.Rows(np.array([0, 4]), rng.normal(size=(2, 3)).astype(np.float32), (9, 3)),
        "V": sparse.Cols(runs, rng.normal(size=(4, 3)).astype(np.float32), (4, 12)),
        "c": sparse.Cols(runs, rng.normal(size=3).astype(np.float32), (12,)),
    }
    lazy.update(params, second)
    dense_opt.update(dense_params, dense_copy(second))
    for k in ("U", "V", "c"):
        now = held(second[k])
        only1 = ~untouched(k) & ~now
        np.testing.assert_allclose(params[k][now], dense_params[k][now], rtol=1e-6)
        np.testing.assert_array_equal(params[k][only1], after1[k][only1])
        np.testing.assert_array_equal(lazy.m[k][only1], m1[k][only1])
        np.testing.assert_array_equal(lazy.v[k][only1], v1[k][only1])
        assert (dense_params[k][only1] != after1[k][only1]).all()  # dense Adam kept moving
    state = lazy.state_dict()  # the same state as dense Adam's: m, v, t
    assert set(state) == {"t"} | {f"{m}.{k}" for m in "mv" for k in params}


def test_lazy_adam_splits_large_runs_over_two_threads_with_the_same_result(rng):
    """A run of a 2-D parameter of at least _PARALLEL_SIZE elements is updated as two jobs
    (its two halves of rows): the result is the one-job update's."""
    H, n = 64, 3000  # a run of 64 x 2000 = 128k elements
    p = rng.normal(size=(H, n)).astype(np.float32)
    g = sparse.Cols(np.array([[500, 2500]]), rng.normal(size=(H, 2000)).astype(np.float32), (H, n))
    split, whole = {"V": p.copy()}, {"V": p.copy()}
    optim.Adam(lr=0.01).update(split, {"V": g})
    optim.Adam(lr=0.01).update(whole, {"V": g.dense()})
    np.testing.assert_array_equal(split["V"][:, 500:2500], whole["V"][:, 500:2500])
    np.testing.assert_array_equal(split["V"][:, :500], p[:, :500])


def test_guarded_update_refuses_a_non_finite_sparse_gradient(rng):
    params, grads = sparse_case(rng)
    grads["V"].values[0, 3] = np.nan
    before = {k: v.copy() for k, v in params.items()}
    opt = optim.Adam()
    assert not optim.guarded_update(params, grads, opt, 1.0, clip_norm=1.0)
    assert opt.t == 0
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


# ----- the update step: non-finite guard, then clip and update -----


def test_finite_norm_is_the_global_norm_of_a_finite_step():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    assert optim.finite_norm(1.5, grads) == pytest.approx(5.0)


@pytest.mark.parametrize(
    "loss, grad, max_loss",
    [
        (float("nan"), 1.0, np.inf),
        (float("inf"), 1.0, np.inf),
        (1.0, float("nan"), np.inf),
        (1.0, float("inf"), np.inf),
        (1.0, 1e200, np.inf),  # finite elements whose squares overflow: the norm is inf
        (800.0, 1.0, 709.0),  # finite, but above the caller's limit
    ],
)
def test_finite_norm_refuses_a_step_that_must_not_be_taken(loss, grad, max_loss):
    grads = {"a": np.array([grad, 1.0]), "b": np.ones(3)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and says so without a RuntimeWarning
        assert optim.finite_norm(loss, grads, max_loss) is None


def test_guarded_update_clips_values_then_the_norm_then_updates(rng):
    params = {k: rng.normal(size=g.shape) for k, g in grads_of(rng, 1.0).items()}
    grads = grads_of(rng, 20.0)
    expected_p = {k: v.copy() for k, v in params.items()}
    expected_g = {k: g.copy() for k, g in grads.items()}
    optim.clip_values(expected_g, 10.0)
    optim.clip_global_norm(expected_g, 2.0)
    optim.SGD(lr=0.1).update(expected_p, expected_g)

    assert optim.guarded_update(params, grads, optim.SGD(lr=0.1), 1.0, 10.0, 2.0)
    for k, p in params.items():
        np.testing.assert_array_equal(p, expected_p[k])


@pytest.mark.parametrize("off", [None, 0, 0.0])
def test_guarded_update_without_clipping_is_the_plain_update(off):
    params = {"w": np.zeros(3)}
    grads = {"w": np.array([30.0, -40.0, 0.0])}
    assert optim.guarded_update(params, grads, optim.SGD(lr=1.0), 1.0, off, off)
    np.testing.assert_array_equal(params["w"], [-30.0, 40.0, 0.0])


def test_guarded_update_updates_only_the_given_gradients():
    params = {"w": np.ones(2), "b": np.ones(2)}
    assert optim.guarded_update(params, {"w": np.ones(2)}, optim.SGD(lr=0.5), 0.0)
    np.testing.assert_array_equal(params["w"], [0.5, 0.5])
    np.testing.assert_array_equal(params["b"], [1.0, 1.0])


@pytest.mark.parametrize(
    "loss, grad, max_loss",
    [(float("nan"), 1.0, np.inf), (1.0, float("inf"), np.inf), (800.0, 1.0, 709.0)],
)
def test_guarded_update_refuses_what_finite_norm_refuses_and_changes_nothing(loss, grad, max_loss):
    params = {"w": np.ones(2)}
    grads = {"w": np.array([grad, 1.0])}
    opt = optim.Adam(lr=0.1)
    assert not optim.guarded_update(params, grads, opt, loss, 0.5, 1.0, max_loss)
    np.testing.assert_array_equal(params["w"], [1.0, 1.0])
    assert opt.t == 0 and grads["w"][1] == 1.0  # no update, no clipping


def test_adam_threads_keep_the_callers_errstate():
    """Large parameters are updated by worker threads; an overflow the caller expects (and
    silences) must not come out of them as a RuntimeWarning."""
    n = optim._PARALLEL_SIZE * 2
    params = {"w": np.zeros(n, dtype=np.float32)}
    grads = {"w": np.full(n, 1e30, dtype=np.float32)}  # g * g overflows float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="ignore", invalid="ignore"):
            optim.Adam(lr=0.1).update(params, grads)


# ----- the weight average -----


def test_weight_average_follows_its_recurrence(rng):
    d = 0.9
    theta = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    avg = optim.WeightAverage(d, theta)
    expected = {k: v.copy() for k, v in theta.items()}
    for n in range(30):
        for v in theta.values():
            v += rng.normal(size=v.shape)
        avg.update(theta)
        rate = 1 - min(d, (1 + n) / (10 + n))
        for k, v in theta.items():
            expected[k] += rate * (v - expected[k])
    assert avg.n == 30
    for k, v in theta.items():
        np.testing.assert_allclose(avg.params[k], expected[k], rtol=1e-12)
        assert not np.shares_memory(avg.params[k], v)


def test_weight_average_reset_and_state_dict_round_trip(rng):
    theta = {"w": rng.normal(size=4)}
    avg = optim.WeightAverage(0.99, theta)
    theta["w"] += 1.0
    avg.update(theta)
    avg.update(theta)
    state = avg.state_dict()
    assert set(state) == {"n", "w"} and int(state["n"]) == 2
    again = optim.WeightAverage.from_state_dict(0.99, state)
    assert again.n == 2
    np.testing.assert_array_equal(again.params["w"], avg.params["w"])
    theta["w"] += 1.0
    avg.update(theta)
    again.update(theta)
    np.testing.assert_array_equal(again.params["w"], avg.params["w"])  # goes on identically
    avg.reset({"w": np.zeros(4)})
    np.testing.assert_array_equal(avg.params["w"], np.zeros(4))
    assert avg.n == 3  # a rollback keeps the count of updates


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_weight_average_decay_must_be_in_0_1(decay):
    with pytest.raises(ValueError, match="decay"):
        optim.WeightAverage(decay, {"w": np.zeros(1)})


# ----------------------------------------------------------------------------- backends


@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_updates_on_every_backend(backends, rng, name, l2):
    """Three float32 guarded updates (value and norm clipping) with dense, Rows and Cols
    gradients, an Adam state round trip and a weight average, on the backend's arrays: equal
    to numpy's and left on the device. Large parameters: numpy's two-thread path."""
    params, grads = sparse_case(rng)
    params["big"] = rng.normal(size=(300, 300)).astype(np.float32)  # >= _PARALLEL_SIZE
    grads["big"] = rng.normal(size=(300, 300)).astype(np.float32)

    def everything(params, grads):
        opt = optim.make(name, 0.1, l2)
        average = optim.WeightAverage(0.9, params)
        norms = []
        for _ in range(3):
            step = copy.deepcopy(grads)  # the update overwrites its gradients
            norms.append(optim.global_norm(step))
            assert optim.guarded_update(params, step, opt, 1.0, clip_value=1.5, clip_norm=8.0)
            average.update(params)
        if name == "adam":
            opt.load_state_dict(opt.state_dict())
            opt.update(params, copy.deepcopy(grads))
        return {"params": params, "average": average.params, "norms": norms}

    want = everything(*copy.deepcopy((params, grads)))
    got = everything(*devices.put(backends, (params, grads)))
    devices.assert_on(backends, {k: got[k] for k in ("params", "average")})
    devices.assert_close(got, want)
