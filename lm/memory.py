"""Memory bounds: refuse a setting before allocating for it, not with a MemoryError after.

The bound is the memory available when the check runs: ``MemAvailable`` from
``/proc/meminfo`` on Linux (what the kernel can give without swapping), else the physical
memory (``os.sysconf``); where neither is known there is no bound. ``lm`` checks against it

- the arrays a model or checkpoint file declares, before inflating any of them
  (``lm.checkpoint.load_arrays``);
- the arrays training will allocate for a model, batch and window (``training_bytes``,
  called by ``lm train`` before reading the data, with the 4 special tokens as the
  vocabulary, and again once the vocabulary is known; and by ``lm cosine``);
- the arrays generation will allocate for ``max_tokens``, ``num`` and ``beam``
  (``lm.generation.GenerationOptions``).

The estimates count the large arrays (parameters and their copies, per-window activations,
logits, gradients) and leave out the small ones, so they are a little low rather than high:
a refusal means the setting cannot fit, not that it might not.
"""

from __future__ import annotations

import math
import os

from lm.errors import MemoryLimitError
from lm.model import ModelConfig, Network


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
    model: ModelConfig | Network,
    batch_size: int,
    bptt: int,
    optimizer: str = "adam",
    ema: float = 0.0,
    *,
    dropout: float | None = None,
    independent: bool = True,
    keeps_best: bool = True,
    itemsize: int = 4,
) -> int:
    """Estimated peak bytes of training ``model`` (a ModelConfig, or a Network: only its
    parts and shapes are read) on windows of ``bptt`` steps of ``batch_size`` streams with
    full BPTT, in arrays of ``itemsize`` bytes (float32 by default).

    Held all along, copies of the network's own parameters (``Network.param_shapes``: a
    tied model has no V, the class head adds Vc and cc, each stacked layer U2, b2, W2, ...):
    the weights; the best weights (``keeps_best``, as ``lm train`` keeps them); Adam's m and
    v and its scratch for every parameter with a dense gradient; with ``ema``, the weight
    average and its scratch.

    On top of them, the most one update holds at once, walked through
    ``Network.loss_and_grads`` and the optimiser's update (``_window_peak``): each layer's
    dropout mask (unless ``dropout`` is 0; None, by the text's size, never is), input cache,
    states, cell cache, reset copy (``independent``) and backward arrays (dD, the GRU's dR,
    the Elman cell's f'); the head's window arrays (the full softmax: one (N, n_vocab) array
    of logits, turned into their gradient in place; the class head: the (N, C) class logits
    and each row's word logits within its target's class); every gradient as it is
    allocated (with the class head, V, c and the input's vocabulary matrix as ``lm.sparse``
    columns and rows); the lazy updates' scratch.

    What depends on the text is counted as in the window that holds the most: the class
    head's word logits as N times the harmonic mean of the class widths, its columns as
    every class's (both within a few percent on Zipf text); the rows of an untied input's
    sparse gradient (the window's distinct ids) are left out. So are vectors of N or
    n_vocab elements, the data, validation and checkpoints, and what a horizon K
    (``--truncate``) adds to the backward pass: the estimate is a little low (the tests
    hold it within 25% below the peak measured by tracemalloc; it came within 8%).

        training_bytes(config, 20, 35)                           # lm train's defaults
        training_bytes(config, 20, 35, "sgd", dropout=0, independent=False)
    """
    net = model if isinstance(model, Network) else Network.build(model, {})
    sizes = {k: math.prod(s) for k, s in net.param_shapes().items()}
    n_params = sum(sizes.values())
    dense = n_params - sum(sizes.get(k, 0) for k in _sparse_keys(net))
    copies = n_params * (1 + keeps_best + 2 * bool(ema))
    if optimizer == "adam":
        copies += 2 * n_params + dense  # m, v; the scratch of every dense gradient
    window = _window_peak(net, batch_size, bptt, optimizer, dropout != 0, independent)
    return itemsize * (copies + window)


def check_training(
    config: ModelConfig,
    batch_size: int,
    bptt: int,
    optimizer: str = "adam",
    ema: float = 0.0,
    *,
    dropout: float | None = None,
    independent: bool = True,
    limit: int | None = None,
    vocab_known: bool = True,
) -> None:
    """MemoryLimitError naming the settings unless training of that size
    (``training_bytes``) fits in memory (``limit``, default the memory available now).
    ``config.n_vocab`` may be a lower bound (before the vocabulary is built, the four
    special tokens, with ``vocab_known=False``) to refuse early what cannot fit at any
    vocabulary size."""
    nbytes = training_bytes(
        config, batch_size, bptt, optimizer, ema, dropout=dropout, independent=independent
    )
    parts = [f"--hidden {config.hidden}"]
    if config.layers > 1:
        parts.append(f"--layers {config.layers}")
    if config.input == "embedding":
        parts.append(f"--embed-dim {config.embed_dim}")
    parts += [f"--batch-size {batch_size}", f"--bptt {bptt}"]
    vocab = f" and {config.n_vocab} words" if vocab_known else " (at any vocabulary size)"
    require(nbytes, "training with " + ", ".join(parts) + vocab, limit)


