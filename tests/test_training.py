"""Training: learning, repeatability, interruption and resume, NaN guard, bad input."""

import json
import math
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from lmfixtures import interrupt_after

import lm
from lm import heads
from lm.checkpoint import load_arrays
from lm.cli import main
from lm.data import encode_file
from lm.errors import TrainingError
from lm.model import Network
from lm.training import TrainConfig, Trainer, VocabConfig, evaluate

SENTENCES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "my bird sang a song",
    "the sun is hot today",
    "we like green tea",
]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("\n".join(SENTENCES * 8) + "\n")
    return str(path)


def start(out, corpus, valid=None, **kw):
    mc = dict(
        hidden=kw.pop("hidden", 16),
        input=kw.pop("input", "onehot"),
        embed_dim=kw.pop("embed_dim", 0),
        output=kw.pop("output", "full"),
        cell=kw.pop("cell", "elman"),
        layers=kw.pop("layers", 1),
    )
    if kw.pop("tie", False):  # an embedding as wide as the hidden layer, V = E^T
        mc.update(input="embedding", embed_dim=mc["hidden"], tie=True)
    if "n_classes" in kw:
        mc["n_classes"] = kw.pop("n_classes")
    # the state carried across sentences unless asked (the overfit tests need the context)
    tc = TrainConfig(**{"batch_size": 4, "bptt": 6, "epochs": 3, "independent": False, **kw})
    return Trainer.start(str(out), corpus, valid, mc, tc, VocabConfig(), show_progress=False)


def weights(directory, name="weights.npz"):
    return load_arrays(os.path.join(directory, name))


def test_tiny_model_overfits_tiny_corpus(tmp_path, corpus):
    # The corpus cycles through five sentences, so with its state carried across sentences a
    # model can predict every token: perplexity near 1.
    t = start(tmp_path / "m", corpus, hidden=32, epochs=80, lr=0.02, dropout=0.0)
    t.run(log=lambda m: None)
    stream = encode_file(corpus, t.vocab)
    logp, n = evaluate(lm.load(tmp_path / "m").net, stream, independent=False, B=1)
    assert np.exp(-logp / n) < 1.2


@pytest.mark.parametrize(
    "input",
    ["onehot", pytest.param("embedding", marks=pytest.mark.slow)],  # ~20 s each
)
def test_class_head_overfits_tiny_corpus_and_saves_its_boundaries(tmp_path, corpus, input):
    """The class head learns as the full head does; its boundaries (cut from the training
    counts) and weights Vc, cc are saved and loaded; its bias starts at log P(w | class)."""
    t = start(
        tmp_path / "m",
        corpus,
        hidden=32,
        epochs=80,
        lr=0.02,
        dropout=0.0,
        input=input,
        embed_dim=8 if input == "embedding" else 0,
        output="class",
        n_classes=4,
    )
    stream = encode_file(corpus, t.vocab)
    counts = np.bincount(stream[1:], minlength=t.vocab.size)
    assert t.net.config.classes == heads.class_bounds(counts, 4)
    c_w, c_k = heads.class_log_unigram(counts, t.net.config.classes)
    np.testing.assert_allclose(t.net.params["c"], c_w, rtol=1e-6)
    np.testing.assert_allclose(t.net.params["cc"], c_k, rtol=1e-6)
    t.run(log=lambda m: None)
    model = lm.load(tmp_path / "m")
    assert model.net.config.output == "class" and set(model.net.params) >= {"Vc", "cc"}
    logp, n = evaluate(model.net, stream, independent=False, B=1)
    assert np.exp(-logp / n) < 1.2


def run_schedule(trainer, valid_ppls):
    """Feed validation perplexities to the schedule; one (lr after, accepted, done) each."""
    out = []
    for ppl in valid_ppls:
        if trainer.progress.done:
            break
        record = trainer._judge(ppl)
        out.append((trainer.progress.lr, record["accepted"], trainer.progress.done))
    return out


