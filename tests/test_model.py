"""The language model network: gradients, probabilities, shapes, state carrying."""

import numpy as np
import pytest
import devices
from gradcheck import check_gradients

from lm import heads, sparse
from lm.model import ModelConfig, Network

N_VOCAB = 7


def make_net(
    input="onehot",
    activation="tanh",
    hidden=5,
    dtype=np.float64,
    seed=0,
    classes=None,
    cell="elman",
    tie=False,
    layers=1,
):
    """classes: the class head's boundaries (None: the full softmax); tie: V = E^T (an
    embedding as wide as the hidden layer); layers: stacked cells."""
    config = ModelConfig(
        n_vocab=N_VOCAB,
        hidden=hidden,
        input=input,
        embed_dim=(hidden if tie else 4) if input == "embedding" else 0,
        activation=activation,
        cell=cell,
        output="full" if classes is None else "class",
        classes=classes,
        tie=tie,
        layers=layers,
    )
    net = Network.create(config, np.random.default_rng(seed), dtype=dtype)
    for k in net.params:  # make every parameter matter (biases start at zero)
        net.params[k] += np.random.default_rng(seed + 1).normal(0, 0.3, net.params[k].shape)
    return net


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

    def mean_loss(params):
        return net.loss_and_grads(x, y, S0, None, keep)[0] / (T * B)

    assert set(grads) == set(net.params)
    context = f"input={input}, activation={activation}, independent={independent}"
    check_gradients(mean_loss, net.params, grads, context=context)


def test_every_next_word_distribution_sums_to_one():
    net = make_net("embedding", dtype=np.float32)
    s = np.random.default_rng(0).normal(0, 3, (10, net.config.hidden)).astype(np.float32)
    p = np.exp(net.next_logprobs(s).astype(np.float64))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


