"""Loading is safe: nothing is ever unpickled, and a damaged model directory is refused with a
one-line ModelFileError naming the file and the problem.

test_cli_score.py already covers, through the CLI: a missing weights.npz, config.json or
tokenizer.json, truncated or tampered weights, NaN weights, a hidden size the weights do not
have, a tokenizer of another size and an unsupported format version. This file covers the
rest through ``lm.load``.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from lmfixtures import make_model, save_model_dir

import lm
from lm import checkpoint
from lm.errors import ModelFileError
from lm.model import ModelConfig, Network
from lm.tokenizer import Vocab

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "lm").rglob("*.py")) + sorted((ROOT / "corpora").rglob("*.py"))
PICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


# ----- no pickle anywhere -----


def _pickle_uses(path: Path, root: Path = ROOT) -> list[str]:
    """Every import of a pickling module, every np.load without allow_pickle=False and every
    allow_pickle that is not the constant False, in one source file."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [
                f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in PICKLERS
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLERS:
            found.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
            flag = {k.arg: k.value for k in node.keywords}.get("allow_pickle")
            safe = isinstance(flag, ast.Constant) and flag.value is False
            if owner in ("np", "numpy") and name == "load" and not safe:
                found.append(f"{where}: np.load without allow_pickle=False")
            elif flag is not None and not safe:
                found.append(f"{where}: allow_pickle={ast.unparse(flag)}")
            if name in ("read_pickle", "loads") and owner in PICKLERS | {"pd", "pandas"}:
                found.append(f"{where}: {owner}.{name}")
    return found


def test_sources_are_found():
    names = {p.name for p in SOURCES}
    assert {"checkpoint.py", "training.py", "scoring.py"} <= names


def test_no_pickle_in_lm_or_corpora():
    found = [use for path in SOURCES for use in _pickle_uses(path)]
    assert found == []


def test_the_grep_catches_pickle(tmp_path):
    """The checker itself finds what it is meant to find (and passes the safe call)."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nimport numpy as np\n"
        "a = np.load('x.npz')\nb = np.load('x.npz', allow_pickle=True)\n"
        "c = np.load('x.npz', allow_pickle=False)\nd = pickle.loads(b'')\n"
    )
    found = _pickle_uses(bad, root=tmp_path)
    assert [f.split(": ", 1)[1] for f in found] == [
        "import pickle",
        "np.load without allow_pickle=False",
        "np.load without allow_pickle=False",
        "pickle.loads",
    ]


def test_every_allow_pickle_in_the_text_is_false():
    for path in SOURCES:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "allow_pickle" in line:
                assert "allow_pickle=False" in line, f"{path}:{i}: {line.strip()}"


# ----- pickled payloads are refused, never run -----


class _Payload:
    """Unpickling this creates the file ``marker``: proof that something was unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_model_dir(tmp_path_factory.mktemp("good"), make_model())


@pytest.fixture
def copy(model_dir, tmp_path):
    """A fresh copy of the good model directory."""
    out = tmp_path / "model"
    shutil.copytree(model_dir, out)
    return out


