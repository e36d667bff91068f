"""Training survives interruption, exactly: SIGTERM and kill -9 against a real ``lm train``.

SIGTERM (like SIGINT, tested in test_training.py) saves a checkpoint and exits 130 with a
message saying how to resume. ``kill -9`` cannot be caught: what protects the model directory
is that every file is written to a temporary file and renamed over the old one
(``lm.checkpoint.atomic_write``). Whenever the process dies, the directory holds the last
complete checkpoint; a kill in the middle of a write leaves a ``.tmp-XXXXXXXX-NAME`` file,
which nothing reads and the next training run deletes. After any number of kills,
``lm train --resume`` ends with exactly the weights of a run that was never interrupted.

The killed runs write a checkpoint after every window (``--checkpoint-minutes 0.00001``), so
that most of their time is spent writing resume.npz and a kill at a random moment usually lands
inside a write. (With ``--checkpoint-minutes 0.001``, a checkpoint 60 ms after the last, writing
took about 15% of the time here, and none of 10 kills landed in a write.) The uninterrupted
reference checkpoints rarely: when checkpoints are written does not change the arithmetic.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from click.testing import CliRunner
from threadpoolctl import threadpool_limits

import lm
from lm import checkpoint
from lm.cli import main
from lm.errors import ModelFileError

LM = [sys.executable, "-m", "lm.cli"]
MODEL_FILES = {
    "config.json",
    "weights.npz",
    "tokenizer.json",
    "log.jsonl",
    "training.png",
    "resume.npz",
    ".lock",  # the one-writer lock (lm.checkpoint.DirectoryLock), left in place
}
TEMP = re.compile(r"\.tmp-[a-z0-9_]{8}-(.+)")
# 1,500 words and H = 48: resume.npz (weights and Adam's two moments) is about 1.8 MB, ~10 ms
# to write, against ~1.5 ms to train on one window
# one BLAS thread everywhere, in this process and in the children: the runs compared bit for
# bit then do the same arithmetic, and a busy machine does not stall them
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SETTINGS = [
    "--hidden",
    "48",
    "--batch-size",
    "4",
    "--bptt",
    "8",
    "--epochs",
    "2",
    "--seed",
    "3",
    "--quiet",
]
ARGS = [*SETTINGS, "--checkpoint-minutes", "0.00001"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(1497)])
    path = tmp_path_factory.mktemp("corpus") / "train.txt"
    lines = [" ".join(rng.choice(words, size=n)) for n in rng.integers(3, 12, size=450)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> str:
    """The same training, never interrupted (in this process)."""
    out = str(tmp_path_factory.mktemp("ref") / "m")
    result = train_here(["train", corpus, "--out", out, *SETTINGS, "--checkpoint-minutes", "10"])
    assert result.exit_code == 0, result.output
    return out


def train_here(args: list[str]):
    with threadpool_limits(limits=1):
        return CliRunner().invoke(main, args)


def train_process(args: list[str], err_path) -> subprocess.Popen:
    with open(err_path, "w") as err:
        return subprocess.Popen(
            [*LM, "train", *args], stdout=subprocess.DEVNULL, stderr=err, env=ENV
        )


def wait_for(condition, proc: subprocess.Popen, timeout: float = 120) -> bool:
    """Poll ``condition`` until it holds (True) or ``proc`` has exited (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    raise TimeoutError("lm train did not get going")


def leftovers(out) -> list[str]:
    """Files in ``out`` that are not model files: each must be one of atomic_write's temps."""
    other = sorted(set(os.listdir(out)) - MODEL_FILES)
    for name in other:
        m = TEMP.fullmatch(name)
        assert m and m.group(1) in MODEL_FILES, f"unexpected file {name} in {out}"
    return other


def assert_last_checkpoint_is_whole(out) -> None:
    """resume.npz loads without pickle and passes every check of ``load_resume``; the model
    loads once there is one (from the end of the first epoch on), and before that ``lm.load``
    refuses the directory, saying that there is no model yet."""
    with np.load(os.path.join(out, "resume.npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = checkpoint.unpack_json(arrays["meta"])
    assert {"train_config", "progress", "rng"} <= set(meta)
    resume = checkpoint.load_resume(os.path.join(out, "resume.npz"))
    if os.path.exists(os.path.join(out, "config.json")):
        model = lm.load(out)
        checkpoint.validate_params(resume.params, model.net.config, "resume.npz")
    else:
        assert resume.progress.epoch == 0
        with pytest.raises(ModelFileError, match="no model yet"):
            lm.load(out)


def assert_equal_runs(a, b) -> None:
    for name in ("weights.npz", "resume.npz"):
        x = checkpoint.load_arrays(os.path.join(a, name))
        y = checkpoint.load_arrays(os.path.join(b, name))
        assert x.keys() == y.keys()
        for k in x:
            if k != "meta":  # holds timings
                assert np.array_equal(x[k], y[k]), f"{name}:{k} differs"


def resume_to_the_end(out) -> None:
    result = train_here(["train", "--resume", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert leftovers(out) == []  # the stale temporary files are gone


# ----- SIGTERM -----


def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(corpus, reference, tmp_path):
    out = tmp_path / "m"
    proc = train_process([corpus, "--out", str(out), *ARGS], tmp_path / "err")
    assert wait_for(lambda: (out / "resume.npz").exists(), proc)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130
    err = (tmp_path / "err").read_text()
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1]
    m = re.fullmatch(
        rf"lm: SIGTERM received: checkpoint saved in {out} \(epoch (\d+), window "
        rf"(\d+)\); continue with: lm train --resume {out}",
        message,
    )
    assert m, message
    assert_last_checkpoint_is_whole(out)
    with np.load(out / "resume.npz", allow_pickle=False) as z:
        progress = checkpoint.unpack_json(z["meta"])["progress"]
    assert (progress["epoch"] + 1, progress["window"]) == (int(m.group(1)), int(m.group(2)))
    resume_to_the_end(out)
    assert_equal_runs(out, reference)


# ----- kill -9 at several moments -----


def kill_repeatedly(corpus, out, tmp_path, delays) -> tuple[int, int]:
    """Start training, kill -9 it ``delays[0]`` s after its first checkpoint; then resume and
    kill each resumed run ``delays[i]`` s after it starts; check the directory after each
    kill. Returns (kills, kills that left a temporary file, i.e. landed inside a write)."""
    kills = in_write = 0
    args = [corpus, "--out", str(out), *ARGS]
    for i, delay in enumerate(delays):
        err = tmp_path / f"err{i}"
        proc = train_process(args, err)
        if i == 0:
            ready = (out / "resume.npz").exists
        else:
            ready = lambda err=err: "resuming" in err.read_text()
        if wait_for(ready, proc):
            time.sleep(delay)
        if proc.poll() is not None:  # finished before the kill: nothing left to interrupt
            assert proc.returncode == 0, err.read_text()
            break
        proc.kill()
        assert proc.wait(timeout=60) == -signal.SIGKILL
        kills += 1
        in_write += bool(leftovers(out))
        assert_last_checkpoint_is_whole(out)
        args = ["--resume", str(out)]  # not --quiet: "resuming" says it has started
    return kills, in_write


def test_kill_9_at_several_moments_then_resume_exactly(corpus, reference, tmp_path):
    out = tmp_path / "m"
    kills, _ = kill_repeatedly(corpus, out, tmp_path, delays=[0.0, 0.1, 0.3, 0.6])
    assert kills >= 3
    resume_to_the_end(out)
    assert_equal_runs(out, reference)


@pytest.mark.slow
def test_kill_9_many_times(corpus, reference, tmp_path):
    out = tmp_path / "m"
    delays = [0.02, 0.05, 0.3, 0.07, 0.1, 0.01, 0.15, 0.2, 0.04, 0.12]
    kills, in_write = kill_repeatedly(corpus, out, tmp_path, delays)
    assert kills >= 8
    assert in_write >= 2, f"only {in_write} of {kills} kills landed inside a write"
    resume_to_the_end(out)
    assert_equal_runs(out, reference)


# ----- kill -9 inside a write, deterministically -----

DIE_IN_WRITE = textwrap.dedent("""
    import io, os, signal, sys
    import numpy as np
    import lm.checkpoint

    target, moment, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
    real_savez, real_replace = np.savez, os.replace
    calls = {"n": 0}

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def savez(f, **arrays):  # lm.checkpoint.save_arrays writes through this
        is_target = ("meta" in arrays) == (target == "resume.npz")
        calls["n"] += is_target
        if is_target and calls["n"] == nth and moment == "half written":
            buf = io.BytesIO()
            real_savez(buf, **arrays)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            f.flush()
            die()
        real_savez(f, **arrays)

    def replace(src, dst):
        if dst.endswith(target) and calls["n"] == nth and moment == "written, not renamed":
            die()
        real_replace(src, dst)

    lm.checkpoint.np.savez = savez
    lm.checkpoint.os.replace = replace
    from lm.cli import main
    main(sys.argv[4:], prog_name="lm")
""")


@pytest.mark.parametrize(
    "target, moment",
    [
        ("resume.npz", "half written"),
        ("weights.npz", "written, not renamed"),
        pytest.param("resume.npz", "written, not renamed", marks=pytest.mark.slow),
        pytest.param("weights.npz", "half written", marks=pytest.mark.slow),
    ],
)
def test_kill_9_inside_a_checkpoint_write(corpus, reference, tmp_path, target, moment):
    """The third write of resume.npz, or the second and last of weights.npz (written at the end
    of each of the two epochs), dies half-way or whole but before its rename: the previous
    version is intact, the temporary file is ignored, and resuming ends exactly."""
    out = tmp_path / "m"
    script = tmp_path / "die.py"
    script.write_text(DIE_IN_WRITE)
    nth = "3" if target == "resume.npz" else "2"
    proc = subprocess.run(
        [sys.executable, str(script), target, moment, nth, "train", corpus, "--out", str(out)]
        + ARGS,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=ENV,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (temp,) = leftovers(out)
    assert temp.endswith("-" + target)
    if moment == "half written":
        with pytest.raises(ModelFileError, match="truncated or corrupt"):
            checkpoint.load_arrays(out / temp)
    assert_last_checkpoint_is_whole(out)
    resume_to_the_end(out)
    assert_equal_runs(out, reference)


# ----- temporary files -----


def test_remove_temp_files_removes_only_what_atomic_write_leaves(tmp_path):
    keep = [
        "weights.npz",
        ".tmp-short-weights.npz",
        ".tmp-abcdefgh",
        "x.tmp-abcdefgh-y",
        ".tmp-ABCDEFGH-weights.npz",
    ]
    stale = [".tmp-abcd_123-weights.npz", ".tmp-zz9zz9zz-resume.npz", ".tmp-q1w2e3r4-a b"]
    for name in keep + stale:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".tmp-dirdirdi-weights.npz").mkdir()  # a directory is never removed
    removed = checkpoint.remove_temp_files(tmp_path)
    assert sorted(os.path.basename(p) for p in removed) == sorted(stale)
    assert sorted(os.listdir(tmp_path)) == sorted(keep + [".tmp-dirdirdi-weights.npz"])


def test_atomic_write_temp_names_are_what_remove_temp_files_removes(tmp_path):
    """Which is also why it must never run while another process is saving there."""
    # the rename finds its temporary file gone
    with pytest.raises(FileNotFoundError), checkpoint.atomic_write(tmp_path / "w.npz") as f:
        f.write(b"data")
        (name,) = os.listdir(tmp_path)
        assert checkpoint.remove_temp_files(tmp_path) == [str(tmp_path / name)]
    assert os.listdir(tmp_path) == []


def test_a_temporary_resume_file_is_never_resumed_from(reference, tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    for name in ("config.json", "weights.npz", "tokenizer.json"):
        shutil.copy(os.path.join(reference, name), out / name)
    shutil.copy(os.path.join(reference, "resume.npz"), out / ".tmp-abcdefgh-resume.npz")
    result = CliRunner().invoke(main, ["train", "--resume", str(out), "--quiet"])
    assert result.exit_code == 1
    assert result.stderr == f"lm: error: {out / 'resume.npz'}: missing\n"
