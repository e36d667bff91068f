"""The input layers alone: gradients by central differences (with and without dropout
masks), the one-hot gather against an explicit product, the row scatter."""

import devices
import numpy as np
import pytest
from gradcheck import check_gradients, with_upstream
from test_model import N_VOCAB, make_net

from lm import inputs

T, B, N_IN, WIDTH, N_EMBED = 4, 3, 5, 6, 2


def layer_and_params(kind, rng):
    layer = inputs.make(kind, N_IN if kind == "dense" else N_VOCAB, N_EMBED)
    params = {k: rng.normal(size=s) for k, s in layer.param_shapes(WIDTH).items()}
    x = rng.normal(size=(T, B, N_IN)) if kind == "dense" else rng.integers(0, N_VOCAB, (T, B))
    return layer, params, x


@pytest.mark.parametrize("dropout", [False, True], ids=["no-mask", "mask"])
@pytest.mark.parametrize("kind", inputs.KINDS)
def test_input_layer_gradients_match_finite_differences(kind, dropout):
    rng = np.random.default_rng(0)
    layer, params, x = layer_and_params(kind, rng)
    mask = None
    if dropout:
        mask = (rng.random((T, B, layer.feature_width(params))) > 0.4) / 0.6
    G = rng.normal(size=(T, B, WIDTH))
    D, cache = layer.drive(params, x, mask)
    grads, dX = layer.backward(params, x, cache, G)
    assert set(grads) == set(params)
    if kind == "dense":
        params["x"] = x
        grads["x"] = dX

    def drive(p):
        return layer.drive(p, p.get("x", x), mask)[0]

    check_gradients(with_upstream(drive, G), params, grads, context=f"input={kind}, mask={dropout}")


def test_make_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown input kind 'sparse'"):
        inputs.make("sparse", 3)


def test_scatter_rows_adds_repeated_ids():
    rows = np.arange(8.0).reshape(4, 2)
    G = inputs.scatter_rows(np.array([2, 0, 2, 3]), rows, 5)
    np.testing.assert_array_equal(G, [[2, 3], [0, 0], [0 + 4, 1 + 5], [6, 7], [0, 0]])


def test_onehot_gather_equals_explicit_product():
    net = make_net("onehot")
    ids = np.array([[0, 3], [6, 3]])
    onehot = np.eye(N_VOCAB)[ids]  # (T, B, n_vocab), only in this test
    explicit = onehot @ net.params["U"] + net.params["b"]
    gathered, _ = inputs.OneHot(N_VOCAB).drive(net.params, ids)
    np.testing.assert_allclose(gathered, explicit, rtol=1e-12)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("kind", inputs.KINDS)
def test_input_layers_on_every_backend(backends, kind, sparse):
    """float32 drive and backward (dense or sparse row gradients, a dropout mask) on the
    backend's arrays: equal to numpy's and left on the device."""
    rng = np.random.default_rng(1)
    layer, params, x = layer_and_params(kind, rng)
    params = {k: v.astype(np.float32) for k, v in params.items()}
    x = x.astype(np.float32) if kind == "dense" else x
    mask = ((rng.random((T, B, layer.feature_width(params))) > 0.4) / 0.6).astype(np.float32)
    G = rng.normal(size=(T, B, WIDTH)).astype(np.float32)

    def both(params, x, mask, G):
        D, cache = layer.drive(params, x, mask)
        grads, dX = layer.backward(params, x, cache, G, sparse=sparse)
        return {"D": D, **grads} if dX is None else {"D": D, "dX": dX, **grads}

    want = both(params, x, mask, G)
    got = both(*devices.put(backends, (params, x, mask, G)))
    devices.assert_on(backends, got)
    devices.assert_close(got, want)
