"""``lm demo`` end to end on a small corpus and a few seconds of training."""

from __future__ import annotations

import json
import math
from pathlib import Path

from click.testing import CliRunner

from lm.cli import main

SUMMARY_KEYS = {"test_ppl", "oracle_ppl", "unigram_ppl", "bigram_ppl", "cosine_rmse", "seconds"}


def run_demo(out: Path, *extra: str):
    args = ["demo", "--out", str(out), "--tokens", "20000", "--minutes", "0.05", "--quiet"]
    return CliRunner().invoke(main, [*args, *extra])


def test_demo_prints_the_table_and_ends_with_json(tmp_path):
    out = tmp_path / "demo"
    result = run_demo(out, "--json")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert SUMMARY_KEYS <= set(summary)
    assert all(math.isfinite(summary[k]) and summary[k] > 0 for k in SUMMARY_KEYS)
    # the oracle is the floor, the unigram far above it
    assert summary["oracle_ppl"] < summary["test_ppl"] < summary["unigram_ppl"]
    assert summary["test_over_oracle"] == summary["test_ppl"] / summary["oracle_ppl"]
    text = result.stdout
    for row in ("oracle (the source itself)", "lm RNN", "Kneser-Ney bigram", "unigram"):
        assert row in text
    assert "greedy:" in text and "sampled:" in text and "validation RMSE" in text
    for plot in summary["plots"]:
        assert Path(plot).is_file() and Path(plot).stat().st_size > 0, plot
    assert (out / "model" / "weights.npz").is_file()
    assert (out / "corpus" / "oracle.json").is_file()


def test_demo_into_a_file_is_refused(tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a directory")
    result = run_demo(target)
    assert result.exit_code == 2 and "is a file" in result.stderr
    assert "Traceback" not in result.output


def test_demo_under_a_file_is_a_one_line_error(tmp_path):
    (tmp_path / "taken").write_text("not a directory")
    result = run_demo(tmp_path / "taken" / "demo")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("lm: error: ") and "taken" in line


def test_demo_usage_errors(tmp_path):
    for args in (["--minutes", "0"], ["--tokens", "0"]):
        result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d"), *args])
        assert result.exit_code == 2, result.output
