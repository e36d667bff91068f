"""The corpora package: the synthetic source and its oracle, the n-gram baselines, text cleaning."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import math
import os
from collections import Counter

import numpy as np
import pytest

from corpora import ngram, synth, text
from lm import files
from lm.errors import DataError

TINY = synth.SynthConfig(topics=1, words_per_list=1)


def random_hmm(C=2, Q=3, n_vocab=3, end_weight=1.0, seed=0) -> synth.HMM:
    """A dense random mixture HMM (every state can follow every other and emit every word)."""
    rng = np.random.default_rng(seed)
    start = rng.dirichlet(np.ones(C * Q)).reshape(C, Q)
    alphas = np.r_[np.ones(Q), end_weight]
    moves = rng.dirichlet(alphas, size=(C, Q))  # (C, Q, Q+1): last column is the end
    emit = rng.dirichlet(np.ones(n_vocab), size=(C, Q))
    vocab = tuple(f"w{k}" for k in range(n_vocab))
    return synth.HMM(start, moves[:, :, :Q].copy(), moves[:, :, Q].copy(), emit, vocab)


def enumerate_paths(hmm: synth.HMM, words) -> float:
    """P(words, end) by summing over every component and hidden path, one at a time."""
    C, Q, _ = hmm.emit.shape
    total = 0.0
    for c in range(C):
        for path in itertools.product(range(Q), repeat=len(words)):
            p = hmm.start[c, path[0]] * hmm.emit[c, path[0], words[0]]
            for t in range(1, len(words)):
                p *= hmm.trans[c, path[t - 1], path[t]] * hmm.emit[c, path[t], words[t]]
            total += p * hmm.end[c, path[-1]]
    return total


def possible_paths(hmm: synth.HMM, words) -> float:
    """P(words, end) by depth-first search over the paths of nonzero probability (for the big
    sparse source, where enumerating every path is out of reach)."""
    C = hmm.emit.shape[0]

    def walk(c, t, q, p):
        p *= hmm.emit[c, q, words[t]]
        if p == 0.0:
            return 0.0
        if t == len(words) - 1:
            return p * hmm.end[c, q]
        return sum(
            walk(c, t + 1, r, p * hmm.trans[c, q, r]) for r in np.flatnonzero(hmm.trans[c, q])
        )

    return sum(
        walk(c, 0, q, hmm.start[c, q]) for c in range(C) for q in np.flatnonzero(hmm.start[c])
    )


# ---------------------------------------------------------------------------------------------
# The forward algorithm against independent computations.


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_equals_sum_over_all_paths(seed):
    hmm = random_hmm(seed=seed)
    sentences = [np.array(s) for n in range(1, 5) for s in itertools.product(range(3), repeat=n)]
    got = hmm.log_prob(sentences, chunk=7)  # several chunks of mixed lengths
    want = np.log([enumerate_paths(hmm, s) for s in sentences])
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_probabilities_of_all_sentences_sum_to_one(seed):
    hmm = random_hmm(seed=seed, n_vocab=2, end_weight=3.0)
    L = 8
    by_length = np.zeros(L)
    for n in range(1, L + 1):
        sentences = [np.array(s) for s in itertools.product(range(2), repeat=n)]
        by_length[n - 1] = np.exp(hmm.log_prob(sentences)).sum()
    # P(longer than L) from the state chain alone: the mass still going after L words.
    occupancy = hmm.start
    for _ in range(L - 1):
        occupancy = np.einsum("cq,cqr->cr", occupancy, hmm.trans)
    longer = np.einsum("cq,cqr->", occupancy, hmm.trans)
    assert by_length.sum() + longer == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(by_length, hmm.length_probs(L), rtol=1e-10)


def test_tiny_grammar_sentences_sum_to_their_length_probabilities():
    source = synth.make_source(TINY)
    K = source.n_vocab
    L = 3
    by_length = []
    for n in range(1, L + 1):
        sentences = [np.array(s) for s in itertools.product(range(K), repeat=n)]
        by_length.append(np.exp(source.log_prob(sentences)).sum())
    np.testing.assert_allclose(by_length, source.length_probs(L), rtol=1e-10, atol=1e-15)
    assert by_length[1] > 0.01  # the check is not vacuous: two-word sentences exist


def test_forward_matches_path_search_on_the_default_source():
    source = synth.make_source()
    sentences = source.sample(12, np.random.default_rng(5))
    got = source.log_prob(sentences)
    want = np.log([possible_paths(source, s) for s in sentences])
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_impossible_and_unknown_words_score_minus_infinity():
    source = synth.make_source()
    ids = source.word_ids
    lp = source.log_prob([ids("the dog sleeps"), ids("sleeps the dog"), ids("the dog blorps")])
    assert np.isfinite(lp[0]) and lp[1] == -np.inf and lp[2] == -np.inf


def test_sample_frequencies_match_probabilities():
    hmm = random_hmm(C=2, Q=2, n_vocab=2, end_weight=4.0, seed=3)
    N = 40_000
    counts = Counter(tuple(s) for s in hmm.sample(N, np.random.default_rng(0)))
    common = [s for s, _ in counts.most_common(8)]
    p = np.exp(hmm.log_prob([np.array(s) for s in common]))
    freq = np.array([counts[s] for s in common]) / N
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / N))
    lengths = np.array([len(s) for s in counts.elements()])
    assert lengths.mean() == pytest.approx(hmm.mean_length(), rel=0.03)


def test_source_is_a_valid_distribution():
    source = synth.make_source()
    assert source.start.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(source.trans.sum(axis=2) + source.end, 1.0)
    np.testing.assert_allclose(source.emit.sum(axis=2), 1.0)
    assert 300 <= source.n_vocab <= 2000
    assert 8 <= source.mean_length() <= 15
    assert np.sum(source.length_probs(300)) == pytest.approx(1.0, abs=1e-9)


def test_hmm_rejects_arrays_that_are_not_distributions():
    hmm = random_hmm()
    with pytest.raises(ValueError, match="sum to 1"):
        synth.HMM(hmm.start, hmm.trans, hmm.end * 0.5, hmm.emit, hmm.vocab)
    with pytest.raises(ValueError, match="shapes"):
        synth.HMM(hmm.start, hmm.trans, hmm.end, hmm.emit, hmm.vocab[:2])


# ---------------------------------------------------------------------------------------------
# Corpora built from the source.


def test_generate_is_deterministic_and_counts_add_up():
    splits, info = synth.generate(tokens=3000, seed=7)
    again, _ = synth.generate(tokens=3000, seed=7)
    other, _ = synth.generate(tokens=3000, seed=8)
    assert splits == again and splits != other
    for name, lines in splits.items():
        stats = info["splits"][name]
        assert stats["sentences"] == len(lines)
        assert stats["words"] == sum(len(line.split()) for line in lines)
        assert all(line and "  " not in line and line == line.strip() for line in lines)
    assert info["splits"]["train"]["words"] >= 2700 > info["splits"]["valid"]["words"] >= 150


def test_oracle_matches_rescoring_the_text():
    splits, info = synth.generate(tokens=2000, seed=1)
    for name, lines in splits.items():
        logp = synth.oracle_log_probs(lines)
        words = sum(len(line.split()) for line in lines)
        ppl = math.exp(-logp.sum() / (words + len(lines)))
        assert info["splits"][name]["ppl"] == pytest.approx(ppl, rel=1e-12)
        assert info["splits"][name]["log10prob"] == pytest.approx(logp.sum() / math.log(10))


def test_build_writes_the_files(tmp_path):
    info = synth.build(tmp_path / "c", tokens=1000, seed=2)
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert names == ["oracle.json", "test.txt", "train.txt", "valid.txt"]
    assert json.loads((tmp_path / "c" / "oracle.json").read_text()) == info
    lines = (tmp_path / "c" / "test.txt").read_text().splitlines()
    assert len(lines) == info["splits"]["test"]["sentences"]
    assert info["seed"] == 2 and info["source"]["topics"] == 6


@pytest.mark.parametrize("tokens", [-1, 0, 99])
def test_too_few_tokens(tokens, tmp_path):
    with pytest.raises(DataError, match="too few tokens"):
        synth.build(tmp_path, tokens=tokens)


def _memory_reward(tokens: int) -> tuple[float, float]:
    splits, info = synth.generate(tokens=tokens, seed=0)
    oracle = info["splits"]["test"]["ppl"]
    unigram = ngram.unigram_perplexity(splits["train"], splits["test"])
    bigram = ngram.bigram_perplexity(splits["train"], splits["test"])
    return unigram / oracle, bigram / oracle


def test_corpus_rewards_memory_small():
    unigram, bigram = _memory_reward(100_000)
    assert unigram >= 1.5 and bigram >= 1.2


@pytest.mark.slow
def test_corpus_rewards_memory_default_size():
    unigram, bigram = _memory_reward(synth.DEFAULT_TOKENS)
    assert unigram >= 1.5 and bigram >= 1.2


# ---------------------------------------------------------------------------------------------
# N-gram baselines.

TRAIN = ["the cat sat", "the dog sat", "a cat ran", "the cat sat on the mat"]


@pytest.mark.parametrize("model", [ngram.Unigram(), ngram.KneserNeyBigram()])
def test_ngram_distributions_sum_to_one(model):
    model.fit(TRAIN)
    for context in [ngram.BOS, "the", "cat", "mat", ngram.UNK]:
        total = sum(model.prob(w, context) for w in model.vocab_)
        assert total == pytest.approx(1.0, abs=1e-12)


def test_unigram_by_hand():
    model = ngram.Unigram(k=1.0).fit(["a b", "a"])
    # counts a:2 b:1 </s>:2, N = 5; vocab a b </s> <unk>
    assert model.prob("a") == pytest.approx(3 / 9)
    want = math.log(3 / 9) + math.log(2 / 9) + math.log(3 / 9)  # a b </s>
    assert model.logprob("a b") == pytest.approx(want)
    assert model.logprob("zzz") == pytest.approx(math.log(1 / 9) + math.log(3 / 9))
    # perplexity counts </s>: 2 words + 1 sentence
    assert model.perplexity(["a b"]) == pytest.approx(math.exp(-want / 3))


def test_kneser_ney_by_hand():
    model = ngram.KneserNeyBigram(discount=0.5).fit(["a b", "a a"])
    # bigrams: <s>a:2 ab:1 b</s>:1 aa:1 a</s>:1 -> 5 types; N1+(.a)=2 (<s>, a), N1+(.b)=1,
    # N1+(.</s>)=2; vocab a b </s> <unk> (4 words).
    p_cont_b = (1 - 0.5) / 5 + 0.5 * 3 / 5 / 4
    assert model.continuation_prob("b") == pytest.approx(p_cont_b)
    # c(a) = 3 with 3 distinct followers (b, a, </s>)
    assert model.prob("b", "a") == pytest.approx((1 - 0.5) / 3 + 0.5 * 3 / 3 * p_cont_b)
    assert model.prob("b", ngram.UNK) == pytest.approx(p_cont_b)  # unseen context backs off


def test_ngram_convention_matches_lm_perplexity_definition():
    model = ngram.KneserNeyBigram().fit(TRAIN)
    test = ["the cat ran", "a dog sat on the mat"]
    total = sum(model.logprob(s) for s in test)
    assert model.perplexity(test) == pytest.approx(math.exp(-total / (3 + 6 + 2)))
    assert ngram.bigram_perplexity(TRAIN, test) == pytest.approx(model.perplexity(test))
    assert ngram.unigram_perplexity(TRAIN, test) > ngram.bigram_perplexity(TRAIN, test)
    assert model.logprob("the cat sat") == model.logprob(["the", "cat", "sat"])


# ---------------------------------------------------------------------------------------------
# Text.


@pytest.mark.parametrize(
    "raw, want",
    [
        ("First Citizen:", "first citizen"),
        ("We know't, we know't.", "we know't we know't"),
        ("'Tis 3.14 or 1,000 -- or 42!", "tis N or N or N"),
        ("utf8 and os.path.join(a_b)", "utf N and os path join a b"),
        ("Don\u2019t  PANIC\t", "don't panic"),
        ("--- ... ***", ""),
    ],
)
def test_normalise(raw, want):
    assert text.normalise(raw) == want


def test_split_is_deterministic_and_roughly_90_5_5():
    lines = [f"line number {i}" for i in range(20_000)]
    splits = text.split_lines(lines)
    assert splits == text.split_lines(lines)
    assert len(splits["train"]) / len(lines) == pytest.approx(0.90, abs=0.01)
    assert len(splits["valid"]) / len(lines) == pytest.approx(0.05, abs=0.005)
    assert splits["test"][:3] == sorted(splits["test"][:3], key=lines.index)  # input order kept


def test_docstring_lines_drop_code():
    doc = (
        "Frobnicate the widget.  Returns 3 items!\n\n"
        "Example::\n\n    frob(1, 2)\n    frob(3)\n\n"
        ">>> frob(1)\n42\n\n"
        "Options are:\n\n  * fast, the default\n\n"
        "The end."
    )
    assert text.docstring_lines(doc) == [
        "frobnicate the widget",
        "returns N items",
        "example",
        "options are",
        "fast the default",
        "the end",
    ]


def test_dedupe_keeps_first_occurrences():
    assert text.dedupe(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


def test_prepare_read_errors(tmp_path):
    """prepare reads through lm.files.read_lines (the one line reader): its messages."""
    with pytest.raises(DataError, match="no such file"):
        text.prepare(tmp_path / "missing.txt", tmp_path / "out")
    (tmp_path / "empty.txt").write_text("  \n\n")
    with pytest.raises(DataError, match="empty file"):
        text.prepare(tmp_path / "empty.txt", tmp_path / "out")
    (tmp_path / "latin1.txt").write_bytes("fine\nalso fine\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt:3: not valid UTF-8 .*column 4"):
        text.prepare(tmp_path / "latin1.txt", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing made before the input was read


def test_prepare_reads_gzip_strips_a_bom_and_splits_like_splitlines(tmp_path):
    lines = [f"Line {letters(i)} of the text" for i in range(300)]
    body = "\n".join(lines[:150]) + "\f" + "\u2028".join(lines[150:]) + "\n\n"
    plain, packed = tmp_path / "raw.txt", tmp_path / "raw.bin"  # gzip found by content
    plain.write_bytes(b"\xef\xbb\xbf" + body.encode())
    packed.write_bytes(gzip.compress(b"\xef\xbb\xbf" + body.encode()))
    a, b = text.prepare(plain, tmp_path / "a"), text.prepare(packed, tmp_path / "b")
    assert a["input_lines"] == b["input_lines"] == len(("x" + body).splitlines())
    assert a["nonempty_lines"] == b["nonempty_lines"] == 300
    for name in text.SPLITS:
        assert (tmp_path / "a" / f"{name}.txt").read_text() == (
            tmp_path / "b" / f"{name}.txt"
        ).read_text()
    words = {
        w for name in text.SPLITS for w in (tmp_path / "a" / f"{name}.txt").read_text().split()
    }
    assert "line" in words and not any(w.startswith("\ufeff") for w in words)
    assert a["source_sha256"] == hashlib.sha256(plain.read_bytes()).hexdigest()


def test_prepare_refuses_a_line_over_the_limit(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_bytes(b"short line\n" + b"x" * 5000 + b"\nanother\n")
    files.set_max_line_bytes(4096)
    try:
        with pytest.raises(DataError, match=r"raw.txt:2: line longer than 4096 bytes"):
            text.prepare(raw, tmp_path / "out")
    finally:
        files.set_max_line_bytes(None)


def letters(i: int) -> str:
    """A distinct lowercase word for each i >= 0 (normalise keeps it, unlike digits)."""
    word = ""
    while True:
        i, r = divmod(i, 26)
        word += chr(97 + r)
        if i == 0:
            return word


def test_prepare(tmp_path):
    raw = tmp_path / "raw.txt"
    speeches = [
        f"Speaker {letters(i % 7)}:\nLine {letters(i)}, 2 words -- more!\n\n" for i in range(300)
    ]
    raw.write_text("".join(speeches), encoding="utf-8")
    meta = text.prepare(raw, tmp_path / "out")
    assert meta["input_lines"] == 900 and meta["nonempty_lines"] == 600
    assert meta["duplicates_dropped"] == 300 - 7  # speaker names repeat
    out = {
        name: (tmp_path / "out" / f"{name}.txt").read_text().splitlines() for name in text.SPLITS
    }
    assert all(out.values()) and sum(map(len, out.values())) == 307
    assert "line b N words more" in [line for v in out.values() for line in v]
    assert all(line == text.normalise(line) for v in out.values() for line in v)
    assert json.loads((tmp_path / "out" / "meta.json").read_text()) == meta
    assert {k: v["lines"] for k, v in meta["splits"].items()} == {k: len(v) for k, v in out.items()}


def test_prepare_needs_enough_lines(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text("just one line\n")
    with pytest.raises(DataError, match="too few to fill"):
        text.prepare(raw, tmp_path / "out")


def test_pydoc_reads_source_without_importing(tmp_path):
    lib = tmp_path / "lib"
    (lib / "pkg").mkdir(parents=True)
    functions = "".join(
        f'def f{i}():\n    """Return the {letters(i)} value."""\n' for i in range(200)
    )
    (lib / "good.py").write_text(
        '"""Module doc. Second sentence."""\nraise SystemExit(\'imported!\')\n' + functions
    )
    (lib / "pkg" / "bad.py").write_text("def (:\n")
    (lib / "pkg" / "more.py").write_text('"""Module doc!"""\nclass C:\n    """Class doc."""\n')
    meta = text.build_pydoc(tmp_path / "out", stdlib=lib)
    assert meta["files"] == 3 and meta["files_skipped"] == 1 and meta["docstrings"] == 203
    assert meta["sentences"] == 204 and meta["duplicates_dropped"] == 1
    got = [
        line
        for name in text.SPLITS
        for line in (tmp_path / "out" / f"{name}.txt").read_text().splitlines()
    ]
    want = ["module doc", "second sentence", "class doc"]
    want += [f"return the {letters(i)} value" for i in range(200)]
    assert sorted(got) == sorted(want)


def test_outdir_checks(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        text.check_outdir(tmp_path / "full", force=False)
    text.check_outdir(tmp_path / "full", force=True)
    with pytest.raises(DataError, match="not a directory"):
        text.check_outdir(tmp_path / "full" / "x", force=True)
    with pytest.raises(DataError, match="cannot write"):
        text.check_outdir(tmp_path / "full" / "x" / "sub", force=False)
    text.check_outdir(tmp_path / "new" / "deeper", force=False)
    assert (tmp_path / "new" / "deeper").is_dir()


def test_write_atomic_leaves_no_temporary_files(tmp_path):
    text.write_atomic(tmp_path / "a.txt", "one\n")
    text.write_atomic(tmp_path / "a.txt", "two\n")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "two\n"


def test_write_atomic_is_lm_files_writer(tmp_path, monkeypatch):
    """corpora writes through lm.files.atomic_write: its temporary names are the ones
    lm.files.remove_temp_files cleans up after a kill."""
    seen = []
    real = files.atomic_write

    def spy(path, mode="wb"):
        seen.append(os.fspath(path))
        return real(path, mode)

    monkeypatch.setattr(files, "atomic_write", spy)
    text.write_atomic(tmp_path / "a.txt", "one\n")
    assert seen == [str(tmp_path / "a.txt")]


def test_write_atomic_failure_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot write"):
        text.write_atomic(tmp_path / "missing" / "a.txt", "x\n")
