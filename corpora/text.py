"""Real text made into a corpus: normalise, de-duplicate, split, write.

Normalisation (``normalise``), the same for every corpus made here:
- lowercase;
- tokens are runs of letters, with apostrophes kept inside a word ("don't", "know't");
  a leading or trailing apostrophe is dropped ("'tis" -> "tis");
- a number (digits, with "." or "," between digit groups: 3, 3.14, 1,000) becomes ``N``,
  as in Mikolov's Penn Treebank; digits stuck to letters are split off ("utf8" -> "utf N");
- a lone capital ``N`` and ``<unk>`` are kept, so that normalising normalised text (such as
  the Penn Treebank's) changes nothing;
- everything else (punctuation, underscores, symbols) is dropped and separates tokens;
- tokens are joined by single spaces; a line that is empty after this is dropped.

Splitting is by a hash of the normalised line (blake2b): 90% train, 5% valid, 5% test. It
depends on nothing but the line, so it is the same on every machine and run, and after
de-duplication no line of valid or test also occurs in train. Lines keep their input order
within each split.

Two sources: any raw UTF-8 text file, one corpus line per non-empty input line (``prepare``),
and the docstrings of the Python standard library on this machine with the help topics of
``pydoc_data``, one sentence per line (``build_pydoc``). The standard library is read as source
with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import platform
import re
import sysconfig
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from tqdm import tqdm

from lm import files
from lm.errors import DataError

FORMAT_VERSION = 1
SPLITS = ("train", "valid", "test")
SPLIT_PERCENT = {"train": 90, "valid": 5, "test": 5}
NORMALISATION = (
    "lowercase; letters with inner apostrophes are words; numbers -> N (a lone N and <unk> "
    "kept); punctuation, underscores and symbols dropped; single spaces; empty lines dropped"
)

_TOKEN = re.compile(r"<unk>|\bN\b|[^\W\d_]+(?:['\u2019][^\W\d_]+)*|\d+(?:[.,]\d+)*")


def normalise(text: str) -> str:
    """One line of raw text -> space-separated tokens (see the module docstring).

    >>> normalise("First, you know Caius Marcius is chief enemy -- in 2,000 B.C.!")
    'first you know caius marcius is chief enemy in N b c'
    >>> normalise("the N <unk> rose")  # normalised text (PTB's too) stays as it is
    'the N <unk> rose'
    """
    tokens = _TOKEN.findall(text)
    return " ".join(
        "N" if t == "N" or t[0].isdigit() else t.lower().replace("\u2019", "'") for t in tokens
    )


def split_sentences(paragraph: str) -> list[str]:
    """Split running text after '.', '!' or '?' followed by white space."""
    return [s for s in re.split(r"(?<=[.!?])\s+", paragraph.strip()) if s]


def dedupe(lines: Iterable[str]) -> list[str]:
    """Lines with repeats removed, keeping the first occurrence of each, in order."""
    return list(dict.fromkeys(lines))


def split_of(line: str) -> str:
    """The split a line belongs to: a hash of its text decides, 90/5/5."""
    digest = hashlib.blake2b(line.encode("utf-8"), digest_size=8).digest()
    bucket = int.from_bytes(digest, "big") % 100
    if bucket < SPLIT_PERCENT["train"]:
        return "train"
    return "valid" if bucket < SPLIT_PERCENT["train"] + SPLIT_PERCENT["valid"] else "test"


def split_lines(lines: Iterable[str]) -> dict[str, list[str]]:
    """Lines dealt into train/valid/test by ``split_of``, each in input order."""
    splits: dict[str, list[str]] = {name: [] for name in SPLITS}
    for line in lines:
        splits[split_of(line)].append(line)
    return splits


# ---------------------------------------------------------------------------------------------
# Files.


def check_outdir(outdir: Path, force: bool) -> None:
    """Make sure ``outdir`` is a writable directory that is empty (or ``force``); create it."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise DataError(f"{outdir}: exists and is not a directory")
    if outdir.is_dir() and any(outdir.iterdir()) and not force:
        raise DataError(f"{outdir}: directory is not empty (use --force to overwrite)")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=outdir):
            pass
    except OSError as e:
        raise DataError(f"{outdir}: cannot write there ({e.strerror or e})") from None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` through ``lm.files.atomic_write`` (a temporary file beside ``path``,
    fsynced and renamed over it, with the usual 0666-less-umask permissions); DataError
    naming the file when the system refuses."""
    try:
        files.write_text(path, text)
    except OSError as e:
        raise DataError(f"{path}: cannot write ({e.strerror or e})") from None


def write_corpus(outdir: Path, splits: dict[str, list[str]], meta: dict) -> None:
    """train.txt, valid.txt, test.txt (one line each, newline-terminated) and meta.json."""
    for name in SPLITS:
        write_atomic(Path(outdir) / f"{name}.txt", "".join(line + "\n" for line in splits[name]))
    write_atomic(Path(outdir) / "meta.json", json.dumps(meta, indent=2) + "\n")


def split_counts(splits: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    return {
        name: {"lines": len(lines), "words": sum(len(x.split()) for x in lines)}
        for name, lines in splits.items()
    }


def _finish(splits: dict[str, list[str]], where: str, n_unique: int) -> None:
    missing = [name for name in SPLITS if not splits[name]]
    if missing:
        raise DataError(
            f"{where}: only {n_unique} distinct non-empty lines after cleaning, too few to fill "
            f"train, valid and test (none for {', '.join(missing)})"
        )


# ---------------------------------------------------------------------------------------------
# Any raw text file.


def prepare(
    raw: str | Path, outdir: str | Path, force: bool = False, progress: bool = False
) -> dict:
    """Normalise a raw UTF-8 text file line by line, de-duplicate, split, write; return meta.

    Every input line is one corpus line (a play's verse lines and speaker names stay lines of
    their own); lines that are empty after normalisation are dropped. The file is read by
    ``lm.files.read_lines`` (streamed; gzip or not; a BOM dropped; a cap on the line length;
    errors naming the line).
    """
    raw, outdir = Path(raw), Path(outdir)
    raw_lines = files.read_lines(raw)  # fails here if the file cannot be opened
    counts = {"input": 0, "text": 0}
    lines = [
        normalise(line)
        for line in tqdm(
            _physical_lines(raw_lines, counts),
            desc="normalise",
            unit="line",
            disable=not files.show_progress(progress),
        )
    ]
    if not counts["text"]:
        raise DataError(f"{raw}: empty file")
    lines = [line for line in lines if line]
    if not lines:
        raise DataError(f"{raw}: no words left after cleaning")
    check_outdir(outdir, force)  # after reading: a bad line leaves no directory behind
    unique = dedupe(lines)
    splits = split_lines(unique)
    _finish(splits, str(raw), len(unique))
    meta = corpus_meta(
        "prepare",
        "line",
        splits,
        duplicates=len(lines) - len(unique),
        source=str(raw),
        source_sha256=files.sha256_file(raw),
        input_lines=counts["input"],
        nonempty_lines=len(lines),
    )
    write_corpus(outdir, splits, meta)
    return meta


def _physical_lines(lines: Iterable[str], counts: dict) -> Iterator[str]:
    """The lines of ``lines`` split again at the other line boundaries ``str.splitlines``
    knows (form feed, U+2028, ...), counting them in ``counts["input"]`` and the ones that
    are not only white space in ``counts["text"]``."""
    for line in lines:
        for part in line.splitlines() or [""]:
            counts["input"] += 1
            counts["text"] += bool(part.strip())
            yield part


def corpus_meta(corpus: str, unit: str, splits: dict, duplicates: int, **source) -> dict:
    """meta.json of a real-text corpus: how it was made (``source`` facts), then the
    normalisation, the split and the counts that every such corpus records."""
    return {
        "format": FORMAT_VERSION,
        "corpus": corpus,
        **source,
        "unit": unit,
        "normalisation": NORMALISATION,
        "split": "blake2b hash of each line: 90% train, 5% valid, 5% test",
        "duplicates_dropped": duplicates,
        "splits": split_counts(splits),
        "train_vocab": len({w for line in splits["train"] for w in line.split()}),
    }


# ---------------------------------------------------------------------------------------------
# The Python standard library's docstrings.

_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}
_DOC_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def stdlib_files(stdlib: Path) -> list[Path]:
    """Every .py file under the standard library directory, sorted, without installed packages."""
    found = []
    for root, dirs, names in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        found.extend(Path(root) / n for n in sorted(names) if n.endswith(".py"))
    return found


def file_docstrings(path: Path) -> list[str] | None:
    """The docstrings of a module and its classes and functions, in source order (read with
    ``ast``, never imported). None if the file cannot be read or parsed."""
    try:
        source = path.read_bytes()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes and the like in old files
            tree = ast.parse(source, filename=str(path))
    except (OSError, SyntaxError, ValueError, UnicodeError, RecursionError, MemoryError):
        return None
    nodes = sorted(
        (n for n in ast.walk(tree) if isinstance(n, _DOC_NODES)),
        key=lambda n: getattr(n, "lineno", 0),
    )
    docs = (ast.get_docstring(n, clean=True) for n in nodes)
    return [d for d in docs if d]


_BULLETS = ("*", "-", "+", "\u2022")


def docstring_lines(doc: str) -> list[str]:
    """A docstring (or pydoc help text) -> normalised sentences, without its code.

    Paragraphs (separated by blank lines) are joined and split into sentences. Dropped: doctest
    examples (from a '>>>' or '...' line to the end of its paragraph) and code blocks (after a
    paragraph ending in ':' or '::', the paragraphs indented deeper than it, unless they start
    with a list bullet).
    """
    out: list[str] = []
    code_under = None  # indentation of the paragraph that introduced a code block
    for para in _paragraphs(doc):
        first = para[0].lstrip()
        indent = len(para[0]) - len(first)
        if code_under is not None and indent > code_under and not first.startswith(_BULLETS):
            continue
        kept = []
        for line in para:
            if line.lstrip().startswith((">>>", "...")):
                break
            kept.append(line.strip())
        text = " ".join(kept)
        code_under = indent if text.endswith(":") else None
        out.extend(filter(None, map(normalise, split_sentences(text))))
    return out


def pydoc_topics(stdlib: Path) -> list[str]:
    """The help texts in pydoc_data/topics.py (the language reference that ``help("if")``
    shows), read with ``ast``. Empty if the file is missing or unreadable."""
    path = Path(stdlib) / "pydoc_data" / "topics.py"
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError, UnicodeError, RecursionError, MemoryError):
        return []
    return [
        v.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict)
        for v in node.values
        if isinstance(v, ast.Constant) and isinstance(v.value, str)
    ]


def _paragraphs(doc: str) -> list[list[str]]:
    paragraphs, current = [], []
    for line in doc.splitlines():
        if line.strip():
            current.append(line)
        elif current:
            paragraphs.append(current)
            current = []
    if current:
        paragraphs.append(current)
    return paragraphs


def build_pydoc(
    outdir: str | Path,
    force: bool = False,
    progress: bool = False,
    stdlib: str | Path | None = None,
) -> dict:
    """A corpus of the standard library's docstrings and pydoc help topics, one normalised
    sentence per line, de-duplicated and split 90/5/5 by hash; writes it to ``outdir`` and
    returns what meta.json holds."""
    outdir = Path(outdir)
    stdlib = Path(stdlib or sysconfig.get_paths()["stdlib"])
    if not stdlib.is_dir():
        raise DataError(f"{stdlib}: no such directory")
    check_outdir(outdir, force)
    sources = stdlib_files(stdlib)
    if not sources:
        raise DataError(f"{stdlib}: no Python files found")
    lines: list[str] = []
    skipped = n_docs = 0
    bar = tqdm(sources, desc="docstrings", unit="file", disable=not files.show_progress(progress))
    for path in bar:
        docs = file_docstrings(path)
        if docs is None:
            skipped += 1
            continue
        n_docs += len(docs)
        for doc in docs:
            lines.extend(docstring_lines(doc))
    topics = pydoc_topics(stdlib)
    for topic in topics:
        lines.extend(docstring_lines(topic))
    unique = dedupe(lines)
    splits = split_lines(unique)
    _finish(splits, str(stdlib), len(unique))
    meta = corpus_meta(
        "pydoc",
        "sentence",
        splits,
        duplicates=len(lines) - len(unique),
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        stdlib=str(stdlib),
        files=len(sources),
        files_skipped=skipped,
        docstrings=n_docs,
        help_topics=len(topics),
        sentences=len(lines),
    )
    write_corpus(outdir, splits, meta)
    return meta
