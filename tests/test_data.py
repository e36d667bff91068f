"""lm.data: the training stream's layout, columns, windows and evaluation columns."""

import numpy as np
import pytest

from lm import data
from lm.errors import DataError
from lm.tokenizer import EOS, Vocab


def test_the_stream_starts_with_eos_and_ends_every_line_with_it(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("a b\n\nc\n")
    vocab = Vocab.build(["a b", "c"])
    stream = data.encode_file(path, vocab)
    a, b, c = (vocab.encode(w)[0][0] for w in "abc")
    assert stream.tolist() == [EOS, a, b, EOS, EOS, c, EOS]  # the empty line is a bare </s>
    assert stream.dtype == np.int32


def test_a_file_without_words_is_refused(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("\n  \n")
    with pytest.raises(DataError, match="holds no words"):
        data.encode_file(path, Vocab.build(["a"]))


def test_batchify_makes_contiguous_columns_and_drops_the_tail():
    columns = data.batchify(np.arange(11, dtype=np.int32), 3)  # 11 // 3 = 3 rows
    assert columns.tolist() == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]


def test_windows_shift_targets_by_one_and_resume_from_an_index():
    columns = np.arange(20).reshape(10, 2)
    got = list(data.windows(columns, 4))
    assert [i for i, _, _ in got] == [0, 1, 2] == list(range(data.n_windows(columns, 4)))
    for _, x, y in got:
        np.testing.assert_array_equal(y, x + 2)  # the next row of the same column
    assert sum(len(x) for _, x, _ in got) == 9  # every row but the last is an input
    assert [i for i, _, _ in data.windows(columns, 4, start=2)] == [2]


def test_sentence_columns_start_at_sentence_starts_and_mask_only_real_targets():
    s = np.array([EOS, 5, 6, EOS, 7, EOS, 8, 9, 10, EOS], dtype=np.int32)
    columns, mask = data.sentence_columns(s, 2)
    assert (columns[0] == EOS).all()  # every column opens a sentence
    assert int(mask.sum()) == len(s) - 1  # every prediction of the stream, once
    real = [columns[1:][mask[:, j], j].tolist() for j in range(columns.shape[1])]
    assert sum(real, []) == s[1:].tolist()  # in stream order, column after column
