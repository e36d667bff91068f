"""lm.sparse: the sparse gradients equal the dense arrays they stand for."""

from __future__ import annotations

import devices
import numpy as np
import pytest

from lm import inputs, sparse


def test_rows_sum_repeated_ids_as_a_scatter_add(rng):
    ids = rng.integers(0, 9, 40)
    rows = rng.normal(size=(40, 3))
    g = sparse.Rows.sum_of(ids, rows, 9)
    expected = np.zeros((9, 3))
    np.add.at(expected, ids, rows)
    np.testing.assert_array_equal(g.index, np.unique(ids))
    np.testing.assert_allclose(g.dense(), expected, rtol=1e-12)
    np.testing.assert_array_equal(inputs.scatter_rows(ids, rows, 9), g.dense())
    empty = sparse.Rows.sum_of(ids[:0], rows[:0], 9)
    assert empty.values.shape == (0, 3) and not empty.dense().any()


def test_cols_place_each_run_at_its_offset():
    values = np.arange(2 * 5, dtype=float).reshape(2, 5)  # runs [1, 3) and [6, 9)
    g = sparse.Cols(np.array([[1, 3], [6, 9]]), values, (2, 10))
    expected = np.zeros((2, 10))
    expected[:, 1:3], expected[:, 6:9] = values[:, :2], values[:, 2:]
    np.testing.assert_array_equal(g.dense(), expected)
    c = sparse.Cols(np.array([[1, 3], [6, 9]]), values[0], (10,))
    np.testing.assert_array_equal(c.dense(), expected[0])
    assert list(g.parts()) == [(1, 3, 0), (6, 9, 2)]


def test_merge_runs_joins_ranges_that_touch():
    runs = sparse.merge_runs(np.array([0, 3, 7, 9, 12]), np.array([3, 5, 9, 10, 15]))
    np.testing.assert_array_equal(runs, [[0, 5], [7, 10], [12, 15]])
    assert sparse.merge_runs(np.array([], int), np.array([], int)).shape == (0, 2)


def test_values_and_dense_pass_arrays_through():
    a = np.ones(3)
    assert sparse.values(a) is a and sparse.dense(a) is a and not sparse.is_sparse(a)


def test_add_transposed_folds_columns_of_v_into_rows_of_e():
    rng = np.random.default_rng(0)
    dE = sparse.Rows(np.array([1, 4]), rng.normal(size=(2, 3)), (7, 3))
    dV = sparse.Cols(np.array([[0, 2], [4, 6]]), rng.normal(size=(3, 4)), (3, 7))
    want = dE.dense() + dV.dense().T
    got = sparse.add_transposed(dE, dV)
    assert isinstance(got, sparse.Rows)
    np.testing.assert_array_equal(got.index, [0, 1, 4, 5])
    np.testing.assert_allclose(got.dense(), want)
    dense_E, dense_V = rng.normal(size=(7, 3)), rng.normal(size=(3, 7))
    want = dense_E + dense_V.T
    np.testing.assert_allclose(sparse.add_transposed(dense_E, dense_V), want)
    with pytest.raises(TypeError, match="cannot add Cols transposed to ndarray"):
        sparse.add_transposed(rng.normal(size=(7, 3)), dV)


def test_sparse_gradients_on_every_backend(backends, rng):
    """Rows.sum_of, merge_runs, Cols and add_transposed on the backend's arrays: equal to
    numpy's and left on the device."""
    ids = rng.integers(0, 9, 40)
    rows = rng.normal(size=(40, 3)).astype(np.float32)
    starts, ends = np.array([0, 3, 7, 9, 12]), np.array([3, 5, 9, 10, 15])
    dE_index, dE_values = np.array([1, 4, 12]), rng.normal(size=(3, 3)).astype(np.float32)
    dV_values = rng.normal(size=(3, 8)).astype(np.float32)

    def everything(ids, rows, starts, ends, dE_index, dE_values, dV_values):
        runs = sparse.merge_runs(starts, ends)[:2]  # [0, 5), [7, 10): 8 columns
        dV = sparse.Cols(runs, dV_values, (3, 15))
        dE = sparse.Rows(dE_index, dE_values, (15, 3))
        summed = sparse.add_transposed(dE, dV)
        return {
            "sum_of": sparse.Rows.sum_of(ids, rows, 9),
            "empty": sparse.Rows.sum_of(ids[:0], rows[:0], 9),
            "runs": runs,
            "offsets": dV.offsets,
            "Cols": dV,
            "tied": summed,
            "tied_index": summed.index,
        }

    host = (ids, rows, starts, ends, dE_index, dE_values, dV_values)
    want = everything(*host)
    got = everything(*devices.put(backends, host))
    devices.assert_on(backends, got)
    devices.assert_close(got, want)
