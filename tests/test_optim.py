"""Gradient clipping (value and global norm) and the optimisers' basic updates."""

from __future__ import annotations

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
