"""The cosine experiment: data, encodings, presets, gradients, training, CLI."""

from __future__ import annotations

import dataclasses
import json
import shlex

import numpy as np
import pytest
from gradcheck import check_gradients

from lm import cosine
from lm.errors import TrainingError

PNG = b"\x89PNG\r\n\x1a\n"


def invoke(runner, cli, line: str):
    """Run ``lm <line>`` in-process."""
    return runner.invoke(cli, shlex.split(line))


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------- data


def test_series_and_windows_are_the_chapter_data():
    values = cosine.series()
    np.testing.assert_array_equal(values, np.cos(np.arange(200.0)))
    X, y = cosine.windows(values, cosine.TRAIN_STARTS)
    Xv, yv = cosine.windows(values, cosine.VALID_STARTS)
    assert X.shape == (100, 50) and y.shape == (100,)
    assert Xv.shape == (50, 50) and yv.shape == (50,)
    for start in (0, 37, 99):
        np.testing.assert_array_equal(X[start], values[start : start + 50])
        assert y[start] == values[start + 50]
    np.testing.assert_array_equal(Xv[0], values[100:150])
    np.testing.assert_array_equal(yv, values[150:200])  # the last target is x = 199


def test_window_without_target_is_rejected():
    with pytest.raises(IndexError):
        cosine.windows(cosine.series(), range(150, 151))


def test_position_encoding_puts_value_t_at_position_t(rng):
    X = rng.normal(size=(3, 50))
    Z = cosine.encode(X, "position")
    assert Z.shape == (50, 3, 50)
    for t in (0, 17, 49):
        expected = np.zeros((3, 50))
        expected[:, t] = X[:, t]
        np.testing.assert_array_equal(Z[t], expected)
    assert np.count_nonzero(Z) == np.count_nonzero(X)


def test_scalar_encoding(rng):
    X = rng.normal(size=(4, 50))
    Z = cosine.encode(X, "scalar")
    assert Z.shape == (50, 4, 1)
    np.testing.assert_array_equal(Z[:, :, 0], X.T)


# -------------------------------------------------------------------------------- config


def test_seed_preset_has_the_chapter_settings():
    c = cosine.PRESETS["seed"]
    chapter = {
        "hidden": 100,
        "activation": "sigmoid",
        "lr": 1e-4,
        "epochs": 5,
        "truncate": 5,
        "clip": 10.0,
        "init": "uniform01",
        "encoding": "position",
        "optimizer": "sgd",
        "batch": 1,
        "bias": False,
    }
    assert {k: getattr(c, k) for k in chapter} == chapter


def test_presets_are_frozen_and_overrides_apply():
    with pytest.raises(dataclasses.FrozenInstanceError):
        cosine.PRESETS["tuned"].epochs = 3
    c = cosine.make_config("seed", epochs=7, clip=None)
    assert c.epochs == 7 and c.hidden == 100 and c.clip is None
    with pytest.raises(ValueError, match="unknown preset"):
        cosine.make_config("fast")


def test_uniform01_init_and_same_seed_same_weights():
    config = cosine.PRESETS["seed"]
    p1 = cosine.init_params(config, 50, np.random.default_rng(3))
    p2 = cosine.init_params(config, 50, np.random.default_rng(3))
    assert p1["U"].shape == (50, 100) and p1["W"].shape == (100, 100) and p1["V"].shape == (100, 1)
    for k in ("U", "W", "V"):
        assert 0 <= p1[k].min() and p1[k].max() < 1
        np.testing.assert_array_equal(p1[k], p2[k])


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("encoding", cosine.ENCODINGS)
@pytest.mark.parametrize("act_name", ["sigmoid", "tanh"])
def test_loss_and_grads_match_finite_differences(encoding, act_name):
    """The whole model on 3 windows, full BPTT, float64."""
    rng = np.random.default_rng(1)
    config = cosine.make_config("tuned", hidden=3, encoding=encoding)
    X_raw, y = cosine.windows(cosine.series(), range(10, 13))
    X = cosine.encode(X_raw, encoding)
    params = cosine.init_params(config, X.shape[2], rng)
    params["W"] *= 0.5
    params["b"] = rng.normal(0, 0.3, 3)
    params["c"] = rng.normal(0, 0.3, 1)
    config = cosine.make_config("tuned", hidden=3, encoding=encoding, activation=act_name)
    net = cosine.network(config, X.shape[2], params)
    loss_sum, grads, _ = net.loss_and_grads(X, y[:, None], net.zero_state(3))
    assert loss_sum / 3 == pytest.approx(cosine.mean_loss(net, X, y), rel=1e-12)
    check_gradients(
        lambda p: cosine.mean_loss(net, X, y),
        params,
        grads,
        context=f"activation={act_name}, input=dense/{encoding}, truncate=None, head=linear",
    )


