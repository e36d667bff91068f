"""resume.npz (``lm.checkpoint``'s Resume, save_resume, load_resume), the training data's
fingerprints and the one-writer lock on a model directory; and ``lm train --resume`` on top.

A tampered checkpoint is refused with one line naming the file and the array or field, never
a traceback and never training on it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from lmfixtures import interrupt_after

from lm import checkpoint
from lm.checkpoint import DirectoryLock
from lm.cli import main
from lm.errors import LMError, ModelFileError
from lm.training import TrainConfig, Trainer, VocabConfig

SENTENCES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "my bird sang a song",
    "the sun is hot today",
    "we like green tea",
]
TINY = ["--hidden", "8", "--batch-size", "4", "--bptt", "6", "--quiet"]


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv("LM_DEBUG", raising=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("corpus") / "train.txt"
    path.write_text("\n".join(SENTENCES * 8) + "\n")
    return str(path)


def start(out, corpus, valid=None, force=False, **kw):
    mc = {"hidden": kw.pop("hidden", 8), "input": "onehot", "embed_dim": 0}
    tc = TrainConfig(**{"batch_size": 4, "bptt": 6, "epochs": 3, **kw})
    return Trainer.start(
        str(out), corpus, valid, mc, tc, VocabConfig(), show_progress=False, force=force
    )


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory, corpus) -> str:
    """A run stopped in the middle of epoch 2 (11 windows an epoch): config.json, weights,
    resume.npz with Adam's moments, the weight average and a carried state."""
    out = tmp_path_factory.mktemp("ckpt") / "m"
    t = start(out, corpus, corpus, ema=0.9)
    interrupt_after(t, 14)
    with pytest.raises(LMError, match="lm train --resume"):
        t.run(log=lambda m: None)
    return str(out)


@pytest.fixture
def copy(checkpointed, tmp_path) -> str:
    out = tmp_path / "m"
    shutil.copytree(checkpointed, out)
    return str(out)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, code=1) -> str:
    assert result.exit_code == code, (result.exit_code, result.output[-800:])
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("lm: error: "), result.stderr
    return lines[-1]


# ----- the layout -----


def test_save_then_load_gives_back_every_part(copy):
    path = os.path.join(copy, "resume.npz")
    r = checkpoint.load_resume(path)
    assert (r.progress.epoch, r.progress.window) == (1, 3)
    assert r.carry.shape == (4, 8) and r.carry.dtype == np.float32
    assert set(r.optimizer) == {"t"} | {f"{m}.{k}" for m in "mv" for k in r.params}
    assert int(r.average["n"]) == r.progress.updates == int(r.optimizer["t"]) == 14
    again = os.path.join(copy, "again.npz")
    checkpoint.save_resume(again, r)
    r2 = checkpoint.load_resume(again)
    assert r2.progress == r.progress and r2.train_config == r.train_config
    assert r2.config == r.config and r2.vocab_config == r.vocab_config
    assert r2.rng.bit_generator.state == r.rng.bit_generator.state
    for a, b in [(r.params, r2.params), (r.optimizer, r2.optimizer), (r.average, r2.average)]:
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    np.testing.assert_array_equal(r.carry, r2.carry)


def edit_meta(edit):
    def tamper(arrays):
        meta = checkpoint.unpack_json(arrays["meta"])
        edit(meta)
        arrays["meta"] = checkpoint.pack_json(meta)

    return tamper


def set_field(section, field, value):
    return edit_meta(lambda m: m[section].__setitem__(field, value))


def put(name, value):
    return lambda a: a.__setitem__(name, value)


def carry_nan(arrays):
    arrays["carry"] = arrays["carry"].copy()
    arrays["carry"][0, 0] = np.nan


