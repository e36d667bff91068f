"""``lm generate`` through click's CliRunner: stdout holds the texts, stderr the rest."""

from __future__ import annotations

import json
import warnings

import pytest
from click.testing import CliRunner
from lmfixtures import make_model, save_model_dir

from lm import generation
from lm.cli import main


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture
def model_dir(tmp_path, model):
    return save_model_dir(tmp_path / "model", model)


def run(*args):
    return CliRunner().invoke(main, ["generate", *map(str, args)])


def json_lines(result):
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_one_text_per_line(model_dir):
    result = run(model_dir, "--prompt", "the cat", "--num", 3, "--seed", 1)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("the cat") and "  " not in line for line in lines)
    assert result.stderr == ""


def test_json_fields_and_agreement_with_the_api(model_dir, model):
    result = run(model_dir, "--prompt", "the", "--num", 4, "--seed", 7, "--max-tokens", 5, "--json")
    assert result.exit_code == 0, result.stderr
    rows = json_lines(result)
    api = model.generate(prompt="the", num=4, seed=7, max_tokens=5)
    assert rows == [s.to_dict() for s in api]
    for row in rows:
        assert {"text", "tokens", "log10prob", "stopped"} <= set(row)
        assert row["text"] == " ".join(["the"] + row["tokens"])
        assert row["stopped"] in ("eos", "max_tokens")
        assert len(row["tokens"]) <= 5


def test_json_log10prob_matches_score(model_dir, model):
    result = run(model_dir, "--prompt", "a dog", "--num", 10, "--seed", 3, "--json")
    for row in json_lines(result):
        eos = row["stopped"] == "eos"
        expected = model.score(row["text"], eos=eos) - model.score("a dog", eos=False)
        assert row["log10prob"] == pytest.approx(expected, abs=1e-4)


def test_seed_repeats_and_no_seed_differs(model_dir):
    args = (model_dir, "--num", 5, "--max-tokens", 20)
    assert run(*args, "--seed", 3).stdout == run(*args, "--seed", 3).stdout
    assert run(*args, "--seed", 3).stdout != run(*args, "--seed", 4).stdout
    assert run(*args).stdout != run(*args).stdout


def test_greedy_and_sampling_options(model_dir, model):
    (greedy,) = model.generate(prompt="the", greedy=True)
    result = run(model_dir, "--prompt", "the", "--greedy")
    assert result.exit_code == 0 and result.stdout == greedy.text + "\n"
    result = run(model_dir, "--prompt", "the", "--top-k", 1, "--num", 3, "--seed", 0)
    assert result.stdout.splitlines() == [greedy.text] * 3
    result = run(model_dir, "--temperature", 0.8, "--top-k", 4, "--top-p", 0.9, "--seed", 0)
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 1


def test_unknown_prompt_words_warn_on_stderr(model_dir):
    result = run(model_dir, "--prompt", "the zebra", "--greedy")
    assert result.exit_code == 0
    assert result.stdout.startswith("the <unk>")
    assert result.stderr.splitlines() == [
        "lm: warning: prompt words not in the vocabulary, fed as <unk>: zebra"
    ]


def test_no_unk(tmp_path):
    m = make_model()
    m.net.params["c"][0] += 30  # <unk> almost certain
    directory = save_model_dir(tmp_path / "unk", m)
    assert "<unk>" in run(directory, "--seed", 0, "--max-tokens", 3).stdout
    result = run(directory, "--seed", 0, "--max-tokens", 3, "--num", 20, "--no-unk")
    assert result.exit_code == 0 and "<unk>" not in result.stdout


def test_beam(model_dir, model):
    result = run(model_dir, "--prompt", "the", "--beam", 4, "--json")
    assert result.exit_code == 0, result.stderr
    rows = json_lines(result)
    assert rows == [s.to_dict() for s in model.generate(prompt="the", beam=4)]
    assert [r["log10prob"] for r in rows] == sorted((r["log10prob"] for r in rows), reverse=True)
    result = run(model_dir, "--beam", 4, "--num", 2, "--length-norm")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 2


@pytest.mark.parametrize(
    "args",
    [
        ["--temperature", 0],
        ["--temperature", -1],
        ["--temperature", "nan"],
        ["--temperature", "inf"],
        ["--top-p", 0],
        ["--top-p", 1.5],
        ["--top-p", -0.2],
        ["--top-k", 0],
        ["--max-tokens", 0],
        ["--num", 0],
        ["--beam", 0],
        ["--seed", -1],
        ["--greedy", "--temperature", 0.5],
        ["--greedy", "--top-k", 2],
        ["--greedy", "--top-p", 0.5],
        ["--greedy", "--num", 2],
        ["--greedy", "--beam", 2],
        ["--beam", 2, "--top-k", 3],
        ["--beam", 2, "--num", 3],
        ["--length-norm"],
        ["--max-tokens", "many"],
    ],
)
def test_bad_options_are_usage_errors(model_dir, args):
    result = run(model_dir, *args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Error:" in result.stderr and "Traceback" not in result.stderr


def test_option_names_in_usage_errors(model_dir):
    result = run(model_dir, "--greedy", "--top-k", 2)
    assert "--greedy" in result.stderr and "--top-k" in result.stderr
    assert "top_k" not in result.stderr


def test_missing_model_dir(tmp_path):
    result = run(tmp_path / "nowhere")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("lm: error: ") and "nowhere" in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("damage", ["weights", "config", "tokenizer"])
def test_corrupt_model_dir(model_dir, damage):
    name = {"weights": "weights.npz", "config": "config.json", "tokenizer": "tokenizer.json"}
    with open(f"{model_dir}/{name[damage]}", "wb") as f:
        f.write(b"\x00 not what it should be {")
    result = run(model_dir, "--seed", 0)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lm: error: ") and name[damage] in lines[0]


def test_help(model_dir):
    result = CliRunner().invoke(main, ["generate", "--help"])
    assert result.exit_code == 0
    for flag in (
        "--prompt",
        "--max-tokens",
        "--num",
        "--seed",
        "--greedy",
        "--temperature",
        "--top-k",
        "--top-p",
        "--beam",
        "--no-unk",
        "--json",
    ):
        assert flag in result.stdout


def test_warnings_do_not_leak_outside_the_command(model_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error", generation.PromptWarning)
        result = run(model_dir, "--prompt", "zebra", "--greedy")
    assert result.exit_code == 0
