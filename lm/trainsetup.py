"""Setting up a training run: a new one, or one resumed from its checkpoint.

``new_run`` reads the training file, builds the vocabulary and the initial network;
``resumed_run`` rebuilds the run saved in ``resume.npz``, with the changes ``--resume`` allows
(``RESUMABLE``) and the data checked against the fingerprints in the checkpoint. Each returns
the keyword arguments of ``lm.training.Trainer`` but ``out``, ``lock`` and ``show_progress``:
``Trainer.start`` and ``Trainer.resume`` take the directory's lock (``lock``) first and call
them while they hold it.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from lm import checkpoint, memory, optim
from lm.data import encode_file, read_lines
from lm.errors import DataError, LMError, ModelFileError
from lm.model import ModelConfig, Network
from lm.tokenizer import Vocab, count_words
from lm.trainconfig import RESUMABLE, Progress, TrainConfig, VocabConfig, default_min_count


def lock(out: str) -> checkpoint.DirectoryLock:
    """Lock ``out`` (created if need be) for one writer; refused when it is not a directory."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise LMError(f"{out}: exists and is not a directory")
    return checkpoint.DirectoryLock(out)


def new_run(
    out: str,
    train_path,
    valid_path,
    mc_args: dict,
    tc: TrainConfig,
    vc: VocabConfig,
    force: bool,
) -> dict:
    """A new run's Trainer arguments: the vocabulary (and ``vc`` with its min_count), the
    encoded training stream, the initial network, optimiser, weight average and progress.

    ``out`` (locked by the caller) is refused when it holds a model, unless ``force``.
    """
    if checkpoint.is_model_dir(out) and not force:
        raise LMError(f"{out}: already holds a model; use --force to overwrite it")
    if vc.min_count is None:
        counts = count_words(read_lines(train_path), vc.lowercase)
        vc = replace(vc, min_count=default_min_count(counts))
    vocab = Vocab.build(read_lines(train_path), vc.vocab_size, vc.min_count, vc.lowercase)
    if vocab.size <= 3 and vc.min_count > 1 and Vocab.build(read_lines(train_path)).size > 3:
        raise DataError(
            f"{train_path}: no word occurs {vc.min_count} times or more (the default "
            "vocabulary keeps words seen twice); give --min-count 1 to keep every word"
        )
    if vocab.size <= 3:
        raise DataError(f"{train_path}: holds no words (empty or whitespace only)")
    stream = encode_file(train_path, vocab)
    tc = tc.resolved(n_tokens=len(stream) - 1)  # the dropout rule reads the size
    counts = np.bincount(stream[1:], minlength=vocab.size)  # the predicted tokens
    mc = ModelConfig.from_counts(vocab.size, counts, **mc_args)  # class boundaries
    memory.check_training(  # now that the vocabulary's size is known
        mc, tc.batch_size, tc.bptt, tc.optimizer, tc.ema,
        dropout=tc.dropout, independent=tc.independent,
    )  # fmt: skip
    rng = np.random.default_rng(tc.seed)
    net = Network.create(mc, rng, counts=counts)  # output bias: log unigram frequencies
    progress = Progress(
        lr=tc.lr,
        train_path=os.path.abspath(train_path),
        valid_path=os.path.abspath(valid_path) if valid_path else None,
        train_digest=checkpoint.fingerprint(train_path),
        valid_digest=checkpoint.fingerprint(valid_path) if valid_path else None,
    )
    return {
        "net": net,
        "vocab": vocab,
        "tc": tc,
        "vc": vc,
        "progress": progress,
        "optimizer": optim.make(tc.optimizer, tc.lr, tc.l2),
        "rng": rng,
        "average": optim.WeightAverage(tc.ema, net.params) if tc.ema else None,
        "stream": stream,
        "fresh": True,
    }


