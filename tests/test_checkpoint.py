"""lm.checkpoint.load_arrays: every .npz member is checked (name, .npy header, declared size)
before any data is inflated, so hostile files are refused without allocating for them.

The zip bombs here are built by hand: one deflate block of 1 MiB of zeros, compressed once and
repeated 2,048 times (each block ends with a full flush, so the copies are a valid stream),
declares a 2 GiB member in about 2 MB of file, written in milliseconds."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
from lmfixtures import make_model, save_model_dir

import lm
from lm import checkpoint
from lm.errors import ModelFileError

GIB2 = 2 << 30


def npy_bytes(array: np.ndarray, version=None) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, version=version, allow_pickle=True)
    return buf.getvalue()


def npy_header(shape, dtype=np.float32) -> bytes:
    """Just the .npy magic and header of an array of ``shape``, no data."""
    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False}
    np.lib.format.write_array_header_1_0(buf, {**header, "shape": tuple(shape)})
    return buf.getvalue()


def deflated_zeros(head: bytes, n_zeros: int) -> bytes:
    """A raw deflate stream of ``head`` then ``n_zeros`` zero bytes (a multiple of 1 MiB)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return first + block * (n_zeros >> 20) + c.flush(zlib.Z_FINISH)


def write_zip(path, members: list[tuple[str, bytes, int, int, int]]) -> None:
    """A zip file from (name, stored data, method, uncompressed size, crc) members, written
    by hand so that a member's data need not be compressed here."""
    out, central = bytearray(), bytearray()
    for name, data, method, size, crc in members:
        name_b = name.encode()
        offset = len(out)
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(name_b), 0
        )
        out += name_b + data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data), size, len(name_b),
            0, 0, 0, 0, 0, offset,
        )  # fmt: skip
        central += name_b
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0
    )
    with open(path, "wb") as f:
        f.write(bytes(out + central + end))


def stored(name: str, data: bytes) -> tuple:
    return (name, data, 0, len(data), zlib.crc32(data))


def bomb(name: str, head: bytes) -> tuple:
    """A member of ``head`` and 2 GiB of zeros (its crc is not computed: never read)."""
    return (name, deflated_zeros(head, GIB2), 8, len(head) + GIB2, 0)


@pytest.fixture
def inflated(monkeypatch):
    """Counts the bytes zipfile decompresses."""
    count = {"bytes": 0}
    real = zipfile._get_decompressor

    class Counting:
        def __init__(self, d):
            self.d = d

        def decompress(self, data, max_length=0):
            out = self.d.decompress(data, max_length)
            count["bytes"] += len(out)
            return out

        def __getattr__(self, name):
            return getattr(self.d, name)

    monkeypatch.setattr(zipfile, "_get_decompressor", lambda method: Counting(real(method)))
    return count


@pytest.fixture
def model_dir(tmp_path):
    return save_model_dir(tmp_path / "m", make_model())


def weights_members(model_dir) -> list[tuple]:
    arrays = checkpoint.load_arrays(f"{model_dir}/weights.npz")
    return [stored(f"{k}.npy", npy_bytes(v)) for k, v in arrays.items()]


# ----- good files -----


def test_round_trip_with_and_without_expected(tmp_path, rng):
    arrays = {"W": rng.random((3, 4)).astype(np.float32), "n": np.arange(5), "e": np.zeros(0)}
    checkpoint.save_arrays(tmp_path / "a.npz", arrays)
    expected = {"W": ((3, 4), np.float32), "n": (None, None), "e": ((0,), np.float64)}
    for kwargs in ({}, {"expected": expected}):
        got = checkpoint.load_arrays(tmp_path / "a.npz", **kwargs)
        assert set(got) == set(arrays)
        for k, a in arrays.items():
            assert got[k].dtype == a.dtype
            np.testing.assert_array_equal(got[k], a)