TAMPERS = [
    # carried state
    (put("carry", np.zeros((3, 8), np.float32)), "carry has shape (3, 8), but train_config"),
    (put("carry", np.zeros((4, 9), np.float32)), "carry has shape (4, 9), the model implies"),
    (put("carry", np.zeros((4,), np.float32)), "carry has shape (4,), the model implies"),
    (put("carry", np.zeros((4, 8), np.float64)), "carry has dtype float64"),
    (carry_nan, "carry holds NaN"),
    (lambda a: a.pop("carry"), "missing arrays carry"),
    # training config and progress
    (set_field("train_config", "batch_size", 5), "carry has shape (4, 8), but train_config"),
    (set_field("train_config", "batch_size", -1), "train_config: batch_size must be an integer"),
    (set_field("train_config", "batch_size", "4"), "train_config: batch_size must be"),
    (set_field("train_config", "bptt", 0), "train_config: bptt must be"),
    (set_field("train_config", "schedule", "cosine"), "train_config: schedule must be one of"),
    (set_field("train_config", "optimizer", "sgd"), "unexpected arrays opt.* (SGD keeps"),
    (set_field("train_config", "colour", "red"), "train_config: unknown fields colour"),
    (set_field("progress", "lr", -0.01), "progress: lr must be a finite number > 0"),
    (set_field("progress", "lr", float("nan")), "progress: lr must be a finite number > 0"),
    (set_field("progress", "lr", float("inf")), "progress: lr must be a finite number > 0"),
    (set_field("progress", "epoch", -1), "progress: epoch must be an integer >= 0"),
    (set_field("progress", "window", -2), "progress: window must be an integer >= 0"),
    (set_field("progress", "updates", 99), "opt.t is 14, but progress.updates is 99"),
    (edit_meta(lambda m: m["progress"].pop("window")), "progress: missing fields window"),
    (edit_meta(lambda m: m.pop("progress")), "meta has no progress"),
    (edit_meta(lambda m: m.__setitem__("format", 1)), "checkpoint format 1 is not supported"),
    (edit_meta(lambda m: m.__setitem__("rng", {"x": 1})), "rng is not a random generator"),
    (edit_meta(lambda m: m["model"].__setitem__("hidden", 9)), "param.W has shape"),
    (edit_meta(lambda m: m["model"].__setitem__("hidden", -9)), "bad 'model' section"),
    (put("meta", np.frombuffer(b"\xff{", np.uint8)), "meta is not a valid JSON document"),
    (lambda a: a.pop("meta"), "missing arrays meta"),
    # optimiser and average
    (put("opt.t", np.array([14, 14])), "opt.t is not an integer count"),
    (put("opt.t", np.array(13)), "opt.t is 13, but progress.updates is 14"),
    (put("ema.n", np.array(3)), "ema.n is 3, but progress.updates is 14"),
    (lambda a: a.pop("ema.n"), "missing arrays ema.n"),
    (put("opt.z.W", np.zeros((8, 8), np.float32)), "unexpected arrays opt.z.W"),
    (put("junk", np.zeros(3)), "unexpected array junk"),
    (lambda a: a.pop("param.V"), "missing arrays param.V"),
]


def tamper_file(directory, tamper) -> str:
    path = os.path.join(directory, "resume.npz")
    arrays = dict(checkpoint.load_arrays(path))
    tamper(arrays)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("tamper, message", TAMPERS, ids=[m for _, m in TAMPERS])
def test_a_tampered_checkpoint_is_refused_naming_file_and_field(copy, tamper, message):
    path = tamper_file(copy, tamper)
    with pytest.raises(ModelFileError) as e:
        checkpoint.load_resume(path)
    assert str(e.value).startswith(f"{path}: ")
    assert message in str(e.value)


@pytest.mark.parametrize(
    "tamper, message",
    [TAMPERS[0], TAMPERS[7], TAMPERS[13], TAMPERS[16], TAMPERS[22], TAMPERS[28]],
)
def test_lm_train_resume_of_a_tampered_checkpoint_is_one_line(copy, tamper, message):
    path = tamper_file(copy, tamper)
    line = one_line_error(run("train", "--resume", copy, "--quiet"))
    assert line.startswith(f"lm: error: {path}: ") and message in line


