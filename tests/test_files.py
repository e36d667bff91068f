"""lm.files: the one atomic writer and the one UTF-8 line reader (lm and corpora use both)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import sys

import pytest

from lm import files
from lm.errors import DataError


@pytest.fixture(autouse=True)
def default_line_limit():
    files.set_max_line_bytes(None)
    yield
    files.set_max_line_bytes(None)


def lines_of(data: bytes, **kwargs) -> list[str]:
    return list(files.decode_lines(io.BytesIO(data), "x.txt", **kwargs))


# ----- atomic_write -----


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002, 0o027])
@pytest.mark.parametrize("mode", ["wb", "w"])
def test_atomic_write_honours_the_umask(tmp_path, umask, mode):
    """mkstemp makes 0600 files; the renamed file has open()'s permissions, 0666 & ~umask."""
    old = os.umask(umask)
    try:
        with files.atomic_write(tmp_path / "f", mode) as f:
            f.write(b"x" if mode == "wb" else "x")
        reference = tmp_path / "reference"
        reference.write_bytes(b"x")
    finally:
        os.umask(old)
    got = stat.S_IMODE(os.stat(tmp_path / "f").st_mode)
    assert got == 0o666 & ~umask == stat.S_IMODE(os.stat(reference).st_mode)


def test_atomic_write_text_is_utf8_with_lf(tmp_path, monkeypatch):
    monkeypatch.setenv("LC_ALL", "C")  # the locale does not choose the encoding
    with files.atomic_write(tmp_path / "t.txt", "w") as f:
        f.write("caf\u00e9\nx\n")
    assert (tmp_path / "t.txt").read_bytes() == b"caf\xc3\xa9\nx\n"


def test_atomic_write_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old\n")
    for error in (ValueError, KeyboardInterrupt):
        with pytest.raises(error), files.atomic_write(path, "w") as f:
            f.write("half of the new")
            raise error()
        assert path.read_text() == "old\n"
        assert os.listdir(tmp_path) == ["f.txt"]


def test_atomic_write_temporary_names_are_what_remove_temp_files_removes(tmp_path):
    with files.atomic_write(tmp_path / "w.npz") as f:
        (name,) = [n for n in os.listdir(tmp_path) if n != "w.npz"]
        assert files.TEMP_NAME.fullmatch(name) and name.endswith("-w.npz")
        f.write(b"data")
    assert os.listdir(tmp_path) == ["w.npz"]


def test_atomic_write_fsyncs_the_file_and_its_directory(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.fstat(fd).st_mode) or real(fd))
    files.write_text(tmp_path / "f.txt", "x\n")
    assert [stat.S_ISREG(m) for m in synced] == [True, False]  # the file, then the directory


def test_atomic_write_refuses_other_modes(tmp_path):
    with pytest.raises(ValueError), files.atomic_write(tmp_path / "f", "a"):
        pass


def test_checkpoint_keeps_the_old_names():
    from lm import checkpoint

    assert checkpoint.atomic_write is files.atomic_write
    assert checkpoint.remove_temp_files is files.remove_temp_files


# ----- read_lines: the line cap -----


ENDINGS = [b"\n", b"\r\n", b"\n\n", b""]  # the line ending is not counted; b"": the last line


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_line_of_exactly_the_limit_is_read(ending):
    assert lines_of(b"a\n" + b"x" * 10 + ending, max_line_bytes=10)[:2] == ["a", "x" * 10]


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_line_one_byte_over_the_limit_is_refused_naming_file_and_line(ending):
    with pytest.raises(DataError, match=r"^x.txt:2: line longer than 10 bytes .*--max-line-bytes"):
        lines_of(b"a\n" + b"x" * 11 + ending, max_line_bytes=10)


class Endless(io.RawIOBase):
    """/dev/zero as a stream that counts what is asked of it."""

    def __init__(self):
        self.handed_out = 0

    def readable(self):
        return True

    def readinto(self, b):
        b[:] = b"\0" * len(b)
        self.handed_out += len(b)
        return len(b)


def test_an_endless_line_is_refused_after_reading_about_the_limit():
    raw = Endless()
    with pytest.raises(DataError, match="x.txt:1: line longer than 65536 bytes"):
        list(files.decode_lines(io.BufferedReader(raw), "x.txt", max_line_bytes=65536))
    assert raw.handed_out < 65536 + 2 * io.DEFAULT_BUFFER_SIZE


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_dev_zero_is_refused():
    with pytest.raises(DataError, match="/dev/zero:1: line longer than 1048576 bytes"):
        list(files.read_lines("/dev/zero"))