def test_initial_loss_is_close_to_log_vocabulary():
    config = ModelConfig(n_vocab=1000, hidden=32)
    net = Network.create(config, np.random.default_rng(0))
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
    check_gradients(
        lambda params: run()[0] / (T * B), net.params, grads, context=f"input={input}, dropout"
    )


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("independent", [False, True])
@pytest.mark.parametrize("input", ["onehot", "embedding"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_whole_model_gradient_gated_cells(cell, input, independent, dropout):
    """Input layer + gated cell + softmax head, full BPTT, resets and dropout masks."""
    rng = np.random.default_rng(4)
    net = make_net(input, cell=cell)
    T, B = 5, 3
    x, y = rng.integers(0, N_VOCAB, (2, T, B))
    x[2, 1] = 2  # a sentence start inside the window
    S0 = rng.normal(0, 0.5, net.zero_state(B).shape)
    keep = (x != 2)[..., None].astype(float) if independent else None

    def run():
        return net.loss_and_grads(x, y, S0, None, keep, dropout, np.random.default_rng(11))

    _, grads, _ = run()
    assert set(grads) == set(net.params)
    context = f"cell={cell}, input={input}, independent={independent}, dropout={dropout}"
    check_gradients(lambda p: run()[0] / (T * B), net.params, grads, context=context)


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_truncated_whole_model_gradient_stops_at_the_horizon(cell):
    """With K >= T the truncated gradient is the full one; with K = 1 the input rows of the
    first steps lose the later losses' share (the definition is checked in test_cells.py)."""
    rng = np.random.default_rng(6)
    net = make_net("onehot", cell=cell)
    x, y = rng.integers(0, N_VOCAB, (2, 5, 2))
    S0 = net.zero_state(2)
    _, full, _ = net.loss_and_grads(x, y, S0, None)
    _, cut, _ = net.loss_and_grads(x, y, S0, 5)
    for k in full:
        np.testing.assert_allclose(cut[k], full[k], rtol=1e-12, atol=1e-15)
    _, short, _ = net.loss_and_grads(x, y, S0, 1)
    assert not np.allclose(short["U"], full["U"], rtol=1e-6, atol=0)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gated_next_word_distributions_sum_to_one_and_steps_match(cell):
    net = make_net("embedding", cell=cell, dtype=np.float32)
    x = np.random.default_rng(0).integers(0, N_VOCAB, (6, 3))
    S = net.states(x, net.zero_state(3))
    s = net.zero_state(3)
    for t in range(6):
        s = net.step(x[t], s)
        np.testing.assert_allclose(s, S[t + 1], rtol=1e-5, atol=1e-6)
        p = np.exp(net.next_logprobs(s).astype(np.float64))
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


# ----- the class-factored head in the whole model

CLASSES = (0, 3, 5, 7)  # three classes over the 7 ids


@pytest.mark.parametrize("input", ["onehot", "embedding"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_whole_model_gradient_with_the_class_head(input, dropout):
    """Input layer + core + class head, full BPTT, float64 central differences (dropout
    masks held fixed by the same seed in every call); the sparse gradients
    (Rows of U or E, Cols of V and c) compared as the dense arrays they stand for."""
    rng = np.random.default_rng(4)
    net = make_net(input, classes=CLASSES)
    T, B = 6, 3
    x = rng.integers(0, N_VOCAB, (T, B))
    y = rng.choice([0, 1, 5, 6], (T, B))  # class 1 (ids 3, 4) never a target
    S0 = rng.normal(0, 0.5, (B, net.config.hidden))

    def run():
        return net.loss_and_grads(x, y, S0, dropout=dropout, rng=np.random.default_rng(11))

    _, grads, _ = run()
    assert set(grads) == set(net.params)
    vocab_matrix = "U" if input == "onehot" else "E"
    assert isinstance(grads[vocab_matrix], sparse.Rows)
    np.testing.assert_array_equal(grads[vocab_matrix].index, np.unique(x))
    np.testing.assert_array_equal(grads["V"].runs, [[0, 3], [5, 7]])

    dense = {k: sparse.dense(g) for k, g in grads.items()}
    context = f"class head, input={input}, dropout={dropout}"
    check_gradients(lambda params: run()[0] / (T * B), net.params, dense, context=context)


def test_every_next_word_distribution_of_the_class_head_sums_to_one():
    net = make_net("embedding", dtype=np.float32, classes=CLASSES)
    s = np.random.default_rng(0).normal(0, 3, (10, net.config.hidden)).astype(np.float32)
    p = np.exp(net.next_logprobs(s).astype(np.float64))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    x, y = np.random.default_rng(1).integers(0, N_VOCAB, (2, 4, 3))
    lp, S = net.target_logprobs(x, y, net.zero_state(3))
    expected = np.take_along_axis(net.next_logprobs(S[1:].reshape(12, -1)), y.reshape(12, 1), 1)
    np.testing.assert_allclose(lp.reshape(12), expected[:, 0], rtol=1e-5)


def test_the_full_head_keeps_dense_gradients():
    net = make_net("onehot")
    x, y = np.random.default_rng(2).integers(0, N_VOCAB, (2, 4, 3))
    _, grads, _ = net.loss_and_grads(x, y, net.zero_state(3))
    assert not any(sparse.is_sparse(g) for g in grads.values())


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"output": "class"}, "list of at least 2"),
        ({"output": "class", "classes": [0, 3, 3, 7]}, "strictly increasing"),
        ({"output": "class", "classes": [0, 3, 6]}, "from 0 to n_vocab = 7"),
        ({"output": "class", "classes": [0, 3, 8]}, "from 0 to n_vocab = 7"),
        ({"output": "full", "classes": [0, 7]}, "only for output 'class'"),
        ({"output": "tree"}, "output must be"),
    ],
)
def test_model_config_rejects_class_boundaries_that_do_not_fit(fields, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(n_vocab=N_VOCAB, **fields)


def test_model_config_cuts_classes_from_counts_and_keeps_them_as_a_tuple():
    counts = np.array([0, 0, 40, 30, 10, 5, 1])
    mc = ModelConfig.from_counts(N_VOCAB, counts, 3, output="class")
    assert mc.classes == heads.class_bounds(counts, 3) and isinstance(mc.classes, tuple)
    assert ModelConfig(**mc.to_dict()) == mc  # survives config.json (a list there)
    assert len(ModelConfig.from_counts(1600, np.ones(1600), output="class").classes) == 6  # 5
    assert ModelConfig.from_counts(N_VOCAB, counts).classes is None
    with pytest.raises(ValueError, match="only for the class head"):
        ModelConfig.from_counts(N_VOCAB, counts, 3, output="full")
    with pytest.raises(heads.ClassCountError):
        ModelConfig.from_counts(N_VOCAB, counts, 8, output="class")


# ----- the output weights tied to the embedding (V = E^T)


def _tied_window(net, seed=4):
    """x, y (5, 3) with a sentence start inside, its reset mask and a random carried state."""
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, N_VOCAB, (2, 5, 3))
    x[2, 1] = 2
    keep = (x != 2)[..., None].astype(float)
    return x, y, keep, rng.normal(0, 0.5, net.zero_state(3).shape)