# ------------------------------------------------------------------ one update, walked through


class _Tally:
    """Elements alive (``held``) and the most alive at once (``peak``) as a step runs."""

    def __init__(self):
        self.held = self.peak = 0

    def hold(self, n: int) -> None:
        self.held += n
        self.peak = max(self.peak, self.held)

    def free(self, n: int) -> None:
        self.held -= n

    def touch(self, n: int) -> None:
        """A temporary of n elements, freed at once."""
        self.peak = max(self.peak, self.held + n)


# the cell caches (``new_cache``) per position, in units of H: Elman A; GRU rz, n, Rn;
# LSTM gates, tanh(c')
CACHE_WIDTH = {"elman": 1, "gru": 4, "lstm": 5}


def _sparse_keys(net: Network) -> tuple[str, ...]:
    """The parameters whose gradients are ``lm.sparse`` (a head with ``sparse_grads``: V, c
    and the vocabulary-sized matrix of the input layer)."""
    if not net.head.sparse_grads:
        return ()
    return ("V", "c", "E" if net.inputs.kind == "embedding" else "U")


def _window_peak(net: Network, B: int, T: int, optimizer: str, dropout: bool, keep: bool):
    """The most elements one update holds at once beyond the copies of the parameters:
    ``Network.loss_and_grads`` (forward, head, backward) and then the optimiser's update, by
    the arrays each allocates and when it lets them go."""
    tally, N = _Tally(), T * B
    _forward(tally, net, T, B, dropout)
    grads = _head(tally, net, N, B, dropout)
    grads += _backward(tally, net, N, dropout, keep)
    tally.held = grads  # loss_and_grads returns: only the gradients are left
    if net.head.sparse_grads:  # the lazy updates' scratch (lm.optim)
        _, t = _class_sizes(net.head, N)
        rows = net.hidden * t * net.tie  # tied: E's rows include V's columns, c's remain
        cols = (net.hidden * (not net.tie) + 1) * t
        tally.touch(cols + 4 * rows if optimizer == "adam" else rows)  # Adam: p, m, v, tmp
    return tally.peak


def _class_sizes(head, N: int) -> tuple[int, int]:
    """(M, t) of the class head's window with the most: M the word logits of N rows within
    their targets' classes, about N times the harmonic mean of the class widths (what
    classes cut by sqrt-frequency give, measured within a few % of the peak window on Zipf
    text), and t the word columns of the classes present, all of them as far as N targets
    can reach (an epoch's peak window holds nearly every class)."""
    widths = sorted(int(w) for w in head.widths)
    M = round(N * len(widths) / sum(1 / w for w in widths))
    return M, sum(widths[-N:])


def _forward(tally: _Tally, net: Network, T: int, B: int, dropout: bool) -> None:
    """``Network._forward``: each layer's dropout mask, input cache (E[x], or a dense
    input's x * mask), states S and cell cache, all kept to the end of ``loss_and_grads``;
    the drive D lives while its layer runs."""
    N, H, GH = T * B, net.hidden, net.cell.gates * net.hidden
    for l in range(net.layers):
        layer = net.inputs if l == 0 else net.upper
        width = _feature_width(layer, GH)
        cached = layer.kind == "embedding" or (layer.kind == "dense" and dropout)
        tally.hold(N * width * (dropout + cached))  # the mask; what the layer caches
        tally.hold(N * GH)  # D
        tally.hold((T + 1) * B * net.n_s + N * CACHE_WIDTH[net.cell.name] * H)
        tally.free(N * GH)


def _feature_width(layer, GH: int) -> int:
    """The width of what an input layer's dropout mask covers (``feature_width``): the rows
    U[x] of a one-hot input, the embedding E[x], a dense input's x."""
    if layer.kind == "onehot":
        return GH
    return layer.n_embed if layer.kind == "embedding" else layer.n_in


