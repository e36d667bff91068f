"""lm.memory: settings that cannot fit are refused before anything is allocated, with one line
naming the settings; settings that fit are not refused."""

from __future__ import annotations

import itertools
import math
import os
import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner
from lmfixtures import make_model, save_model_dir

from lm import cells, cosine, memory, optim
from lm.cli import main
from lm.data import batchify, encode_file, windows
from lm.errors import MemoryLimitError
from lm.model import ModelConfig
from lm.tokenizer import EOS
from lm.trainconfig import TrainConfig, VocabConfig
from lm.training import Trainer

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


def zipf_counts(n_vocab: int) -> np.ndarray:
    """How often each id is predicted in a Zipf-like text (id 1, <s>, never is)."""
    counts = np.round(1e5 / (np.arange(n_vocab) + 3.0)).astype(np.int64)
    counts[1] = 0
    return counts


def config(n_vocab=50, output="full", **fields) -> ModelConfig:
    """A ModelConfig; the class head's boundaries cut from ``zipf_counts``."""
    if fields.pop("tie", False):
        fields.update(input="embedding", embed_dim=fields.get("hidden", 200), tie=True)
    return ModelConfig.from_counts(n_vocab, zipf_counts(n_vocab), output=output, **fields)


@pytest.mark.parametrize("output", ["full", "class"])
@pytest.mark.parametrize("kind", ["onehot", "embedding"])
def test_training_estimate_counts_the_model_s_own_parameters(kind, output):
    """The copies of the parameters inside the estimate are of the model's own arrays
    (ModelConfig.param_shapes): the best weights, Adam's m, v and its scratch for the dense
    gradients (with the class head V, c and the vocabulary-sized input matrix have sparse
    ones), the weight average and its scratch."""
    V, H, E = 50, 7, 5
    mc = config(V, output, hidden=H, input=kind, embed_dim=E if kind == "embedding" else 0)
    shapes = mc.param_shapes()
    n_params = sum(math.prod(s) for s in shapes.values())
    sparse = ("V", "c", "E" if kind == "embedding" else "U") if output == "class" else ()
    dense = n_params - sum(math.prod(shapes[k]) for k in sparse)
    sgd = memory.training_bytes(mc, batch_size=1, bptt=1, optimizer="sgd")
    no_best = memory.training_bytes(mc, 1, 1, "sgd", keeps_best=False)
    adam = memory.training_bytes(mc, 1, 1)
    ema = memory.training_bytes(mc, 1, 1, ema=0.999)
    assert sgd - no_best == 4 * n_params
    if output == "full":
        assert adam - sgd == 4 * (2 * n_params + dense)
    else:  # and the scratch of Adam's lazy update of V's columns, in the window
        assert adam - sgd > 4 * (2 * n_params + dense)
    assert ema - adam == 4 * 2 * n_params
    assert memory.training_bytes(mc, 1, 1, "sgd", itemsize=8) == 2 * sgd


def test_training_estimate_grows_with_the_cell_width_and_the_layers():
    """An LSTM (4 gates) has four times the recurrent weights of an Elman cell; each layer
    above the first adds its own U, W (and their copies)."""
    H = 1000
    elman = memory.training_bytes(config(10, hidden=H), 1, 1, optimizer="sgd")
    lstm = memory.training_bytes(config(10, hidden=H, cell="lstm"), 1, 1, optimizer="sgd")
    assert lstm - elman > 3 * 2 * 4 * H * H  # at least 3 more H x H blocks, 2 copies, float32
    two = memory.training_bytes(config(10, hidden=H, layers=2), 1, 1, optimizer="sgd")
    assert two - elman > 2 * 2 * 4 * H * H  # U2 and W2, 2 copies


@pytest.mark.parametrize("optimizer, ema, copies", [("sgd", 0, 2), ("adam", 0.999, 7)])
def test_a_tied_model_s_estimate_has_no_V(optimizer, ema, copies):
    """Tying drops V (H, n_vocab) and every copy of it (weights, best weights; with Adam its
    m, v and scratch; with ema the average and its scratch); the window still has dV, which
    is added to dE, so the difference is those copies exactly (full head). With the class
    head, tying saves less: E's sparse gradient then covers V's columns too."""
    H, n_vocab = 64, 3000
    full = [config(n_vocab, hidden=H, input="embedding", embed_dim=H, tie=t) for t in (0, 1)]
    untied, tied = (memory.training_bytes(mc, 20, 35, optimizer, ema) for mc in full)
    assert "V" not in full[1].param_shapes()
    assert untied - tied == 4 * H * n_vocab * copies
    cls = [
        config(n_vocab, "class", hidden=H, input="embedding", embed_dim=H, tie=t) for t in (0, 1)
    ]
    untied, tied = (memory.training_bytes(mc, 20, 35, optimizer, ema) for mc in cls)
    assert 0 < untied - tied < 4 * H * n_vocab * copies


