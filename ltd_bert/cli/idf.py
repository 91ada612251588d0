"""`ltd idf build`, `ltd idf weights`."""

from __future__ import annotations

from pathlib import Path

import click

from ltd_bert.cli.base import CONTEXT, SEGMENTER_HELP, SEGMENTERS, cli, resolve_idf, workdir


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
@click.option(
    "--min-df",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Drop words seen in fewer lines than this.",
)
@click.option("--user-dict", type=click.Path(dir_okay=False), help="A jieba user dictionary.")
@click.option(
    "--segmenter",
    type=click.Choice(SEGMENTERS),
    default="jieba",
    show_default=True,
    help=SEGMENTER_HELP,
)
@click.option(
    "--errors",
    type=click.Choice(["strict", "replace", "skip"]),
    default="strict",
    show_default=True,
    help="What to do with lines that are not valid UTF-8.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def idf_build(ctx, corpus, output, workers, min_df, user_dict, segmenter, errors, quiet):
    """Segment CORPUS (files, `-` for stdin, .gz welcome; one line = one document) with
    jieba and write word IDF: idf(w) = ln((N+1)/(df(w)+1)); unseen words get the median."""
    from ltd_bert.common.progress import bar
    from ltd_bert.text.idf import build_idf

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
        stats = build_idf(
            list(corpus), out, workers, min_df, user_dict, errors, progress, segmenter
        )
    finally:
        pbar.close()
    wd.record(
        "idf",
        output=out,
        corpus=[c if c == "-" else Path(c) for c in corpus],
        documents=stats.documents,
    )
    rate = stats.lines / max(stats.seconds, 1e-9)
    extra = f", {stats.bad_lines} undecodable lines ({errors})" if stats.bad_lines else ""
    click.echo(
        f"idf: {stats.words} words from {stats.documents} documents ({stats.lines} lines"
        f"{extra}) in {stats.seconds:.1f} s ({rate:,.0f} lines/s) → {out}",
        err=True,
    )


@idf.command("weights", context_settings=CONTEXT)
@click.argument("sentences", nargs=-1, required=True)
@click.option(
    "--idf",
    "idf_path",
    help="IDF file, or `jieba`.  [default: WORKDIR/idf.tsv if it exists, else jieba]",
)
@click.option(
    "--eps",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Smoothing added to every content character's weight.",
)
@click.pass_context
@click.option(
    "--segmenter",
    type=click.Choice(SEGMENTERS),
    default="jieba",
    show_default=True,
    help=SEGMENTER_HELP,
)
def idf_weights(ctx, sentences, idf_path, eps, segmenter):
    """Show each character of SENTENCES with its weight (what the method does to them)."""
    from ltd_bert.text.idf import load_idf
    from ltd_bert.text.segment import segment
    from ltd_bert.text.weights import Weighter

    table = load_idf(resolve_idf(ctx, idf_path))
    weighter = Weighter(table, eps, segmenter=segmenter)
    for sentence in sentences:
        text, w = weighter(sentence)
        words = " / ".join(segment(text, kind=segmenter))
        click.echo(f"{text}    [{words}]  idf: {table.source}, eps {eps}")
        for ch, x in zip(text, w, strict=True):
            shown = "␠" if ch == " " else ch
            click.echo(f"  {shown}\t{x:.4f}\t{'█' * round(float(x) * 100)}")
