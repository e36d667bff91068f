"""The model directory: writing it atomically and reading it back with validation.

    DIR/config.json     format version, model and training hyperparameters, vocabulary size
    DIR/weights.npz     the parameters (np.savez; read with allow_pickle=False)
    DIR/tokenizer.json  the vocabulary (HuggingFace tokenizers)
    DIR/log.jsonl       one JSON object per epoch
    DIR/training.png    training and validation perplexity per epoch
    DIR/resume.npz      the last training checkpoint (weights, optimiser, schedule, data
                        position, random state), one file so that it is replaced atomically

Every file is written to a temporary file in DIR and renamed over the old one
(``lm.files.atomic_write``, importable from here too), so a crash or ``kill -9`` at any moment
leaves either the old or the new file, never half of one. A process killed between the two
steps leaves its temporary file (``.tmp-XXXXXXXX-NAME``) behind; loading never reads such
files, and ``remove_temp_files`` deletes them (training does, when it starts).

Reading an .npz (``load_arrays``) checks the zip directory and every member's .npy header
against what the config implies before inflating anything, so a forged or oversized member
is refused without allocating for it.
"""

from __future__ import annotations

import json
import math
import os
import zipfile

import numpy as np

from lm import memory
from lm.checks import is_int
from lm.errors import LMError, ModelFileError
from lm.files import atomic_write, remove_temp_files  # the one atomic writer (lm.files)
from lm.model import ModelConfig, Network
from lm.tokenizer import Vocab

FORMAT_VERSION = 1
Array = np.ndarray
_NPY_MAGIC = b"\x93NUMPY"