def test_a_position_past_the_end_of_the_data_is_refused(copy):
    path = tamper_file(copy, set_field("progress", "window", 12))  # an epoch has 11
    line = one_line_error(run("train", "--resume", copy, "--quiet"))
    assert line == f"lm: error: {path}: progress.window 12 is past the end of an epoch (11 windows)"


def test_resume_needs_a_model_directory(tmp_path):
    line = one_line_error(run("train", "--resume", tmp_path / "nowhere", "--quiet"))
    assert line.endswith("nowhere: no such model directory")
    assert not (tmp_path / "nowhere").exists()  # resume never creates one


# ----- the training data's fingerprints -----


def test_fingerprint_is_size_and_hash_of_a_regular_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"one two\n")
    a = checkpoint.fingerprint(path)
    assert a["size"] == 8 and len(a["blake2b"]) == 32
    assert checkpoint.fingerprint(path) == a and checkpoint.data_change(a, a) is None
    path.write_bytes(b"one twx\n")
    b = checkpoint.fingerprint(path)
    assert checkpoint.data_change(a, b) == "its contents changed (same size)"
    path.write_bytes(b"one two three\n")
    assert "size changed from 8 to 14 bytes" in checkpoint.data_change(
        a, checkpoint.fingerprint(path)
    )
    path.unlink()
    assert checkpoint.fingerprint(path) is None
    assert checkpoint.data_change(a, None).startswith("it is gone")
    assert checkpoint.data_change(None, a) is None  # nothing saved to compare with


def test_a_pipe_has_no_fingerprint(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert checkpoint.fingerprint(fifo) is None  # at once: it does not wait for a writer


def trained(tmp_path, corpus, *extra):
    """A finished 1-epoch run whose training and validation files are copies we may edit."""
    train, valid = tmp_path / "train.txt", tmp_path / "valid.txt"
    shutil.copy(corpus, train)
    shutil.copy(corpus, valid)
    out = tmp_path / "m"
    r = run("train", train, "--valid", valid, "--out", out, "--epochs", "1", *TINY, *extra)
    assert r.exit_code == 0, r.output
    return out, train, valid


@pytest.mark.parametrize("which", ["train", "valid"])
def test_resume_after_the_data_changed_is_refused_or_forced(tmp_path, corpus, which):
    out, train, valid = trained(tmp_path, corpus)
    path = train if which == "train" else valid
    text = path.read_text()
    path.write_text(text.replace("cat", "cow", 1))  # same size, other contents
    line = one_line_error(run("train", "--resume", out, "--epochs", "2", "--quiet"))
    assert line.startswith(f"lm: error: {path}: the ") and "changed since the checkpoint" in line
    assert "(its contents changed (same size))" in line and "--force" in line
    forced = run("train", "--resume", out, "--epochs", "2", "--quiet", "--force")
    assert forced.exit_code == 0, forced.output
    assert "no longer bit for bit reproducible" in forced.stderr
    records = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    what = "training_file" if which == "train" else "validation_file"
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[1]["changed"][what] == "its contents changed (same size)"
    assert run("train", "--resume", out, "--epochs", "3", "--quiet").exit_code == 0  # now known


def test_resume_after_the_data_grew_past_the_position_goes_on_with_force(tmp_path, corpus):
    out, train, _ = trained(tmp_path, corpus, "--checkpoint-minutes", "10")
    train.write_text("\n".join(SENTENCES) + "\n")  # far shorter than before
    line = one_line_error(run("train", "--resume", out, "--epochs", "2", "--quiet"))
    assert "size changed from" in line
    assert run("train", "--resume", out, "--epochs", "2", "--quiet", "--force").exit_code == 0


# ----- options on resume -----


@pytest.mark.parametrize(
    "extra, names",
    [
        (["--hidden", "16"], "--hidden"),
        (["--batch-size", "2", "--bptt", "3"], "--batch-size, --bptt"),
        (["{train}"], "TRAIN_FILE"),
        (["--valid", "{train}", "--out", "x"], "--valid, --out"),
        (["--independent"], "--independent"),
        (["--seed", "0"], "--seed"),  # given, even with the value it had
    ],
)
def test_options_that_cannot_change_on_resume_are_a_usage_error(tmp_path, corpus, extra, names):
    out, train, _ = trained(tmp_path, corpus)
    args = [a.format(train=train) for a in extra]
    r = run("train", "--resume", out, *args)
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"these cannot change: {names} (" in r.stderr
    assert "--epochs, --max-minutes, --checkpoint-minutes, --lr and --on-nan can" in r.stderr


def test_a_finished_run_is_extended_with_a_larger_epochs(tmp_path, corpus):
    out, _, _ = trained(tmp_path, corpus)
    same = run("train", "--resume", out)
    assert same.exit_code == 0
    assert "nothing to do: --epochs 1 reached; give a larger --epochs to train on" in same.stderr
    r = run("train", "--resume", out, "--epochs", "3", "--lr", "0.001", "--json")
    assert r.exit_code == 0, r.output
    assert (
        f"resuming {out} at epoch 2, window 0 with --epochs 3 (was 1), --lr 0.001 (was 0.003)"
        in (r.stderr)
    )
    assert json.loads(r.stdout.splitlines()[-1])["epochs"] == 3
    records = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in records] == [1, 2, 3]
    assert records[1]["changed"] == {"epochs": [1, 3], "lr": [0.003, 0.001]}
    assert records[1]["lr"] == 0.001 and "changed" not in records[2]
    config = json.loads((out / "config.json").read_text())["training"]
    assert config["config"]["epochs"] == 3 and config["epochs"] == 3


