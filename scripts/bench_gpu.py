"""Training speed on a GPU: lm on CuPy against PyTorch (cuDNN) on the same model, same run.

Models (embedding E = H -> cell -> full softmax over V = 10,000 words, untied; SGD with
global-norm clipping 0.25, the PyTorch word-language-model recipe; windows of T = 35 steps):
    gru 200 x 1      lm's default shape
    lstm 650 x 2     the medium Penn Treebank model (Zaremba et al.)
each at B = 20 and B = 256 streams. Data: ids drawn from Zipf's law over V words. Prints
tokens/s of each library and lm / torch for each of the four settings; both time the same
number of windows after the same warm-up, waiting for the GPU (``lm.backend.synchronize``,
``torch.cuda.synchronize``) before reading the clock.

    python scripts/bench_gpu.py                      # --device cuda: CuPy and torch on the GPU
    python scripts/bench_gpu.py --device cpu --windows 3 --settings gru:200:1:20
        # the same script on numpy and torch's CPU build (a quick check of the script itself)

``--settings`` takes CELL:H:LAYERS:B items, comma-separated. The whole default run takes about
two minutes on an H200 (a few windows per setting: the rates are steady after the warm-up).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lm import backend, optim
from lm.data import batchify, windows
from lm.model import ModelConfig, Network

V, T = 10_000, 35
DEFAULT_SETTINGS = "gru:200:1:20,gru:200:1:256,lstm:650:2:20,lstm:650:2:256"


def zipf_columns(B: int, n: int, seed: int = 0) -> np.ndarray:
    """(n // B, B) int32 ids with P(id r - 1) proportional to 1/r (Zipf's law)."""
    p = 1.0 / np.arange(1, V + 1)
    ids = np.random.default_rng(seed).choice(V, n, p=p / p.sum()).astype(np.int32)
    return batchify(ids, B)


def bench_lm(cell: str, H: int, layers: int, columns, n_windows: int, device: str) -> float:
    config = ModelConfig(V, H, input="embedding", embed_dim=H, cell=cell, layers=layers)
    net = Network.create(config, np.random.default_rng(0)).to(device)
    opt = optim.SGD(lr=1.0)
    s = net.zero_state(columns.shape[1])
    data = backend.to_device(columns, device)  # the whole stream on the device at once
    done, t0 = 0, None
    for i, (_, x, y) in enumerate(windows(data, T)):
        if i == 3:  # three warm-up windows (CuPy compiles its kernels on first use)
            backend.synchronize()
            t0, done = time.perf_counter(), 0
        loss, grads, s = net.loss_and_grads(x, y, s)
        optim.clip_global_norm(grads, 0.25)
        opt.update(net.params, grads)
        done += x.size
        if t0 is not None and i >= 3 + n_windows - 1:
            break
    backend.synchronize()
    return done / (time.perf_counter() - t0)


def bench_torch(cell: str, H: int, layers: int, columns, n_windows: int, device: str) -> float:
    import torch
    from torch import nn

    torch.manual_seed(0)
    dev = torch.device(device)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            rnn = {"gru": nn.GRU, "lstm": nn.LSTM, "elman": nn.RNN}[cell](H, H, layers)
            self.emb, self.rnn, self.out = nn.Embedding(V, H), rnn, nn.Linear(H, V)

        def forward(self, x, h):
            o, h = self.rnn(self.emb(x), h)
            return self.out(o).view(-1, V), h

    net = Net().to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    loss_fn = nn.CrossEntropyLoss()
    data = torch.from_numpy(columns.astype(np.int64)).to(dev)
    B = columns.shape[1]
    h = torch.zeros(layers, B, H, device=dev)
    if cell == "lstm":
        h = (h, torch.zeros(layers, B, H, device=dev))
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    done, t0 = 0, None
    for i, (_, x, y) in enumerate(windows(data, T)):
        if i == 3:
            sync()
            t0, done = time.perf_counter(), 0
        h = tuple(a.detach() for a in h) if cell == "lstm" else h.detach()
        opt.zero_grad()
        logits, h = net(x, h)
        loss_fn(logits, y.reshape(-1)).backward()
        nn.utils.clip_grad_norm_(net.parameters(), 0.25)
        opt.step()
        done += x.numel()
        if t0 is not None and i >= 3 + n_windows - 1:
            break
    sync()
    return done / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=backend.DEVICES)
    ap.add_argument("--windows", type=int, default=20, help="timed windows per setting")
    ap.add_argument("--settings", default=DEFAULT_SETTINGS, help="CELL:H:LAYERS:B, ...")
    args = ap.parse_args()
    device = backend.resolve(args.device)
    print(f"lm on {'CuPy' if device == 'cuda' else 'numpy'} against torch on {device}; "
          f"V={V} T={T}, SGD + clip 0.25, untied, {args.windows} windows timed per setting")  # fmt: skip
    print(f"{'setting':>22}{'lm tok/s':>12}{'torch tok/s':>13}{'lm/torch':>10}")
    for item in args.settings.split(","):
        cell, H, layers, B = item.split(":")
        H, layers, B = int(H), int(layers), int(B)
        columns = zipf_columns(B, (args.windows + 4) * T * B + B)
        ours = bench_lm(cell, H, layers, columns, args.windows, device)
        theirs = bench_torch(cell, H, layers, columns, args.windows, device)
        name = f"{cell} {H} x {layers}, B={B}"
        print(f"{name:>22}{ours:>12.0f}{theirs:>13.0f}{ours / theirs:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