def test_worse_epoch_is_rolled_back_and_counts_as_plateau(tmp_path, corpus):
    with start(tmp_path / "m", corpus, lr=1.0, schedule="plateau", halvings=3) as t:
        best = {k: v.copy() for k, v in t.net.params.items()}
        t._judge(50.0)
        for v in t.net.params.values():
            v += 1.0  # this epoch's weights
        assert run_schedule(t, [60.0]) == [(0.5, False, False)]
        for k, v in best.items():
            np.testing.assert_array_equal(t.net.params[k], v)
        assert t.progress.best_ppl == 50.0


def test_weight_average_follows_its_recurrence_and_is_what_is_saved(tmp_path, corpus):
    d = 0.9
    t = start(tmp_path / "m", corpus, ema=d, epochs=1, lr=0.05)
    bar = {k: v.astype(np.float64) for k, v in t.net.params.items()}  # starts at theta_0
    real_update = t.opt.update

    def update_and_follow(params, grads):
        real_update(params, grads)
        n = t.progress.updates  # updates before this one
        rate = 1 - min(d, (1 + n) / (10 + n))
        for k, theta in params.items():
            bar[k] += rate * (theta - bar[k])

    t.opt.update = update_and_follow
    t.run(log=lambda m: None)
    assert t.progress.updates == 11
    saved = weights(tmp_path / "m")
    for k, v in bar.items():
        np.testing.assert_allclose(t.average.params[k], v, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(
            saved[k], t.average.params[k]
        )  # no --valid: the average is kept
        assert not np.array_equal(t.average.params[k], t.net.params[k])


def test_validation_scores_the_average_and_rollback_resets_it(tmp_path, corpus):
    t = start(tmp_path / "m", corpus, corpus, ema=0.99, epochs=1)
    t.run(log=lambda m: None)
    averaged = evaluate(
        Network.build(t.net.config, t.average.params), encode_file(corpus, t.vocab), False
    )
    assert t.progress.best_ppl == pytest.approx(np.exp(-averaged[0] / averaged[1]))
    for v in [*t.net.params.values(), *t.average.params.values()]:
        v += 1.0  # a bad epoch
    [(_, accepted, done)] = run_schedule(t, [t.progress.best_ppl * 2])
    assert not accepted and not done
    for k, v in t.best_params.items():
        np.testing.assert_array_equal(t.net.params[k], v)
        np.testing.assert_array_equal(t.average.params[k], v)


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda a: a.pop("ema.U"), "missing arrays ema.U"),
        (lambda a: a.__setitem__("ema.W", np.zeros((3, 3), np.float32)), "ema.W has shape"),
        (lambda a: a["ema.c"].__setitem__(0, np.nan), "ema.c holds NaN"),
        (lambda a: a.pop("opt.m.V"), "missing arrays opt.m.V"),
        (lambda a: a.__setitem__("opt.v.W", np.zeros((2, 2), np.float32)), "opt.v.W has shape"),
        (lambda a: a["opt.v.b"].__setitem__(0, -1.0), "opt.v.b holds negative values"),
    ],
)
def test_resume_checks_the_saved_average_and_moments(tmp_path, corpus, tamper, message):
    start(tmp_path / "m", corpus, ema=0.9, epochs=1).run(log=lambda m: None)
    path = tmp_path / "m" / "resume.npz"
    arrays = dict(load_arrays(str(path)))
    tamper(arrays)
    np.savez(path, **arrays)
    with pytest.raises(lm.LMError, match=message):
        Trainer.resume(str(tmp_path / "m"), show_progress=False)


