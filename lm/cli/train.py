"""``lm train``: train a language model on a text file (one sentence a line)."""

from __future__ import annotations

import json
import os
import stat
import sys

import click
from click.core import ParameterSource

from lm import activations, cells, files, heads, inputs, memory, scoring
from lm.cli.common import SEED, FiniteFloat, echo_lines, handle_errors
from lm.model import ModelConfig
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
    help="Keep words seen at least C times [default: 2, so that <unk> is trained; 1 when the "
    "text already holds a literal <unk>].",
)
@click.option("--lowercase", is_flag=True, help="Lowercase text before building the vocabulary.")
@click.option(
    "--input",
    "input_kind",
    type=click.Choice(inputs.WORD_KINDS),
    default="embedding",
    show_default=True,
)
@click.option(
    "--cell",
    type=click.Choice(cells.NAMES),
    default="gru",
    show_default=True,
    help="Recurrent cell: elman (s = f(x U + s W + b)), gru or lstm (PyTorch's equations).",
)
@click.option(
    "--embed-dim",
    type=POSITIVE,
    help="Embedding size with --input embedding [default: --hidden].",
)
@click.option("--hidden", type=POSITIVE, default=200, show_default=True)
@click.option(
    "--layers",
    type=POSITIVE,
    default=1,
    show_default=True,
    help="Stacked recurrent layers of --hidden units each (dropout between them).",
)
@click.option(
    "--output",
    "output",
    type=click.Choice(heads.NAMES),
    help="Output layer: full softmax, or class-factored (much faster at large vocabularies) "
    f"[default: class above {heads.CLASS_ABOVE:,} words (or with --classes), else full].",
)
@click.option(
    "--classes",
    "n_classes",
    type=POSITIVE,
    help="--output class: the number of word classes [default: round(sqrt(vocabulary size) "
    "/ 8)].",
)
@click.option(
    "--tie/--no-tie",
    default=None,
    help="Use the input embedding, transposed, as the output weights (V = E^T) [default: tied "
    "when --input embedding and --embed-dim equals --hidden, as by default].",
)
@click.option(
    "--activation",
    type=click.Choice(activations.TRAINABLE),  # step has no useful derivative
    help="The elman cell's f [default: tanh]; gated cells have their own.",
)
@click.option(
    "--alpha", type=FiniteFloat(min=0), default=0.01, show_default=True, help="Leaky ReLU slope."
)
@click.option("--batch-size", type=POSITIVE, default=20, show_default=True)
@click.option("--bptt", type=POSITIVE, default=35, show_default=True, help="Window length T.")
@click.option("--truncate", type=click.IntRange(min=1), help="BPTT horizon K within a window.")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default="adam", show_default=True)
@click.option(
    "--lr",
    type=FiniteFloat(min=0, min_open=True),
    help="Learning rate [default: 3e-3 adam, 1.0 sgd].",
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
    type=FiniteFloat(min=1.0),
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
    type=FiniteFloat(min=0),
    help="Global-norm clipping [default: 1.0 adam, 0.25 sgd; 0 = off].",
)
@click.option(
    "--clip-value",
    type=FiniteFloat(min=0, min_open=True),
    help="Element-wise gradient clipping to [-v, v].",
)
@click.option(
    "--ema",
    type=FiniteFloat(min=0, max=1, max_open=True),
    default=TrainConfig.ema,
    show_default=True,
    help="Keep, validate and save a moving average of the weights with this decay "
    "(e.g. 0.999); 0 = off.",
)
@click.option("--l2", type=FiniteFloat(min=0), default=TrainConfig.l2, show_default=True)
@click.option(
    "--dropout",
    type=FiniteFloat(min=0, max=1, max_open=True),
    help="Dropout on the inputs and on the states fed to the softmax [default: by the size of "
    "the training text: 0.7 below 150k tokens, 0.5 below 600k, 0.3 below 3M, else 0.1].",
)
@click.option(
    "--independent/--carry-state",
    default=True,
    show_default=True,
    help="Reset the state at every sentence start, as lm score and lm perplexity do, so that "
    "validation equals lm perplexity; --carry-state carries it from sentence to sentence.",
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option(
    "--checkpoint-minutes",
    type=FiniteFloat(min=0, min_open=True),
    default=10.0,
    show_default=True,
)
@click.option(
    "--max-minutes",
    type=FiniteFloat(min=0, min_open=True),
    help="Stop after this much training time.",
)
@click.option("--on-nan", type=click.Choice(["stop", "skip"]), default="stop", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: a JSON summary.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or messages (errors only).")
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
    cell,
    embed_dim,
    hidden,
    layers,
    output,
    n_classes,
    tie,
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
        if not quiet or msg.startswith("lm: warning: "):  # -q: errors and warnings only
            click.echo(msg, err=True)

    show_progress = files.show_progress(not quiet)  # bars only on a terminal (tqdm's rule)
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
        trainer = Trainer.resume(resume, show_progress=show_progress, changes=changes, force=force)
    else:
        if not train_file or not out:
            raise click.UsageError("give TRAIN_FILE and --out DIR (or --resume DIR)")
        activation = _activation_for(cell, activation)
        if n_classes is not None and output == "full":
            raise click.UsageError("--classes is for the class-factored head, not --output full")
        check_rereadable(train_file, "TRAIN_FILE")
        if valid_file is not None:
            check_rereadable(valid_file, "--valid")
        embed_dim = (embed_dim or hidden) if input_kind == "embedding" else 0
        tie = _tie_for(tie, input_kind, embed_dim, hidden)
        mc_args = dict(
            hidden=hidden,
            layers=layers,
            input=input_kind,
            embed_dim=embed_dim,
            activation=activation,
            alpha=alpha,
            cell=cell,
            output=output,
            tie=tie,
        )
        check_memory(mc_args, batch_size, bptt, optimizer, ema, dropout, independent)
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
        if n_classes is not None:
            mc_args["n_classes"] = n_classes
        try:
            trainer = Trainer.start(
                out,
                train_file,
                valid_file,
                mc_args,
                tc,
                vc,
                show_progress=show_progress,
                force=force,
            )
        except heads.ClassCountError as e:  # known once the vocabulary is built
            raise click.BadParameter(str(e), param_hint="--classes") from None
    with trainer:  # holds the lock on the model directory: released however this ends
        if not resume:
            config = trainer.net.config
            log(f"vocabulary: {trainer.vocab.size} words; model: {describe_model(config)}")
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
        best = f"best valid ppl {ppl:.2f}"
    elif trainer.progress.valid_path is None:
        best = "no validation file"
    else:
        best = "best valid ppl none (no epoch had a finite one)"
    if trainer.progress.valid_path is not None:
        valid = trainer.progress.valid_path
        log(scoring.oov_rate(trainer.vocab, valid).describe(os.path.basename(valid)))
    log(f"{best}; model in {summary['out']}")
    if as_json:
        echo_lines(json.dumps(summary))


# options that may come with --resume besides RESUMABLE's: they change no number
_RESUME_FLAGS = ("resume", "force", "quiet", "as_json", "debug", "threads", "max_line_bytes")


def _given(ctx: click.Context, name: str) -> bool:
    """The user gave this parameter (on the command line or through the environment)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source not in (
        ParameterSource.DEFAULT,
        ParameterSource.DEFAULT_MAP,
    )


def _option_name(param: click.Parameter) -> str:
    return param.opts[0] if isinstance(param, click.Option) else param.human_readable_name


def check_rereadable(path: str, what: str) -> None:
    """Usage error unless ``path`` is a regular file or does not exist (then reading it says
    "no such file"): training reads its files more than once (the vocabulary, the ids, each
    epoch's validation, and again on --resume), which stdin, a pipe or a device cannot do."""
    if path != "-" and not os.path.exists(path):
        return
    if files.is_regular_file(path):
        return
    if path == "-":
        kind = "standard input"
    else:
        mode = os.stat(path).st_mode
        kind = "a pipe" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) else "special"
    raise click.BadParameter(
        f"{path} is {kind}, not a regular file: lm train reads its data more than once (and "
        f"again on --resume), so save it to a file first (it may be gzip-compressed)",
        param_hint=what,
    )


def check_memory(
    mc_args: dict,
    batch_size: int,
    bptt: int,
    optimizer: str,
    ema: float,
    dropout: float | None,
    independent: bool,
) -> None:
    """MemoryLimitError before any data is read when the model (``mc_args``, the fields of
    its ModelConfig but the vocabulary's), batch and window cannot fit in memory at any
    vocabulary size: the estimate with the 4 special tokens and the full head, a lower bound
    of every vocabulary's with either head (training checks again with the real one)."""
    config = ModelConfig(n_vocab=4, **{**mc_args, "output": "full"})
    memory.check_training(
        config,
        batch_size,
        bptt,
        optimizer,
        ema,
        dropout=dropout,
        independent=independent,
        vocab_known=False,
    )


def describe_model(mc) -> str:
    """'one-hot input, 200 tanh units, 10000-word softmax', 'embedding 200 input, 200 gru
    units, ...', 'embedding 650 input, 2 layers of 650 lstm units, ...' (for the log, not
    Python's repr)."""
    kind = f"embedding {mc.embed_dim}" if mc.input == "embedding" else "one-hot"
    units = f"{mc.hidden} {mc.activation}" if mc.cell == "elman" else f"{mc.hidden} {mc.cell}"
    if mc.layers > 1:
        units = f"{mc.layers} layers of {units}"
    head = f"class softmax ({len(mc.classes) - 1} classes)" if mc.classes else "softmax"
    tied = ", tied to the embedding" if mc.tie else ""
    return f"{kind} input, {units} units, {mc.n_vocab}-word {head}{tied}"


def _tie_for(tie: bool | None, input_kind: str, embed_dim: int, hidden: int) -> bool:
    """Whether to tie the output weights to the embedding: --tie/--no-tie, else whenever the
    shapes allow (an embedding input as wide as the hidden layer)."""
    can = input_kind == "embedding" and embed_dim == hidden
    if tie and not can:
        raise click.UsageError(
            "--tie needs --input embedding with --embed-dim equal to --hidden "
            f"(got --input {input_kind}" + (f", --embed-dim {embed_dim}, --hidden {hidden})"
            if input_kind == "embedding" else ")")
        )
    return can if tie is None else tie


def _activation_for(cell: str, activation: str | None) -> str:
    """The activation to build ``cell`` with: --activation is the elman cell's alone."""
    if activation is not None and cell != "elman":
        raise click.BadParameter(
            f"the {cell} cell has fixed nonlinearities; --activation applies to --cell elman only",
            param_hint="--activation",
        )
    return activation or "tanh"
