"""The `ltd` command: thin click commands over the library; errors become one clean line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ltd_bert import __version__
from ltd_bert.errors import LtdError
from ltd_bert.workdir import Workdir

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


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
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


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


# --- idf ------------------------------------------------------------------------------


@cli.group(context_settings=CONTEXT)
def idf():
    """Word IDF tables and the character weights they give."""


@idf.command("build", context_settings=CONTEXT)
@click.argument("corpus", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="[default: WORKDIR/idf.tsv]")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Segmentation processes.  [default: all cores]",
)
@click.option("--min-df", type=click.IntRange(min=1), default=1, show_default=True,
              help="Drop words seen in fewer lines than this.")
@click.option("--user-dict", type=click.Path(dir_okay=False), help="A jieba user dictionary.")
@click.option("--errors", type=click.Choice(["strict", "replace", "skip"]), default="strict",
              show_default=True, help="What to do with lines that are not valid UTF-8.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def idf_build(ctx, corpus, output, workers, min_df, user_dict, errors, quiet):
    """Segment CORPUS (files, `-` for stdin, .gz welcome; one line = one document) with
    jieba and write word IDF: idf(w) = ln((N+1)/(df(w)+1)); unseen words get the median."""
    from ltd_bert.idf import build_idf
    from ltd_bert.progress import bar

    wd = workdir(ctx)
    out = Path(output) if output else wd.ensure() / "idf.tsv"
    pbar = bar(unit="B", unit_scale=True, desc="idf build", quiet=quiet)

    def progress(reader):
        if reader.total_bytes and pbar.total is None:
            pbar.total = reader.total_bytes
        pbar.n = reader.bytes_read
        pbar.set_postfix(lines=reader.lines_read, refresh=False)
        pbar.refresh()

    try:
        stats = build_idf(list(corpus), out, workers, min_df, user_dict, errors, progress)
    finally:
        pbar.close()
    wd.record("idf", output=out, corpus=[c if c == "-" else Path(c) for c in corpus],
              documents=stats.documents)
    rate = stats.lines / max(stats.seconds, 1e-9)
    extra = f", {stats.bad_lines} undecodable lines ({errors})" if stats.bad_lines else ""
    click.echo(
        f"idf: {stats.words} words from {stats.documents} documents ({stats.lines} lines"
        f"{extra}) in {stats.seconds:.1f} s ({rate:,.0f} lines/s) → {out}",
        err=True,
    )


@idf.command("weights", context_settings=CONTEXT)
@click.argument("sentences", nargs=-1, required=True)
@click.option("--idf", "idf_path", help="IDF file, or `jieba`.  [default: WORKDIR/idf.tsv if "
              "it exists, else jieba]")
@click.option("--eps", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Smoothing added to every content character's weight.")
@click.pass_context
def idf_weights(ctx, sentences, idf_path, eps):
    """Show each character of SENTENCES with its weight (what the method does to them)."""
    from ltd_bert.idf import load_idf
    from ltd_bert.weights import Weighter, segment

    table = load_idf(resolve_idf(ctx, idf_path))
    weighter = Weighter(table, eps)
    for sentence in sentences:
        text, w = weighter(sentence)
        click.echo(f"{text}    [{' / '.join(segment(text))}]  idf: {table.source}, eps {eps}")
        for ch, x in zip(text, w, strict=True):
            shown = "␠" if ch == " " else ch
            click.echo(f"  {shown}\t{x:.4f}\t{'█' * round(float(x) * 100)}")


def resolve_idf(ctx: click.Context, idf_path: str | None) -> str:
    """An explicit --idf, else the workdir's idf.tsv, else jieba's built-in table."""
    if idf_path:
        return idf_path
    info = workdir(ctx).get("idf")
    if info and Path(info["output"]).exists():
        return info["output"]
    default = workdir(ctx).file("idf")
    return str(default) if default.exists() else "jieba"
