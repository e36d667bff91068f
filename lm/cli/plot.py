"""``lm plot``: figures that need no trained model."""

from __future__ import annotations

import click

from lm.cli.common import echo_lines, handle_errors


@click.group("plot", short_help="Draw figures as PNG files (activation functions).")
def command() -> None:
    """Draw figures as PNG files."""


@command.command("activations")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, writable=True),
    help="Directory for the PNGs (created if missing).",
)
@handle_errors
def activations_command(out_dir: str) -> None:
    """One PNG per activation (step, sigmoid, tanh, relu, leaky_relu) with its derivative.

    Leaky ReLU is drawn with alpha = 0.3 so that its slope is visible.
    """
    from lm import plots

    echo_lines("\n".join(str(path) for path in plots.activation_plots(out_dir)))
