"""`ltd encode`."""

from __future__ import annotations

import click

from ltd_bert.cli.base import CONTEXT, cli, load_light, resolve_model


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
    help="similarity: the best vectors to compare by cosine (the student's prediction plus "
    "the share of the teacher's mean chosen at training time); teacher: plus the whole mean, "
    "in the teacher's own space; centred: the prediction alone.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Run the model through PyTorch with this many threads.  [default: a float32 model "
    "runs in numpy (the same vectors, no torch import)]",
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
    threads,
    errors,
    quiet,
    onnx_path,
):
    """Sentence vectors for each line of SENTENCES (`-` for stdin), in input order.

    Empty lines give zero vectors. Inputs larger than memory stream into .h5 and .jsonl.
    """
    from ltd_bert.tasks.encode import encode_file

    path = resolve_model(ctx, model)
    if not onnx_path and not threads:
        student = load_light(path)  # float32 in numpy: no torch import, folded first layer
    else:
        from ltd_bert.student.model import Student
        from ltd_bert.teacher.model import set_threads

        set_threads(threads)
        onnx = {"runtime": "onnx", "onnx_path": onnx_path, "threads": threads} if onnx_path else {}
        student = Student.load(path, **onnx)
    n, out = encode_file(
        student, sentences, output, fmt, normalize, space, batch_size, errors, quiet
    )
    if output:
        click.echo(f"encode: {n} vectors of dim {student.dim} → {out}", err=True)