def save_json(path, obj) -> None:
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def save_arrays(path, arrays: dict[str, Array]) -> None:
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def load_arrays(
    path, expected: dict | None = None, max_bytes: int | None = None
) -> dict[str, Array]:
    """The arrays of an .npz file, each member checked before any data is inflated.

    The zip directory and every member's .npy header (shape, dtype) are read first; nothing
    is allocated for a member until all of them pass. Refused, each with its own one-line
    ModelFileError naming the file (and the member):

    - a file that is not a zip archive (or a lone .npy array), or a truncated or corrupt one;
    - a member that is not a .npy array (name or magic), a repeated member name;
    - object arrays (pickles), which lm never loads;
    - a header that declares more data than its member holds, or less (a forged size);
    - with ``expected`` ({name: (shape, dtype)}, either may be None for "any"): a name not
      in it ("unexpected arrays"), a name missing from the file ("missing arrays"), another
      shape or dtype;
    - arrays that together declare more than ``max_bytes`` (default: the memory available
      now, see ``lm.memory``).

    Good: ``load_arrays("m/weights.npz", expected={"W": ((8, 8), np.float32), ...})``.
    Bad: ``np.load("m/weights.npz")[name]``: inflates whatever a member declares.
    """
    path = os.fspath(path)
    _require_file(path)
    try:
        with open(path, "rb") as f:
            head = f.read(len(_NPY_MAGIC))
            f.seek(0)
            _check_zip_head(path, head)
            with zipfile.ZipFile(f) as zf:
                members = _inspect_members(path, zf, expected)
                total = sum(nbytes for _, _, nbytes in members.values())
                limit = memory.available_bytes() if max_bytes is None else max_bytes
                if limit is not None and total > limit:
                    raise ModelFileError(
                        f"{path}: its arrays declare {memory.format_bytes(total)}, more than "
                        f"the {memory.format_bytes(limit)} of memory available"
                    )
                out = {}
                for name, (info, _, _) in members.items():
                    with zf.open(info) as m:
                        out[name] = np.lib.format.read_array(m, allow_pickle=False)
                return out
    except ModelFileError:
        raise
    except ValueError as e:  # read_array: fewer bytes than the header said
        raise ModelFileError(f"{path}: truncated or corrupt ({e})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, NotImplementedError) as e:
        raise ModelFileError(f"{path}: truncated or corrupt ({type(e).__name__}: {e})") from None


def expected_arrays(mc: ModelConfig, prefix: str = "") -> dict[str, tuple]:
    """``load_arrays``'s ``expected`` for a model's parameters: {prefix + name: (shape,
    float32)}."""
    return {prefix + k: (shape, np.float32) for k, shape in mc.param_shapes().items()}


def _check_zip_head(path: str, head: bytes) -> None:
    if not head:
        raise ModelFileError(f"{path}: empty file (truncated or corrupt)")
    if head.startswith(_NPY_MAGIC):
        raise ModelFileError(f"{path}: one .npy array, not an .npz archive of named arrays")
    if not head.startswith(b"PK"):  # every zip file starts with a "PK" record
        raise ModelFileError(
            f"{path}: not an .npz archive (not a zip file: it starts with {head[:4]!r})"
        )


def _inspect_members(path: str, zf: zipfile.ZipFile, expected: dict | None) -> dict:
    """{array name: (ZipInfo, header_end, data bytes)} after checking every member's name
    and .npy header (module docstring of ``load_arrays``); reads only the headers."""
    members: dict[str, tuple] = {}
    for info in zf.infolist():
        where = f"{path}: member {info.filename!r}"
        if not info.filename.endswith(".npy") or info.is_dir():
            raise ModelFileError(f"{where} is not a .npy array (an .npz holds only those)")
        name = info.filename[: -len(".npy")]
        if name in members:
            raise ModelFileError(f"{where} appears twice")
        members[name] = (info, 0, 0)
    if expected is not None:
        extra = sorted(set(members) - set(expected))
        missing = sorted(set(expected) - set(members))
        if missing:
            raise ModelFileError(f"{path}: missing arrays {', '.join(missing)}")
        if extra:
            raise ModelFileError(f"{path}: unexpected arrays {', '.join(extra)}")
    for name, (info, _, _) in members.items():
        shape, dtype, header_end = _read_header(path, zf, info)
        if expected is not None:
            want_shape, want_dtype = expected[name]
            if want_shape is not None and shape != tuple(want_shape):
                raise ModelFileError(
                    f"{path}: {name} has shape {shape}, config.json implies {tuple(want_shape)}"
                )
            if want_dtype is not None and dtype != np.dtype(want_dtype):
                raise ModelFileError(
                    f"{path}: {name} has dtype {dtype}, expected {np.dtype(want_dtype)}"
                )
        nbytes = math.prod(shape) * dtype.itemsize
        held = info.file_size - header_end
        if nbytes != held:
            raise ModelFileError(
                f"{path}: member {info.filename!r} declares {dtype} {shape} "
                f"({memory.format_bytes(nbytes)}) but holds {memory.format_bytes(held)} of "
                f"data (truncated or forged)"
            )
        members[name] = (info, header_end, nbytes)
    return members


def _read_header(path: str, zf: zipfile.ZipFile, info) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, bytes before the data) from a member's .npy header, reading only it."""
    where = f"{path}: member {info.filename!r}"
    fmt = np.lib.format
    with zf.open(info) as m:
        try:
            version = fmt.read_magic(m)
        except ValueError:
            raise ModelFileError(f"{where} is not a .npy array (no .npy magic)") from None
        readers = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
        if version not in readers:
            raise ModelFileError(
                f"{where} has .npy format version {version}, which is not supported"
            )
        try:
            shape, _, dtype = readers[version](m)
        except ValueError as e:
            raise ModelFileError(f"{where} has a bad .npy header ({e})") from None
        if dtype.hasobject:
            raise ModelFileError(f"{where} holds object arrays (pickles), which lm never loads")
        return tuple(shape), dtype, m.tell()


def _require_file(path: str, hint: str = "") -> None:
    if os.path.isdir(path):
        raise ModelFileError(f"{path}: is a directory, not a file")
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: missing{hint}")


def save_model(directory, net: Network, vocab: Vocab, training: dict | None = None) -> None:
    """Write config.json, weights.npz and tokenizer.json (each atomically)."""
    os.makedirs(directory, exist_ok=True)
    with atomic_write(os.path.join(directory, "tokenizer.json"), "w") as f:
        f.write(vocab.tokenizer.to_str(pretty=True))
    save_arrays(os.path.join(directory, "weights.npz"), net.params)
    config = {
        "format_version": FORMAT_VERSION,
        "model": net.config.to_dict(),
        "n_vocab": vocab.size,
        "sentence_start_input": "</s>",
        "training": training or {},
    }
    save_json(os.path.join(directory, "config.json"), config)


