"""lm.memory: settings that cannot fit are refused before anything is allocated, with one line
naming the settings; settings that fit are not refused."""

from __future__ import annotations

import math
import os

import pytest
from click.testing import CliRunner
from lmfixtures import make_model, save_model_dir

from lm import memory
from lm.cli import main
from lm.errors import MemoryLimitError
from lm.model import ModelConfig

HUGE = 10**15  # more than any machine has


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def one_line_error(result, code, words):
    assert result.exit_code == code, (result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr and words in result.stderr, result.stderr
    if code == 1:
        assert result.stderr.startswith("lm: error: ") and result.stderr.count("\n") == 1


def test_available_bytes_is_known_here():
    n = memory.available_bytes()
    assert n is None or n > 0
    if os.path.exists("/proc/meminfo"):
        assert isinstance(n, int) and n > 1 << 20


def test_require_and_fits():
    memory.require(10, "a small thing", limit=100)
    assert memory.fits(100, 100) and not memory.fits(101, 100)
    with pytest.raises(MemoryLimitError, match=r"^a big thing needs about 2\.5 kB of memory, "):
        memory.require(2500, "a big thing", limit=1000)
    with pytest.raises(ValueError, match="more than the 1 kB available"):
        memory.require(2500, "x", limit=1000, error=ValueError)


def test_no_known_bound_refuses_nothing(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    memory.require(HUGE, "anything")
    assert memory.fits(HUGE)


def test_format_bytes():
    assert [memory.format_bytes(n) for n in (0, 999, 1536, 40e9, 3e12, 5e18)] == [
        "0 B",
        "999 B",
        "1.54 kB",
        "40 GB",
        "3 TB",
        "5e+03 PB",
    ]


@pytest.mark.parametrize("kind", ["onehot", "embedding"])
def test_training_estimate_counts_the_model_s_own_parameters(kind):
    """The parameter count inside the estimate is the model's (ModelConfig.param_shapes)."""
    V, H, E = 50, 7, 5
    mc = ModelConfig(n_vocab=V, hidden=H, input=kind, embed_dim=E if kind == "embedding" else 0)
    n_params = sum(math.prod(s) for s in mc.param_shapes().values())
    embed = E if kind == "embedding" else 0
    base = memory.training_bytes(V, H, batch_size=1, bptt=1, embed_dim=embed, optimizer="sgd")
    window = 4 * (3 * V + 6 * 2 * H)
    assert base == 4 * 3 * n_params + window  # weights, gradients, best weights
    adam = memory.training_bytes(V, H, 1, 1, embed_dim=embed)
    ema = memory.training_bytes(V, H, 1, 1, embed_dim=embed, ema=True)
    assert adam - base == 4 * 2 * n_params and ema - adam == 4 * 2 * n_params


def test_training_estimate_grows_with_the_cell_width():
    """An LSTM (4 gates) has four times the recurrent weights of an Elman cell."""
    H = 1000
    elman = memory.training_bytes(10, H, 1, 1, optimizer="sgd")
    lstm = memory.training_bytes(10, H, 1, 1, width=4, optimizer="sgd")
    assert lstm - elman > 3 * 3 * 4 * H * H  # at least 3 more H x H blocks, 3 copies, float32


def test_check_training_messages():
    with pytest.raises(MemoryLimitError, match=r"--hidden 1000000, --batch-size 20, --bptt 35 "):
        memory.check_training(4, 10**6, 20, 35, vocab_known=False)
    with pytest.raises(MemoryLimitError, match=r"and 10000000 words needs about"):
        memory.check_training(10**7, 10**4, 20, 35)
    memory.check_training(10_000, 200, 20, 35)  # the README's Penn Treebank setting fits


TRAIN = ["train", "missing.txt", "--out", "m"]  # a refusal must come before reading the data


@pytest.mark.parametrize(
    "args, words",
    [
        (["--hidden", 10**6], "--hidden 1000000"),
        (["--input", "embedding", "--embed-dim", 10**8], "--embed-dim 100000000"),
        (["--batch-size", 10**5, "--bptt", 10**5], "--batch-size 100000, --bptt 100000"),
        (["--hidden", 10**5, "--optimizer", "sgd"], "--hidden 100000"),
    ],
)
def test_train_refuses_sizes_that_cannot_fit_before_reading_data(tmp_path, args, words):
    result = run(*TRAIN[:1], tmp_path / "missing.txt", "--out", tmp_path / "m", *args)
    one_line_error(result, 1, words)
    assert "of memory, more than the" in result.stderr and "no such file" not in result.stderr
    assert not (tmp_path / "m").exists()


def test_train_embedding_defaults_to_the_hidden_size(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("the cat sat\na dog sat\n" * 5)
    args = ["--input", "embedding", "--hidden", 6, "--epochs", 1, "--batch-size", 2, "-q"]
    assert run("train", path, "--out", tmp_path / "m", *args).exit_code == 0
    import lm

    assert lm.load(tmp_path / "m").net.params["E"].shape[1] == 6
    args += ["--embed-dim", 3]
    assert run("train", path, "--out", tmp_path / "n", *args).exit_code == 0
    assert lm.load(tmp_path / "n").net.params["E"].shape[1] == 3


def test_a_large_vocab_size_cap_is_not_refused(tmp_path):
    """--vocab-size is a cap: the vocabulary of a small file stays small."""
    path = tmp_path / "t.txt"
    path.write_text("the cat sat\na dog sat\n" * 5)
    args = ["--vocab-size", 10**9, "--hidden", 4, "--epochs", 1, "--batch-size", 2, "-q"]
    result = run("train", path, "--out", tmp_path / "m", *args)
    assert result.exit_code == 0, result.stderr


def test_cosine_refuses_a_hidden_size_that_cannot_fit():
    one_line_error(run("cosine", "--hidden", 10**6, "-q"), 1, "lm cosine with --hidden 1000000")


def test_corpus_synth_refuses_a_size_that_cannot_fit(tmp_path):
    one_line_error(
        run("corpus", "synth", tmp_path / "c", "--tokens", HUGE, "-q"),
        1,
        f"a synthetic corpus of {HUGE} words needs about",
    )
    assert not (tmp_path / "c").exists()


@pytest.fixture(scope="module")
def big_vocab_dir(tmp_path_factory):
    """A 20,000-word model with 2 hidden units: small files, a large vocabulary."""
    lines = [" ".join(f"w{i}" for i in range(j, 20_000, 50)) for j in range(50)]
    return save_model_dir(tmp_path_factory.mktemp("big"), make_model(lines=lines, hidden=2))


@pytest.mark.parametrize(
    "args, words",
    [
        (["--max-tokens", 10**12], "--max-tokens=1000000000000 and --num=1 needs about"),
        (["--num", 10**9], "--num=1000000000 needs about"),
        (["--beam", 10**8], "--beam=100000000 needs about"),
        (["--num", 10**5, "--max-tokens", 1], "with a 20003-word model needs about"),
        (["--beam", 10**5, "--max-tokens", 1], "with a 20003-word model needs about"),
    ],
)
def test_generate_refuses_sizes_that_cannot_fit(big_vocab_dir, args, words):
    result = run("generate", big_vocab_dir, *args)
    one_line_error(result, 2, words)
    assert "of memory, more than the" in result.stderr


def test_a_vocabulary_too_large_for_memory_is_refused_before_training(tmp_path, monkeypatch):
    """The CLI's early check cannot know the vocabulary; training checks again once it is
    built (here with the bound lowered so that a small vocabulary stands for a huge one)."""
    from lm import errors, memory
    from lm.trainconfig import TrainConfig, VocabConfig
    from lm.training import Trainer

    corpus = tmp_path / "t.txt"
    corpus.write_text(" ".join(f"w{i}" for i in range(300)) + "\n")
    monkeypatch.setattr(memory, "available_bytes", lambda: 10**6)
    with pytest.raises(errors.MemoryLimitError):
        Trainer.start(
            str(tmp_path / "m"), str(corpus), None, {"hidden": 64}, TrainConfig(batch_size=2),
            VocabConfig(min_count=1), show_progress=False,
        )  # fmt: skip
    assert not (tmp_path / "m" / "weights.npz").exists()