def test_truncation_reaches_only_the_last_K_plus_1_inputs():
    """Position encoding: row t of U sees only the input at step t + 1. With the loss at
    step T only and horizon K, rows of U for steps before T - K get no gradient."""
    rng = np.random.default_rng(2)
    config = cosine.make_config("seed", hidden=4, init="scaled")
    X = cosine.encode(cosine.windows(cosine.series(), range(3))[0], "position")
    y = np.ones(3)
    net = cosine.network(config, 50, cosine.init_params(config, 50, rng))
    _, grads, _ = net.loss_and_grads(X, y[:, None], net.zero_state(3), truncate=5)
    reached = np.abs(grads["U"]).sum(axis=1) > 0  # (50,) one per step
    assert not reached[:44].any() and reached[44:].all()


# ------------------------------------------------------------------------------ training


def test_train_two_epochs_returns_losses_predictions_and_rmse():
    result = cosine.train_cosine("tuned", seed=0, epochs=2)
    assert len(result.train_loss) == len(result.val_loss) == 2
    assert all(np.isfinite(result.train_loss + result.val_loss))
    assert result.predictions.shape == result.targets.shape == (50,)
    err = result.predictions - result.targets
    assert result.rmse == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-12)
    assert result.val_loss[-1] == pytest.approx(0.5 * np.mean(err**2), rel=1e-12)


def test_seed_preset_runs_one_epoch_and_keeps_bias_at_zero():
    result = cosine.train_cosine("seed", seed=0, epochs=1)
    assert not result.params["b"].any() and not result.params["c"].any()
    assert np.isfinite(result.rmse)


def test_same_seed_repeats_and_other_seed_differs():
    a = cosine.train_cosine("tuned", seed=5, epochs=3)
    b = cosine.train_cosine("tuned", seed=5, epochs=3)
    c = cosine.train_cosine("tuned", seed=6, epochs=3)
    assert a.train_loss == b.train_loss and a.val_loss == b.val_loss
    assert a.val_loss != c.val_loss


def test_step_activation_cannot_be_trained():
    with pytest.raises(TrainingError, match="derivative"):
        cosine.train_cosine("tuned", activation="step", epochs=1)


def test_diverging_loss_stops_with_epoch_and_advice():
    """ReLU with uniform(0, 1) weights and no clipping explodes within the first epoch."""
    with pytest.raises(TrainingError, match=r"epoch 1\b.*learning rate.*clipping"):
        cosine.train_cosine("seed", activation="relu", lr=1.0, clip=None, epochs=3)


# ----------------------------------------------------------------------------------- CLI


def test_cli_json_smoke(runner, lm_cli):
    result = invoke(runner, lm_cli, "cosine --preset tuned --epochs 2 --json --quiet --seed 4")
    assert result.exit_code == 0, result.output
    summary = last_json(result.stdout)
    assert {"preset", "epochs", "train_loss", "val_loss", "rmse", "seconds"} <= set(summary)
    assert summary["preset"] == "tuned" and summary["epochs"] == 2 and summary["seed"] == 4


