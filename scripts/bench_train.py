"""Training speed: lm (numpy) against the same model in PyTorch CPU, or lm's class-factored
output layer against its full softmax, measured in one run.

Model: embedding (E=200) -> tanh RNN (H=200) -> softmax over V words, B=20 streams, windows
of T=35 steps, SGD with global-norm clipping 0.25 (the PyTorch word-language-model recipe).
Data: ../shared/corpora/ptb/ptb.valid.txt when present and V is 10,000 (its ~6k words are ids
of a V=10,000 model, so the output layer has the full 10k cost), otherwise ids drawn from
Zipf's law over V words (P(rank r) proportional to 1/r). Both libraries use the same number of
threads.

    python scripts/bench_train.py [--tokens 70000] [--input embedding|onehot] [--threads N]
    python scripts/bench_train.py [--cell elman|gru|lstm]   (nn.RNN / nn.GRU / nn.LSTM in torch)
    python scripts/bench_train.py --cell lstm --layers 2 [--hidden 650]   (num_layers=2 in torch)
    python scripts/bench_train.py --output class [--vocab 10000,30000,100000] [--batch-size 64]
        [--classes C] [--optimizer sgd|adam] [--rounds R]

``--output full`` (the default) times lm's full softmax and PyTorch's; ``--layers`` and
``--hidden`` (E = H) set the stacked model both libraries train. ``--output class``
times lm's class head and its full head in the same run, one after the other on the same
windows, for each vocabulary size given, and prints their ratio. The class boundaries are cut
(``lm.heads.class_bounds``, C = ``heads.default_classes(V)`` = round(sqrt(V) / 8) unless
--classes) from the counts of the timed ids plus one for every id, as if each word of the
vocabulary occurred in training. ``--rounds R``: the two heads take turns R times and the best
rate of each counts (on a shared machine some runs are slowed down).

Prints tokens/s, the machine's float32 GEMM rate (a 2048^3 np.matmul) and the fraction of it
that training reaches, counting the FLOPs of the matrix products only (full softmax 3 x 2NHV;
class head 3 x 2NH(C + mean width of the targets' classes); input layer 3 x 2NEGH; recurrence
3 x 2NHGH per layer, and 3 x 2NHGH more for the input of each layer above the first, for
N = T*B positions and G gates). Do not compare figures from a busy machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np

from lm import heads, optim
from lm.data import batchify, encode_file, windows
from lm.model import ModelConfig, Network
from lm.tokenizer import Vocab

PTB = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora" / "ptb" / "ptb.valid.txt"
E, H, V, B, T = 200, 200, 10_000, 20, 35
LAYERS = 1  # stacked cells (--layers)


def gemm_rate(n: int = 2048, repeats: int = 5) -> float:
    """float32 GFLOP/s of a large square matmul on this machine."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    t = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


GATES = {"elman": 1, "gru": 3, "lstm": 4}


def token_flops(
    input_kind: str, n_vocab: int, head_width: float | None = None, cell: str = "elman"
) -> float:
    """FLOPs of the matrix products per token; head_width: C + the mean width of the targets'
    classes for the class head (None: the full softmax, n_vocab); G = the cell's gates."""
    G = GATES[cell]
    input_layer = 3 * 2 * E * G * H if input_kind == "embedding" else 0
    return 3 * 2 * H * (head_width or n_vocab) + input_layer + 3 * 2 * H * G * H * (2 * LAYERS - 1)


def zipf_ids(n_vocab: int, n: int, seed: int = 0) -> np.ndarray:
    """n ids with P(id r - 1) proportional to 1/r, r = 1..n_vocab (Zipf's law, exponent 1)."""
    p = 1.0 / np.arange(1, n_vocab + 1)
    return np.random.default_rng(seed).choice(n_vocab, n, p=p / p.sum()).astype(np.int32)


def load_columns(n_vocab: int, batch: int) -> tuple[np.ndarray, str]:
    if PTB.is_file() and n_vocab == V:
        with open(PTB, encoding="utf-8") as f:
            vocab = Vocab.build(f, vocab_size=V)
        return batchify(encode_file(PTB, vocab), batch), f"{PTB.name} ({vocab.size} distinct ids)"
    ids = zipf_ids(n_vocab, 80_000)
    return batchify(ids, batch), f"Zipf ids over {n_vocab} words"


def make_net(
    input_kind: str, n_vocab: int, output: str, counts, n_classes, cell: str = "elman",
    layers: int = 1,
) -> Network:  # fmt: skip
    config = ModelConfig.from_counts(
        n_vocab,
        counts,
        n_classes if output == "class" else None,
        hidden=H,
        input=input_kind,
        embed_dim=E if input_kind == "embedding" else 0,
        output=output,
        cell=cell,
        layers=layers,
    )
    return Network.create(config, np.random.default_rng(0), counts=counts)


def bench_lm(net, columns, tokens: int, optimizer: str = "sgd") -> float:
    opt = optim.SGD(lr=1.0) if optimizer == "sgd" else optim.Adam(lr=1e-3)
    s = net.zero_state(columns.shape[1])
    done, t0 = 0, None
    while done < tokens:
        for _, x, y in windows(columns, T):
            if t0 is None and done >= 2 * x.size:  # two warm-up windows
                t0, done = time.perf_counter(), 0
            loss, grads, s = net.loss_and_grads(x, y, s)
            optim.clip_global_norm(grads, 0.25)
            opt.update(net.params, grads)
            done += x.size
            if t0 is not None and done >= tokens:
                break
    return done / (time.perf_counter() - t0)