def read_config(directory) -> dict:
    path = os.path.join(directory, "config.json")
    _require_file(path, f" (is {directory} a model directory?)")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise ModelFileError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(config, dict) or "format_version" not in config:
        raise ModelFileError(f"{path}: no format_version (not an lm model config)")
    version = config["format_version"]
    if not is_int(version) or version != FORMAT_VERSION:  # 1.0 or true are not version 1
        raise ModelFileError(
            f"{path}: format version {config['format_version']!r} is not supported "
            f"(this lm reads version {FORMAT_VERSION})"
        )
    return config


def model_config(config: dict, path: str) -> ModelConfig:
    """The ``model`` section as a ModelConfig whose parts can be built; ModelFileError naming
    ``path`` otherwise. A directory written before cells existed has no ``cell``: Elman."""
    section = config.get("model")
    if not isinstance(section, dict):
        raise ModelFileError(f"{path}: bad 'model' section (not an object)")
    try:
        mc = ModelConfig(**section)
        mc.parts()  # e.g. an activation with no derivative cannot make a cell
    except KeyError as e:
        raise ModelFileError(f"{path}: bad 'model' section (missing {e})") from None
    except (TypeError, ValueError, LMError) as e:
        raise ModelFileError(f"{path}: bad 'model' section ({e})") from None
    if mc.n_vocab != config.get("n_vocab"):
        raise ModelFileError(
            f"{path}: model.n_vocab {mc.n_vocab} != n_vocab {config.get('n_vocab')}"
        )
    return mc


def validate_params(params: dict[str, Array], mc: ModelConfig, path: str, prefix: str = "") -> None:
    """Every expected array present with the shape and dtype the config implies, nothing else,
    all values finite. Errors name the file and the array (as stored: ``prefix`` + name)."""
    expected = mc.param_shapes()
    missing = sorted(prefix + k for k in set(expected) - set(params))
    extra = sorted(prefix + k for k in set(params) - set(expected))
    if missing:
        raise ModelFileError(f"{path}: missing arrays {', '.join(missing)}")
    if extra:
        raise ModelFileError(f"{path}: unexpected arrays {', '.join(extra)}")
    for k, shape in expected.items():
        a, name = params[k], prefix + k
        if a.shape != shape:
            raise ModelFileError(f"{path}: {name} has shape {a.shape}, config.json implies {shape}")
        if a.dtype != np.float32:
            raise ModelFileError(f"{path}: {name} has dtype {a.dtype}, expected float32")
        if not np.isfinite(a).all():
            raise ModelFileError(f"{path}: {name} holds NaN or infinite values")


def load_model(directory) -> tuple[Network, Vocab, dict]:
    """Read and validate a model directory: (network, vocabulary, config dict)."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        problem = "not a directory" if os.path.exists(directory) else "no such model directory"
        raise ModelFileError(f"{directory}: {problem}")
    config = read_config(directory)
    config_path = os.path.join(directory, "config.json")
    mc = model_config(config, config_path)
    tok_path = os.path.join(directory, "tokenizer.json")
    _require_file(tok_path)
    vocab = Vocab.load(tok_path)
    if vocab.size != mc.n_vocab:
        raise ModelFileError(
            f"{tok_path}: vocabulary has {vocab.size} words but the weights have {mc.n_vocab}"
        )
    weights_path = os.path.join(directory, "weights.npz")
    params = load_arrays(weights_path, expected_arrays(mc))  # names, shapes before inflating
    validate_params(params, mc, weights_path)
    return Network.build(mc, params), vocab, config


def pack_json(obj) -> Array:
    """A JSON document as a uint8 array, to travel inside an .npz without pickling."""
    return np.frombuffer(json.dumps(obj).encode("utf-8"), dtype=np.uint8)


def unpack_json(a: Array) -> dict:
    return json.loads(bytes(a.astype(np.uint8)).decode("utf-8"))


def is_model_dir(directory) -> bool:
    return os.path.isfile(os.path.join(directory, "config.json"))


__all__ = [
    "FORMAT_VERSION",
    "atomic_write",
    "expected_arrays",
    "load_arrays",
    "load_model",
    "pack_json",
    "read_config",
    "remove_temp_files",
    "save_arrays",
    "save_json",
    "save_model",
    "unpack_json",
    "validate_params",
]