def test_the_process_wide_limit(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"x" * 100 + b"\n")
    assert files.max_line_bytes() == files.DEFAULT_MAX_LINE_BYTES == 1 << 20
    files.set_max_line_bytes(50)
    with pytest.raises(DataError, match=":1: line longer than 50 bytes"):
        list(files.read_lines(path))
    assert list(files.read_lines(path, max_line_bytes=100)) == ["x" * 100]  # per call
    files.set_max_line_bytes(None)
    assert list(files.read_lines(path)) == ["x" * 100]
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(ValueError):
            files.set_max_line_bytes(bad)


# ----- read_lines: BOM, gzip, UTF-8, kinds of path -----


def test_a_bom_at_the_start_is_dropped_and_only_there():
    bom = "\ufeff".encode()
    assert lines_of(bom + b"the cat\n" + bom + b"sat\n") == ["the cat", "\ufeffsat"]
    assert lines_of(bom) == []  # a BOM alone is an empty file
    assert lines_of(bom + b"\n") == [""]


@pytest.mark.parametrize("name", ["t.txt.gz", "t.txt"])  # gzip is known by its bytes
def test_gzip_input_is_decompressed_whatever_its_name(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(gzip.compress("\ufeffthe cat\r\nsat\n\u00e9\n".encode()))
    assert list(files.read_lines(path)) == ["the cat", "sat", "\u00e9"]


def test_gzip_lines_are_capped_too(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(b"ok\n" + b"y" * 10_000_000 + b"\n"))  # 10 kB compressed
    with pytest.raises(DataError, match="t.gz:2: line longer than 1048576 bytes"):
        list(files.read_lines(path))


@pytest.mark.parametrize(
    "damage", [lambda z: z[:-12], lambda z: z[:10] + b"\xff" * 20 + z[30:]], ids=["cut", "bytes"]
)
def test_corrupt_gzip_is_a_data_error_naming_the_file(tmp_path, damage):
    path = tmp_path / "t.gz"
    path.write_bytes(damage(gzip.compress(b"the cat sat\n" * 1000)))
    with pytest.raises(DataError, match=r"t.gz:\d+: corrupt gzip data"):
        list(files.read_lines(path))


def test_plain_text_named_gz_is_read_as_text(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(b"not compressed\n")
    assert list(files.read_lines(path)) == ["not compressed"]


def test_stdin_gzip_and_bom(monkeypatch):
    data = gzip.compress("\ufeffa b\nc\n".encode())
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(data))))
    assert list(files.read_lines("-")) == ["a b", "c"]


def test_not_utf8_names_line_and_column():
    with pytest.raises(DataError, match=r"x.txt:2: not valid UTF-8 \(byte 0xe9 at column 4\)"):
        lines_of(b"ok\ncaf\xe9\n")
    assert lines_of(b"ok\ncaf\xe9\n", errors="replace") == ["ok", "caf\ufffd"]


def test_path_problems(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        files.read_lines(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="is a directory"):
        files.read_lines(tmp_path)
    for bad in (b"t.txt", None, 3):
        with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
            files.read_lines(bad)


def test_is_regular_file(tmp_path):
    (tmp_path / "f").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    os.symlink(tmp_path / "f", tmp_path / "link")
    assert files.is_regular_file(tmp_path / "f") and files.is_regular_file(tmp_path / "link")
    for other in ("-", tmp_path / "fifo", tmp_path, tmp_path / "missing", "/dev/null"):
        assert not files.is_regular_file(other), other


def test_sha256_file(tmp_path):
    data = os.urandom(3000)
    (tmp_path / "f").write_bytes(data)
    assert files.sha256_file(tmp_path / "f", chunk=1000) == hashlib.sha256(data).hexdigest()


# ----- progress bars -----


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_show_progress_only_on_an_open_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert files.show_progress(True) and not files.show_progress(False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a file or a pipe: no \r frames
    assert not files.show_progress(True)
    monkeypatch.setattr(sys, "stderr", None)  # 2>&-: tqdm would raise
    assert not files.show_progress(True)
    closed = Terminal()
    closed.close()
    monkeypatch.setattr(sys, "stderr", closed)
    assert not files.show_progress(True)