def bench_torch(columns, tokens: int, threads: int, cell: str, layers: int = 1) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            rnn = {"elman": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell](E, H, layers)
            self.emb, self.rnn, self.out = nn.Embedding(V, E), rnn, nn.Linear(H, V)

        def forward(self, x, h):
            o, h = self.rnn(self.emb(x), h)
            return self.out(o).view(-1, V), h

    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    loss_fn = nn.CrossEntropyLoss()
    data = torch.from_numpy(columns.astype(np.int64))
    h = torch.zeros(layers, B, H)
    if cell == "lstm":
        h = (h, torch.zeros(layers, B, H))
    done, t0 = 0, None
    while done < tokens:
        for _, x, y in windows(data, T):
            if t0 is None and done >= 2 * T * B:
                t0, done = time.perf_counter(), 0
            h = tuple(a.detach() for a in h) if cell == "lstm" else h.detach()
            opt.zero_grad()
            logits, h = net(x, h)
            loss_fn(logits, y.reshape(-1)).backward()
            nn.utils.clip_grad_norm_(net.parameters(), 0.25)
            opt.step()
            done += x.numel()
            if t0 is not None and done >= tokens:
                break
    return done / (time.perf_counter() - t0)


def numpy_threads() -> int:
    try:
        from threadpoolctl import threadpool_info

        return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    except Exception:
        return os.cpu_count() or 1


def report(name: str, rate: float, flops_per_token: float, gemm: float) -> None:
    gflops = rate * flops_per_token / 1e9
    print(
        f"{name:24s} {rate:10.0f} tokens/s   {gflops:6.1f} GFLOP/s = "
        f"{100 * gflops / gemm:4.1f}% of the GEMM rate"
    )


def compare_heads(args, gemm: float) -> None:
    """The class head and the full head on the same windows, for each vocabulary size."""
    rows = []
    for n_vocab in args.vocab:
        columns, source = load_columns(n_vocab, args.batch_size)
        counts = np.bincount(columns.reshape(-1), minlength=n_vocab) + 1
        n_classes = args.classes or heads.default_classes(n_vocab)
        net = make_net(args.input, n_vocab, "class", counts, n_classes)
        head = net.head
        width = head.widths[head.class_of[columns.reshape(-1)]].mean()  # mean target class width
        print(
            f"\nV={n_vocab}: {source}; C={n_classes} classes (largest {head.widths.max()} "
            f"words, mean target class {width:.0f}); B={args.batch_size} T={T}, {args.optimizer}"
        )
        full_net = make_net(args.input, n_vocab, "full", counts, None)
        rates = []  # (class, full) per round, the two heads taking turns
        for _ in range(args.rounds):
            rates.append(tuple(bench_lm(n, columns, args.tokens, args.optimizer)
                               for n in (net, full_net)))  # fmt: skip
        ours, full = (max(r[i] for r in rates) for i in (0, 1))
        report("lm class head", ours, token_flops(args.input, n_vocab, n_classes + width), gemm)
        report("lm full softmax", full, token_flops(args.input, n_vocab), gemm)
        if args.rounds > 1:
            each = ", ".join(f"{c / f:.2f}" for c, f in rates)
            print(f"rounds (class / full each): {each}; best of {args.rounds} of each head:")
        print(f"class / full: {ours / full:.2f}x")
        rows.append((n_vocab, ours, full))
    if len(rows) > 1:
        print(f"\n{'V':>8}{'class tok/s':>14}{'full tok/s':>12}{'ratio':>8}")
        for n_vocab, ours, full in rows:
            print(f"{n_vocab:>8}{ours:>14.0f}{full:>12.0f}{ours / full:>8.2f}")


def main() -> None:
    global E, H, LAYERS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=70_000, help="tokens to time for each")
    p.add_argument("--input", default="embedding", choices=["embedding", "onehot"])
    p.add_argument("--threads", type=int, default=numpy_threads())
    p.add_argument("--output", default="full", choices=["full", "class"])
    p.add_argument(
        "--vocab",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[V],
        help="vocabulary size(s), comma-separated (--output class)",
    )
    p.add_argument("--batch-size", type=int, default=B, help="B streams (--output class)")
    p.add_argument("--classes", type=int, help="C classes [default: heads.default_classes(V)]")
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"], help="(--output class)")
    p.add_argument(
        "--rounds", type=int, default=1, help="(--output class) best of R turns of each head"
    )
    p.add_argument("--cell", default="elman", choices=list(GATES), help="(--output full)")
    p.add_argument("--layers", type=int, default=1, help="stacked cells (--output full)")
    p.add_argument("--hidden", type=int, default=H, help="H = E (--output full)")
    args = p.parse_args()
    E = H = args.hidden
    LAYERS = args.layers

    rate = gemm_rate()
    print(f"float32 GEMM rate (2048^3 np.matmul): {rate:.1f} GFLOP/s")
    print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    if args.output == "class":
        print(
            f"E={E} H={H} tanh, clip 0.25; {args.tokens} tokens timed per head; "
            f"{args.threads} threads"
        )
        compare_heads(args, rate)
    else:
        columns, source = load_columns(V, B)
        print(
            f"data: {source}; E={E} H={H} V={V} B={B} T={T} {args.layers} x {args.cell}, "
            "SGD + clip 0.25; "
            f"{args.tokens} tokens timed; {args.threads} threads"
        )
        net = make_net(args.input, V, "full", None, None, args.cell, args.layers)
        ours = bench_lm(net, columns, args.tokens)
        report(f"lm ({args.input})", ours, token_flops(args.input, V, cell=args.cell), rate)
        theirs = bench_torch(columns, args.tokens, args.threads, args.cell, args.layers)
        if theirs is None:
            print("torch not importable: PyTorch comparison skipped (pip install torch==2.13.0)")
        else:
            print(
                f"torch (embedding)        {theirs:10.0f} tokens/s   ratio lm/torch = "
                f"{ours / theirs:.2f}"
            )
    print("load average at end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (whole process): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