def test_a_run_ended_by_its_time_limit_goes_on_with_a_larger_one(tmp_path, corpus):
    train = tmp_path / "train.txt"
    train.write_text("\n".join(SENTENCES * 200) + "\n")  # a few hundred windows an epoch
    out = tmp_path / "m"
    first = run("train", train, "--out", out, "--epochs", "1", "--max-minutes", "1e-6", *TINY)
    assert first.exit_code == 0, first.output
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["tokens"] < 200 * 30  # stopped early in the epoch
    again = run("train", "--resume", out, "--epochs", "2")
    assert "nothing to do: --max-minutes 1e-06 used up" in again.stderr
    longer = run("train", "--resume", out, "--epochs", "2", "--max-minutes", "30", "--quiet")
    assert longer.exit_code == 0, longer.output
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in log] == [1, 2] and log[1]["changed"]["max_minutes"] == [1e-6, 30]


# ----- one writer per model directory -----


def test_a_held_lock_refuses_a_second_writer_naming_the_pid(tmp_path):
    lock = DirectoryLock(tmp_path / "m")
    assert (tmp_path / "m" / ".lock").read_text() == f"{os.getpid()}\n"
    with pytest.raises(LMError, match=rf"m: in use by another lm train \(PID {os.getpid()}\)"):
        DirectoryLock(tmp_path / "m")
    lock.release()
    assert not (tmp_path / "m").exists()  # it made the directory and nothing else was written
    (tmp_path / "m").mkdir()
    DirectoryLock(tmp_path / "m").release()
    assert (tmp_path / "m" / ".lock").read_text() == ""  # kept, no holder


def test_lm_train_and_resume_are_refused_while_another_run_holds_the_directory(
    tmp_path, corpus, copy
):
    for args in (["train", corpus, "--out", copy, "--force"], ["train", "--resume", copy]):
        lock = DirectoryLock(copy)
        try:
            line = one_line_error(run(*args, *(["--quiet"])))
        finally:
            lock.release()
        assert line == (
            f"lm: error: {copy}: in use by another lm train (PID {os.getpid()}); wait for it "
            "to finish or stop it"
        )
    assert run("train", "--resume", copy, "--quiet").exit_code == 0  # free again


