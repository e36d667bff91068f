"""Memory bounds: refuse a setting before allocating for it, not with a MemoryError after.

The bound is the memory available when the check runs: ``MemAvailable`` from
``/proc/meminfo`` on Linux (what the kernel can give without swapping), else the physical
memory (``os.sysconf``); where neither is known there is no bound. ``lm`` checks against it

- the arrays a model or checkpoint file declares, before inflating any of them
  (``lm.checkpoint.load_arrays``);
- the arrays training will allocate for a model size, batch and window (``training_bytes``,
  called by ``lm train`` before reading the data and again once the vocabulary is known);
- the arrays generation will allocate for ``max_tokens``, ``num`` and ``beam``
  (``lm.generation.GenerationOptions``).

The estimates count the large arrays (parameters and their copies, per-window activations,
logits) and leave out the small ones, so they are a little low rather than high: a refusal
means the setting cannot fit, not that it might not.
"""

from __future__ import annotations

import os

from lm.errors import MemoryLimitError


def available_bytes() -> int | None:
    """Bytes of memory available now (MemAvailable), or the physical memory, or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def fits(nbytes: int, limit: int | None = None) -> bool:
    """Whether ``nbytes`` fit in ``limit`` (default: ``available_bytes()``; None: no bound)."""
    limit = available_bytes() if limit is None else limit
    return limit is None or nbytes <= limit


def require(nbytes: int, what: str, limit: int | None = None, error=MemoryLimitError) -> None:
    """Raise ``error`` ("WHAT needs about N GB of memory, more than the M GB available")
    unless ``nbytes`` fit in ``limit`` (default: the memory available now)."""
    limit = available_bytes() if limit is None else limit
    if limit is not None and nbytes > limit:
        raise error(
            f"{what} needs about {format_bytes(nbytes)} of memory, more than the "
            f"{format_bytes(limit)} available"
        )


def format_bytes(n: float) -> str:
    """1536 -> '1.5 kB'; 3e12 -> '3 TB' (powers of 1000, as ``df -H`` and tqdm show them)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def training_bytes(
    n_vocab: int,
    hidden: int,
    batch_size: int,
    bptt: int,
    embed_dim: int = 0,
    width: int = 1,
    optimizer: str = "adam",
    ema: bool = False,
    itemsize: int = 4,
) -> int:
    """Estimated peak bytes of language-model training (float32 by default).

    Parameters: U (n_in, G H) with n_in = ``embed_dim`` (embedding input, plus E (n_vocab,
    embed_dim)) or n_vocab (one-hot), W (H, G H), b (G H,), V (H, n_vocab), c (n_vocab,),
    where G = ``width`` is the cell's number of gates (1 Elman, 3 GRU, 4 LSTM). Copies held
    during training: the weights, their gradients, the best weights, Adam's two moments,
    the weight average and its scratch with ``ema``. Per window of N = bptt * batch_size
    positions: about 3 (N, n_vocab) arrays (logits, probabilities, their gradient) and 6
    (bptt + 1, batch_size, G H) state-sized arrays (drives, states, their gradients, masks).
    """
    G, H, V, B, T = width, hidden, n_vocab, batch_size, bptt
    n_in = embed_dim if embed_dim else V
    params = n_in * G * H + G * H * H + G * H + H * V + V + (V * embed_dim if embed_dim else 0)
    copies = 3 + (2 if optimizer == "adam" else 0) + (2 if ema else 0)
    window = 3 * T * B * V + 6 * (T + 1) * B * G * H
    return itemsize * (copies * params + window)


def check_training(
    n_vocab: int,
    hidden: int,
    batch_size: int,
    bptt: int,
    embed_dim: int = 0,
    width: int = 1,
    optimizer: str = "adam",
    ema: bool = False,
    limit: int | None = None,
    vocab_known: bool = True,
) -> None:
    """MemoryLimitError naming the settings unless training of that size fits in memory
    (``limit``, default the memory available now). ``n_vocab`` may be a lower bound (before
    the vocabulary is built, the four special tokens, with ``vocab_known=False``) to refuse
    early what cannot fit at any vocabulary size."""
    nbytes = training_bytes(n_vocab, hidden, batch_size, bptt, embed_dim, width, optimizer, ema)
    parts = [f"--hidden {hidden}"]
    if embed_dim:
        parts.append(f"--embed-dim {embed_dim}")
    parts += [f"--batch-size {batch_size}", f"--bptt {bptt}"]
    vocab = f" and {n_vocab} words" if vocab_known else " (at any vocabulary size)"
    require(nbytes, "training with " + ", ".join(parts) + vocab, limit)
