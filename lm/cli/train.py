"""``lm train``: train a language model on a text file (one sentence a line)."""

from __future__ import annotations

import json
import os
import sys

import click

from lm import activations, heads
from lm.checkpoint import is_model_dir
from lm.cli.common import handle_errors
from lm.errors import LMError
from lm.training import SCHEDULES, Interrupted, TrainConfig, Trainer, VocabConfig

POSITIVE = click.IntRange(min=1)


@click.command("train", short_help="Train a language model on a text file.")
@click.argument("train_file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--valid",
    "valid_file",
    type=click.Path(dir_okay=False),
    help="Validation text: perplexity after each epoch drives the schedule.",
)
@click.option("--out", "out", type=click.Path(file_okay=False), help="Model directory to write.")
@click.option(
    "--resume",
    "resume",
    type=click.Path(file_okay=False),
    help="Continue the interrupted run in this model directory.",
)
@click.option("--force", is_flag=True, help="Overwrite a model already in --out.")
@click.option(
    "--vocab-size",
    type=click.IntRange(min=4),
    help="Keep the N most frequent words (specials included).",
)
@click.option(
    "--min-count",
    type=POSITIVE,
    default=1,
    show_default=True,
    help="Keep words seen at least C times.",
)
@click.option("--lowercase", is_flag=True, help="Lowercase text before building the vocabulary.")
@click.option(
    "--input",
    "input_kind",
    type=click.Choice(["onehot", "embedding"]),
    default="onehot",
    show_default=True,
)
@click.option("--embed-dim", type=POSITIVE, default=200, show_default=True)
@click.option("--hidden", type=POSITIVE, default=200, show_default=True)
@click.option(
    "--output",
    "output",
    type=click.Choice(heads.NAMES),
    default="full",
    show_default=True,
    help="Output layer: full softmax, or class-factored (much faster at large vocabularies).",
)
@click.option(
    "--classes",
    "n_classes",
    type=POSITIVE,
    help="--output class: the number of word classes [default: about sqrt(vocabulary size)].",
)
@click.option(
    "--activation", type=click.Choice(activations.NAMES), default="tanh", show_default=True
)
@click.option("--alpha", type=float, default=0.01, show_default=True, help="Leaky ReLU slope.")
@click.option("--batch-size", type=POSITIVE, default=20, show_default=True)
@click.option("--bptt", type=POSITIVE, default=35, show_default=True, help="Window length T.")
@click.option("--truncate", type=click.IntRange(min=1), help="BPTT horizon K within a window.")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default="adam", show_default=True)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    help="Learning rate [default: 5e-3 adam, 1.0 sgd].",
)
@click.option(
    "--epochs",
    type=POSITIVE,
    default=TrainConfig.epochs,
    show_default=True,
    help="At most this many epochs.",
)
@click.option(
    "--min-improvement",
    type=click.FloatRange(min=1.0),
    default=TrainConfig.min_improvement,
    show_default=True,
    help="An epoch improving validation ppl by less than this factor is a plateau.",
)
@click.option(
    "--schedule",
    type=click.Choice(SCHEDULES),
    default=TrainConfig.schedule,
    show_default=True,
    help="mikolov: halve the rate every epoch after the first plateau, stop at the next; "
    "plateau: halve at each plateau, stop after --halvings.",
)
@click.option(
    "--halvings",
    type=click.IntRange(min=0),
    default=TrainConfig.halvings,
    show_default=True,
    help="plateau schedule: how many times the rate may be halved.",
)
@click.option(
    "--clip-norm",
    type=click.FloatRange(min=0),
    help="Global-norm clipping [default: 1.0 adam, 0.25 sgd; 0 = off].",
)
@click.option(
    "--clip-value",
    type=click.FloatRange(min=0, min_open=True),
    help="Element-wise gradient clipping to [-v, v].",
)
@click.option(
    "--ema",
    type=click.FloatRange(min=0, max=1, max_open=True),
    default=TrainConfig.ema,
    show_default=True,
    help="Keep, validate and save a moving average of the weights with this decay "
    "(e.g. 0.999); 0 = off.",
)
@click.option("--l2", type=click.FloatRange(min=0), default=TrainConfig.l2, show_default=True)
@click.option(
    "--dropout",
    type=click.FloatRange(min=0, max=1, max_open=True),
    default=TrainConfig.dropout,
    show_default=True,
    help="Dropout on the inputs and on the states fed to the softmax.",
)
@click.option(
    "--independent",
    is_flag=True,
    help="Reset the state at every sentence start (matches per-sentence scoring).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--checkpoint-minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
)
@click.option(
    "--max-minutes",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this much training time.",
)
@click.option("--on-nan", type=click.Choice(["stop", "skip"]), default="stop", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: a JSON summary.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@handle_errors
def command(
    train_file,
    valid_file,
    out,
    resume,
    force,
    vocab_size,
    min_count,
    lowercase,
    input_kind,
    embed_dim,
    hidden,
    output,
    n_classes,
    activation,
    alpha,
    batch_size,
    bptt,
    truncate,
    optimizer,
    lr,
    epochs,
    min_improvement,
    schedule,
    halvings,
    clip_norm,
    clip_value,
    ema,
    l2,
    dropout,
    independent,
    seed,
    checkpoint_minutes,
    max_minutes,
    on_nan,
    as_json,
    quiet,
):
    """Train a language model on TRAIN_FILE (one sentence a line) into --out DIR."""

    def log(msg):
        click.echo(msg, err=True)

    if resume:
        trainer = Trainer.resume(resume, show_progress=not quiet)
        log(f"resuming {resume} at epoch {trainer.state.epoch + 1}, window {trainer.state.window}")
    else:
        if not train_file or not out:
            raise click.UsageError("give TRAIN_FILE and --out DIR (or --resume DIR)")
        if activation == "step":
            raise click.BadParameter(
                "step cannot be trained: its derivative is zero almost everywhere, and gradient "
                "descent needs a derivative",
                param_hint="--activation",
            )
        if n_classes is not None and output != "class":
            raise click.UsageError("--classes is for the class-factored head: add --output class")
        if os.path.exists(out) and not os.path.isdir(out):
            raise LMError(f"{out}: exists and is not a directory")
        if is_model_dir(out) and not force:
            raise LMError(f"{out}: already holds a model; use --force to overwrite it")
        tc = TrainConfig(
            batch_size=batch_size,
            bptt=bptt,
            truncate=truncate,
            optimizer=optimizer,
            lr=lr,
            epochs=epochs,
            min_improvement=min_improvement,
            schedule=schedule,
            halvings=halvings,
            clip_norm=clip_norm,
            clip_value=clip_value,
            ema=ema,
            l2=l2,
            dropout=dropout,
            independent=independent,
            seed=seed,
            checkpoint_minutes=checkpoint_minutes,
            max_minutes=max_minutes,
            on_nan=on_nan,
        )
        mc_args = dict(
            hidden=hidden,
            input=input_kind,
            embed_dim=embed_dim if input_kind == "embedding" else 0,
            activation=activation,
            alpha=alpha,
            output=output,
        )
        if n_classes is not None:
            mc_args["n_classes"] = n_classes
        try:
            trainer = Trainer.start(
                out,
                train_file,
                valid_file,
                mc_args,
                tc,
                VocabConfig(vocab_size, min_count, lowercase),
                show_progress=not quiet,
            )
        except heads.ClassCountError as e:  # known once the vocabulary is built
            raise click.BadParameter(str(e), param_hint="--classes") from None
        mc = trainer.net.config
        classes = f" ({len(mc.classes) - 1} classes)" if mc.classes else ""
        log(f"vocabulary: {trainer.vocab.size} words; model: {mc}{classes}")
    try:
        summary = trainer.run(log=log)
    except Interrupted as e:
        click.echo(f"lm: {e}", err=True)
        sys.exit(130)
    log(f"best valid ppl {summary['valid_ppl']}; model in {summary['out']}")
    if as_json:
        click.echo(json.dumps(summary))