def test_same_seed_gives_identical_weights(tmp_path, corpus):
    start(tmp_path / "a", corpus, seed=7).run(log=lambda m: None)
    start(tmp_path / "b", corpus, seed=7).run(log=lambda m: None)
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "optimizer, ema, output, cell, tie, layers",
    [
        ("adam", 0.0, "full", "elman", False, 1),
        ("sgd", 0.0, "full", "elman", False, 1),
        ("adam", 0.9, "full", "elman", False, 1),
        ("adam", 0.0, "class", "elman", False, 1),
        ("sgd", 0.0, "class", "elman", False, 1),
        ("adam", 0.9, "full", "gru", False, 1),
        ("sgd", 0.0, "full", "lstm", False, 1),
        ("adam", 0.0, "class", "lstm", False, 1),
        ("adam", 0.9, "full", "gru", True, 1),
        ("adam", 0.0, "class", "gru", True, 1),
        ("adam", 0.9, "full", "lstm", False, 2),
        ("adam", 0.0, "class", "gru", True, 3),
    ],
)
@pytest.mark.parametrize("stop_after", [3, 11])  # mid-epoch; at the end of epoch 1 (11 windows)
def test_interrupted_and_resumed_run_ends_bit_for_bit_equal(
    tmp_path, corpus, optimizer, ema, output, cell, tie, layers, stop_after
):
    """With the class head the updates are lazy (sparse): its state is Adam's m, v and t all
    the same, and a resumed run ends on the same bits. The LSTM carries [h | c] across the
    interruption, stacked layers every layer's state. Tied weights (V = E^T) are one array,
    E, saved and resumed once."""
    kw = dict(
        optimizer=optimizer, ema=ema, epochs=4, output=output, cell=cell, tie=tie, layers=layers
    )
    if output == "class":
        kw["n_classes"] = 3
    start(tmp_path / "full", corpus, corpus, **kw).run(log=lambda m: None)

    t = start(tmp_path / "cut", corpus, corpus, **kw)
    interrupt_after(t, stop_after)
    with pytest.raises(lm.LMError, match="lm train --resume"):
        t.run(log=lambda m: None)
    Trainer.resume(str(tmp_path / "cut"), show_progress=False).run(log=lambda m: None)

    for name in ("weights.npz", "resume.npz"):
        a, b = weights(tmp_path / "full", name), weights(tmp_path / "cut", name)
        assert a.keys() == b.keys()
        for k in a:
            if k != "meta":
                assert np.array_equal(a[k], b[k]), f"{name}:{k} differs after resume"


def test_nan_loss_stops_with_epoch_and_step_and_keeps_checkpoint(tmp_path, corpus):
    t = start(tmp_path / "m", corpus, corpus, epochs=3)
    real = t.net.loss_and_grads
    calls = {"n": 0}

    def poisoned(*args):
        calls["n"] += 1
        loss, grads, s = real(*args)
        return (float("nan") if calls["n"] == 15 else loss), grads, s

    t.net.loss_and_grads = poisoned
    with pytest.raises(TrainingError, match=r"epoch 2, step 4"):
        t.run(log=lambda m: None)
    model = lm.load(tmp_path / "m")  # the epoch-1 checkpoint is intact and loads
    assert np.isfinite(model.net.params["V"]).all()


def test_nan_skip_counts_skipped_batches(tmp_path, corpus):
    t = start(tmp_path / "m", corpus, corpus, epochs=1, on_nan="skip")
    real = t.net.loss_and_grads
    t.net.loss_and_grads = lambda *a: (float("inf"),) + real(*a)[1:]
    assert t.run(log=lambda m: None)["skipped_batches"] == 11


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path, corpus, monkeypatch):
    t = start(tmp_path / "m", corpus, corpus, epochs=1)
    t.run(log=lambda m: None)
    before = weights(tmp_path / "m")
    import lm.checkpoint as ck

    def failing_savez(f, **arrays):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck.np, "savez", failing_savez)
    with pytest.raises(lm.LMError, match="previous checkpoint is intact"):
        t.save_best()
    monkeypatch.undo()
    after = weights(tmp_path / "m")
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert not [f for f in os.listdir(tmp_path / "m") if f.startswith(".tmp-")]