def _untied_copy(net):
    """The same network with V = E^T held as its own array."""
    config = ModelConfig(**{**net.config.to_dict(), "tie": False})
    return Network.build(config, {**net.params, "V": net.params["E"].T.copy()})


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("classes", [None, CLASSES])
@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_whole_model_gradient_with_tied_weights(cell, classes, dropout):
    """One E used twice, as the input rows and, transposed, as the head's V: its gradient is
    the sum of both uses (float64 central differences, full BPTT, resets and dropout masks;
    the class head's sparse Cols of V folded into Rows of E)."""
    net = make_net("embedding", cell=cell, classes=classes, tie=True)
    assert "V" not in net.params and net.params["E"].shape == (N_VOCAB, 5)
    x, y, keep, S0 = _tied_window(net)

    def run():
        return net.loss_and_grads(x, y, S0, None, keep, dropout, np.random.default_rng(11))

    _, grads, _ = run()
    assert set(grads) == set(net.params)
    assert isinstance(grads["E"], sparse.Rows) == (classes is not None)
    dense = {k: sparse.dense(g) for k, g in grads.items()}
    context = f"tied, cell={cell}, classes={classes}, dropout={dropout}"
    check_gradients(lambda p: run()[0] / x.size, net.params, dense, context=context)


@pytest.mark.parametrize("classes", [None, CLASSES])
@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_truncated_tied_gradient_is_the_untied_one_summed(cell, classes):
    """Horizon-K BPTT is not the loss's gradient (so no finite differences): tied, it is the
    untied network's truncated gradient with dE + dV^T, and the other arrays unchanged."""
    net = make_net("embedding", cell=cell, classes=classes, tie=True)
    untied = _untied_copy(net)
    x, y, keep, S0 = _tied_window(net)
    loss, tied_g, _ = net.loss_and_grads(x, y, S0, 2, keep, 0.3, np.random.default_rng(11))
    loss_u, g, _ = untied.loss_and_grads(x, y, S0, 2, keep, 0.3, np.random.default_rng(11))
    assert loss == pytest.approx(loss_u, rel=1e-12)
    g = {k: sparse.dense(v) for k, v in g.items()}
    g["E"] = g["E"] + g.pop("V").T
    for k, v in tied_g.items():
        np.testing.assert_allclose(sparse.dense(v), g[k], rtol=1e-10, atol=1e-14, err_msg=k)