def test_version_2_headers_and_compressed_archives_are_read(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_zip(tmp_path / "v2.npz", [stored("a.npy", npy_bytes(a, version=(2, 0)))])
    np.testing.assert_array_equal(checkpoint.load_arrays(tmp_path / "v2.npz")["a"], a)
    np.savez_compressed(tmp_path / "c.npz", a=a)
    np.testing.assert_array_equal(checkpoint.load_arrays(tmp_path / "c.npz")["a"], a)


# ----- zip bombs -----


def test_an_extra_2_gib_member_is_refused_by_name_without_inflating(model_dir, inflated):
    path = f"{model_dir}/weights.npz"
    members = weights_members(model_dir)
    write_zip(path, [*members, bomb("bomb.npy", npy_header((GIB2,), np.uint8))])
    inflated["bytes"] = 0
    with pytest.raises(ModelFileError, match=r"weights.npz: unexpected arrays bomb$"):
        lm.load(model_dir)
    assert inflated["bytes"] < 1 << 20


def test_a_member_holding_more_than_its_header_declares_is_refused(model_dir, inflated):
    """A right name and a right header, but 2 GiB of data behind them."""
    path = f"{model_dir}/weights.npz"
    members = [m for m in weights_members(model_dir) if m[0] != "V.npy"]
    V = lm.load(model_dir).net.params["V"]
    write_zip(path, [*members, bomb("V.npy", npy_header(V.shape))])
    inflated["bytes"] = 0
    with pytest.raises(ModelFileError, match=r"member 'V.npy' declares float32 .* but holds 2\.1"):
        lm.load(model_dir)
    assert inflated["bytes"] < 1 << 20


def test_without_expected_a_bomb_is_bounded_by_memory(tmp_path, inflated):
    path = tmp_path / "b.npz"
    write_zip(path, [bomb("x.npy", npy_header((GIB2,), np.uint8))])
    with pytest.raises(ModelFileError, match=r"arrays declare 2\.15 GB, more than the 1\.05 MB"):
        checkpoint.load_arrays(path, max_bytes=1 << 20)
    assert inflated["bytes"] < 1 << 20


# ----- forged headers -----


def test_a_huge_declared_shape_is_refused_without_allocating(tmp_path, model_dir):
    head = npy_header((100_000, 100_000))  # 40 GB of float32, followed by 16 bytes
    write_zip(tmp_path / "f.npz", [stored("W.npy", head + bytes(16))])
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=r"declares float32 \(100000, 100000\) \(40 GB\)"):
            checkpoint.load_arrays(tmp_path / "f.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 << 20
    # in a model directory the shape is checked against config.json first
    members = [m for m in weights_members(model_dir) if m[0] != "W.npy"]
    write_zip(f"{model_dir}/weights.npz", [*members, stored("W.npy", head + bytes(16))])
    with pytest.raises(ModelFileError, match=r"W has shape \(100000, 100000\), config.json"):
        lm.load(model_dir)


@pytest.mark.parametrize(
    "data, words",
    [
        (npy_header((3,)) + bytes(8), "declares float32 (3,) (12 B) but holds 8 B"),
        (npy_header((3,)) + bytes(20), "declares float32 (3,) (12 B) but holds 20 B"),
        (b"\x93NUMPY\x01\x00\x08\x00{bad}   \n", "has a bad .npy header"),
        (npy_bytes(np.zeros(3, np.float32), version=(3, 0)), "version (3, 0), which is not"),
        (b"just some text, not an array", "is not a .npy array (no .npy magic)"),
        (npy_bytes(np.array([{"a": 1}, None], dtype=object)), "holds object arrays (pickles)"),
    ],
    ids=["short", "long", "bad header", "version 3", "not npy", "object"],
)
def test_each_bad_member_has_its_own_diagnosis(tmp_path, data, words):
    good = stored("good.npy", npy_bytes(np.ones(2)))
    write_zip(tmp_path / "x.npz", [good, stored("a.npy", data)])
    with pytest.raises(ModelFileError) as e:
        checkpoint.load_arrays(tmp_path / "x.npz")
    assert str(e.value).startswith(f"{tmp_path / 'x.npz'}: member 'a.npy' ")
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_member_that_is_not_npy_by_name(tmp_path, model_dir):
    write_zip(f"{model_dir}/weights.npz", [*weights_members(model_dir), stored("notes.txt", b"hi")])
    with pytest.raises(ModelFileError, match=r"member 'notes.txt' is not a .npy array"):
        lm.load(model_dir)


def test_a_repeated_member_is_refused(tmp_path):
    a = npy_bytes(np.zeros(2))
    write_zip(tmp_path / "d.npz", [stored("a.npy", a), stored("a.npy", a)])
    with pytest.raises(ModelFileError, match=r"member 'a.npy' appears twice"):
        checkpoint.load_arrays(tmp_path / "d.npz")


# ----- not an npz at all -----


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", "empty file (truncated or corrupt)"),
        (b"hello, this is text\n", "not an .npz archive (not a zip file: it starts with b'hell')"),
        (b"\x89PNG\r\n\x1a\n....", "not an .npz archive (not a zip file"),
        (npy_bytes(np.zeros(3, np.float32)), "one .npy array, not an .npz archive"),
        (b"PK\x03\x04 cut short", "truncated or corrupt (BadZipFile"),
    ],
    ids=["empty", "text", "png", "npy", "cut zip"],
)
def test_files_that_are_not_npz_archives(tmp_path, content, words):
    (tmp_path / "w.npz").write_bytes(content)
    with pytest.raises(ModelFileError) as e:
        checkpoint.load_arrays(tmp_path / "w.npz")
    assert str(e.value) == f"{tmp_path / 'w.npz'}: {words}" or words in str(e.value)
    assert str(e.value).startswith(f"{tmp_path / 'w.npz'}: ") and "\n" not in str(e.value)


def test_corrupt_member_data_is_caught_when_read(tmp_path):
    """Headers fine, data damaged (crc): refused, one line, naming the file."""
    a = npy_bytes(np.arange(100, dtype=np.float32))
    name, data, method, size, crc = stored("a.npy", a)
    write_zip(tmp_path / "c.npz", [(name, data[:-4] + b"\xff" * 4, method, size, crc)])
    with pytest.raises(ModelFileError, match=r"c.npz: truncated or corrupt \(BadZipFile"):
        checkpoint.load_arrays(tmp_path / "c.npz")


def test_expected_arrays_follows_the_config(model_dir):
    model = lm.load(model_dir)
    expected = checkpoint.expected_arrays(model.net.config, prefix="param.")
    assert set(expected) == {f"param.{k}" for k in model.net.params}
    for k, a in model.net.params.items():
        assert expected[f"param.{k}"] == (a.shape, np.float32)
