"""The model directory: writing it atomically and reading it back with validation.

    DIR/config.json     format version, model and training hyperparameters, vocabulary size
    DIR/weights.npz     the parameters (np.savez; read with allow_pickle=False)
    DIR/tokenizer.json  the vocabulary (HuggingFace tokenizers)
    DIR/log.jsonl       one JSON object per epoch
    DIR/training.png    training and validation perplexity per epoch
    DIR/resume.npz      the last training checkpoint (weights, optimiser, schedule, data
                        position, random state), one file so that it is replaced atomically

Every file is written to a temporary file in DIR and renamed over the old one, so a crash or
``kill -9`` at any moment leaves either the old or the new file, never half of one. A process
killed between the two steps leaves its temporary file (``.tmp-XXXXXXXX-NAME``) behind; loading
never reads such files, and ``remove_temp_files`` deletes them (training does, when it starts).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from contextlib import contextmanager

import numpy as np

from lm.checks import is_int
from lm.errors import LMError, ModelFileError
from lm.model import ModelConfig, Network
from lm.tokenizer import Vocab

FORMAT_VERSION = 1
Array = np.ndarray
_TEMP_NAME = re.compile(r"\.tmp-[a-z0-9_]{8}-.+")  # what atomic_write's mkstemp call creates


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file next to ``path``; on success fsync it and rename it over ``path``.
    On any error the temporary file is removed and ``path`` is untouched."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_json(path, obj) -> None:
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def save_arrays(path, arrays: dict[str, Array]) -> None:
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def load_arrays(path) -> dict[str, Array]:
    """Arrays of an .npz file, refusing pickled (object) arrays; errors name the file."""
    path = os.fspath(path)
    _require_file(path)
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):  # a lone .npy array
            raise ModelFileError(f"{path}: one .npy array, not an .npz archive of named arrays")
        with z:
            return {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e).lower() or "object" in str(e).lower():
            raise ModelFileError(
                f"{path}: holds object arrays (pickles), which lm never loads"
            ) from None
        raise ModelFileError(f"{path}: unreadable ({e})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
        raise ModelFileError(f"{path}: truncated or corrupt ({type(e).__name__}: {e})") from None


def _require_file(path: str, hint: str = "") -> None:
    if os.path.isdir(path):
        raise ModelFileError(f"{path}: is a directory, not a file")
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: missing{hint}")


def remove_temp_files(directory) -> list[str]:
    """Delete the temporary files that ``atomic_write`` leaves in ``directory`` when its
    process is killed before renaming them; return their paths. Only call it when no other
    process may be saving into ``directory`` (one training run owns its model directory)."""
    removed = []
    for entry in os.scandir(directory):
        if _TEMP_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
                removed.append(entry.path)
            except FileNotFoundError:
                pass
    return removed


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
    params = load_arrays(weights_path)
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
    "atomic_write",
    "save_json",
    "save_arrays",
    "load_arrays",
    "save_model",
    "load_model",
    "read_config",
    "pack_json",
    "unpack_json",
    "validate_params",
    "remove_temp_files",
    "FORMAT_VERSION",
]
