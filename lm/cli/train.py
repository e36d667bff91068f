"""``lm train``: train a language model on a text file (one sentence a line)."""

from __future__ import annotations

import json
import sys

import click
from click.core import ParameterSource

from lm import activations
from lm.cli.common import handle_errors
from lm.trainconfig import RESUMABLE, FieldError
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
    """Train a language model on TRAIN_FILE (one sentence a line) into --out DIR.

    With --resume DIR, continue the run checkpointed there, as it was set up: only --epochs,
    --max-minutes, --checkpoint-minutes, --lr (the rate from the next update on) and --on-nan
    may be given (they are applied and recorded in log.jsonl), and --force to go on after
    the training or validation file changed. Any other option is a usage error.
    """

    def log(msg):
        click.echo(msg, err=True)

    ctx = click.get_current_context()
    given = [p for p in ctx.command.params if _given(ctx, p.name)]
    if resume:
        fixed = [p for p in given if p.name not in (*RESUMABLE, *_RESUME_FLAGS)]
        if fixed:
            names = ", ".join(_option_name(p) for p in fixed)
            raise click.UsageError(
                f"--resume continues the run as it was set up; these cannot change: {names} "
                "(--epochs, --max-minutes, --checkpoint-minutes, --lr and --on-nan can)"
            )
        changes = {p.name: ctx.params[p.name] for p in given if p.name in RESUMABLE}
        trainer = Trainer.resume(resume, show_progress=not quiet, changes=changes, force=force)
    else:
        if not train_file or not out:
            raise click.UsageError("give TRAIN_FILE and --out DIR (or --resume DIR)")
        if activation == "step":
            raise click.BadParameter(
                "step cannot be trained: its derivative is zero almost everywhere, and gradient "
                "descent needs a derivative",
                param_hint="--activation",
            )
        try:
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
            vc = VocabConfig(vocab_size, min_count, lowercase)
        except FieldError as e:
            raise click.BadParameter(str(e), param_hint="--" + e.field.replace("_", "-")) from None
        mc_args = dict(
            hidden=hidden,
            input=input_kind,
            embed_dim=embed_dim if input_kind == "embedding" else 0,
            activation=activation,
            alpha=alpha,
        )
        trainer = Trainer.start(
            out, train_file, valid_file, mc_args, tc, vc, show_progress=not quiet, force=force
        )
        log(f"vocabulary: {trainer.vocab.size:,} words; model: {_describe_model(trainer.net)}")
    try:
        summary = trainer.run(log=log)
    except Interrupted as e:
        click.echo(f"lm: {e}", err=True)
        sys.exit(130)
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, nothing more saved
        click.echo(f"lm: interrupted again: stopped at once; {trainer.kept_note()}", err=True)
        sys.exit(130)
    ppl = summary["valid_ppl"]
    if ppl is not None:
        best = f"{ppl:.2f}"
    else:
        best = "none (no --valid)" if trainer.progress.valid_path is None else "none"
    log(f"best valid ppl {best}; model in {summary['out']}")
    if as_json:
        click.echo(json.dumps(summary))


# options that may come with --resume besides RESUMABLE's
_RESUME_FLAGS = ("resume", "force", "quiet", "as_json")


def _given(ctx: click.Context, name: str) -> bool:
    """The user gave this parameter (on the command line or through the environment)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source not in (
        ParameterSource.DEFAULT,
        ParameterSource.DEFAULT_MAP,
    )


def _option_name(param: click.Parameter) -> str:
    return param.opts[0] if isinstance(param, click.Option) else param.human_readable_name


def _describe_model(net) -> str:
    """One line for a person: "one-hot input, 200 tanh units, 2,369,393 parameters"."""
    mc = net.config
    n_params = sum(int(p.size) for p in net.params.values())
    kind = "one-hot input" if mc.input == "onehot" else f"{mc.embed_dim}-dim embedding input"
    return f"{kind}, {mc.hidden} {mc.activation} units, {n_params:,} parameters"
