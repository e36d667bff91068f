"""lm.nbest: Kaldi and SRILM n-best lists parsed, rescored in batches of whole keys, ranked."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from lmfixtures import make_model

from lm import nbest, scoring
from lm.errors import DataError

MODEL = make_model()


def test_parse_kaldi():
    hyps = list(nbest.parse_kaldi(["utt1 the cat", "utt1", "utt2 <s> a dog </s>", "u3\ta\tb"], "f"))
    assert hyps == [
        nbest.Hypothesis("utt1", "the cat", 0.0, 2),
        nbest.Hypothesis("utt1", "", 0.0, 0),  # a key alone: scored as </s> alone
        nbest.Hypothesis("utt2", "a dog", 0.0, 2),
        nbest.Hypothesis("u3", "a\tb", 0.0, 2),
    ]
    with pytest.raises(DataError, match=r"^f:2: empty line"):
        list(nbest.parse_kaldi(["utt1 a", "  "], "f"))


def test_parse_srilm():
    lines = ["-100.5 -5 3 the cat sat", "-7 -1 0", "1e2 -3.5 2 a  dog"]
    assert list(nbest.parse_srilm(lines, "u.nb")) == [
        nbest.Hypothesis("u.nb", "the cat sat", -100.5, 3),
        nbest.Hypothesis("u.nb", "", -7.0, 0),
        nbest.Hypothesis("u.nb", "a  dog", 100.0, 2),
    ]


@pytest.mark.parametrize(
    "line, problem",
    [
        ("-100 -5", "u.nb:2: 2 fields; expected 'ascore lscore nwords"),
        ("-100", "u.nb:2: 1 field; expected"),
        ("", "u.nb:2: 0 fields"),
        ("-100 -5 three words", "u.nb:2: ascore, lscore and nwords must be numbers"),
        ("NBestList1.0", "u.nb:2: 1 field"),
    ],
)
def test_srilm_lines_with_too_few_fields_are_errors_naming_the_line(line, problem):
    with pytest.raises(DataError) as e:
        list(nbest.parse_srilm(["-1 -2 1 ok", line], "u.nb"))
    assert str(e.value).startswith(problem)


def hyp(key, words=""):
    return nbest.Hypothesis(key, words, 0.0, len(words.split()))


def test_batches_keep_keys_whole_and_memory_bounded():
    keys = ["a"] * 3 + ["b"] * 2 + ["c"] * 7 + ["d"]
    got = [[h.key for h in batch] for batch in nbest.batches(map(hyp, keys), size=3)]
    assert got == [["a"] * 3, ["b", "b", "c", "c", "c"], ["c", "c", "c"], ["c", "d"]]
    assert [k for batch in got for k in batch] == keys
    got = [[h.key for h in b] for b in nbest.batches(map(hyp, "aabbb"), size=10)]
    assert got == [list("aabbb")]


def test_rescore_scores_each_hypothesis_in_order_with_one_call_per_batch(monkeypatch):
    calls = []
    real = MODEL.token_logprobs

    def counting(sequences, *args, **kwargs):
        calls.append(len(sequences))
        return real(sequences, *args, **kwargs)

    monkeypatch.setattr(MODEL, "token_logprobs", counting)
    hyps = [hyp("u1", "the cat sat"), hyp("u1", "the cat"), hyp("u1"), hyp("u2", "a dog")]
    got = list(nbest.rescore(MODEL, hyps, size=3))
    assert calls == [3, 1]  # u1's three hypotheses together, then u2's
    assert [h for h, _ in got] == hyps
    for h, s in got:
        assert s.log10prob == pytest.approx(MODEL.score(h.words), abs=1e-9)
    assert got[2][1].tokens == 1  # </s> alone


def test_batches_never_span_two_files():
    hyps = [nbest.Hypothesis("a", "x", source="f1"), nbest.Hypothesis("b", "y", source="f2")]
    assert [[h.source for h in b] for b in nbest.batches(hyps, size=10)] == [["f1"], ["f2"]]


def test_chunks_send_the_words_and_keep_the_hypotheses_and_where_they_were_read():
    hyps = list(nbest.parse_kaldi(["u1 the cat", "u1 a cat", "u2 dog"], "n.txt"))
    (chunk,) = nbest.chunks(hyps)
    assert chunk.lines == ["the cat", "a cat", "dog"] and chunk.extra == hyps
    assert (chunk.name, chunk.first) == ("n.txt", 1)
    assert [h.line for h in hyps] == [1, 2, 3]


def test_best_uses_the_weights_and_keeps_the_first_of_ties():
    scored = [
        (nbest.Hypothesis("u", "x", -10.0, 1), _score(-2.0)),
        (nbest.Hypothesis("u", "y", -11.0, 3), _score(-1.0)),
        (nbest.Hypothesis("v", "z", 0.0, 0), _score(-1.0)),
        (nbest.Hypothesis("v", "w", 0.0, 0), _score(-1.0)),
    ]

    def pick(lm_weight, word_penalty, blocks=(4,)):
        out, lines, at = nbest.Output("kaldi", True, lm_weight, word_penalty), [], 0
        for n in blocks:  # the pairs arrive in blocks: a key's best waits for its end
            text = out.take(scored[at : at + n])
            lines += text.split("\n") if text else []
            at += n
        return lines + [out.finish()]

    assert pick(1.0, 0.0) == ["u x", "v z"]  # x and y both total -12, z and w -1: first wins
    assert pick(3.0, 0.0) == ["u y", "v z"]  # -16 vs -14
    assert pick(1.0, 1.0, blocks=(1, 2, 1)) == ["u y", "v z"]  # -11 vs -9
    assert nbest.Output("kaldi", True, 1.0, 0.0).finish() is None


def test_output_lines_of_both_formats():
    h = nbest.Hypothesis("u", "the cat", -100.5, 2)
    assert nbest.Output("kaldi", False, 1.0, 0.0).take([(h, _score(-2.25))]) == "u\t-2.250000"
    srilm = nbest.Output("srilm", False, 1.0, 0.0).take([(h, _score(-2.25))])
    assert srilm == "-100.5 -2.25 2 the cat"


def _score(log10prob):
    (s,) = scoring.score_lines(MODEL, [""])
    return dataclasses.replace(s, log10probs=np.array([log10prob]))