def test_the_cell_cache_widths_are_the_cells_own():
    """memory.CACHE_WIDTH follows each cell's ``new_cache`` (in units of T * B * H)."""
    T, B, H = 3, 2, 5
    for name in cells.NAMES:
        cache = cells.make(name).new_cache(T, B, H, np.float32)
        assert sum(a.size for a in cache.values()) == memory.CACHE_WIDTH[name] * T * B * H


@pytest.mark.parametrize("cell", cells.NAMES)
@pytest.mark.parametrize("tie", [False, True])
def test_the_early_estimate_is_a_lower_bound_of_every_vocabulary_s(cell, tie):
    """lm train checks before reading the data with the 4 special tokens and the full head:
    that estimate is below the one of every vocabulary, with either head, so what it
    refuses cannot fit at any vocabulary size."""
    fields = {"hidden": 32, "input": "embedding", "embed_dim": 32, "cell": cell, "tie": tie}
    fields["layers"] = 2
    early = memory.training_bytes(ModelConfig(n_vocab=4, **fields), 20, 35)
    # (not the class head at 4 words, one of them real: its sparse input gradient holds
    # 62 elements fewer than the full head's dense one, and so does the real one)
    for n_vocab, output in [(4, "full"), *itertools.product((5, 100, 5000), ("full", "class"))]:
        later = memory.training_bytes(config(n_vocab, output, **fields), 20, 35)
        assert early <= later, (n_vocab, output)


# --------------------------------------------------------------- against measured peaks


def within(estimate: int, measured: int) -> bool:
    """The estimate's promise: a little low rather than high (at most 25% low)."""
    return 0.75 * measured <= estimate <= measured


def peak_of(run) -> int:
    """The peak of the bytes traced by tracemalloc (numpy reports its arrays to it) while
    ``run()`` runs."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def zipf_text(tmp_path_factory):
    """30,000 tokens of Zipf-distributed words in sentences of 5..24 words: a vocabulary of
    1,936 words, with which the model's and the window's arrays dominate the data's."""
    rng = np.random.default_rng(0)
    p = 1.0 / (np.arange(2000) + 3.0)
    ids = rng.choice(2000, size=30_000, p=p / p.sum())
    cuts = np.cumsum(rng.integers(5, 25, size=3000))
    lines = [" ".join(f"w{i}" for i in part) for part in np.split(ids, cuts[cuts < len(ids)])]
    path = tmp_path_factory.mktemp("zipf") / "train.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


# cell, layers, input (tied: embedding with V = E^T), head, optimizer, ema: each value with
# each other's in some case; the first ones with dropout 0 and --carry-state
MEASURED = [
    ("elman", 1, "onehot", "full", "sgd", 0),
    ("elman", 2, "tied", "class", "adam", 0.999),
    ("elman", 1, "tied", "full", "adam", 0.999),
    ("elman", 2, "embedding", "class", "sgd", 0),
    ("gru", 1, "tied", "class", "adam", 0),
    ("gru", 2, "onehot", "full", "adam", 0.999),
    ("gru", 1, "embedding", "class", "sgd", 0.999),
    ("gru", 2, "tied", "full", "sgd", 0),
    ("lstm", 1, "onehot", "class", "adam", 0.999),
    ("lstm", 2, "tied", "full", "adam", 0),
    ("lstm", 1, "tied", "class", "sgd", 0.999),
    ("lstm", 2, "embedding", "full", "sgd", 0.999),
]


