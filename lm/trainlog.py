"""What a training run reports: the line per epoch, ``log.jsonl``, ``training.png`` and the
summary (``lm train --json``).

An epoch's record is a dict: epoch, train_ppl, lr, tokens, tokens_per_second, valid_ppl
(None without a validation file), accepted, rolled_back, next_lr, seconds (trained so far)
and, when ``--resume`` changed something, changed. ``log.jsonl`` holds one record a line; what
is written is strict JSON (NaN and infinities become null).
"""

from __future__ import annotations

import json
import math

from lm import checkpoint
from lm.trainconfig import Progress


def summary(progress: Progress, train_tokens: int, out: str) -> dict:
    """The run in numbers (``--json``): finite numbers or null, never NaN or Infinity."""
    st = progress
    tokens = sum(r["tokens"] for r in st.history)
    return json_safe(
        {
            "valid_ppl": st.best_ppl,
            "train_tokens": int(train_tokens),
            "epochs": st.epoch,
            "seconds": round(st.seconds, 3),
            "tokens_per_second": tokens / max(st.seconds, 1e-9),
            "skipped_batches": st.skipped_batches,
            "out": out,
        }
    )


def describe(r: dict) -> str:
    """The line said at the end of an epoch, from its record."""
    valid = "" if r.get("valid_ppl") is None else f"  valid ppl {r['valid_ppl']:.2f}"
    note = "" if r.get("accepted", True) else "  (worse: rolled back)"
    return (
        f"epoch {r['epoch']:3d}  train ppl {r['train_ppl']:.2f}{valid}  lr {r['lr']:.4g}  "
        f"{r['tokens_per_second']:.0f} tok/s  {r['seconds']:.0f}s{note}"
    )


def write_log(path: str, history: list[dict]) -> None:
    """Write ``log.jsonl`` (atomically): one record a line."""
    lines = [json.dumps(r) for r in history]
    with checkpoint.atomic_write(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def plot(path: str, history: list[dict]) -> None:
    """Write ``training.png``: training and validation perplexity per epoch."""
    from lm import plots  # matplotlib, only once an epoch has ended

    h = history
    plots.perplexity_curve(
        [r["epoch"] for r in h],
        [r["train_ppl"] for r in h],
        [r.get("valid_ppl") for r in h],
        path,
    )


def finite_or_none(x):
    """``x``, or None when it is a NaN or infinite float."""
    return x if not isinstance(x, float) or math.isfinite(x) else None


def json_safe(obj):
    """``obj`` with every NaN or infinite float replaced by None (JSON null): json.dumps would
    write NaN and Infinity, which are not JSON."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return finite_or_none(obj)