def resumed_run(out: str, changes: dict, force: bool) -> dict:
    """The Trainer arguments of the run checkpointed in ``out/resume.npz`` (``out`` locked by
    the caller), with ``changes`` applied (``apply_changes``) and the data checked
    (``check_data``); its notes say where it resumes and what changed."""
    path = os.path.join(out, "resume.npz")
    if not os.path.exists(path) and not checkpoint.is_model_dir(out):
        raise LMError(
            f"{out}: nothing to resume (the run stopped before its first checkpoint); "
            "start it again (no --force needed)"
        )
    r = checkpoint.load_resume(path)
    vocab = checkpoint.load_vocab(out, r.config.n_vocab)
    best = None
    if checkpoint.is_model_dir(out):  # after the first epoch: the best weights so far
        best_net, _, _ = checkpoint.load_model(out)
        if best_net.config != r.config:
            raise ModelFileError(f"{out}: config.json and resume.npz describe different models")
        best = best_net.params
    progress = r.progress
    tc, changed = apply_changes(r.train_config, progress, changes)
    notes = [resuming_line(out, progress, changed)]
    notes += check_data(progress, force)
    opt = optim.make(tc.optimizer, progress.lr, tc.l2)
    opt.load_state_dict(r.optimizer)
    average = None
    if r.average is not None:
        average = optim.WeightAverage.from_state_dict(tc.ema, r.average)
    return {
        "net": Network.build(r.config, r.params),
        "vocab": vocab,
        "tc": tc,
        "vc": r.vocab_config,
        "progress": progress,
        "optimizer": opt,
        "rng": r.rng,
        "average": average,
        "best_params": best,
        "carry": r.carry,
        "notes": tuple(notes),
    }


def apply_changes(tc: TrainConfig, progress: Progress, changes: dict):
    """Apply the resume-time ``changes`` ({field: value}, fields of RESUMABLE) to ``tc`` (a
    new TrainConfig) and ``progress`` (lr: the rate from the next update on); record them in
    ``progress.changes`` as {field: [old, new]}. Returns (tc, {field: (old, new)})."""
    unknown = sorted(set(changes) - set(RESUMABLE))
    if unknown:
        raise ValueError(f"{', '.join(unknown)} cannot change when a run is resumed")
    changed = {}
    for name, value in ((k, changes[k]) for k in RESUMABLE if k in changes):
        old = progress.lr if name == "lr" else getattr(tc, name)
        if value == old:
            continue
        if name == "lr":
            replace(tc, lr=value)  # validates the value
            progress.lr = value
        else:
            tc = replace(tc, **{name: value})
        changed[name] = (old, value)
        first = progress.changes.get(name, [old, value])[0]
        progress.changes[name] = [first, value]
    return tc, changed


def resuming_line(out: str, progress: Progress, changed: dict) -> str:
    """The first line of a resumed run: where it goes on from and what changed."""
    line = f"resuming {out} at epoch {progress.epoch + 1}, window {progress.window}"
    if changed:
        line += " with " + ", ".join(
            f"--{name.replace('_', '-')} {_option_value(new)} (was {_option_value(old)})"
            for name, (old, new) in changed.items()
        )
    return line


def _option_value(v) -> str:
    return "none" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def check_data(progress: Progress, force: bool) -> list[str]:
    """Compare the training and validation files with their fingerprints in the checkpoint.
    A change is refused (LMError), or with ``force`` accepted: returns the warnings to give
    and records the new fingerprints."""
    notes = []
    files = [
        ("training", "train_path", "train_digest"),
        ("validation", "valid_path", "valid_digest"),
    ]
    for what, path_field, digest_field in files:
        path = getattr(progress, path_field)
        if path is None:
            continue
        now = checkpoint.fingerprint(path)
        change = checkpoint.data_change(getattr(progress, digest_field), now)
        if change is None:
            continue
        if not force:
            raise LMError(
                f"{path}: the {what} file changed since the checkpoint ({change}); use --force "
                "to resume with it anyway (the run is then no longer bit for bit reproducible)"
            )
        notes.append(
            f"lm: warning: {path}: the {what} file changed since the checkpoint ({change}); "
            "resuming with it (--force): the run is no longer bit for bit reproducible"
        )
        setattr(progress, digest_field, now)
        progress.changes[f"{what}_file"] = change
    return notes
