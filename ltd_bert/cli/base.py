"""The root `ltd` group and what every command shares: errors become one clean line, the
working directory, the default model and IDF file."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

import click

from ltd_bert.cli.workdir import Workdir
from ltd_bert.common.errors import LtdError
from ltd_bert.common.version import __version__
from ltd_bert.text.segment import SEGMENTERS  # noqa: F401  (the --segmenter choices)

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


#: `--segmenter`'s help where a file records the segmenter it was made with
SEGMENTER_HELP = (
    "jieba, or fast, which insists on rjieba: both cut jieba's words (jieba runs through "
    "rjieba wherever it is installed; no line of 400,000 differed: docs/speed.md); rjieba: "
    "rjieba's own cut, faster, ~1 line in 100 cut differently (runs such as 24-25 kept whole)."
)


class LtdGroup(click.Group):
    """Turns library errors, OS errors and interrupts into one line and an exit code."""

    def invoke(self, ctx: click.Context):
        debug = ctx.params.get("debug") or os.environ.get("LTD_DEBUG")
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except LtdError as exc:
            if debug:
                raise
            _fail(str(exc))
        except BrokenPipeError:  # `ltd encode ... | head`: stop quietly, like other tools
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
            sys.exit(141)
        except KeyboardInterrupt:
            if debug:
                raise
            _fail("interrupted; partial output was not kept under its final name", code=130)
        except OSError as exc:
            if debug:
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{where}{exc.strerror or exc}")


def _fail(message: str, code: int = 1):
    click.echo(f"Error: {one_line(message)}", err=True)
    sys.exit(code)


def one_line(message: str) -> str:
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


class _WarningLines(logging.Handler):
    """The library's warnings (e.g. undecodable lines let through) as `Warning: ...` lines."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"Warning: {one_line(record.getMessage())}", err=True)


def _show_warnings() -> None:
    logger = logging.getLogger("ltd_bert")
    if not any(isinstance(h, _WarningLines) for h in logger.handlers):
        logger.addHandler(_WarningLines(logging.WARNING))


def workdir(ctx: click.Context) -> Workdir:
    return ctx.find_root().obj


@click.group(cls=LtdGroup, context_settings=CONTEXT)
@click.option(
    "--workdir",
    "workdir_",
    envvar="LTD_WORKDIR",
    type=click.Path(file_okay=False),
    default="ltd_work",
    show_default=True,
    help="Working directory of the run (idf.tsv, teacher.h5, model/, run.json). "
    "Also read from LTD_WORKDIR.",
)
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(__version__, "-V", "--version", prog_name="ltd")
@click.pass_context
def cli(ctx: click.Context, workdir_: str, debug: bool):
    """Distil a BERT teacher into a tiny, CPU-fast BiLSTM sentence encoder (LTD-BERT).

    \b
    The pipeline, each step reading the previous one's output from the working directory:
      ltd idf build corpus.txt     word IDF over a jieba-segmented corpus  → idf.tsv
      ltd teacher-embed            IDF-weighted teacher sentence vectors   → teacher.h5
      ltd train                    fit the BiLSTM student to those vectors → model/
      ltd encode sentences.txt     sentence vectors from the student
    """
    ctx.obj = Workdir(workdir_)
    _sigterm_as_interrupt()
    _show_warnings()


def _sigterm_as_interrupt() -> None:
    """SIGTERM unwinds like Ctrl-C, so temporary outputs are cleaned up, never renamed."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    with contextlib.suppress(ValueError):  # not the main thread (e.g. a test's worker)
        signal.signal(signal.SIGTERM, handler)


def resolve_idf(ctx: click.Context, idf_path: str | None) -> str:
    """An explicit --idf, else the workdir's idf.tsv, else jieba's built-in table."""
    if idf_path:
        return idf_path
    info = workdir(ctx).get("idf")
    if info and Path(info["output"]).exists():
        return info["output"]
    default = workdir(ctx).file("idf")
    return str(default) if default.exists() else "jieba"


def resolve_model(ctx: click.Context, model: str | None) -> str:
    """An explicit -m (a path, or the name of a shipped model: `-m zh-small`), else the
    workdir's model/, else the shipped default model."""
    if model:
        from ltd_bert.models import model_path

        return str(model_path(model))
    wd = workdir(ctx)
    info = wd.get("model")
    if info and Path(info["output"]).is_dir():
        return info["output"]
    if wd.file("model").is_dir():
        return str(wd.file("model"))
    from ltd_bert.models import default_model_dir

    shipped = default_model_dir()
    if shipped is not None:
        return str(shipped)
    return wd.require("model")


# --- eval -------------------------------------------------------------------------------
class DefaultGroup(LtdGroup):
    """A group whose unknown first argument goes to a default subcommand."""

    default_command = "pairs"

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


# --- the torch-free start --------------------------------------------------------------------
def load_light(path: str):
    """The model at `path` without importing torch when it is a float32 folder
    (`LightStudent`: the same vectors to 1e-6, ~2 s sooner, and its folded first layer
    encodes faster than nn.LSTM: docs/speed.md), else `Student.load(path)`."""
    from ltd_bert.tasks.encode import Loader

    return Loader(str(path), "numpy").load()


#: `student.config.PAIR_LOSSES`, without importing torch at start-up (a test checks they agree)
PAIR_LOSSES = ("none", "mse", "corr", "list")


def pair_options(help: str, default: str = "none", k: int = 12):
    """`--pair-loss` (its help `help`, its default `default`) and the settings of the relational
    term (`--pair-k` defaults to `k`), of `ltd train` and `ltd adapt` (student/pairs.py,
    `TrainConfig.pair_*`)."""
    options = [
        click.option(
            "--pair-loss",
            type=click.Choice(PAIR_LOSSES),
            default=default,
            show_default=True,
            help=help,
        ),
        click.option(
            "--pair-weight",
            type=click.FloatRange(min=0),
            default=1.0,
            show_default=True,
            help="Weight of the relational term.",
        ),
        click.option(
            "--pair-batch",
            type=click.IntRange(min=4),
            default=128,
            show_default=True,
            help="Rows of each step's pair batch (groups of --pair-group).",
        ),
        click.option(
            "--pair-group",
            type=click.IntRange(min=2),
            default=4,
            show_default=True,
            help="A text and this many minus one of its mined neighbours per group.",
        ),
        click.option(
            "--pair-k",
            type=click.IntRange(min=1),
            default=k,
            show_default=True,
            help="Neighbours mined per text (of its own length class; 4 more of the other "
            "class), among which each group's are drawn: more reach pairs less near.",
        ),
    ]

    def apply(f):
        for option in reversed(options):
            f = option(f)
        return f

    return apply