def test_model_directory_contents_and_log(tmp_path, corpus):
    out = tmp_path / "m"
    start(out, corpus, corpus, epochs=2).run(log=lambda m: None)
    for name in ("config.json", "weights.npz", "tokenizer.json", "log.jsonl", "training.png"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["format_version"] == 1 and config["n_vocab"] == lm.load(out).vocab.size
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and all(r["valid_ppl"] > 1 for r in log)


def run_cli(*args):
    return CliRunner().invoke(main, list(args))


def test_cli_trains_and_prints_json(tmp_path, corpus):
    r = run_cli(
        "train",
        corpus,
        "--valid",
        corpus,
        "--out",
        str(tmp_path / "m"),
        "--hidden",
        "8",
        "--batch-size",
        "4",
        "--bptt",
        "5",
        "--epochs",
        "2",
        "--schedule",
        "plateau",
        "--halvings",
        "3",
        "--quiet",
        "--json",
    )
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"valid_ppl", "train_tokens", "epochs", "seconds", "tokens_per_second"} <= set(summary)
    training = json.loads((tmp_path / "m" / "config.json").read_text())["training"]["config"]
    assert (training["schedule"], training["halvings"]) == ("plateau", 3)


def blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")


def test_threads_option_limits_blas_threads(tmp_path, corpus):
    from threadpoolctl import threadpool_limits

    before = blas_threads()
    try:
        args = ["--hidden", "8", "--batch-size", "4", "--bptt", "5", "--epochs", "1", "--quiet"]
        r = run_cli("--threads", "1", "train", corpus, "--out", str(tmp_path / "m"), *args)
        assert r.exit_code == 0, r.output
        assert blas_threads() == 1
    finally:
        threadpool_limits(before, user_api="blas")
    assert run_cli("--threads", "0", "train", corpus, "--out", str(tmp_path / "n")).exit_code == 2


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text(""), "no words"),
        (lambda p: p.write_text("  \n\t\n"), "no words"),
        (lambda p: p.write_bytes(b"good line\nbad \xff byte\n"), ":2: not valid UTF-8"),
    ],
)
def test_cli_bad_training_files(tmp_path, make_input, message):
    path = tmp_path / "train.txt"
    make_input(path)
    r = run_cli("train", str(path), "--out", str(tmp_path / "m"), "--quiet")
    assert r.exit_code == 1
    assert message in r.stderr and "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--vocab-size", "3"],
        ["--bptt", "0"],
        ["--batch-size", "0"],
        ["--activation", "step"],
        ["--activation", "cubic"],
        ["--schedule", "cosine"],
        ["--halvings", "-1"],
        ["--output", "tree"],
        ["--output", "class", "--classes", "0"],
        ["--output", "class", "--classes", "-3"],
        ["--output", "full", "--classes", "5"],  # --classes is for the class head only
    ],
)
def test_cli_usage_errors(tmp_path, corpus, args):
    r = run_cli("train", corpus, "--out", str(tmp_path / "m"), *args)
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_cli_classes_beyond_the_vocabulary_is_a_usage_error_naming_the_size(tmp_path, corpus):
    """The corpus has 25 words (3 specials and 22 words): --classes 25 works, 26 does not."""
    out = str(tmp_path / "m")
    r = run_cli("train", corpus, "--out", out, "--output", "class", "--classes", "26")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "--classes" in r.stderr and "1..25 (the vocabulary size), got 26" in r.stderr
    assert not os.path.exists(out)
    r = run_cli(
        "train",
        corpus,
        "--out",
        out,
        "--output",
        "class",
        "--classes",
        "25",
        "--epochs",
        "1",
        "--hidden",
        "4",
        "--batch-size",
        "4",
    )
    assert r.exit_code == 0, r.output
    assert "(25 classes)" in r.stderr
    with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
        assert json.load(f)["model"]["classes"] == list(range(26))