def _write_payload(how: str, weights: Path, marker: str) -> None:
    if how == "object array inside the npz":
        with np.load(weights) as z:
            arrays = dict(z)
        arrays["b"] = np.array([_Payload(marker)], dtype=object)
        np.savez(weights, **arrays)
    elif how == "object .npy instead of an npz":
        with open(weights, "wb") as f:
            np.save(f, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    elif how == "a plain pickle file":
        weights.write_bytes(pickle.dumps({"W": _Payload(marker)}))
    else:
        raise ValueError(how)


@pytest.mark.parametrize(
    "how", ["object array inside the npz", "object .npy instead of an npz", "a plain pickle file"]
)
def test_pickled_weights_are_refused_and_never_unpickled(copy, tmp_path, how):
    marker = str(tmp_path / "unpickled")
    weights = copy / "weights.npz"
    _write_payload(how, weights, marker)
    with pytest.raises(ModelFileError) as e:
        lm.load(copy)
    assert str(e.value).startswith(f"{weights}: ")
    assert "pickle" in str(e.value)
    assert not os.path.exists(marker), "lm unpickled the payload"


def test_pickled_training_checkpoint_is_refused(copy, tmp_path):
    """resume.npz goes through the same loader."""
    marker = str(tmp_path / "unpickled")
    path = copy / "resume.npz"
    np.savez(path, meta=np.array([_Payload(marker)], dtype=object))
    with pytest.raises(ModelFileError, match="pickle"):
        checkpoint.load_arrays(path)
    assert not os.path.exists(marker)


# ----- every other validation failure: one line, naming the file -----


def _edit_json(name, edit):
    def run(d: Path):
        path = d / name
        obj = json.loads(path.read_text())
        edit(obj)
        path.write_text(json.dumps(obj))

    return run


def _edit_weights(edit):
    def run(d: Path):
        with np.load(d / "weights.npz") as z:
            arrays = dict(z)
        edit(arrays)
        np.savez(d / "weights.npz", **arrays)

    return run


def _write(name, data: bytes):
    def run(d: Path):
        (d / name).write_bytes(data)

    return run


def _replace_with_directory(name):
    def run(d: Path):
        os.remove(d / name)
        os.mkdir(d / name)

    return run


def _set_model(key, value):
    return _edit_json("config.json", lambda c: c["model"].__setitem__(key, value))


def _embedding_weights(d: Path):
    """Weights of an embedding model under a one-hot config."""
    other = make_model(input="embedding")
    np.savez(d / "weights.npz", **other.net.params)


def _spec(edit):
    return _edit_json("tokenizer.json", edit)


def _swap_specials(t):
    v = t["model"]["vocab"]
    v["<s>"], v["</s>"] = v["</s>"], v["<s>"]


def _bpe(t):
    t["model"] = {"type": "BPE", "vocab": t["model"]["vocab"], "merges": []}


def _npy(d: Path):
    with open(d / "weights.npz", "wb") as f:
        np.save(f, np.zeros(3, np.float32))


def _nested(d: Path):
    (d / "config.json").write_text("[" * 100_000 + "]" * 100_000)


# (damage, file it is in, words the message must hold)
CASES = [
    # weights.npz
    (_edit_weights(lambda a: a.pop("b")), "weights.npz", "missing arrays b"),
    (
        _edit_weights(lambda a: a.__setitem__("extra", np.zeros(3, np.float32))),
        "weights.npz",
        "unexpected arrays extra",
    ),
    (_embedding_weights, "weights.npz", "unexpected arrays E"),
    (
        _edit_weights(lambda a: a.__setitem__("U", a["U"].astype(np.float64))),
        "weights.npz",
        "U has dtype float64, expected float32",
    ),
    (
        _edit_weights(lambda a: a.__setitem__("c", a["c"].astype(np.int32))),
        "weights.npz",
        "c has dtype int32",
    ),
    (
        _edit_weights(lambda a: a.__setitem__("W", np.zeros((8, 9), np.float32))),
        "weights.npz",
        "W has shape (8, 9), config.json implies (8, 8)",
    ),
    (_edit_weights(lambda a: a.__setitem__("b", np.float32(0))), "weights.npz", "b has shape ()"),
    (
        _edit_weights(lambda a: a["V"].__setitem__((0, 0), np.inf)),
        "weights.npz",
        "V holds NaN or infinite values",
    ),
    (
        _edit_weights(lambda a: a["c"].__setitem__(0, -np.inf)),
        "weights.npz",
        "c holds NaN or infinite values",
    ),
    (_write("weights.npz", b""), "weights.npz", "truncated or corrupt"),
    (_write("weights.npz", b"PK\x03\x04 not really a zip"), "weights.npz", "truncated or corrupt"),
    (_npy, "weights.npz", "not an .npz archive"),
    (_replace_with_directory("weights.npz"), "weights.npz", "is a directory"),
    # config.json
    (_write("config.json", b"{not json"), "config.json", "not valid JSON"),
    (_write("config.json", b'{"format_version": "\xff"}'), "config.json", "not valid JSON"),
    (_nested, "config.json", "nested too deeply"),
    (_write("config.json", b"[1, 2]"), "config.json", "no format_version"),
    (
        _edit_json("config.json", lambda c: c.pop("format_version")),
        "config.json",
        "no format_version",
    ),
    (
        _edit_json("config.json", lambda c: c.__setitem__("format_version", "1")),
        "config.json",
        "format version '1' is not supported",
    ),
    (
        _edit_json("config.json", lambda c: c.__setitem__("format_version", 1.0)),
        "config.json",
        "format version 1.0 is not supported",
    ),
    (
        _edit_json("config.json", lambda c: c.__setitem__("format_version", True)),
        "config.json",
        "format version True is not supported",
    ),
    (_edit_json("config.json", lambda c: c.pop("model")), "config.json", "bad 'model' section"),
    (_set_model("depth", 3), "config.json", "bad 'model' section"),
    (_set_model("activation", "swish"), "config.json", "activation must be one of"),
    (_set_model("input", "bag-of-words"), "config.json", "input must be 'onehot' or 'embedding'"),
    (_set_model("hidden", 8.0), "config.json", "hidden must be an integer >= 1, got 8.0"),
    (_set_model("hidden", "8"), "config.json", "hidden must be an integer >= 1, got '8'"),
    (_set_model("alpha", None), "config.json", "alpha must be a finite number"),
    (
        _edit_json("config.json", lambda c: c.__setitem__("n_vocab", c["n_vocab"] + 1)),
        "config.json",
        "model.n_vocab 12 != n_vocab 13",
    ),
    (_replace_with_directory("config.json"), "config.json", "is a directory"),
    # tokenizer.json
    (_write("tokenizer.json", b"{"), "tokenizer.json", "not a valid tokenizer file"),
    (_write("tokenizer.json", b"\xff\xfe\x00"), "tokenizer.json", "not a valid tokenizer file"),
    (_spec(_swap_specials), "tokenizer.json", "special tokens must be <unk>=0, <s>=1, </s>=2"),
    (_spec(_bpe), "tokenizer.json", "model must be WordLevel"),
    (
        _spec(lambda t: t.__setitem__("pre_tokenizer", None)),
        "tokenizer.json",
        "pre_tokenizer must be WhitespaceSplit",
    ),
    (
        _spec(lambda t: t.__setitem__("normalizer", {"type": "NFKC"})),
        "tokenizer.json",
        "normalizer must be none or Lowercase",
    ),
    (
        _spec(lambda t: t["model"]["vocab"].__setitem__("cat", 40)),
        "tokenizer.json",
        "word ids must be 0..n-1",
    ),
    (
        _spec(lambda t: t["model"]["vocab"].__setitem__("cat", 3)),
        "tokenizer.json",
        "word ids must be 0..n-1",
    ),
    (_replace_with_directory("tokenizer.json"), "tokenizer.json", "is a directory"),
]


def _case_id(case) -> str:
    _, name, words = case
    return f"{name}: {words}"


@pytest.mark.parametrize("damage, name, words", CASES, ids=[_case_id(c) for c in CASES])
def test_damaged_model_directory_is_one_line_naming_the_file(copy, damage, name, words):
    damage(copy)
    with pytest.raises(ModelFileError) as e:
        lm.load(copy)
    message = str(e.value)
    assert message.startswith(f"{copy / name}: "), message
    assert words in message
    assert "\n" not in message


def test_model_directory_that_is_a_file(tmp_path):
    path = tmp_path / "model"
    path.write_text("not a directory")
    with pytest.raises(ModelFileError, match=f"^{path}: not a directory$"):
        lm.load(path)


def test_lowercasing_tokenizer_still_loads(tmp_path):
    """The tokenizer check accepts what Vocab.build writes, lowercasing included."""
    vocab = Vocab.build(["The Cat sat", "a DOG"], lowercase=True)
    net = Network.create(ModelConfig(n_vocab=vocab.size, hidden=4), np.random.default_rng(0))
    checkpoint.save_model(tmp_path / "m", net, vocab)
    assert lm.load(tmp_path / "m").vocab.encode("THE cat")[1].tolist() == [False, False]


def test_temporary_files_are_never_read(copy):
    """What a kill -9 mid-save leaves behind is ignored by the loader."""
    for name in ("weights.npz", "config.json", "tokenizer.json"):
        (copy / f".tmp-abcd1234-{name}").write_bytes(b"half a file")
    good = lm.load(copy)
    assert good.score("the cat sat") == pytest.approx(make_model().score("the cat sat"), abs=1e-9)


def _cell_model_dir(tmp_path, cell):
    d = tmp_path / cell
    save_model_dir(d, make_model(cell=cell))
    return d


@pytest.mark.parametrize(
    "cell, edit, words",
    [
        ("gru", lambda a: a.pop("bh"), "missing arrays bh"),
        ("gru", lambda a: a.__setitem__("W", np.zeros((8, 8), np.float32)), "W has shape (8, 8)"),
        ("lstm", lambda a: a.__setitem__("U", a["U"][:, :16]), "U has shape"),
        ("lstm", lambda a: a.__setitem__("bh", np.zeros(32, np.float32)), "unexpected arrays bh"),
    ],
)
def test_gated_cell_arrays_that_disagree_with_the_config(tmp_path, cell, edit, words):
    d = _cell_model_dir(tmp_path, cell)
    arrays = dict(np.load(d / "weights.npz"))
    edit(arrays)
    np.savez(d / "weights.npz", **arrays)
    with pytest.raises(ModelFileError) as e:
        lm.load(d)
    assert str(e.value).startswith(f"{d / 'weights.npz'}: ") and words in str(e.value)


def test_a_model_directory_without_a_cell_field_loads_as_elman(copy):
    """Directories written before cells existed: config.json's model has no "cell"."""
    config = json.loads((copy / "config.json").read_text())
    del config["model"]["cell"]
    (copy / "config.json").write_text(json.dumps(config))
    assert lm.load(copy).net.config.cell == "elman"


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gated_models_round_trip(tmp_path, cell):
    model = make_model(cell=cell)
    loaded = lm.load(_cell_model_dir(tmp_path, cell))
    assert loaded.net.config.cell == cell
    assert loaded.score("the cat sat") == model.score("the cat sat")


# ----- tied output weights (V = E^T): one array, E, in weights.npz -----


def _tied_model_dir(tmp_path):
    return Path(save_model_dir(tmp_path / "tied", make_model(cell="gru", tie=True)))


def test_a_tied_model_round_trips_without_a_v_array(tmp_path):
    d = _tied_model_dir(tmp_path)
    assert "V" not in np.load(d / "weights.npz")
    loaded = lm.load(d)
    assert loaded.net.config.tie and "V" not in loaded.net.params
    model = make_model(cell="gru", tie=True)
    assert loaded.score("the cat sat") == model.score("the cat sat")


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda a, c: a.__setitem__("V", a["E"].T.copy()), "unexpected arrays V"),
        (lambda a, c: c["model"].__setitem__("tie", False), "missing arrays V"),
        (lambda a, c: c["model"].__setitem__("tie", "yes"), "tie must be true or false"),
        (lambda a, c: c["model"].__setitem__("input", "onehot"), "needs input 'embedding'"),
    ],
)
def test_tied_arrays_or_config_that_disagree_are_one_line(tmp_path, edit, words):
    d = _tied_model_dir(tmp_path)
    arrays = dict(np.load(d / "weights.npz"))
    config = json.loads((d / "config.json").read_text())
    edit(arrays, config)
    np.savez(d / "weights.npz", **arrays)
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match=words) as e:
        lm.load(d)
    assert "\n" not in str(e.value) and str(d) in str(e.value)