KILLED_HOLDER = textwrap.dedent("""
    import os, signal, sys
    from lm.checkpoint import DirectoryLock
    lock = DirectoryLock(sys.argv[1])
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_the_lock_of_a_killed_run_is_stale_and_taken(tmp_path):
    out = tmp_path / "m"
    proc = subprocess.run([sys.executable, "-c", KILLED_HOLDER, str(out)], timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL
    dead = (out / ".lock").read_text().strip()
    assert dead.isdigit() and int(dead) != os.getpid()
    lock = DirectoryLock(out)  # the kernel dropped the dead process's flock
    assert (out / ".lock").read_text() == f"{os.getpid()}\n"
    lock.release()


def test_a_second_real_lm_train_is_refused_while_the_first_runs(tmp_path):
    train = tmp_path / "train.txt"
    train.write_text("\n".join(SENTENCES * 400) + "\n")
    out = tmp_path / "m"
    cmd = [sys.executable, "-m", "lm.cli", "train", str(train), "--out", str(out)]
    cmd += ["--hidden", "64", "--batch-size", "2", "--bptt", "5", "--epochs", "50"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # the lock is taken before the vocabulary is built
            if line.startswith("vocabulary:"):
                break
        holder = f"(PID {proc.pid})"
        second = run("train", train, "--out", out, "--force", "--quiet")
        assert holder in one_line_error(second)
        resumed = run("train", "--resume", out, "--quiet")
        assert holder in one_line_error(resumed)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    assert proc.returncode == 130


def test_a_run_that_fails_before_writing_leaves_no_directory(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    one_line_error(run("train", empty, "--out", tmp_path / "m", "--quiet"))
    assert not (tmp_path / "m").exists()


def test_a_lock_that_cannot_be_taken_closes_its_file(tmp_path, monkeypatch):
    """flock failing otherwise than "held by another" (ENOLCK on some network file systems):
    the error is raised and the lock file closed then, not left open for the GC to find."""
    opened, real_fdopen = [], os.fdopen

    def fdopen(*args, **kwargs):
        opened.append(real_fdopen(*args, **kwargs))
        return opened[-1]

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(checkpoint.os, "fdopen", fdopen)
    monkeypatch.setattr(checkpoint.fcntl, "flock", no_locks)
    with pytest.raises(OSError, match="No locks available"):
        DirectoryLock(tmp_path / "m")
    assert len(opened) == 1 and opened[0].closed


def test_a_trainer_that_is_not_run_releases_the_directory_at_the_end_of_its_with_block(
    tmp_path, corpus
):
    with start(tmp_path / "m", corpus) as t:
        with pytest.raises(LMError, match="in use by another lm train"):
            DirectoryLock(tmp_path / "m")
        assert t.vocab.size > 3
    DirectoryLock(tmp_path / "m").release()  # free again
    with start(tmp_path / "m", corpus, epochs=1) as t:
        t.run(log=lambda m: None)  # run releases it, and the end of the block again: harmless
    assert (tmp_path / "m" / "weights.npz").exists()


def test_lm_train_stopped_between_start_and_run_releases_the_directory(
    tmp_path, corpus, monkeypatch
):
    """Ctrl-C while the vocabulary line is said (after Trainer.start, before run): the command
    releases the lock as it stops, rather than the GC when the Trainer is collected (with a
    ResourceWarning for the lock file)."""
    from lm.cli import train as cli_train

    started, real_start = [], Trainer.start

    def keep(*args, **kwargs):  # keeps the Trainer alive: only an explicit release frees out
        started.append(real_start(*args, **kwargs))
        return started[-1]

    def interrupted(mc):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "start", keep)
    monkeypatch.setattr(cli_train, "describe_model", interrupted)
    result = run("train", corpus, "--out", tmp_path / "m", *TINY)
    assert result.exit_code == 130 and result.stderr == "lm: interrupted\n"
    assert len(started) == 1
    DirectoryLock(tmp_path / "m").release()  # free again, though the Trainer is still alive


# ----- nothing that looks like a model before there is one -----


def test_a_run_stopped_in_its_first_epoch_is_no_model_but_resumes(tmp_path, corpus):
    out = tmp_path / "m"
    t = start(out, corpus, corpus)
    interrupt_after(t, 3)
    with pytest.raises(LMError, match=r"\(epoch 1, window 3\)"):
        t.run(log=lambda m: None)
    assert sorted(os.listdir(out)) == [".lock", "resume.npz", "tokenizer.json"]
    line = one_line_error(CliRunner().invoke(main, ["score", str(out), "-"], input="the cat\n"))
    assert line == (
        f"lm: error: {out}: no model yet: its training stopped before the end of the first "
        f"epoch (continue it with: lm train --resume {out})"
    )
    resumed_copy = tmp_path / "copy"
    shutil.copytree(out, resumed_copy)
    assert run("train", "--resume", resumed_copy, "--quiet").exit_code == 0
    assert (resumed_copy / "weights.npz").is_file()
    # a new run into it needs no --force, and starts afresh
    assert run("train", corpus, "--out", out, "--epochs", "1", *TINY).exit_code == 0
    assert [json.loads(x)["epoch"] for x in (out / "log.jsonl").read_text().splitlines()] == [1]


def test_a_run_failing_before_its_first_checkpoint_leaves_nothing_to_resume(tmp_path, corpus):
    out = tmp_path / "m"
    out.mkdir()  # (a directory that lm train made itself would be removed: see above)
    t = start(out, corpus)
    real = t.net.loss_and_grads
    t.net.loss_and_grads = lambda *a: (float("nan"),) + real(*a)[1:]
    with pytest.raises(LMError) as e:
        t.run(log=lambda m: None)
    assert "no checkpoint had been written yet" in str(e.value) and "kept" not in str(e.value)
    line = one_line_error(run("train", "--resume", out, "--quiet"))
    assert line == (
        f"lm: error: {out}: nothing to resume (the run stopped before its first checkpoint); "
        "start it again (no --force needed)"
    )
    assert os.listdir(out) == [".lock"]
    assert run("train", corpus, "--out", out, "--epochs", "1", *TINY).exit_code == 0


def test_intact_is_only_said_when_there_is_a_previous_checkpoint(tmp_path, corpus, monkeypatch):
    def failing_savez(f, **arrays):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.np, "savez", failing_savez)
    t = start(tmp_path / "m", corpus, checkpoint_minutes=1e-9)  # a checkpoint every window
    with pytest.raises(LMError) as e:
        t.run(log=lambda m: None)
    assert str(e.value) == (
        f"{tmp_path / 'm'}: cannot save (No space left on device); no checkpoint has been "
        "written yet"
    )


def test_force_over_a_model_clears_it_before_training(tmp_path, corpus):
    out, _, _ = trained(tmp_path, corpus)
    with pytest.raises(LMError, match="already holds a model; use --force to overwrite it"):
        start(out, corpus)
    t = start(out, corpus, force=True)
    interrupt_after(t, 2)
    with pytest.raises(LMError, match="lm train --resume"):
        t.run(log=lambda m: None)
    # the old model is gone, not mixed with the new run's tokenizer and checkpoint
    assert sorted(os.listdir(out)) == [".lock", "resume.npz", "tokenizer.json"]


def test_start_refuses_a_file_as_out_before_locking(tmp_path, corpus):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LMError, match="exists and is not a directory"):
        start(tmp_path / "file", corpus)


def test_help_says_which_options_may_change_on_resume():
    from lm.trainconfig import RESUMABLE

    text = " ".join(run("train", "--help").stdout.split())
    start = text.index("With --resume DIR, continue the run checkpointed there, as it was set up:")
    paragraph = text[start : text.index("Options:")]
    for name in RESUMABLE:
        assert f"--{name.replace('_', '-')}" in paragraph
    assert "Any other option is a usage error." in paragraph
