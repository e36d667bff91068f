"""lm.formats: KenLM query's and SRILM ngram -ppl -debug 2's shapes, exactly, and the counts
behind SRILM's numbers (OOVs left out) and KenLM's (OOVs named)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lm import formats
from lm.scoring import SentenceScore
from lm.tokenizer import Vocab

VOCAB = Vocab.build(["the cat sat"])
THE, CAT, SAT = (int(VOCAB.encode(w)[0][0]) for w in ("the", "cat", "sat"))


def sentence(text, log10probs, bos=True, eos=True):
    ids, oov = VOCAB.encode(text)
    if eos:
        ids, oov = np.append(ids, 2), np.append(oov, False)
    return SentenceScore(text, ids, oov, np.array(log10probs, dtype=np.float64), bos, eos)


@pytest.mark.parametrize(
    "line, stripped",
    [
        ("<s> the cat </s>", "the cat"),
        ("  <s>\tthe cat\t</s> ", "the cat"),
        ("<s>", ""),
        ("<s> </s>", ""),
        ("the <s> cat </s> sat", "the <s> cat </s> sat"),  # inside: words, scored as OOVs
        ("<s>the cat</s>", "<s>the cat</s>"),  # not separate words
        (" the cat ", " the cat "),  # no tags: unchanged
    ],
)
def test_strip_boundary_tags(line, stripped):
    assert formats.strip_boundary_tags(line) == stripped


def test_kenlm_line_is_querys_shape():
    s = sentence("the zebra", [-1.5, -2.25, -0.125])
    assert formats.kenlm_line(s, VOCAB) == (
        f"the={THE} 1 -1.5\tzebra=0 2 -2.25\t</s>=2 3 -0.125\tTotal: -3.875 OOV: 1"
    )
    no_bos = sentence("cat", [-1.0], bos=False, eos=False)
    assert formats.kenlm_line(no_bos, VOCAB) == f"cat={CAT} 0 -1\tTotal: -1 OOV: 0"
    tiny = sentence("cat", [-1.23456789e-5, -12345.678])
    assert formats.kenlm_line(tiny, VOCAB) == (
        f"cat={CAT} 1 -1.23457e-05\t</s>=2 2 -12345.7\tTotal: -12345.7 OOV: 0"
    )


def test_srilm_block_is_ngram_debug_2s_shape():
    s = sentence("the zebra sat", [-1.0, -2.0, -0.5, -0.25])
    assert formats.srilm_block(s, VOCAB, oovs_scored=False).split("\n") == [
        "the zebra sat",
        "\tp( the | <s> ) \t= [2gram] 0.1 [ -1 ]",
        "\tp( <unk> | the ...) \t= [OOV] 0 [ -inf ]",
        "\tp( sat | <unk> ...) \t= [4gram] 0.3162278 [ -0.5 ]",
        "\tp( </s> | sat ...) \t= [5gram] 0.5623413 [ -0.25 ]",
        "1 sentences, 3 words, 1 OOVs",
        "0 zeroprobs, logprob= -1.75 ppl= 3.831187 ppl1= 7.498942",
    ]
    # SRILM: ppl = 10^(-logprob / (words - oovs + sentences)), ppl1 without the sentences
    assert 10 ** (1.75 / 3) == pytest.approx(3.831187, rel=1e-6)
    assert 10 ** (1.75 / 2) == pytest.approx(7.498942, rel=1e-6)


def test_srilm_block_with_unk_penalty_counts_the_oovs_as_words():
    s = formats.with_unk_penalty(sentence("the zebra", [-1.0, -2.0, -0.5]), -6.0)
    assert s.log10probs.tolist() == [-1.0, -6.0, -0.5]
    lines = formats.srilm_block(s, VOCAB, oovs_scored=True).split("\n")
    assert lines[2] == "\tp( <unk> | the ...) \t= [OOV] 1e-06 [ -6 ]"
    assert lines[-2:] == [
        "1 sentences, 2 words, 0 OOVs",
        "0 zeroprobs, logprob= -7.5 ppl= 316.2278 ppl1= 5623.413",
    ]


def test_srilm_without_bos_or_eos():
    s = sentence("cat sat", [-1.0, -1.0], bos=False, eos=False)
    lines = formats.srilm_block(s, VOCAB, oovs_scored=False).split("\n")
    assert lines[1] == "\tp( cat |  ) \t= [1gram] 0.1 [ -1 ]"
    assert lines[-2:] == [
        "0 sentences, 2 words, 0 OOVs",
        "0 zeroprobs, logprob= -2 ppl= 10 ppl1= 10",
    ]


def test_totals_keep_both_tools_meanings():
    totals = formats.Totals()
    for s in [sentence("the zebra", [-1.0, -3.0, -0.5]), sentence("", [-0.25])]:
        totals.add(s)
    assert totals.srilm_summary("f.txt").split("\n") == [
        "file f.txt: 2 sentences, 2 words, 1 OOVs",
        f"0 zeroprobs, logprob= -1.75 ppl= {10 ** (1.75 / 3):.7g} ppl1= {10**1.75:.7g}",
    ]
    assert totals.kenlm_summary().split("\n") == [
        f"Perplexity including OOVs:\t{10 ** (4.75 / 4):g}",
        f"Perplexity excluding OOVs:\t{10 ** (1.75 / 3):g}",
        "OOVs:\t1",
        "Tokens:\t4",
    ]
    d = totals.to_dict()
    assert d["log10prob"] == -4.75 and d["log10prob_excluding_oovs"] == -1.75
    assert d["ppl1_excluding_oovs"] == pytest.approx(10**1.75)
    assert d["ppl"] == pytest.approx(10 ** (4.75 / 4))


def test_tsv_line_keeps_its_columns_whatever_the_sentence():
    s = sentence("the\tcat\rsat", [-1.0, -1.0, -1.0, -1.0])
    fields = formats.tsv_line(s).split("\t")
    assert fields == ["-4.000000", "4", "0", "10", "10", "the cat sat"]
    zebra = formats.tsv_line(sentence("zebra", [-3.0, -1.0])).split("\t")
    assert zebra[3:5] == ["100", "10"]  # ppl with the OOV, and without it
    nothing = formats.tsv_line(sentence("zebra", [-3.0], eos=False)).split("\t")
    assert nothing[4] == "nan" and math.isnan(float(nothing[4]))