def test_cli_picks_the_class_head_above_class_above_words_or_with_classes(
    tmp_path, corpus, monkeypatch
):
    """Without --output: the full softmax up to heads.CLASS_ABOVE words, the class head (its
    default number of classes) above, and the class head whenever --classes is given."""
    common = ["--hidden", "4", "--batch-size", "4", "--epochs", "1", "-q"]

    def head(name, *args):
        r = run_cli("train", corpus, "--out", str(tmp_path / name), *common, *args)
        assert r.exit_code == 0, r.output
        return lm.load(tmp_path / name).net.config

    assert head("small").output == "full"  # 25 words
    assert head("asked", "--classes", "3").classes == heads.class_bounds(
        np.bincount(encode_file(corpus, lm.load(tmp_path / "small").vocab)[1:]), 3
    )
    monkeypatch.setattr(heads, "CLASS_ABOVE", 24)
    config = head("large")
    assert config.output == "class" and len(config.classes) == heads.default_classes(25) + 1
    assert head("told", "--output", "full").output == "full"


def test_cli_refuses_to_overwrite_another_model(tmp_path, corpus):
    out = str(tmp_path / "m")
    args = [
        "train",
        corpus,
        "--out",
        out,
        "--hidden",
        "4",
        "--batch-size",
        "4",
        "--epochs",
        "1",
        "--quiet",
    ]
    assert run_cli(*args).exit_code == 0
    r = run_cli(*args)
    assert r.exit_code == 1 and "--force" in r.stderr
    assert run_cli(*args, "--force").exit_code == 0