def _head(tally: _Tally, net: Network, N: int, B: int, dropout: bool) -> int:
    """With dropout, the mask of the states the head reads and the masked states; the
    head's window arrays, dS and its gradients; returns the gradients' elements."""
    H, head = net.hidden, net.head
    n = N if head.reads == "all" else B
    if dropout:
        tally.hold(2 * n * H)  # out_mask, S_out * out_mask (an LSTM's h is read as a view)
    if head.name == "full":  # heads._softmax_xent
        n_vocab = head.n_vocab
        tally.hold(N * n_vocab)  # the logits, their exp and their gradient, in place
        grads = H * n_vocab + n_vocab
        tally.hold(grads + N * H)  # dV, dc; dS (or before it, the scaled S)
        tally.free(N * n_vocab)
        return grads
    if head.name == "class":  # heads.ClassSoftmax.loss
        C, (M, t) = head.n_classes, _class_sizes(head, N)
        window = N * (H + 1) + N * C + M  # the sorted [s | 1], class logits G, word logits F
        grads = (H + 1) * t + (H + 1) * C  # [dV; dc] of the classes present, [dVc; dcc]
        tally.hold(window + grads + N * H)  # ... and dS of the sorted rows
        tally.touch(N * H)  # G Vc^T
        tally.hold(N * H)  # dS
        tally.free(window + N * H)
        return grads
    grads = H * head.n_out + head.n_out  # linear, on the last states: small
    tally.hold(n * H + grads)
    return grads


def _backward(tally: _Tally, net: Network, N: int, dropout: bool, keep: bool) -> int:
    """From the head down, layer by layer: ``core.backward`` (the reset copy S_in, the
    Elman cell's f' and W^T, dD, the GRU's dR, the weight gradients), then the layer's
    input backward (``lm.inputs``); returns the gradients' elements it adds."""
    H, n_s, cell = net.hidden, net.n_s, net.cell.name
    GH = net.cell.gates * H
    dS = N * n_s if net.head.reads == "last" or n_s != H else 0  # else a view of dH
    tally.hold(dS)
    grads = dD_above = dX_above = 0
    for l in range(net.layers - 1, -1, -1):
        tally.hold(N * n_s * keep + (N * H + H * H) * (cell == "elman"))  # S_in; f', W^T
        dR = N * GH * (cell == "gru")
        tally.hold(N * GH + dR)  # dD, dR
        dW = H * GH + GH * (cell == "gru")  # dW (and the GRU's dbh)
        tally.hold(dW)
        if cell == "lstm":
            tally.touch(N * H)  # the incoming h, made contiguous for dW
        tally.free(dR + dD_above)  # the layer above's dD goes once this one's is assigned
        grads, dD_above = grads + dW, N * GH
        if l == 0:
            grads += _input_backward(tally, net, N, dropout)
            break
        tally.hold(H * GH + GH + N * H)  # dU{l+1}, db{l+1}; dX
        if dropout:
            tally.touch(N * H)  # dX * mask (the unmasked dX goes)
        new_dS = N * n_s if n_s != H else 0  # else a view of dX
        tally.hold(new_dS)
        tally.free(dX_above + dS)
        grads, dX_above, dS = grads + H * GH + GH, N * H, new_dS
    if net.tie and net.head.sparse_grads:  # Rows of E over the window's ids and V's columns
        rows = H * _class_sizes(net.head, N)[1]
        tally.hold(rows)
        grads += rows
    elif net.tie:  # dV added to dE in place, then dropped
        tally.free(H * net.head.n_vocab)
        grads -= H * net.head.n_vocab
    return grads


def _input_backward(tally: _Tally, net: Network, N: int, dropout: bool) -> int:
    """The first layer's ``backward``: the gradient of a vocabulary-sized matrix is summed
    by id over rows sorted by id (``lm.sparse.Rows.sum_of``), then scattered into a dense
    array, or with a sparse head kept as Rows of the window's ids (counted at their least);
    returns the gradients' elements."""
    layer, GH = net.inputs, net.cell.gates * net.hidden
    if layer.kind == "dense":  # dU, db; dX, computed and dropped
        tally.hold(layer.n_in * GH + GH)
        tally.touch(N * layer.n_in * (1 + dropout))
        return layer.n_in * GH + GH
    if layer.kind == "onehot":
        k, own, rows = GH, GH, N * GH * dropout  # db; dD * mask
    else:
        k, own, rows = layer.n_embed, layer.n_embed * GH + GH, N * layer.n_embed  # dU, db; dE[x]
    tally.hold(rows + own)
    tally.touch(N * k)  # the rows sorted by id
    dense = 0 if net.head.sparse_grads else layer.n_vocab * k
    tally.hold(dense)
    tally.free(rows)
    return own + dense
