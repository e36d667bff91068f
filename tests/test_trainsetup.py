"""Setting up a training run (``lm.trainsetup``): a new one from the data, and the changes
and data checks of a resumed one. The whole round trip (``Trainer.resume``, ``lm train
--resume``) is tested in test_resume.py."""

import numpy as np
import pytest

from lm import checkpoint
from lm.errors import DataError, LMError
from lm.trainconfig import FieldError, Progress, TrainConfig, VocabConfig
from lm.training import Trainer
from lm.trainsetup import apply_changes, check_data, lock, new_run, resuming_line

MC = {"hidden": 8, "input": "onehot", "embed_dim": 0}
SENTENCES = ["the cat sat on the mat", "a dog ran in the park", "my bird sang a song"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("\n".join(SENTENCES * 4) + "\n")
    return str(path)


# ----- a new run -----


def test_new_run_gives_the_trainer_its_arguments(tmp_path, corpus):
    tc = TrainConfig(batch_size=2, bptt=4, epochs=1, ema=0).resolved()
    setup = new_run(str(tmp_path / "m"), corpus, None, MC, tc, VocabConfig(), force=False)
    assert setup["vc"].min_count == 2  # the default: words seen twice (each is seen 4 times)
    assert setup["vocab"].size == 3 + len(set(" ".join(SENTENCES).split()))
    assert setup["stream"][0] == setup["stream"][-1]  # </s> ... </s>
    assert setup["fresh"] and setup["average"] is None and setup["progress"].lr == tc.lr
    assert setup["progress"].train_digest == checkpoint.fingerprint(corpus)
    t = Trainer(str(tmp_path / "m"), show_progress=False, **setup)
    assert t.net.config.n_vocab == setup["vocab"].size
    for k, v in t.best_params.items():
        np.testing.assert_array_equal(v, t.net.params[k])


def test_new_run_refuses_a_model_directory_unless_forced(tmp_path, corpus):
    out = tmp_path / "m"
    out.mkdir()
    (out / "config.json").write_text("{}")
    tc = TrainConfig(batch_size=2, bptt=4).resolved()
    with pytest.raises(LMError, match="already holds a model; use --force"):
        new_run(str(out), corpus, None, MC, tc, VocabConfig(), force=False)
    assert new_run(str(out), corpus, None, MC, tc, VocabConfig(), force=True)["fresh"]


def test_new_run_refuses_a_file_without_words(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(DataError, match="holds no words"):
        new_run(str(tmp_path / "m"), str(empty), None, MC, TrainConfig(), VocabConfig(), False)


def test_lock_refuses_a_file(tmp_path):
    path = tmp_path / "f"
    path.write_text("x")
    with pytest.raises(LMError, match="exists and is not a directory"):
        lock(str(path))


# ----- what --resume may change -----


def test_apply_changes_records_old_and_new_and_skips_unchanged_values():
    tc, st = TrainConfig(epochs=3), Progress(lr=0.5)
    tc2, changed = apply_changes(tc, st, {"epochs": 5, "lr": 0.25, "max_minutes": None})
    assert tc2.epochs == 5 and tc.epochs == 3  # a new config; the old one is frozen
    assert st.lr == 0.25 and tc2.lr == tc.lr  # lr: the rate from the next update on
    assert changed == {"epochs": (3, 5), "lr": (0.5, 0.25)}  # max_minutes was None already
    assert st.changes == {"epochs": [3, 5], "lr": [0.5, 0.25]}
    _, changed = apply_changes(tc2, st, {"epochs": 8})
    assert changed == {"epochs": (5, 8)} and st.changes["epochs"] == [3, 8]  # the first old


def test_apply_changes_refuses_other_fields_and_bad_values():
    with pytest.raises(ValueError, match="batch_size, seed cannot change"):
        apply_changes(TrainConfig(), Progress(lr=1.0), {"seed": 1, "batch_size": 2})
    st = Progress(lr=1.0)
    with pytest.raises(FieldError):
        apply_changes(TrainConfig(), st, {"lr": -1.0})
    assert st.lr == 1.0 and st.changes == {}


def test_resuming_line_says_where_and_what_changed():
    st = Progress(lr=1.0, epoch=1, window=7)
    assert resuming_line("m", st, {}) == "resuming m at epoch 2, window 7"
    line = resuming_line("m", st, {"max_minutes": (1.5, None), "on_nan": ("stop", "skip")})
    assert line == (
        "resuming m at epoch 2, window 7 with --max-minutes none (was 1.5), "
        "--on-nan skip (was stop)"
    )


# ----- the data a checkpoint was trained on -----


def test_check_data_refuses_a_changed_file_unless_forced(corpus):
    st = Progress(lr=1.0, train_path=corpus, train_digest=checkpoint.fingerprint(corpus))
    assert check_data(st, force=False) == []
    with open(corpus, "a") as f:
        f.write("one more line\n")
    with pytest.raises(LMError, match=r"train.txt: the training file changed .*use --force"):
        check_data(st, force=False)
    [note] = check_data(st, force=True)
    assert note.startswith("lm: warning: ") and "no longer bit for bit reproducible" in note
    assert st.train_digest == checkpoint.fingerprint(corpus)
    assert st.changes["training_file"].startswith("its size changed from")
    assert check_data(st, force=False) == []  # the new fingerprint is the one recorded
