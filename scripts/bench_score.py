"""Scoring speed: batched vs one sentence at a time vs PyTorch, on the PTB test set.

    python scripts/bench_score.py [--batch-size 128] [--one-every 8] [--rounds 6]
    python scripts/bench_score.py --output class [--classes C]

An embedding model with E = H = 200 and a 10k vocabulary (the words of ptb.valid.txt +
ptb.test.txt, padded with unused filler words up to 10,000) with random weights scores
ptb.test.txt three ways, each including tokenisation:

  numpy batched         lm.perplexity (sorted by length, B sentences side by side)
  numpy one at a time   model.score per sentence, on every k-th line
  torch batched         nn.Embedding -> nn.RNN(tanh) -> nn.Linear, log_softmax + gather, with
                        the same weights, the same start state and the same batching

With ``--output class`` the methods are the class-factored head batched and one at a time,
and the full head batched (the same embedding and recurrence weights; no PyTorch): the class
boundaries (C = round(sqrt(V) / 8), ``heads.default_classes``, unless --classes) are cut from
the word counts of ptb.valid.txt plus one for every word, as if each had occurred in training.

The machine may be shared, so the methods take turns: the file is cut into ``rounds``
slices and each slice is scored by all three (in rotating order), so that each sees the same
background load. Rates are words over wall-clock time per method; the CPU seconds (all
threads, spinning thread pools included) are printed too, as they depend less on other
processes. Torch's total log-probability is checked against ours. Peak memory is the
process's maximum RSS.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import time
from pathlib import Path

import numpy as np

import lm
from lm import data, heads, scoring
from lm.api import LanguageModel
from lm.model import ModelConfig, Network
from lm.tokenizer import EOS, Vocab

PTB = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "ptb"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def numpy_threads() -> int:
    try:
        from threadpoolctl import threadpool_info

        return max(i["num_threads"] for i in threadpool_info()) or os.cpu_count()
    except (ImportError, ValueError):
        return os.cpu_count() or 1


def build_model(
    seed: int = 0, n_vocab: int = 10_000, output: str = "full", n_classes: int | None = None
) -> LanguageModel:
    """Random weights; the vocabulary of ptb.valid + ptb.test (about 7,600 words) padded with
    filler words that never occur, so that the output layer has PTB's 10k rows. The class
    head's boundaries come from the counts of ptb.valid.txt plus one for every word."""
    lines = [*data.read_lines(PTB / "ptb.valid.txt"), *data.read_lines(PTB / "ptb.test.txt")]
    n_real = Vocab.build(lines).size
    fillers = " ".join(f"<filler{i}>" for i in range(max(0, n_vocab - n_real)))
    vocab = Vocab.build([*lines, fillers])
    counts = np.bincount(data.encode_file(PTB / "ptb.valid.txt", vocab), minlength=vocab.size) + 1
    if output == "class" and n_classes is None:
        n_classes = heads.default_classes(vocab.size)
    config = ModelConfig.from_counts(
        vocab.size,
        counts,
        n_classes if output == "class" else None,
        hidden=200,
        input="embedding",
        embed_dim=200,
        output=output,
    )
    return LanguageModel(Network.create(config, np.random.default_rng(seed)), vocab)


def numpy_batched(model, lines, batch_size) -> float:
    return lm.perplexity(model, lines, batch_size=batch_size).log10prob


def numpy_one_at_a_time(model, lines) -> float:
    return math.fsum(model.score(line) for line in lines)


