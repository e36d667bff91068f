"""Text generation: greedy decoding, sampling (temperature, top-k, top-p) and beam search.

The prompt is fed exactly as a sentence is fed in training and scoring: from the zero state,
first the sentence-start input ``</s>`` (see ``lm.data``), then the prompt words. From the
state after the prompt, every new word costs one recurrent step (``Network.step``) and one
output layer (``Network.next_logprobs``); the ``num`` samples run together as one batch
(B = num), and the word choice is vectorised over the batch and the vocabulary.

Decoding (each step, on the natural-log distribution lp of shape (B, n_vocab)):

1. mask: ``<s>`` is never emitted (it is an input, never a word of a sentence), nor ``<unk>``
   with ``no_unk``; their logits become -inf, so the rest is renormalised.
2. greedy: argmax. Sampling: divide by the temperature, keep the ``top_k`` most probable
   words, keep the nucleus of mass ``top_p`` (in that order, each renormalising what is
   left), then draw one word per row by the inverse CDF with one uniform number per row.

The masking, temperature and filters only choose the word. ``Sample.log10prob`` is the model's
own probability of the continuation (unmasked, untempered), the same number ``model.score``
gives it in the prompt's context:

    s = model.generate(prompt="the cat", seed=0)[0]
    full = " ".join(s.prompt_tokens + s.tokens)
    # equal up to float rounding; the final </s> counts only when generation stopped there
    s.log10prob ~= model.score(full, eos=s.stopped == "eos") - model.score("the cat", eos=False)

Length: at most ``max_tokens`` steps, each emitting one word or the final ``</s>``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from lm import backend, memory
from lm.checks import is_real, require_int
from lm.heads import softmax
from lm.metrics import LN10
from lm.tokenizer import BOS, EOS, UNK

Array = np.ndarray
_PROMPT_WINDOW = 1024  # prompt words fed per forward pass: memory bounded by this, not the prompt
_TOP_P_TOL = 1e-9  # mass within this of p counts as reaching p (cumsum rounding)


class PromptWarning(UserWarning):
    """Prompt words outside the vocabulary were fed as ``<unk>``."""


@dataclass(frozen=True)
class GenerationOptions:
    """How to generate; ``__post_init__`` raises ValueError for a bad combination.

    ``temperature``, ``top_k`` and ``top_p`` are sampling options: None means "not given"
    (temperature 1, no filtering), and giving any of them with ``greedy`` or ``beam`` is an
    error. ``num`` is the number of samples (1 by default); with ``beam`` it is how many of
    the ``beam`` best continuations to return (all of them by default). ``seed`` makes sampling
    repeatable (None: different every run); greedy decoding and beam search ignore it.
    ``length_norm`` (beam only) ranks finished beams by log-probability per predicted token;
    ``min_tokens`` (beam only, default 1) is the fewest words a finished beam may hold: by
    total probability the shortest continuations win, and without it the empty one (an
    immediate </s>) is often the best. Settings whose arrays cannot fit in memory are refused
    (ValueError) before anything is allocated: ``max_tokens`` x ``num`` (or ``beam``) here,
    with the vocabulary and state sizes in ``check_memory``.
    """

    max_tokens: int = 50
    num: int | None = None
    greedy: bool = False
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    no_unk: bool = False
    beam: int | None = None
    length_norm: bool = False
    seed: int | None = None
    min_tokens: int | None = None

    def __post_init__(self):
        for name in ("greedy", "no_unk", "length_norm"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        require_int("max_tokens", self.max_tokens, 1)
        for name, lowest in (("num", 1), ("top_k", 1), ("beam", 1), ("seed", 0)):
            if getattr(self, name) is not None:
                require_int(name, getattr(self, name), lowest)
        t, p = self.temperature, self.top_p
        if t is not None and not (is_real(t) and math.isfinite(t) and t > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {t!r}")
        if p is not None and not (is_real(p) and 0 < p <= 1):
            raise ValueError(f"top_p must be in (0, 1], got {p!r}")
        sampling = [n for n in ("temperature", "top_k", "top_p") if getattr(self, n) is not None]
        if self.greedy and self.beam is not None:
            raise ValueError("greedy and beam are two different decoders: choose one")
        if (self.greedy or self.beam is not None) and sampling:
            decoder = "greedy" if self.greedy else "beam"
            raise ValueError(f"{decoder} does not sample: drop {', '.join(sampling)}")
        if self.greedy and (self.num or 1) > 1:
            raise ValueError(
                "greedy decoding gives one text: num > 1 would repeat it (use beam for several)"
            )
        if self.beam is not None and self.num is not None and self.num > self.beam:
            raise ValueError(f"num ({self.num}) cannot exceed the beam width ({self.beam})")
        if self.length_norm and self.beam is None:
            raise ValueError("length_norm applies to beam search only")
        if self.min_tokens is not None:
            if self.beam is None:
                raise ValueError("min_tokens applies to beam search only")
            require_int("min_tokens", self.min_tokens, 0)
            if self.min_tokens > self.max_tokens:
                raise ValueError(
                    f"min_tokens ({self.min_tokens}) cannot exceed max_tokens ({self.max_tokens})"
                )
        self.check_memory(n_vocab=1, hidden=1)  # what fails at any model size fails now

    def memory_bytes(self, n_vocab: int, hidden: int) -> int:
        """Estimated peak bytes of generating with these options from a model with
        ``n_vocab`` words and ``hidden`` state units (float64 distributions)."""
        T, V, H = self.max_tokens, n_vocab, hidden
        if self.beam is not None:
            W = self.beam
            # live scores and extensions (W, V) several times over; word ids (W, T) copied
            # each step; finished beams as Python lists of ids
            return 48 * W * V + 80 * W * T + 32 * W * H
        B = self.num or 1
        # chosen ids and log-probabilities (B, T); about ten (B, V) float64 arrays per step
        # (distribution, logits, filters, cumulative sums)
        return 16 * B * T + 96 * B * V + 32 * B * H

    def check_memory(self, n_vocab: int, hidden: int, limit: int | None = None) -> None:
        """ValueError naming the options when ``memory_bytes`` exceeds the memory available
        now (``limit``, see ``lm.memory``)."""
        names = ["max_tokens", "beam" if self.beam is not None else "num"]
        what = " and ".join(f"{n}={getattr(self, n) or 1}" for n in names)
        if n_vocab > 1:
            what += f" with a {n_vocab}-word model"
        memory.require(self.memory_bytes(n_vocab, hidden), what, limit, error=ValueError)


@dataclass(frozen=True)
class Sample:
    """One generated text.

    text : the prompt (as the model saw it: out-of-vocabulary words shown as ``<unk>``) and the
        continuation, joined by single spaces.
    tokens : the generated words (the final ``</s>`` is not a word and is not listed).
    log10prob : log10 P(tokens [+ </s>] | <s> prompt) under the model, the </s> included
        exactly when ``stopped == "eos"``.
    stopped : "eos" (the model emitted </s>) or "max_tokens" (the length limit was reached).
    prompt_tokens : the prompt words as fed.
    """

    text: str
    tokens: list[str]
    log10prob: float
    stopped: str
    prompt_tokens: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# ----- the public entry points -----


def generate(net, vocab, prompt: str = "", **options) -> list[Sample]:
    """Generate continuations of ``prompt`` with a network and its vocabulary.

    ``options`` are the fields of ``GenerationOptions`` (max_tokens, num, greedy, temperature,
    top_k, top_p, no_unk, beam, length_norm, seed); bad values raise ValueError. Samples come
    in batch order; beam results come best first.

    ``net`` is anything with ``zero_state``, ``states``, ``step`` and ``next_logprobs`` (an
    ``lm.model.Network``); ``vocab`` an ``lm.tokenizer.Vocab``.

    >>> generate(model.net, model.vocab, "the", num=3, top_p=0.9, seed=1)   # good: three samples
    >>> generate(model.net, model.vocab, "the", greedy=True, temperature=0.5)  # bad: ValueError
    """
    return generate_with(net, vocab, prompt, GenerationOptions(**options))


def generate_with(net, vocab, prompt: str, opts: GenerationOptions) -> list[Sample]:
    """``generate`` with options already built (the CLI validates them first)."""
    opts.check_memory(vocab.size, net.hidden)
    prompt_ids = encode_prompt(vocab, prompt)
    s = prompt_state(net, prompt_ids)  # (1, H)
    banned = [BOS, UNK] if opts.no_unk else [BOS]
    if opts.beam is not None:
        min_tokens = 1 if opts.min_tokens is None else opts.min_tokens
        found = beam_search(
            net, s, opts.beam, opts.max_tokens, banned, opts.length_norm, min_tokens
        )
        found = found[: opts.num or opts.beam]
    else:
        rng = np.random.default_rng(opts.seed)
        found = sample(net, s, opts, banned, rng)
    prompt_words = [vocab.words[i] for i in prompt_ids]
    out = []
    for ids, ln_prob, stopped in found:
        words = [vocab.words[i] for i in ids]
        out.append(
            Sample(" ".join(prompt_words + words), words, ln_prob / LN10, stopped, prompt_words)
        )
    return out


def encode_prompt(vocab, prompt: str) -> list[int]:
    """Prompt word ids; words outside the vocabulary become ``<unk>`` with a PromptWarning."""
    ids, oov = vocab.encode(prompt)
    if oov.any():
        unknown = [w for w, bad in zip(vocab.split(prompt), oov) if bad]
        warnings.warn(
            f"prompt words not in the vocabulary, fed as <unk>: {' '.join(unknown)}",
            PromptWarning,
            stacklevel=2,
        )
    return [int(i) for i in ids]


def prompt_state(net, prompt_ids: list[int]) -> Array:
    """The state after ``</s>`` (sentence start) and the prompt, from zero: (1, n_s).

    Fed ``_PROMPT_WINDOW`` steps at a time, carrying the state, so that a very long prompt
    needs (window, 1, H) states in memory, not (T, 1, H)."""
    x = np.array([EOS] + prompt_ids, dtype=np.int32)[:, None]  # (T, 1)
    s = net.zero_state(1)
    for lo in range(0, len(x), _PROMPT_WINDOW):
        s = net.states(x[lo : lo + _PROMPT_WINDOW], s)[-1]
    return s


# ----- sampling and greedy decoding -----


def sample(net, s0: Array, opts: GenerationOptions, banned: list[int], rng) -> list[tuple]:
    """Run ``num`` streams from state ``s0`` (1, H) in one batch.

    Returns one (word ids, ln probability, stopped) per stream; the ids exclude the final
    </s>, the ln probability (of the unmasked, untempered model) includes it.
    """
    B, T = opts.num or 1, opts.max_tokens
    s = s0.repeat(B, axis=0)  # (B, L*n_s), where the weights are
    chosen = np.zeros((B, T), dtype=np.int64)
    chosen_lp = np.zeros((B, T))
    ended = np.zeros(B, dtype=bool)
    steps = 0
    for t in range(T):
        lp = net.next_logprobs(s).astype(np.float64)  # (B, n_vocab)
        logits = lp.copy()
        logits[:, banned] = -np.inf
        if opts.greedy:
            w = np.argmax(logits, axis=1)
        else:
            temperature = 1.0 if opts.temperature is None else opts.temperature
            w = sample_rows(filter_logits(logits, temperature, opts.top_k, opts.top_p), rng)
        chosen[:, t] = w
        chosen_lp[:, t] = lp[np.arange(B), w]
        ended |= w == EOS
        steps = t + 1
        if ended.all() or steps == T:
            break
        s = net.step(w.astype(np.int32), s)
    out = []
    for ids, lps in zip(chosen[:, :steps], chosen_lp[:, :steps]):
        eos_at = np.flatnonzero(ids == EOS)
        if len(eos_at):
            n = eos_at[0]
            out.append((ids[:n].tolist(), float(lps[: n + 1].sum()), "eos"))
        else:
            out.append((ids.tolist(), float(lps.sum()), "max_tokens"))
    return out


def filter_logits(
    logits: Array, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> Array:
    """Tempered and filtered logits (B, n_vocab) -> (B, n_vocab) float64, -inf where removed.

    Temperature first (z / T, after subtracting each row's max, so that a tiny T gives a finite
    one-hot limit instead of overflow), then top-k, then top-p on what top-k left.
    """
    z = np.asarray(logits, dtype=np.float64)
    z = (z - z.max(axis=1, keepdims=True)) / temperature
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = np.where(top_p_mask(softmax(z), top_p), z, -np.inf)
    return z


def top_k_filter(z: Array, k: int) -> Array:
    """Keep the k largest logits of each row (exactly k: ties at the k-th place are broken
    arbitrarily), -inf elsewhere. z: (B, n) -> (B, n)."""
    if k >= z.shape[1]:
        return z
    idx = np.argpartition(-z, k - 1, axis=1)[:, :k]  # (B, k), unordered
    out = np.full_like(z, -np.inf)
    np.put_along_axis(out, idx, np.take_along_axis(z, idx, axis=1), axis=1)
    return out


def top_p_mask(probs: Array, p: float) -> Array:
    """The nucleus: per row, the smallest set of most probable words whose mass reaches p.

    probs: (B, n) rows summing to 1 -> bool (B, n). Words are taken in order of decreasing
    probability, equal probabilities by increasing id (so ties give a deterministic smallest
    set); a word is kept when the mass before it is below p. The most probable word is always
    kept; p = 1 keeps every word of non-zero probability.
    """
    order = np.argsort(-probs, axis=1, kind="stable")
    p_sorted = np.take_along_axis(probs, order, axis=1)  # (B, n), decreasing
    before = np.zeros_like(p_sorted)
    np.cumsum(p_sorted[:, :-1], axis=1, out=before[:, 1:])  # mass of the more probable words
    keep = p_sorted > 0
    if p < 1:
        keep &= before < p - _TOP_P_TOL
    keep[:, 0] = True
    mask = np.empty_like(keep)
    np.put_along_axis(mask, order, keep, axis=1)
    return mask


def sample_rows(z: Array, rng: np.random.Generator) -> Array:
    """One draw per row from softmax(z) by the inverse CDF: z (B, n) -> ids (B,).

    u ~ U[0, total) per row; the word is the first j with cdf[j] > u, which a word of zero
    probability (a flat step of the cdf) can never be.
    """
    cdf = np.cumsum(np.exp(z - z.max(axis=1, keepdims=True)), axis=1)  # (B, n), unnormalised
    total = cdf[:, -1]
    u = np.minimum(rng.random(len(z)) * total, np.nextafter(total, 0))  # (B,)
    return np.sum(cdf <= u[:, None], axis=1)


# ----- beam search -----


def beam_search(
    net,
    s0: Array,
    width: int,
    max_tokens: int,
    banned: list[int],
    length_norm: bool = False,
    min_tokens: int = 0,
) -> list[tuple]:
    """The ``width`` best continuations from state ``s0`` (1, H), best first.

    Every step extends each live beam by every allowed word; the ``width`` best extensions by
    total log-probability stay live, and each beam's extension by </s> joins the finished
    pool once it holds at least ``min_tokens`` words (so with ``min_tokens=1`` the empty
    continuation is never returned). Ranking is by total ln probability, or with
    ``length_norm`` by ln probability per predicted token (words, plus the </s> when there is
    one). Without normalisation the search stops once no live beam can beat the
    ``width``-th finished one (scores only fall); with it, it runs to ``max_tokens`` steps, and
    beams still live then finish as "max_tokens".

    Returns (word ids, ln probability, stopped) tuples like ``sample``.
    """
    s = s0
    seqs = np.zeros((1, 0), dtype=np.int64)  # (L, t) live word ids
    scores = np.zeros(1)  # (L,) ln probability of each live beam
    finished: list[tuple] = []

    def rank(item):
        ids, ln_prob, stopped = item
        n = len(ids) + (stopped == "eos")
        return ln_prob / max(n, 1) if length_norm else ln_prob

    for t in range(max_tokens):
        lp = net.next_logprobs(s).astype(np.float64)  # (L, n_vocab)
        n_vocab = lp.shape[1]
        if t >= min_tokens:  # the live beams hold t words
            ends = scores + lp[:, EOS]
            finished += [(ids.tolist(), float(v), "eos") for ids, v in zip(seqs, ends)]
            finished = sorted(finished, key=rank, reverse=True)[:width]
        ext = scores[:, None] + lp  # (L, n_vocab)
        ext[:, banned + [EOS]] = -np.inf
        flat = ext.ravel()
        k = min(width, int(np.isfinite(flat).sum()))
        if k == 0:  # nothing but </s> is allowed
            return finished
        top = np.argpartition(-flat, k - 1)[:k]
        top = top[np.argsort(-flat[top], kind="stable")]
        rows, words = np.divmod(top, n_vocab)
        seqs = np.concatenate([seqs[rows], words[:, None]], axis=1)  # (k, t+1)
        scores = flat[top]
        if t == max_tokens - 1:
            break
        if not length_norm and len(finished) == width and scores[0] <= rank(finished[-1]):
            return finished
        s = net.step(words.astype(np.int32), s[backend.xp_of(s).asarray(rows)])
    live = [(ids.tolist(), float(v), "max_tokens") for ids, v in zip(seqs, scores)]
    return sorted(finished + live, key=rank, reverse=True)[:width]
