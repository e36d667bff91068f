"""The model directory: writing it atomically and reading it back with validation.

    DIR/config.json     format version, model and training hyperparameters, vocabulary size
    DIR/weights.npz     the parameters (np.savez; read with allow_pickle=False)
    DIR/tokenizer.json  the vocabulary (HuggingFace tokenizers)
    DIR/log.jsonl       one JSON object per epoch
    DIR/training.png    training and validation perplexity per epoch
    DIR/resume.npz      the last training checkpoint (weights, optimiser, schedule, data
                        position, random state), one file so that it is replaced atomically
                        (``Resume`` below lists what it holds)
    DIR/.lock           held (``fcntl.flock``) by the one training run writing into DIR;
                        holds its PID

A model directory is a model once ``config.json`` exists: training writes ``config.json`` and
``weights.npz`` at the end of its first epoch, not before, so a run stopped earlier leaves a
directory that ``load_model`` refuses (with a message saying so, when it holds a
``resume.npz`` to continue from) and that a new run may overwrite without ``--force``.

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

import fcntl
import hashlib
import json
import math
import os
import stat
import zipfile
from dataclasses import asdict, dataclass

import numpy as np

from lm import memory
from lm.checks import is_int
from lm.errors import LMError, ModelFileError
from lm.files import atomic_write, remove_temp_files  # the one atomic writer (lm.files)
from lm.model import ModelConfig, Network
from lm.tokenizer import Vocab
from lm.trainconfig import Progress, TrainConfig, VocabConfig, from_dict

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


def save_tokenizer(directory, vocab: Vocab) -> None:
    with atomic_write(os.path.join(directory, "tokenizer.json"), "w") as f:
        f.write(vocab.tokenizer.to_str(pretty=True))


def save_model(directory, net: Network, vocab: Vocab, training: dict | None = None) -> None:
    """Write tokenizer.json, weights.npz and config.json (each atomically; config.json, which
    makes the directory a model, last)."""
    os.makedirs(directory, exist_ok=True)
    save_tokenizer(directory, vocab)
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
    if not is_model_dir(directory) and os.path.isfile(os.path.join(directory, "resume.npz")):
        raise ModelFileError(
            f"{directory}: no model yet: its training stopped before the end of the first "
            f"epoch (continue it with: lm train --resume {directory})"
        )
    config = read_config(directory)
    config_path = os.path.join(directory, "config.json")
    mc = model_config(config, config_path)
    vocab = load_vocab(directory, mc.n_vocab)
    weights_path = os.path.join(directory, "weights.npz")
    params = load_arrays(weights_path, expected_arrays(mc))  # names, shapes before inflating
    validate_params(params, mc, weights_path)
    return Network.build(mc, params), vocab, config


def load_vocab(directory, n_vocab: int) -> Vocab:
    """tokenizer.json of a model directory, which must hold ``n_vocab`` words."""
    tok_path = os.path.join(directory, "tokenizer.json")
    _require_file(tok_path)
    vocab = Vocab.load(tok_path)
    if vocab.size != n_vocab:
        raise ModelFileError(
            f"{tok_path}: vocabulary has {vocab.size} words but the weights have {n_vocab}"
        )
    return vocab


def pack_json(obj) -> Array:
    """A JSON document as a uint8 array, to travel inside an .npz without pickling."""
    return np.frombuffer(json.dumps(obj).encode("utf-8"), dtype=np.uint8)


def unpack_json(a: Array) -> dict:
    return json.loads(bytes(a.astype(np.uint8)).decode("utf-8"))


def is_model_dir(directory) -> bool:
    return os.path.isfile(os.path.join(directory, "config.json"))


# ----------------------------------------------------------------------------- resume.npz

RESUME_FORMAT = 2  # meta["format"]: bumped whenever the layout below changes


@dataclass
class Resume:
    """Everything ``resume.npz`` holds, the arrays under these names:

    param.<name>   the current weights theta (the best ones are in weights.npz)
    opt.<key>      the optimiser's state_dict (Adam: t, m.<name>, v.<name>; SGD: none)
    ema.<key>      the weight average's state_dict (n, <name>), with --ema only
    carry          (B, n_state) the state carried into the next window, once there is one
    meta           a JSON document (uint8): format, model and n_vocab (as config.json),
               train_config, vocab_config, progress, rng (the bit generator's state)
    """

    config: ModelConfig
    params: dict[str, Array]
    optimizer: dict[str, Array]
    average: dict[str, Array] | None
    carry: Array | None
    train_config: TrainConfig
    vocab_config: VocabConfig
    progress: Progress
    rng: np.random.Generator


def save_resume(path, r: Resume) -> None:
    """Write ``r`` to ``path`` atomically (one file, so that every part is of one moment)."""
    arrays = {f"param.{k}": v for k, v in r.params.items()}
    arrays.update({f"opt.{k}": v for k, v in r.optimizer.items()})
    if r.average is not None:
        arrays.update({f"ema.{k}": v for k, v in r.average.items()})
    if r.carry is not None:
        arrays["carry"] = r.carry
    meta = {
        "format": RESUME_FORMAT,
        "model": r.config.to_dict(),
        "n_vocab": r.config.n_vocab,
        "train_config": asdict(r.train_config),
        "vocab_config": asdict(r.vocab_config),
        "progress": asdict(r.progress),
        "rng": r.rng.bit_generator.state,
    }
    arrays["meta"] = pack_json(meta)
    save_arrays(path, arrays)


def load_resume(path) -> Resume:
    """Read and validate ``resume.npz``: every array present with the shape, dtype and range
    the model and the training config imply (weights finite, Adam's second moments >= 0, the
    carried state (B, n_state) for the saved batch size B, the counts of updates agreeing),
    every field of the meta document in range (batch size >= 1, learning rate finite and
    > 0, epoch >= 0, ...). A value no run can produce raises ModelFileError naming the file
    and the array or field, so a tampered or corrupt checkpoint never trains."""
    path = os.fspath(path)
    arrays = dict(load_arrays(path))
    meta = _resume_meta(arrays.pop("meta", None), path)
    mc = model_config(meta, path)
    tc = _section(TrainConfig, meta, "train_config", path)
    vc = _section(VocabConfig, meta, "vocab_config", path)
    progress = _section(Progress, meta, "progress", path, complete=True)
    rng = _generator(meta.get("rng"), path)
    groups = {"param": {}, "opt": {}, "ema": {}}
    carry = arrays.pop("carry", None)
    for key, a in arrays.items():
        group, _, name = key.partition(".")
        if group not in groups or not name:
            raise ModelFileError(f"{path}: unexpected array {key}")
        groups[group][name] = a
    params, opt, ema = groups["param"], groups["opt"], groups["ema"]
    validate_params(params, mc, path, prefix="param.")
    _check_optimizer(opt, tc.optimizer, progress.updates, mc, path)
    if tc.ema:
        _check_count(ema.pop("n", None), "ema.n", progress.updates, path)
        validate_params(ema, mc, path, prefix="ema.")
        ema["n"] = np.array(progress.updates, dtype=np.int64)
    elif ema:
        raise ModelFileError(f"{path}: unexpected arrays ema.* (the run has no --ema)")
    _check_carry(carry, Network.build(mc, params), tc.batch_size, progress.window, path)
    return Resume(mc, params, opt, ema if tc.ema else None, carry, tc, vc, progress, rng)


def _resume_meta(raw, path: str) -> dict:
    if raw is None:
        raise ModelFileError(f"{path}: missing arrays meta (not a training checkpoint)")
    try:
        meta = unpack_json(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ModelFileError(f"{path}: meta is not a valid JSON document ({e})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: meta is not a JSON object")
    version = meta.get("format")
    if not is_int(version) or version != RESUME_FORMAT:
        raise ModelFileError(
            f"{path}: checkpoint format {version!r} is not supported (this lm resumes format "
            f"{RESUME_FORMAT}); start the run again"
        )
    return meta


def _section(cls, meta: dict, name: str, path: str, complete: bool = False):
    if name not in meta:
        raise ModelFileError(f"{path}: meta has no {name}")
    try:
        return from_dict(cls, meta[name], complete)
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: {name}: {e}") from None


def _generator(state, path: str) -> np.random.Generator:
    rng = np.random.default_rng()
    try:
        rng.bit_generator.state = state
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise ModelFileError(f"{path}: rng is not a random generator's state ({e})") from None
    return rng


def _check_count(a, name: str, updates: int, path: str) -> None:
    """A saved update count: an integer scalar equal to progress.updates."""
    if a is None:
        raise ModelFileError(f"{path}: missing arrays {name}")
    if a.shape != () or a.dtype.kind not in "iu":
        raise ModelFileError(f"{path}: {name} is not an integer count (shape {a.shape})")
    if int(a) != updates:
        raise ModelFileError(f"{path}: {name} is {int(a)}, but progress.updates is {updates}")


def _check_optimizer(state: dict, name: str, updates: int, mc: ModelConfig, path: str) -> None:
    """SGD keeps nothing; Adam its step count t (= the updates so far) and, once it has taken
    a step, first and second moments m, v of the parameters' shapes, v >= 0."""
    if name == "sgd":
        if state:
            raise ModelFileError(f"{path}: unexpected arrays opt.* (SGD keeps no state)")
        return
    state = dict(state)
    _check_count(state.pop("t", None), "opt.t", updates, path)
    m = {k[2:]: v for k, v in state.items() if k.startswith("m.")}
    v = {k[2:]: a for k, a in state.items() if k.startswith("v.")}
    other = sorted(set(state) - {f"m.{k}" for k in m} - {f"v.{k}" for k in v})
    if other:
        raise ModelFileError(f"{path}: unexpected arrays {', '.join('opt.' + k for k in other)}")
    if updates == 0 and not m and not v:
        return
    validate_params(m, mc, path, prefix="opt.m.")
    validate_params(v, mc, path, prefix="opt.v.")
    for k, a in v.items():
        if (a < 0).any():
            raise ModelFileError(f"{path}: opt.v.{k} holds negative values (a second moment)")


def _check_carry(carry, net: Network, B: int, window: int, path: str) -> None:
    """The state carried into window ``window``: net.zero_state(B)'s shape and dtype, finite.
    Absent only before the first window of a run."""
    if carry is None:
        if window > 0:
            raise ModelFileError(f"{path}: missing arrays carry (progress.window is {window})")
        return
    # compare the batch dimension first: zero_state(B) of a tampered B could be huge
    if carry.ndim < 1 or carry.shape[0] != B:
        raise ModelFileError(
            f"{path}: carry has shape {carry.shape}, but train_config.batch_size is {B}"
        )
    expected = net.zero_state(B)
    if carry.shape != expected.shape:
        raise ModelFileError(
            f"{path}: carry has shape {carry.shape}, the model implies {expected.shape}"
        )
    if carry.dtype != expected.dtype:
        raise ModelFileError(f"{path}: carry has dtype {carry.dtype}, expected {expected.dtype}")
    if not np.isfinite(carry).all():
        raise ModelFileError(f"{path}: carry holds NaN or infinite values")


# ----------------------------------------------------------------------------- training data


def fingerprint(path) -> dict | None:
    """{"size": bytes, "blake2b": hex digest} of a regular file, read in blocks (memory does
    not grow with the file); None for anything else (stdin or a pipe cannot be read twice, so
    cannot be checked, and a file that is gone has no fingerprint)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # before opening: a FIFO's open blocks
            return None
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            digest = hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16))
    except OSError:
        return None
    return {"size": info.st_size, "blake2b": digest.hexdigest()}


def data_change(saved: dict | None, now: dict | None) -> str | None:
    """How a file changed between two fingerprints, or None when it did not (or when the
    saved one could not be taken: nothing to compare with)."""
    if saved is None or saved == now:
        return None
    if now is None:
        return "it is gone (or no longer a regular file)"
    if saved.get("size") != now["size"]:
        return f"its size changed from {saved.get('size')} to {now['size']} bytes"
    return "its contents changed (same size)"


# ----------------------------------------------------------------------------- one writer


class DirectoryLock:
    """An exclusive lock on a model directory: ``fcntl.flock`` on ``DIR/.lock``, which holds
    the holder's PID while it is held. Creates the directory if need be.

    The kernel drops a flock when its process dies, however it dies (``kill -9`` included), so
    the lock file a killed run leaves behind is stale by construction and the next run simply
    takes it. The lock file itself stays (removing it would let a run that opened it just
    before lock a file no one else sees), unless this lock created the directory and nothing
    else was written there: then ``release`` removes both, so a run that failed before writing
    anything leaves nothing behind.

    >>> lock = DirectoryLock("model")     # doctest: +SKIP
    >>> DirectoryLock("model")            # doctest: +SKIP
    LMError: model: in use by another lm train (PID 4242); wait for it to finish or stop it
    """

    NAME = ".lock"

    def __init__(self, directory):
        self.directory = os.fspath(directory)
        self.created = not os.path.isdir(self.directory)
        os.makedirs(self.directory, exist_ok=True)
        self.path = os.path.join(self.directory, self.NAME)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        self._file = os.fdopen(fd, "r+")
        try:  # whatever fails here (a held lock, an unreadable holder, a full disk) closes it
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._file.read().strip() or "unknown"
                raise LMError(
                    f"{self.directory}: in use by another lm train (PID {holder}); wait for it "
                    "to finish or stop it"
                ) from None
            self._file.truncate(0)
            self._file.write(f"{os.getpid()}\n")
            self._file.flush()
        except BaseException:
            self._file.close()
            raise

    @property
    def held(self) -> bool:
        return not self._file.closed

    def release(self) -> None:
        if not self.held:
            return
        try:
            if self.created and os.listdir(self.directory) == [self.NAME]:
                os.unlink(self.path)
                os.rmdir(self.directory)
            else:
                self._file.truncate(0)
        except OSError:
            pass
        self._file.close()  # closing the descriptor drops the flock


def clear_model_files(directory) -> None:
    """Remove what a previous run left in ``directory``: config.json first (after which the
    directory is no longer a model), then weights, tokenizer, resume.npz, log and plot, and
    temporary files. Only the holder of the directory's lock may call it."""
    names = ("config.json", "weights.npz", "tokenizer.json", "resume.npz", "log.jsonl")
    for name in (*names, "training.png"):
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
    remove_temp_files(directory)


__all__ = [
    "FORMAT_VERSION",
    "DirectoryLock",
    "Resume",
    "atomic_write",
    "clear_model_files",
    "data_change",
    "expected_arrays",
    "fingerprint",
    "load_arrays",
    "load_model",
    "load_resume",
    "load_vocab",
    "pack_json",
    "read_config",
    "remove_temp_files",
    "save_arrays",
    "save_json",
    "save_model",
    "save_resume",
    "save_tokenizer",
    "unpack_json",
    "validate_params",
]
