"""Training speed: lm (numpy) against the same model in PyTorch CPU, measured in one run.

Model: embedding (E=200) -> tanh RNN (H=200) -> linear -> softmax over V words, B=20 streams,
windows of T=35 steps, SGD with global-norm clipping 0.25 (the PyTorch word-language-model
recipe). Data: ../shared/corpora/ptb/ptb.valid.txt when present (its ~6k words are ids of a
V=10,000 model, so the output layer has the full 10k cost), otherwise random Zipf ids. Both
libraries use the same number of threads.

    python scripts/bench_train.py [--tokens 70000] [--input embedding|onehot] [--threads N]
        [--cell elman|gru|lstm]

``--cell`` picks the recurrent cell, nn.RNN / nn.GRU / nn.LSTM on the PyTorch side.

Prints tokens/s for each, their ratio, the machine's float32 GEMM rate (a 2048^3 np.matmul)
and the fraction of it that training reaches, counting the FLOPs of the matrix products only
(output layer 3 x 2NHV, input layer 3 x 2NEGH, recurrence 3 x 2NHGH for N = T*B positions,
G = 1, 3, 4 gates for elman, gru, lstm).
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np

from lm import optim
from lm.data import batchify, encode_file, windows
from lm.model import ModelConfig, Network
from lm.tokenizer import Vocab

PTB = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora" / "ptb" / "ptb.valid.txt"
E, H, V, B, T = 200, 200, 10_000, 20, 35


def gemm_rate(n: int = 2048, repeats: int = 5) -> float:
    """float32 GFLOP/s of a large square matmul on this machine."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    t = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


GATES = {"elman": 1, "gru": 3, "lstm": 4}


def window_flops(input_kind: str, cell: str) -> float:
    N, G = T * B, GATES[cell]
    input_layer = 3 * 2 * N * E * G * H if input_kind == "embedding" else 0
    return 3 * 2 * N * H * V + input_layer + 3 * 2 * N * H * G * H


def load_columns() -> tuple[np.ndarray, str]:
    if PTB.is_file():
        with open(PTB, encoding="utf-8") as f:
            vocab = Vocab.build(f, vocab_size=V)
        return batchify(encode_file(PTB, vocab), B), f"{PTB.name} ({vocab.size} distinct ids)"
    rng = np.random.default_rng(0)
    ids = np.minimum(rng.zipf(1.2, 80_000), V) - 1
    return batchify(ids.astype(np.int32), B), "random Zipf ids (PTB not found)"


def bench_lm(columns, tokens: int, input_kind: str, cell: str) -> float:
    embed_dim = E if input_kind == "embedding" else 0
    config = ModelConfig(n_vocab=V, hidden=H, input=input_kind, embed_dim=embed_dim, cell=cell)
    net = Network.create(config, np.random.default_rng(0))
    opt = optim.SGD(lr=1.0)
    s = net.zero_state(B)
    done, t0 = 0, None
    while done < tokens:
        for _, x, y in windows(columns, T):
            if t0 is None and done >= 2 * T * B:  # two warm-up windows
                t0, done = time.perf_counter(), 0
            loss, grads, s = net.loss_and_grads(x, y, s)
            optim.clip_global_norm(grads, 0.25)
            opt.update(net.params, grads)
            done += x.size
            if t0 is not None and done >= tokens:
                break
    return done / (time.perf_counter() - t0)


def bench_torch(columns, tokens: int, threads: int, cell: str) -> float | None:
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
            rnn = {"elman": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell](E, H)
            self.emb, self.rnn, self.out = nn.Embedding(V, E), rnn, nn.Linear(H, V)

        def forward(self, x, h):
            o, h = self.rnn(self.emb(x), h)
            return self.out(o).view(-1, V), h

    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    loss_fn = nn.CrossEntropyLoss()
    data = torch.from_numpy(columns.astype(np.int64))
    h = torch.zeros(1, B, H)
    if cell == "lstm":
        h = (h, torch.zeros(1, B, H))
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=70_000, help="tokens to time for each")
    p.add_argument("--input", default="embedding", choices=["embedding", "onehot"])
    p.add_argument("--threads", type=int, default=numpy_threads())
    p.add_argument("--cell", default="elman", choices=list(GATES))
    args = p.parse_args()

    columns, source = load_columns()
    rate = gemm_rate()
    print(
        f"data: {source}; E={E} H={H} V={V} B={B} T={T} {args.cell}, SGD + clip 0.25; "
        f"{args.tokens} tokens timed; {args.threads} threads"
    )
    print(f"float32 GEMM rate (2048^3 np.matmul): {rate:.1f} GFLOP/s")
    ours = bench_lm(columns, args.tokens, args.input, args.cell)
    flops = window_flops(args.input, args.cell) / (T * B)  # per token
    print(
        f"lm ({args.input:9s}) {ours:10.0f} tokens/s   {ours * flops / 1e9:6.1f} GFLOP/s = "
        f"{100 * ours * flops / 1e9 / rate:4.1f}% of the GEMM rate"
    )
    theirs = bench_torch(columns, args.tokens, args.threads, args.cell)
    if theirs is None:
        print("torch not importable: PyTorch comparison skipped (pip install torch==2.13.0)")
    else:
        print(f"torch (embedding) {theirs:10.0f} tokens/s   ratio lm/torch = {ours / theirs:.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (whole process): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
