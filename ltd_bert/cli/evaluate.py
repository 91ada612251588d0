"""`ltd eval [pairs]`, `ltd eval fidelity`."""

from __future__ import annotations

import json

import click

from ltd_bert.cli.base import CONTEXT, DefaultGroup, cli, resolve_model, workdir


@cli.group("eval", cls=DefaultGroup, context_settings=CONTEXT)
def eval_():
    """Evaluate: `ltd eval PAIRS... -m MODEL` (STS Spearman), `ltd eval fidelity`."""


@eval_.command("pairs", context_settings=CONTEXT)
@click.argument("pair_files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-m",
    "--model",
    help="Model folder or shipped model name.  [default: WORKDIR/model, else shipped]",
)
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
    from ltd_bert.tasks.evaluate import evaluate

    model_dir = None if no_student else resolve_model(ctx, model)
    result = evaluate(list(pair_files), model_dir, teacher, baselines, max_pairs, errors=errors)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    click.echo(format_table(result))


def _norm(kept: bool) -> str:
    return "norm map" if kept else "own lengths"


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
@click.option("-m", "--model", help="Model folder or shipped model name.  [default: WORKDIR/model]")
@click.option(
    "--calibrate",
    is_flag=True,
    help="Write the norm map, whitening and share of the mean these rows choose into the model "
    "folder (what `ltd train` does at its end; for models made before it did).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def eval_fidelity(ctx, data, model, calibrate, as_json):
    """Mean cosine between student and teacher vectors on the teacher file's validation part
    (centred: the teacher's mean removed from both, the figure that matters), and how well
    the similarity vectors order neighbour pairs like the teacher (Spearman × 100) at the
    model's norm map, whitening and share of the mean, and at the best ones."""
    from ltd_bert.tasks.evaluate import fidelity

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
            f"{_norm(result['norm_map'])}, whitening {result['whiten']:g} and mean scale "
            f"{result['mean_scale']:g}, {result['best_pair_spearman']:.2f} at "
            f"{_norm(result['best_norm_map'])}, {result['best_whiten']:g} and "
            f"{result['best_mean_scale']:g}" + (f" (written to {model_dir})" if calibrate else "")
        )
