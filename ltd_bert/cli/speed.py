"""`ltd quantize` (int8 model folder) and `ltd export` (ONNX): speed and size."""

from __future__ import annotations

from pathlib import Path

import click


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def register(cli) -> None:
    """Add this module's commands to the `ltd` group."""
    from ltd_bert.cli.base import CONTEXT, resolve_model

    @cli.command("quantize", context_settings=CONTEXT)
    @click.argument("model_dir", required=False)
    @click.option(
        "-o",
        "--output",
        type=click.Path(file_okay=False),
        help="Output model folder.  [default: MODEL_DIR-int8, next to MODEL_DIR]",
    )
    @click.pass_context
    def quantize(ctx, model_dir, output):
        """Int8 copy of a model: about 4× smaller, vectors within ~1 % of float32.

        MODEL_DIR defaults to WORKDIR/model, else the shipped model. The copy is an ordinary
        model folder (`ltd encode -m OUT`, `Student.load(OUT)`): int8 weights with a scale
        per row, run with PyTorch dynamic quantisation.
        """
        from ltd_bert.student.quantize import quantize_model

        src = Path(resolve_model(ctx, model_dir))
        base = src.resolve()
        out = Path(output) if output else base.with_name(f"{base.name}-int8")
        r = quantize_model(src, out)
        click.echo(
            f"quantize: {src} ({_mb(r['bytes_float32'])}) → {out} ({_mb(r['bytes_int8'])}, "
            f"{r['ratio']:.1f}× smaller); mean cosine to float32 {r['cosine']:.4f} on 64 "
            "random character strings",
            err=True,
        )

    @cli.command("export", context_settings=CONTEXT)
    @click.argument("model_dir", required=False)
    @click.option(
        "--onnx",
        "onnx_path",
        type=click.Path(dir_okay=False),
        help="Output ONNX file.  [default: MODEL_DIR/model.onnx]",
    )
    @click.option(
        "--opset", type=click.IntRange(min=14), default=17, show_default=True, help="ONNX opset."
    )
    @click.pass_context
    def export(ctx, model_dir, onnx_path, opset):
        """Export a model to ONNX, checked against PyTorch on padded batches.

        MODEL_DIR (a float32 model folder) defaults to WORKDIR/model, else the shipped
        model. Inputs `ids` int64 (B, T), `lengths` int64 (B,), `weights` float32 (B, T);
        output `vectors` (B, D). `OnnxStudent.load(MODEL_DIR)` encodes text with it.
        """
        from ltd_bert.student.export import export_onnx

        src = resolve_model(ctx, model_dir)
        r = export_onnx(src, onnx_path, opset)
        click.echo(
            f"export: {src} → {r['output']} (opset {r['opset']}, {_mb(r['bytes'])}); "
            f"max |onnxruntime - PyTorch| {r['max_abs_diff']:.1e} on {r['checked']} padded "
            "random sentences",
            err=True,
        )