@pytest.mark.parametrize("classes", [None, CLASSES])
def test_tied_head_reads_the_embedding_and_its_distributions_sum_to_one(classes):
    net = make_net("embedding", classes=classes, tie=True, cell="gru")
    s = np.random.default_rng(0).normal(0, 2, (6, 5))
    p = np.exp(net.next_logprobs(s))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    untied = _untied_copy(net)
    np.testing.assert_allclose(net.next_logprobs(s), untied.next_logprobs(s), rtol=1e-12)
    x, y = np.random.default_rng(1).integers(0, N_VOCAB, (2, 4, 3))
    np.testing.assert_allclose(
        net.target_logprobs(x, y, net.zero_state(3))[0],
        untied.target_logprobs(x, y, net.zero_state(3))[0],
        rtol=1e-12,
    )


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"input": "onehot"}, "needs input 'embedding'"),
        ({"input": "embedding", "embed_dim": 4}, "embed_dim == hidden"),
        ({"input": "embedding", "embed_dim": 5, "tie": 1}, "true or false"),
    ],
)
def test_model_config_rejects_a_tie_the_shapes_cannot_make(fields, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(n_vocab=N_VOCAB, hidden=5, **{"tie": True, **fields})


# ----- stacked layers


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("classes", [None, CLASSES])
@pytest.mark.parametrize("input", ["onehot", "embedding"])
@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_whole_model_gradient_with_two_layers(cell, input, classes, dropout):
    """Two stacked cells (layer 2 reads layer 1's hidden part through U2, b2), each head,
    full BPTT, resets in both layers, dropout between them: float64 central differences."""
    net = make_net(input, cell=cell, classes=classes, layers=2)
    x, y, keep, S0 = _tied_window(net)
    assert S0.shape == (3, 2 * net.n_s)

    def run():
        return net.loss_and_grads(x, y, S0, None, keep, dropout, np.random.default_rng(11))

    _, grads, _ = run()
    assert set(grads) == set(net.params) and {"U2", "b2", "W2"} <= set(net.params)
    dense = {k: sparse.dense(g) for k, g in grads.items()}
    context = f"2 layers, cell={cell}, input={input}, classes={classes}, dropout={dropout}"
    check_gradients(lambda p: run()[0] / x.size, net.params, dense, context=context)


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_whole_model_gradient_with_three_tied_layers(cell):
    net = make_net("embedding", cell=cell, tie=True, layers=3)
    x, y, keep, S0 = _tied_window(net)

    def run():
        return net.loss_and_grads(x, y, S0, None, keep, 0.3, np.random.default_rng(11))

    _, grads, _ = run()
    assert set(grads) == set(net.params) and "W3" in grads and "V" not in grads
    check_gradients(lambda p: run()[0] / x.size, net.params, grads, context=f"3 tied, {cell}")


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_truncated_gradient_with_two_layers(cell):
    """K >= T is the full gradient in every layer; K = 1 cuts within each layer, so the
    first layer's input rows lose part of the later losses' share."""
    net = make_net("onehot", cell=cell, layers=2)
    x, y, keep, S0 = _tied_window(net)
    _, full, _ = net.loss_and_grads(x, y, S0, None, keep)
    _, cut, _ = net.loss_and_grads(x, y, S0, 5, keep)
    for k in full:
        np.testing.assert_allclose(cut[k], full[k], rtol=1e-12, atol=1e-15)
    _, short, _ = net.loss_and_grads(x, y, S0, 1, keep)
    assert not np.allclose(short["U"], full["U"], rtol=1e-6, atol=0)
    assert not np.allclose(short["W2"], full["W2"], rtol=1e-6, atol=0)


@pytest.mark.parametrize("classes", [None, CLASSES])
@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_stacked_steps_equal_the_window_and_distributions_sum_to_one(cell, classes):
    net = make_net("embedding", cell=cell, classes=classes, layers=3, dtype=np.float32)
    x = np.random.default_rng(0).integers(0, N_VOCAB, (6, 3))
    S = net.states(x, net.zero_state(3))
    assert S.shape == (7, 3, 3 * net.n_s)
    s = net.zero_state(3)
    for t in range(6):
        s = net.step(x[t], s)
        np.testing.assert_allclose(s, S[t + 1], rtol=1e-5, atol=1e-6)
        p = np.exp(net.next_logprobs(s).astype(np.float64))
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_stacked_windows_with_carried_state_equal_one_long_window(cell):
    net = make_net("embedding", cell=cell, layers=2)
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, N_VOCAB, (2, 8, 3))
    S0 = rng.normal(0, 0.5, net.zero_state(3).shape)
    whole, _, s_whole = net.loss_and_grads(x, y, S0)
    first, _, s = net.loss_and_grads(x[:5], y[:5], S0)
    second, _, s_end = net.loss_and_grads(x[5:], y[5:], s)
    assert first + second == pytest.approx(whole, rel=1e-12)
    np.testing.assert_allclose(s_end, s_whole, rtol=1e-12)
    np.testing.assert_allclose(net.states(x, S0)[-1], s_whole, rtol=1e-12)