@pytest.mark.parametrize("case", MEASURED, ids=lambda c: "-".join(map(str, c)))
def test_the_training_estimate_is_a_little_below_the_measured_peak(zipf_text, tmp_path, case):
    """Measured: the peak traced from before ``Trainer.start`` (the vocabulary, the ids, the
    network, the best weights, the optimiser, the weight average) through 3 training windows
    as ``Trainer`` runs them (``Network.loss_and_grads`` with its dropout and resets, then
    ``optim.guarded_update`` with the optimiser, then the average's update), with hidden 256,
    batch 20, bptt 35. The data (under 1 MB) is in the measured peak, not in the estimate."""
    cell, layers, kind, output, optimizer, ema = case
    tied = kind == "tied"
    mc_args = {
        "hidden": 256, "layers": layers, "cell": cell, "output": output, "tie": tied,
        "input": "onehot" if kind == "onehot" else "embedding",
        "embed_dim": 0 if kind == "onehot" else 256,
    }  # fmt: skip
    plain = case is MEASURED[0]
    tc = TrainConfig(
        optimizer=optimizer, ema=ema, dropout=0.0 if plain else None, independent=not plain
    )
    box = {}

    def train():
        trainer = Trainer.start(
            tmp_path / "m", zipf_text, None, mc_args, tc, VocabConfig(min_count=1),
            show_progress=False,
        )  # fmt: skip
        box["trainer"] = trainer
        net, tc_, S = trainer.net, trainer.tc, trainer.net.zero_state(tc.batch_size)
        columns = batchify(encode_file(zipf_text, trainer.vocab), tc.batch_size)
        for _, x, y in itertools.islice(windows(columns, tc.bptt), 3):
            keep = (x != EOS)[..., None].astype(net.dtype) if tc_.independent else None
            loss, grads, S = net.loss_and_grads(x, y, S, None, keep, tc_.dropout, trainer.rng)
            assert optim.guarded_update(
                net.params, grads, trainer.opt, loss / x.size, None, tc_.clip_norm
            )
            del grads
            if trainer.average is not None:
                trainer.average.update(net.params)
        trainer.close()

    measured = peak_of(train)
    trainer = box["trainer"]
    mc = trainer.net.config
    assert (mc.tie, mc.output, mc.layers, mc.n_vocab) == (tied, output, layers, 1936)
    estimate = memory.training_bytes(
        mc, tc.batch_size, tc.bptt, optimizer, ema,
        dropout=trainer.tc.dropout, independent=trainer.tc.independent,
    )  # fmt: skip
    assert within(estimate, measured), (estimate / measured, estimate, measured)


@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_the_cosine_estimate_is_a_little_below_the_measured_peak(cell):
    """lm cosine (a dense input, a linear head on the last state, float64, no best copy):
    the peak traced through ``cosine.train`` (with sklearn, which it imports, imported
    before), hidden 200, 2 epochs of full-batch Adam."""
    import sklearn.metrics  # noqa: F401  (its import is not training)

    config = cosine.make_config("tuned", hidden=200, epochs=2, cell=cell)
    measured = peak_of(lambda: cosine.train(config, np.random.default_rng(0), progress=False))
    estimate = cosine.training_bytes(config)
    assert within(estimate, measured), (estimate / measured, estimate, measured)


def test_check_training_messages():
    with pytest.raises(MemoryLimitError, match=r"--hidden 1000000, --batch-size 20, --bptt 35 "):
        memory.check_training(ModelConfig(4, hidden=10**6), 20, 35, vocab_known=False)
    with pytest.raises(MemoryLimitError, match=r"and 10000000 words needs about"):
        memory.check_training(ModelConfig(10**7, hidden=10**4), 20, 35)
    mc = ModelConfig(10**6, hidden=5000, input="embedding", embed_dim=300, layers=3)
    with pytest.raises(MemoryLimitError, match=r"^training with --hidden 5000, --layers 3, "):
        memory.check_training(mc, 20, 35, limit=10**9)
    with pytest.raises(MemoryLimitError, match=r", --embed-dim 300, --batch-size 64, --bptt 70 "):
        memory.check_training(mc, 64, 70, limit=10**9)
    # the README's Penn Treebank setting, and lm train's defaults at 10,000 words, fit
    memory.check_training(ModelConfig(10_000, hidden=200), 20, 35)
    memory.check_training(config(10_000, hidden=200, cell="gru", tie=True), 20, 35, ema=0.999)


TRAIN = ["train", "missing.txt", "--out", "m"]  # a refusal must come before reading the data


@pytest.mark.parametrize(
    "args, words",
    [
        (["--hidden", 10**6], "--hidden 1000000"),
        (["--input", "embedding", "--embed-dim", 10**8], "--embed-dim 100000000"),
        (["--batch-size", 10**5, "--bptt", 10**5], "--batch-size 100000, --bptt 100000"),
        (["--hidden", 10**5, "--optimizer", "sgd"], "--hidden 100000"),
        (["--hidden", 2000, "--layers", 10**4], "--hidden 2000, --layers 10000, --embed-dim"),
        (["--hidden", 10**5, "--output", "class", "--no-tie"], "(at any vocabulary size)"),
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