def test_a_model_directory_without_a_tie_field_is_untied(copy):
    """Directories written before tying existed."""
    config = json.loads((copy / "config.json").read_text())
    del config["model"]["tie"]
    (copy / "config.json").write_text(json.dumps(config))
    assert lm.load(copy).net.config.tie is False


# ----- the class-factored head: its boundaries must describe the vocabulary -----


@pytest.fixture
def class_copy(tmp_path):
    """A fresh class-head model directory (3 classes over the 12 words)."""
    return Path(save_model_dir(tmp_path / "class", make_model(output="class", n_classes=3)))


CLASS_CASES = [
    (lambda b: [b[0], b[2], b[1], b[3]], "classes must be strictly increasing"),
    (lambda b: [b[0], b[1], b[1], b[3]], "classes must be strictly increasing"),
    (lambda b: b[:-1], "classes must run from 0 to n_vocab = 12"),
    (lambda b: [*b[:-1], 13], "classes must run from 0 to n_vocab = 12"),
    (lambda b: [1, *b[1:]], "classes must run from 0 to n_vocab = 12"),
    (lambda b: [0], "classes must be a list of at least 2 boundaries"),
    (lambda b: None, "classes must be a list of at least 2 boundaries"),
    (lambda b: "0 4 12", "classes must be a list of at least 2 boundaries"),
    (lambda b: [0, 4.5, 12], "classes must hold integers"),
]


@pytest.mark.parametrize("edit, words", CLASS_CASES)
def test_tampered_class_boundaries_are_one_line_naming_config_json(class_copy, edit, words):
    assert lm.load(class_copy).net.config.classes is not None  # the good one loads
    _set_model(
        "classes", edit(json.loads((class_copy / "config.json").read_text())["model"]["classes"])
    )(class_copy)
    with pytest.raises(ModelFileError) as e:
        lm.load(class_copy)
    message = str(e.value)
    assert message.startswith(f"{class_copy / 'config.json'}: bad 'model' section"), message
    assert words in message and "\n" not in message


def test_class_weights_that_do_not_match_the_boundaries_are_refused(class_copy):
    """Fewer classes in config.json than the weights have: Vc and cc have the wrong shape."""
    _set_model("classes", [0, 6, 12])(class_copy)
    with pytest.raises(
        ModelFileError, match=r"weights.npz: Vc has shape \(8, 3\), config.json implies \(8, 2\)"
    ):
        lm.load(class_copy)


def test_full_head_with_class_boundaries_is_refused(copy):
    _set_model("classes", [0, 12])(copy)
    with pytest.raises(ModelFileError, match="classes is only for output 'class'"):
        lm.load(copy)