def test_a_second_layer_leaves_the_first_layers_initial_weights_as_they_were():
    one = Network.create(ModelConfig(N_VOCAB, 6, cell="gru"), np.random.default_rng(2))
    two = Network.create(ModelConfig(N_VOCAB, 6, cell="gru", layers=2), np.random.default_rng(2))
    for k, a in one.params.items():
        np.testing.assert_array_equal(two.params[k], a)
    shapes = two.param_shapes()
    assert shapes["U2"] == (6, 18) and shapes["b2"] == (18,) and shapes["W2"] == (6, 18)
    assert shapes["bh2"] == (18,) and set(shapes) == set(one.params) | {"U2", "b2", "W2", "bh2"}
    np.testing.assert_array_equal(two.params["b2"], 0)


def test_the_lstm_forget_bias_starts_at_one_in_every_layer():
    net = Network.create(ModelConfig(N_VOCAB, 4, cell="lstm", layers=2), np.random.default_rng(0))
    for b in (net.params["b"], net.params["b2"]):
        np.testing.assert_array_equal(b[4:8], 1.0)


@pytest.mark.parametrize("layers", [0, -1, 1.5, "2"])
def test_model_config_rejects_a_number_of_layers_below_one(layers):
    with pytest.raises(ValueError, match="layers must be an integer >= 1"):
        ModelConfig(N_VOCAB, layers=layers)


# ----- the whole network on every array backend (tests/devices.py)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize(
    "cell, input, classes, tie",
    [
        ("elman", "onehot", None, False),
        ("gru", "embedding", None, True),
        ("lstm", "embedding", CLASSES, False),
        ("gru", "embedding", CLASSES, True),
    ],
)
def test_the_network_on_a_device_equals_numpy(backends, cell, input, classes, tie, layers):
    """Same float32 weights: loss, every gradient, the carried state, log-probabilities of a
    window, one step and the next-word distributions, to 1e-5, with resets and dropout (its
    masks drawn on the host); states stay on the device, log-probabilities come back."""
    net = make_net(input, cell=cell, classes=classes, tie=tie, layers=layers, dtype=np.float32)
    x, y, keep, S0 = _tied_window(net)
    S0 = S0.astype(np.float32)
    keep = keep.astype(np.float32)
    want = net.loss_and_grads(x, y, S0, None, keep, 0.3, np.random.default_rng(11))
    want_lp, want_S = net.target_logprobs(x, y, S0)
    want_step = net.step(x[0], S0)
    want_next = net.next_logprobs(want_step)

    dev = Network.build(net.config, devices.put(backends, dict(net.params)))
    assert dev.device == ("cpu" if backends == "numpy" else "cuda")
    got = dev.loss_and_grads(x, y, devices.put(backends, S0), None, keep, 0.3,
                             np.random.default_rng(11))  # fmt: skip
    assert got[0] == pytest.approx(want[0], rel=1e-5)
    devices.assert_on(backends, [got[1], got[2]])
    devices.assert_close(got[1], want[1])
    devices.assert_close(got[2], want[2])
    lp, S = dev.target_logprobs(x, y, S0)
    assert type(lp) is np.ndarray
    devices.assert_on(backends, S)
    devices.assert_close(lp, want_lp)
    devices.assert_close(S, want_S)
    s = dev.step(x[0], S0)
    devices.assert_on(backends, s)
    devices.assert_close(s, want_step)
    devices.assert_close(dev.next_logprobs(s), want_next)
    devices.assert_on(backends, dev.zero_state(2))
