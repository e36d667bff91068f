"""What a training run reports (``lm.trainlog``): the line per epoch, log.jsonl and the
summary, strict JSON throughout (NaN and infinities are null)."""

import json
import math

import pytest

from lm.trainconfig import Progress
from lm.trainlog import describe, finite_or_none, json_safe, summary, write_log

RECORD = {
    "epoch": 3,
    "train_ppl": 41.234,
    "lr": 0.00125,
    "tokens": 2000,
    "tokens_per_second": 1234.4,
    "valid_ppl": 52.345,
    "accepted": True,
    "seconds": 12.6,
}


def strict(text: str):
    def refuse(name):
        raise ValueError(f"{name} in JSON output")

    return json.loads(text, parse_constant=refuse)


def test_describe_says_the_epoch_in_one_line():
    assert describe(RECORD) == (
        "epoch   3  train ppl 41.23  valid ppl 52.34  lr 0.00125  1234 tok/s  13s"
    )


def test_describe_without_validation_or_with_a_rolled_back_epoch():
    no_valid = {**RECORD, "valid_ppl": None}
    assert "valid ppl" not in describe(no_valid)
    worse = {**RECORD, "accepted": False, "valid_ppl": math.inf}
    assert describe(worse).endswith(
        "valid ppl inf  lr 0.00125  1234 tok/s  13s  (worse: rolled back)"
    )


@pytest.mark.parametrize("x", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_become_none_everywhere(x):
    assert finite_or_none(x) is None
    assert json_safe({"a": [1, x, (2.5, x)], "b": {"c": x}, "d": "text"}) == {
        "a": [1, None, [2.5, None]],
        "b": {"c": None},
        "d": "text",
    }


def test_finite_values_and_non_floats_are_kept():
    assert [finite_or_none(v) for v in (0.5, 3, None, "x", True)] == [0.5, 3, None, "x", True]


def test_summary_counts_the_epochs_tokens_and_time():
    st = Progress(lr=1.0, epoch=2, seconds=4.00049, skipped_batches=1, best_ppl=30.5)
    st.history = [{"tokens": 300}, {"tokens": 500}]
    assert summary(st, 400, "m") == {
        "valid_ppl": 30.5,
        "train_tokens": 400,
        "epochs": 2,
        "seconds": 4.0,
        "tokens_per_second": 800 / 4.00049,
        "skipped_batches": 1,
        "out": "m",
    }


def test_summary_of_a_run_with_no_finite_perplexity_is_strict_json():
    st = Progress(lr=1.0, best_ppl=None)
    st.history = [{"tokens": 10, "valid_ppl": math.nan}]
    text = json.dumps(summary(st, 10, "m"))
    assert strict(text)["valid_ppl"] is None


def test_write_log_is_one_record_a_line(tmp_path):
    path = tmp_path / "log.jsonl"
    history = [
        json_safe({**RECORD, "epoch": e, "valid_ppl": v}) for e, v in [(1, 60.0), (2, math.inf)]
    ]
    write_log(str(path), history)
    lines = path.read_text().splitlines()
    assert [strict(line)["epoch"] for line in lines] == [1, 2]
    assert strict(lines[1])["valid_ppl"] is None
    assert path.read_bytes().endswith(b"}\n")
