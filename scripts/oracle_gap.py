"""The gap between lm train's defaults and the exact oracle, at several corpus sizes.

For each size N, samples a synthetic corpus of N words from a known hidden Markov source
(``corpora.synth``, as ``lm corpus synth --tokens N --seed S``: 90% train, 5% valid, 5% test),
trains ``lm train TRAIN --valid VALID`` with every default and no time cap (the schedule ends
the run), scores the test split with ``lm perplexity`` and prints one table row: tokens, the
dropout the size rule chose, epochs, wall time, test perplexity including OOVs, the oracle's
test perplexity (the source's own, counting </s> once per sentence as lm perplexity does) and
their ratio.

    python scripts/oracle_gap.py --sizes 100000,300000,1000000,3000000 [--seed 0]
        [--topics 6] [--words-per-list 12] [--zipf 0.8] [--threads 1] [--work DIR]

``--topics``, ``--words-per-list`` and ``--zipf`` change the source (``SynthConfig``); the
defaults are ``lm corpus synth``'s. With ``--threads 1`` two sizes can run side by side on
two cores (their wall times are then longer than on an idle machine). A finished size is
not trained again: its row is read back from the work directory.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from corpora import synth


def corpus(work: Path, tokens: int, seed: int, config: synth.SynthConfig) -> Path:
    """The corpus directory for this size (sampled unless already there)."""
    directory = work / f"synth-{tokens}-seed{seed}"
    if not (directory / "oracle.json").is_file():
        synth.build(directory, tokens, seed, force=True, config=config)
    return directory


def lm(*args: str, threads: int) -> str:
    """Run ``lm --threads N ARGS...``; what it printed, stdout then stderr (where ``lm
    perplexity`` writes its summary). A failure ends the script with its stderr."""
    cmd = [sys.executable, "-m", "lm.cli", "--threads", str(threads), *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return r.stdout + r.stderr


def row(directory: Path, threads: int) -> dict:
    """Train with the defaults (once), score the test split, and compare with the oracle."""
    model = directory / "model"
    if not (model / "done.json").is_file():
        t0 = time.perf_counter()
        lm("train", str(directory / "train.txt"), "--valid", str(directory / "valid.txt"),
           "--out", str(model), "--force", "-q", threads=threads)  # fmt: skip
        seconds = time.perf_counter() - t0
        (model / "done.json").write_text(json.dumps({"seconds": seconds}) + "\n")
    seconds = json.loads((model / "done.json").read_text())["seconds"]
    out = lm("perplexity", str(model), str(directory / "test.txt"), threads=threads)
    ppl = float(re.search(r"Perplexity including OOVs:\s*(\S+)", out).group(1))
    with open(directory / "oracle.json", encoding="utf-8") as f:
        oracle = json.load(f)
    with open(model / "config.json", encoding="utf-8") as f:
        training = json.load(f)["training"]
    dropout, epochs = training["config"]["dropout"], training["epochs"]
    best = oracle["splits"]["test"]["ppl"]
    return {
        "tokens": oracle["tokens"], "dropout": dropout, "epochs": epochs, "seconds": seconds,
        "test_ppl": ppl, "oracle_ppl": best, "ratio": ppl / best,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="100000,300000,1000000,3000000")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--topics", type=int, default=synth.SynthConfig.topics)
    ap.add_argument("--words-per-list", type=int, default=synth.SynthConfig.words_per_list)
    ap.add_argument("--zipf", type=float, default=synth.SynthConfig.zipf)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, help="where corpora and models go [a new temporary dir]")
    args = ap.parse_args()
    config = synth.SynthConfig(
        topics=args.topics, words_per_list=args.words_per_list or None, zipf=args.zipf
    )
    work = args.work or Path(tempfile.mkdtemp(prefix="oracle-gap-"))
    print(f"# source {config}; work directory {work}", flush=True)
    print("| tokens | dropout | epochs | time | test ppl | oracle | ratio |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for tokens in (int(n) for n in args.sizes.split(",")):
        r = row(corpus(work, tokens, args.seed, config), args.threads)
        minutes, secs = divmod(round(r["seconds"]), 60)
        print(
            f"| {r['tokens']:,} | {r['dropout']} | {r['epochs']} | {minutes} min {secs} s | "
            f"{r['test_ppl']:.2f} | {r['oracle_ppl']:.2f} | {r['ratio']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
