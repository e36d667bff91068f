"""Training configs and progress: every field checked, by name, when made or read back."""

import math
from dataclasses import asdict

import pytest

from lm.trainconfig import FieldError, Progress, TrainConfig, VocabConfig, from_dict

NAN, INF = math.nan, math.inf


def test_defaults_are_valid_and_resolved_fills_the_optimizer_defaults():
    assert TrainConfig().resolved().lr == 3e-3
    assert TrainConfig(optimizer="sgd").resolved().clip_norm == 0.25
    assert TrainConfig(clip_norm=0).resolved().clip_norm == 0  # 0: clipping off
    VocabConfig()


@pytest.mark.parametrize(
    "field, value",
    [
        ("batch_size", 0),
        ("batch_size", True),  # a bool is not a count
        ("batch_size", 2.0),
        ("bptt", -1),
        ("truncate", 0),
        ("optimizer", "rmsprop"),
        ("lr", 0.0),
        ("lr", -1e-3),
        ("lr", NAN),
        ("lr", INF),
        ("epochs", 0),
        ("min_improvement", 0.99),
        ("min_improvement", NAN),
        ("schedule", "cosine"),
        ("halvings", -1),
        ("ema", 1.0),
        ("ema", NAN),
        ("clip_norm", -1.0),
        ("clip_norm", NAN),
        ("clip_value", 0.0),
        ("clip_value", INF),
        ("l2", NAN),
        ("dropout", 1.0),
        ("dropout", NAN),
        ("independent", 1),
        ("seed", -1),
        ("checkpoint_minutes", NAN),
        ("checkpoint_minutes", 0.0),
        ("max_minutes", NAN),
        ("max_minutes", INF),
        ("on_nan", "ignore"),
        ("eval_batch_size", 0),
    ],
)
def test_train_config_refuses_each_bad_field_by_name(field, value):
    with pytest.raises(FieldError, match=rf"^{field} must be .*, got {value!r}$") as e:
        TrainConfig(**{field: value})
    assert e.value.field == field


@pytest.mark.parametrize(
    "field, value", [("vocab_size", 3), ("min_count", 0), ("lowercase", "yes")]
)
def test_vocab_config_refuses_each_bad_field_by_name(field, value):
    with pytest.raises(FieldError, match=rf"^{field} must be"):
        VocabConfig(**{field: value})


def good_progress(**kw) -> dict:
    return asdict(Progress(lr=0.1, train_path="/data/train.txt", **kw))


@pytest.mark.parametrize(
    "field, value",
    [
        ("epoch", -1),
        ("window", -3),
        ("window", 1.5),
        ("lr", -0.1),
        ("lr", 0.0),
        ("lr", INF),
        ("updates", -1),
        ("best_ppl", 0.0),
        ("best_ppl", NAN),
        ("epoch_loss", NAN),
        ("epoch_tokens", -5),
        ("seconds", -1.0),
        ("history", {"epoch": 1}),
        ("history", [1, 2]),
        ("train_path", ""),
        ("done", "no"),
    ],
)
def test_progress_read_back_refuses_each_bad_field_by_name(field, value):
    d = good_progress()
    d[field] = value
    with pytest.raises(FieldError, match=rf"^{field} must be"):
        from_dict(Progress, d, complete=True)


def test_from_dict_round_trips_and_names_unknown_and_missing_fields():
    d = good_progress(epoch=3, window=7, best_ppl=123.4)
    assert from_dict(Progress, d, complete=True) == Progress(**d)
    assert from_dict(TrainConfig, asdict(TrainConfig(bptt=9))) == TrainConfig(bptt=9)
    with pytest.raises(ValueError, match="unknown fields colour"):
        from_dict(TrainConfig, {"colour": "red"})
    del d["window"]
    with pytest.raises(ValueError, match="missing fields window"):
        from_dict(Progress, d, complete=True)
    with pytest.raises(ValueError, match="must be a JSON object"):
        from_dict(VocabConfig, [1, 2])