def test_corpus_shorter_than_a_batch_says_why(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("one two\n")
    r = run_cli("train", str(path), "--out", str(tmp_path / "m"), "--batch-size", "20", "--quiet")
    assert r.exit_code == 1 and "--min-count 1" in r.stderr  # no word is seen twice
    args = ("--min-count", "1", "--batch-size", "20", "--quiet")
    r = run_cli("train", str(path), "--out", str(tmp_path / "m"), *args)
    assert r.exit_code == 1 and "--batch-size" in r.stderr


def test_sigint_saves_checkpoint_and_resume_finishes(tmp_path):
    """A real SIGINT to a real `lm train` process, then --resume."""
    path = tmp_path / "train.txt"
    path.write_text("\n".join(SENTENCES * 400) + "\n")
    out = tmp_path / "m"
    cmd = [
        sys.executable,
        "-m",
        "lm.cli",
        "train",
        str(path),
        "--out",
        str(out),
        "--hidden",
        "64",
        "--batch-size",
        "2",
        "--bptt",
        "5",
        "--epochs",
        "3",
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # wait until training has started
        if line.startswith("vocabulary:"):
            break
    import time

    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert "lm train --resume" in err and "Traceback" not in err
    assert (out / "resume.npz").is_file()
    r = run_cli("train", "--resume", str(out), "--quiet")
    assert r.exit_code == 0, r.output


# ----- numbers are finite or refused -----


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity (which json.dumps writes, but are not JSON)."""

    def refuse(name):
        raise ValueError(f"{name} in JSON output")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("extra", [[], ["--optimizer", "sgd", "--clip-norm", "0"]])
def test_a_huge_finite_loss_is_the_non_finite_loss_error(tmp_path, corpus, extra):
    """--lr 1e6 makes the loss finite but its perplexity overflow: the same one-line error
    as a NaN (not an OverflowError), no RuntimeWarning, and no model saved."""
    import warnings

    out = tmp_path / "m"
    args = ["train", corpus, "--valid", corpus, "--out", str(out), "--lr", "1e6", *extra]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning would now be an exception
        r = run_cli(*args, "--hidden", "8", "--batch-size", "4", "--bptt", "5", "--quiet")
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert (
        r.stderr.strip()
        .splitlines()[-1]
        .startswith("lm: error: non-finite loss or gradient at epoch 1, step ")
    )
    assert "Overflow" not in r.stderr and "Warning" not in r.stderr
    assert not (out / "weights.npz").exists()


@pytest.mark.parametrize("checkpoint_minutes", [10.0, 1e-9])  # at the epoch end; mid-epoch
def test_non_finite_weights_are_never_saved(tmp_path, corpus, checkpoint_minutes):
    """Weights that became infinite where no loss sees them yet (a row of U for a word that
    the next windows do not contain) are caught before any save."""
    t = start(tmp_path / "m", corpus, corpus, epochs=2, checkpoint_minutes=checkpoint_minutes)
    real_update, calls = t.opt.update, {"n": 0}

    def poisoning_update(params, grads):
        real_update(params, grads)
        calls["n"] += 1
        if calls["n"] == 11:  # the last window of epoch 1
            params["U"][0] = np.inf  # row 0: a special token never fed as input

    t.opt.update = poisoning_update
    with pytest.raises(TrainingError, match="the weights became non-finite"):
        t.run(log=lambda m: None)
    for name in ("weights.npz", "resume.npz"):
        path = tmp_path / "m" / name
        if path.exists():
            assert all(np.isfinite(a).all() for a in load_arrays(str(path)).values()), name


def test_non_finite_perplexities_are_null_in_json_and_never_the_best(tmp_path, corpus, monkeypatch):
    from lm import training

    monkeypatch.setattr(training, "evaluate", lambda *a, **k: (-np.inf, 10))
    out = tmp_path / "m"
    r = run_cli(
        "train", corpus, "--valid", corpus, "--out", str(out), "--hidden", "8",
        "--batch-size", "4", "--bptt", "5", "--epochs", "2", "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert strict_json(r.stdout.splitlines()[-1])["valid_ppl"] is None
    records = [strict_json(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [x["valid_ppl"] for x in records] == [None, None]
    assert not any(x["accepted"] for x in records)
    assert strict_json((out / "config.json").read_text())["training"]["best_valid_ppl"] is None
    assert "valid ppl inf" in r.stderr and "(worse: rolled back)" in r.stderr
    assert "best valid ppl none (no epoch had a finite one);" in r.stderr


# ----- signals -----


def test_sigint_during_validation_stops_it_and_resumes_bit_for_bit(tmp_path, corpus, monkeypatch):
    kw = {"epochs": 3, "eval_batch_size": 1}  # one column: two validation windows of 128
    start(tmp_path / "full", corpus, corpus, **kw).run(log=lambda m: None)
    t = start(tmp_path / "cut", corpus, corpus, **kw)
    real, calls = Network.target_logprobs, {"n": 0}

    def signalled_in_validation(self, *args):
        calls["n"] += 1
        if calls["n"] == 3:  # epoch 2's validation, first window
            t._on_signal(signal.SIGINT, None)
        return real(self, *args)

    monkeypatch.setattr(Network, "target_logprobs", signalled_in_validation)
    with pytest.raises(lm.LMError, match=r"\(epoch 2, window 11\); continue with"):
        t.run(log=lambda m: None)
    assert calls["n"] == 3  # the second window was never scored
    monkeypatch.undo()
    Trainer.resume(str(tmp_path / "cut"), show_progress=False).run(log=lambda m: None)
    for name in ("weights.npz", "resume.npz"):
        a, b = weights(tmp_path / "full", name), weights(tmp_path / "cut", name)
        for k in a:
            if k != "meta":
                assert np.array_equal(a[k], b[k]), f"{name}:{k} differs after resume"


def test_a_second_signal_stops_at_once(tmp_path, corpus):
    t = start(tmp_path / "m", corpus, corpus)
    step = t._step

    def twice(*args):
        step(*args)
        t._on_signal(signal.SIGINT, None)
        t._on_signal(signal.SIGINT, None)  # e.g. while the first one's checkpoint is written

    t._step = twice
    with pytest.raises(KeyboardInterrupt):
        t.run(log=lambda m: None)
    assert not (tmp_path / "m" / "resume.npz").exists()  # it did not wait to save
    start(tmp_path / "m", corpus).close()  # and the directory is free again


def test_cli_second_ctrl_c_exits_130_at_once(tmp_path, corpus, monkeypatch):
    real = Trainer._step

    def twice(self, *args):
        real(self, *args)
        self._on_signal(signal.SIGINT, None)
        self._on_signal(signal.SIGINT, None)

    monkeypatch.setattr(Trainer, "_step", twice)
    r = run_cli("train", corpus, "--out", str(tmp_path / "m"), "--hidden", "4", "--quiet")
    assert r.exit_code == 130
    assert r.stderr.strip().splitlines()[-1] == (
        "lm: interrupted again: stopped at once; no checkpoint had been written yet"
    )


# ----- what lm train prints -----


def test_cli_prints_human_lines(tmp_path, corpus):
    common = ["--hidden", "8", "--batch-size", "4", "--bptt", "5", "--epochs", "1"]
    r = run_cli("train", corpus, "--valid", corpus, "--out", str(tmp_path / "a"), *common)
    assert r.exit_code == 0, r.output
    first, *_, last = r.stderr.strip().splitlines()
    assert first == (
        "vocabulary: 25 words; model: embedding 8 input, 8 gru units, 25-word softmax, "
        "tied to the embedding"
    )
    path = re.escape(str(tmp_path / "a"))
    assert re.fullmatch(rf"best valid ppl \d+\.\d\d; model in {path}", last)
    assert "ModelConfig" not in r.stderr and "None" not in r.stderr
    r = run_cli(
        "train", corpus, "--out", str(tmp_path / "b"), *common, "--input", "embedding",
        "--embed-dim", "5",
    )  # fmt: skip
    assert "model: embedding 5 input, 8 gru units, 25-word softmax\n" in r.stderr  # untied
    assert r.stderr.strip().splitlines()[-1] == f"no validation file; model in {tmp_path / 'b'}"
    assert lm.load(tmp_path / "a").net.config.tie and not lm.load(tmp_path / "b").net.config.tie


@pytest.mark.parametrize(
    "args, words",
    [
        (["--tie", "--input", "onehot"], "--tie needs --input embedding"),
        (["--tie", "--embed-dim", "5"], "--embed-dim equal to --hidden"),
    ],
)
def test_cli_tie_the_shapes_cannot_make_is_a_usage_error(tmp_path, corpus, args, words):
    r = run_cli("train", corpus, "--out", str(tmp_path / "m"), "--hidden", "8", *args)
    assert r.exit_code == 2 and words in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "m").exists()


def test_cli_no_tie_keeps_separate_output_weights(tmp_path, corpus):
    common = ["--hidden", "8", "--batch-size", "4", "--bptt", "5", "--epochs", "1", "-q"]
    r = run_cli("train", corpus, "--out", str(tmp_path / "m"), *common, "--no-tie")
    assert r.exit_code == 0, r.output
    net = lm.load(tmp_path / "m").net
    assert not net.config.tie and net.params["V"].shape == (8, 25)


@pytest.mark.parametrize(
    "args, option",
    [(["--seed", "-1"], "--seed"), (["--lr", "nan"], "--lr"), (["--l2", "nan"], "--l2")],
)
def test_cli_non_finite_or_negative_values_are_usage_errors(tmp_path, corpus, args, option):
    r = run_cli("train", corpus, "--out", str(tmp_path / "m"), *args)
    assert r.exit_code == 2 and option in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "m").exists()


def test_cli_layers_trains_saves_and_scores_a_stacked_model(tmp_path, corpus):
    common = ["--hidden", "8", "--batch-size", "4", "--bptt", "5", "--epochs", "1"]
    r = run_cli("train", corpus, "--out", str(tmp_path / "m"), *common, "--layers", "2",
                "--cell", "lstm")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "model: embedding 8 input, 2 layers of 8 lstm units, 25-word softmax" in r.stderr
    model = lm.load(tmp_path / "m")
    assert model.net.config.layers == 2 and model.net.params["W2"].shape == (8, 32)
    with open(tmp_path / "m" / "config.json") as f:
        assert json.load(f)["model"]["layers"] == 2
    assert math.isfinite(model.score("the cat sat")) and model.perplexity("the cat") > 1


def test_cli_layers_below_one_is_a_usage_error(tmp_path, corpus):
    r = run_cli("train", corpus, "--out", str(tmp_path / "m"), "--layers", "0")
    assert r.exit_code == 2 and "--layers" in r.stderr and "Traceback" not in r.output
