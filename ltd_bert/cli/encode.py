"""`ltd encode`."""

from __future__ import annotations

import click

from ltd_bert.cli.base import CONTEXT, SEGMENTERS, cli, load_light, resolve_model


class _Workers(click.ParamType):
    """`--workers`: a count ≥ 1 or `auto`."""

    name = "N|auto"

    def convert(self, value, param, ctx):
        if value == "auto" or isinstance(value, int) and value >= 1:
            return value
        try:
            n = int(value)
        except (TypeError, ValueError):
            n = 0
        if n < 1:
            self.fail(f"{value!r} is neither a count of at least 1 nor auto", param, ctx)
        return n


WORKERS = _Workers()
MAX_AUTO_WORKERS = 8


def auto_workers(sentences: str, one_process: bool) -> int:
    """One worker per core (at most MAX_AUTO_WORKERS) for a file of more than one block,
    else 1 (stdin, small files, --threads or --onnx)."""
    import os

    from ltd_bert.tasks.encode import more_than_one_block

    if one_process or sentences == "-":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (cores or 1) < 2 or not more_than_one_block(sentences):
        return 1
    return min(cores, MAX_AUTO_WORKERS)


@cli.command(context_settings=CONTEXT)
@click.argument("sentences", type=click.Path(allow_dash=True))
@click.option(
    "-m",
    "--model",
    help="Model folder or shipped model name.  [default: WORKDIR/model, else the shipped model]",
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
    help="similarity: the best vectors to compare by cosine (the student's prediction at the "
    "length its norm map estimates for the teacher's, plus the share of the teacher's mean "
    "chosen with it); teacher: the prediction plus the whole mean, in the teacher's own space; "
    "centred: the prediction alone.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    help="Texts per network batch (fewer for long ones): 512 runs zh-tiny's loop ~6 % faster "
    "than 256, zh-small's the same.",
)
@click.option(
    "--runtime",
    type=click.Choice(["auto", "numpy", "torch"]),
    default="auto",
    show_default=True,
    help="numpy: a float32 model without importing torch (starts ~2 s sooner); torch: "
    "PyTorch (much faster per sentence: both directions fused, bf16 products on AMX CPUs); "
    "auto: numpy for stdin and files of 64 KiB or less (4 MiB for a model with a small "
    "LSTM: zh-tiny), else torch.",
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "int8"]),
    default="auto",
    show_default=True,
    help="The torch runtime's recurrent products: bf16 is ~2× faster per thread where the "
    "CPU has AMX (cosine ~0.999999 to fp32); int8 ~1.1× on AVX2 (cosine ~0.99997); auto: "
    "bf16 there, else int8, else fp32, and fp32 for a small LSTM (zh-tiny). bf16 on a CPU "
    "without native bf16 (AMX or AVX512-BF16) is refused with a one-line error.",
)
@click.option(
    "--workers",
    type=WORKERS,
    default="auto",
    show_default=True,
    help="Processes of one thread each (segmentation included): for big inputs one per "
    "core is fastest (docs/speed.md). auto: one per core for an input of more than one "
    "block (8,192 lines or 262,144 characters; at most 8), else one.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="PyTorch threads of the one process (implies --runtime torch).",
)
@click.option(
    "--segmenter",
    type=click.Choice(SEGMENTERS),
    default=None,
    help="Cut words with this instead of the model's segmenter (jieba and fast give jieba's "
    "words, fast insisting on rjieba, which jieba uses wherever it is installed; rjieba is "
    "rjieba's own cut, ~1 line in 100 differs).  [default: the model's]",
)
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
    runtime,
    precision,
    workers,
    threads,
    segmenter,
    errors,
    quiet,
    onnx_path,
):
    """Sentence vectors for each line of SENTENCES (`-` for stdin), in input order.

    Empty lines give zero vectors. Inputs larger than memory stream into .h5 and .jsonl.
    """
    import os

    # numpy's BLAS in one thread (set before numpy is imported): its products here are one
    # step of one batch, too small to share, and the workers share the cores
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from ltd_bert.tasks.encode import Loader, auto_runtime, encode_file, load_parent

    path = resolve_model(ctx, model)
    if precision == "bf16":  # refused where not native, whichever runtime would run
        from ltd_bert.common.cpu import require_bf16

        require_bf16()
    if workers == "auto":
        workers = auto_workers(sentences, threads or onnx_path)
    if onnx_path and workers > 1:
        raise click.UsageError("--onnx runs in one process: drop --workers (use --threads)")
    if threads or onnx_path or (runtime == "auto" and precision != "auto"):
        runtime = "torch"  # what these options are for
    elif runtime == "auto":  # stdin and small files: numpy (the quickest start)
        runtime = auto_runtime(str(path), sentences, workers)
    loader = Loader(str(path), runtime if runtime == "numpy" else None, precision, segmenter)
    if workers > 1:
        # loaded once here for forked workers to share, else (spawned workers load their
        # own) only for the output's settings
        student = load_parent(loader) or load_light(path)
    elif onnx_path:
        from ltd_bert.student.model import Student
        from ltd_bert.teacher.model import set_threads

        set_threads(threads)
        student = Student.load(path, runtime="onnx", onnx_path=onnx_path, threads=threads)
        student.use_segmenter(segmenter)
    else:
        from ltd_bert.common.cpu import hold_heap

        hold_heap()
        if runtime == "torch":
            from ltd_bert.teacher.model import set_threads

            set_threads(threads)
        student = loader.load()  # numpy: float32 without torch, folded first layer
    n, out = encode_file(
        student,
        sentences,
        output,
        fmt,
        normalize,
        space,
        batch_size,
        errors,
        quiet,
        workers=workers,
        loader=loader,
    )
    if output:
        click.echo(f"encode: {n} vectors of dim {student.dim} → {out}", err=True)