def test_cli_text_output_and_plots(runner, lm_cli, tmp_path):
    paths = {
        opt: tmp_path / "out" / f"{opt.strip('-')}.png"
        for opt in ("--plot", "--loss-plot", "--data-plot")
    }
    args = ["cosine", "--preset", "seed", "--epochs", "1", "--hidden", "8"]
    for opt, path in paths.items():
        args += [opt, str(path)]
    result = runner.invoke(lm_cli, args)
    assert result.exit_code == 0, result.output
    assert "train_loss" in result.stdout and "validation RMSE" in result.stdout
    assert result.stderr == ""  # stderr is not a terminal: no progress bar (tqdm's rule)
    for path in paths.values():
        assert path.read_bytes()[:8] == PNG


def test_cli_overrides_reach_the_config(runner, lm_cli):
    line = (
        "cosine --preset seed --epochs 1 --hidden 5 --activation tanh --lr 0.001 "
        "--truncate 3 --clip 0 --clip-norm 2 --json --quiet"
    )
    result = invoke(runner, lm_cli, line)
    assert result.exit_code == 0, result.output
    config = last_json(result.stdout)["config"]
    expected = {
        "hidden": 5,
        "activation": "tanh",
        "lr": 0.001,
        "truncate": 3,
        "clip": None,
        "clip_norm": 2.0,
    }
    assert {k: config[k] for k in expected} == expected


BAD_ARGS = [
    "--activation swish",
    "--preset fast",
    "--hidden 0",
    "--hidden -4",
    "--epochs 0",
    "--truncate 0",
    "--lr 0",
]


@pytest.mark.parametrize("args", BAD_ARGS)
def test_cli_usage_errors_exit_2_without_traceback(runner, lm_cli, args):
    result = invoke(runner, lm_cli, f"cosine {args}")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "Error: Invalid value" in result.stderr


def test_cli_step_activation_is_a_one_line_error(runner, lm_cli):
    result = invoke(runner, lm_cli, "cosine --activation step --quiet")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "derivative" in lines[0] and "gradient descent" in lines[0]


def test_cli_diverging_loss_is_a_one_line_error(runner, lm_cli):
    line = "cosine --preset seed --activation relu --lr 1 --clip 0 --quiet"
    result = invoke(runner, lm_cli, line)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "epoch 1" in lines[0] and "learning rate" in lines[0]


# ---------------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_tuned_preset_reaches_rmse_0002(runner, lm_cli):
    result = invoke(runner, lm_cli, "cosine --preset tuned --json --quiet")
    assert result.exit_code == 0, result.output
    summary = last_json(result.stdout)
    assert summary["rmse"] <= 0.002, summary


@pytest.mark.slow
def test_tuned_preset_reaches_rmse_0002_for_9_of_10_seeds():
    rmse = [cosine.train_cosine("tuned", seed=s).rmse for s in range(1, 11)]
    assert sum(r <= 0.002 for r in rmse) >= 9, rmse


# ------------------------------------------------------------------------- shared figures


def test_perplexity_curve_writes_png_and_skips_missing_validation(tmp_path):
    from lm import plots

    path = plots.perplexity_curve([1, 2, 3], [300.0, 200.0, 150.0], [None] * 3, tmp_path / "a.png")
    assert path.read_bytes()[:8] == PNG
    fig = plots.perplexity_curve_figure([1, 2], [300.0, 200.0], [320.0, None])
    assert [line.get_label() for line in fig.axes[0].lines] == ["training", "validation"]
    assert fig.axes[0].get_yscale() == "log"


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("hidden", 0, "hidden must be an integer >= 1"),
        ("cell", "rnn", "cell must be one of"),
        ("lr", float("nan"), "lr must be a finite number"),
        ("truncate", 0, "truncate must be an integer >= 1"),
    ],
)
def test_config_fields_are_checked_when_made(field, value, words):
    with pytest.raises(ValueError, match=words):
        cosine.make_config("tuned", **{field: value})


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gated_cells_learn_the_cosine_task(cell):
    """The cosine task shares the core: a gated cell trains through the same Network."""
    result = cosine.train_cosine("tuned", seed=0, epochs=60, cell=cell)
    assert result.val_loss[-1] < 0.5 * result.val_loss[0]