def torch_scorer(model, threads):
    """A function (lines, batch_size) -> total log10 probability, computed by PyTorch with
    the weights of ``model`` (our row convention s W is torch's h W_hh^T)."""
    import torch

    torch.set_num_threads(threads)
    p = model.net.params
    n_vocab, E = p["E"].shape
    H = p["W"].shape[0]
    emb = torch.nn.Embedding(n_vocab, E)
    rnn = torch.nn.RNN(E, H, nonlinearity="tanh")
    out = torch.nn.Linear(H, n_vocab)
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(p["E"]))
        rnn.weight_ih_l0.copy_(torch.from_numpy(p["U"].T.copy()))
        rnn.bias_ih_l0.copy_(torch.from_numpy(p["b"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(p["W"].T.copy()))
        rnn.bias_hh_l0.zero_()
        out.weight.copy_(torch.from_numpy(p["V"].T.copy()))
        out.bias.copy_(torch.from_numpy(p["c"]))
    s0 = torch.from_numpy(scoring.start_state(model.net, bos=True))  # (1, H) after </s>

    def group_logprob(seqs) -> float:
        n_targets = np.array([len(s) + 1 for s in seqs])
        B, T = len(seqs), int(n_targets.max())
        yT = np.full((B, T), EOS, dtype=np.int64)
        for j, s in enumerate(seqs):
            yT[j, : len(s)] = s
        y = torch.from_numpy(yT.T.copy())  # (T, B)
        real = torch.from_numpy(np.arange(T) < n_targets[:, None]).T  # (T, B)
        h0 = s0.expand(B, H).unsqueeze(0).contiguous()  # (1, B, H)
        S, _ = rnn(emb(y[:-1]), h0)  # (T-1, B, H): states after y[0..T-2]
        P = torch.cat([h0, S])  # (T, B, H): the state that predicts y[t]
        logp = torch.log_softmax(out(P[real]), dim=-1)  # (n_real, n_vocab)
        return logp.gather(1, y[real].unsqueeze(1)).sum().item()

    def score(lines, batch_size) -> float:
        total = 0.0
        with torch.inference_mode():
            for lo in range(0, len(lines), scoring.CHUNK_LINES):
                ids, _ = model.vocab.encode_batch(lines[lo : lo + scoring.CHUNK_LINES])
                order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
                for g in range(0, len(order), batch_size):
                    total += group_logprob([ids[i] for i in order[g : g + batch_size]])
        return total / math.log(10)

    return score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=scoring.BATCH_SIZE)
    ap.add_argument("--one-every", type=int, default=8, help="model.score on every k-th line")
    ap.add_argument("--rounds", type=int, default=6, help="slices the methods take turns on")
    ap.add_argument("--output", default="full", choices=["full", "class"])
    ap.add_argument("--classes", type=int, help="C classes [default: heads.default_classes(V)]")
    args = ap.parse_args()
    test = PTB / "ptb.test.txt"
    if not (test.is_file() and (PTB / "ptb.valid.txt").is_file()):
        print(f"skipped: {test} (or ptb.valid.txt) not found")
        return
    threads = numpy_threads()
    model = build_model(output=args.output, n_classes=args.classes)
    lines = list(data.read_lines(test))
    n_words = sum(len(line.split()) for line in lines)
    print(
        f"{test.name}: {len(lines)} sentences, {n_words} words; "
        f"n_vocab={model.net.config.n_vocab}, E=H=200, embedding/tanh, {args.output} head; "
        f"numpy threads={threads}; B={args.batch_size}"
    )
    if args.output == "class":
        print(f"classes: {len(model.net.config.classes) - 1}")
    print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))

    t = time.perf_counter()
    whole = lm.perplexity(model, test, batch_size=args.batch_size, progress=False)
    print(
        f"whole file from its path: {time.perf_counter() - t:.1f} s, ppl={whole.ppl:.1f}, "
        f"peak RSS {peak_rss_mb():.0f} MB (before torch is imported)"
    )

    methods = {
        "numpy batched": lambda part: numpy_batched(model, part, args.batch_size),
        "numpy one at a time": lambda part: numpy_one_at_a_time(model, part[:: args.one_every]),
    }
    if args.output == "class":  # the full head on the same embedding and recurrence
        full = build_model()
        for k in ("E", "U", "W", "b"):
            full.net.params[k] = model.net.params[k]
        methods["full head batched"] = lambda part: numpy_batched(full, part, args.batch_size)
    else:
        try:
            torch_score = torch_scorer(model, threads)
            methods["torch batched"] = lambda part: torch_score(part, args.batch_size)
        except ImportError:
            print("torch not importable: no PyTorch row")

    seconds = dict.fromkeys(methods, 0.0)
    cpu = dict.fromkeys(methods, 0.0)
    sentences = dict.fromkeys(methods, 0)
    words = dict.fromkeys(methods, 0)
    log10prob = dict.fromkeys(methods, 0.0)
    size = -(-len(lines) // args.rounds)
    names = list(methods)
    for r in range(args.rounds):
        part = lines[r * size : (r + 1) * size]
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t, c = time.perf_counter(), time.process_time()
            log10prob[name] += methods[name](part)
            seconds[name] += time.perf_counter() - t
            cpu[name] += time.process_time() - c
            scored = part[:: args.one_every] if name == "numpy one at a time" else part
            sentences[name] += len(scored)
            words[name] += sum(len(line.split()) for line in scored)

    if "torch batched" in methods:
        ours, theirs = log10prob["numpy batched"], log10prob["torch batched"]
        rel = abs(theirs - ours) / abs(ours)
        verdict = "OK" if rel < 1e-5 else "MISMATCH"
        print(
            f"total log10prob: numpy {ours:.3f}, torch {theirs:.3f} (relative {rel:.1e}, {verdict})"
        )
    assert abs(log10prob["numpy batched"] - whole.log10prob) < 1e-6 * abs(whole.log10prob)

    print(f"\n{'method':<22}{'sentences/s':>12}{'words/s':>10}{'seconds':>9}{'CPU s':>8}")
    rate = {}
    for name in methods:
        rate[name] = words[name] / seconds[name]
        print(
            f"{name:<22}{sentences[name] / seconds[name]:>12.0f}{rate[name]:>10.0f}"
            f"{seconds[name]:>9.2f}{cpu[name]:>8.2f}"
        )
    cpu_rate = {name: words[name] / cpu[name] for name in methods}
    for other in ("numpy one at a time", "torch batched", "full head batched"):
        if other in rate:
            print(
                f"numpy batched / {other}: {rate['numpy batched'] / rate[other]:.2f}x "
                f"(per CPU second {cpu_rate['numpy batched'] / cpu_rate[other]:.2f}x)"
            )
    print(f"peak RSS at the end: {peak_rss_mb():.0f} MB (torch included)")
    print("load average at end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
