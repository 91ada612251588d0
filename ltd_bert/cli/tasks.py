"""Commands that put the vectors to work: similarity, index, search, cluster, finetune, predict,
plot, serve. Thin glue over `ltd_bert.tasks.search`, `ltd_bert.tasks.cluster`,
`ltd_bert.tasks.finetune`, `ltd_bert.tasks.plot` and `ltd_bert.tasks.serve`; registered on the `ltd`
group by `register(cli)`."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import click

MODEL_HELP = "Model folder or shipped model name.  [default: WORKDIR/model, else the shipped model]"
ERRORS = click.Choice(["strict", "replace", "skip"])
ERRORS_HELP = "Undecodable input lines: stop with an error, replace bad bytes, or skip them."


@contextlib.contextmanager
def text_output(output: str | None):
    """stdout for None or `-`; otherwise a temporary file renamed to `output` on success."""
    if not output or output == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    from ltd_bert.common.textio import output_tempfile

    out = Path(output)
    fd, tmp = output_tempfile(out)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def one_line(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ").replace("\r", " ")


def register(cli) -> None:
    """Add this module's commands to the `ltd` group."""
    from ltd_bert.cli.base import CONTEXT, load_light, resolve_model

    def load_student(ctx, model, threads=None):
        from ltd_bert.student.model import Student

        if threads:
            import torch

            torch.set_num_threads(threads)
        path = resolve_model(ctx, model)
        return path, Student.load(path)

    # --- similarity -------------------------------------------------------------------

    @cli.command(context_settings=CONTEXT)
    @click.argument("sentences", nargs=-1)
    @click.option(
        "--pairs",
        type=click.Path(dir_okay=False, allow_dash=True),
        help="Score every pair of this file: `s1<TAB>s2[<TAB>label]` lines, or JSON lines "
        "with sentence1, sentence2 and an optional label (`-` for stdin).",
    )
    @click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, allow_dash=True),
        help="With --pairs: write the scores here.  [default: stdout]",
    )
    @click.option("-m", "--model", help=MODEL_HELP)
    @click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
    @click.option("--errors", type=ERRORS, default="strict", show_default=True, help=ERRORS_HELP)
    @click.pass_context
    def similarity(ctx, sentences, pairs, output, model, batch_size, errors):
        """Cosine similarity of two sentences' vectors: `ltd similarity "句子一" "句子二"`.

        With --pairs FILE, one score per line of the file (blank lines skipped), in order;
        when every pair has a label, the Spearman × 100 against the labels goes to stderr.
        """
        if pairs is None and len(sentences) != 2:
            raise click.UsageError("give two sentences, or --pairs FILE")
        if pairs is not None and sentences:
            raise click.UsageError("give either two sentences or --pairs FILE, not both")
        if output and pairs is None:
            raise click.UsageError("-o goes with --pairs")
        from ltd_bert.tasks.search import pair_scores
        from ltd_bert.tasks.search import similarity as cosine

        if pairs is None:
            click.echo(f"{cosine(load_light(resolve_model(ctx, model)), *sentences):.4f}")
            return
        _, student = load_student(ctx, model)
        scores, labels = [], []
        with text_output(output) as fh:
            for pair, score in pair_scores(student, pairs, batch_size, errors=errors):
                fh.write(f"{score:.6f}\n")
                scores.append(score)
                labels.append(pair.label)
        note = f"similarity: {len(scores)} pairs"
        if scores and None not in labels:
            from ltd_bert.common.stats import spearman

            rho = 100 * spearman(scores, labels)
            note += f"; Spearman × 100 against the labels: {rho:.2f}"
        if output and output != "-":
            note += f" → {output}"
        click.echo(note, err=True)

    # --- index / search ---------------------------------------------------------------

    @cli.command("index", context_settings=CONTEXT)
    @click.argument("sentences", type=click.Path(dir_okay=False, allow_dash=True))
    @click.option(
        "-o",
        "--output",
        required=True,
        type=click.Path(dir_okay=False),
        help="The index file (.h5).",
    )
    @click.option("-m", "--model", help=MODEL_HELP)
    @click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
    @click.option("--threads", type=click.IntRange(min=1), default=None)
    @click.option("--errors", type=ERRORS, default="strict", show_default=True, help=ERRORS_HELP)
    @click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
    @click.pass_context
    def index_cmd(ctx, sentences, output, model, batch_size, threads, errors, quiet):
        """Build a search index of SENTENCES (one per line, `-` for stdin): unit vectors in
        an HDF5 file that also records the model, for `ltd search`.

        Input is streamed in blocks; empty lines are not indexed (each row keeps its input
        line number). The file is written under a temporary name and renamed when complete.
        """
        from ltd_bert.common.progress import bar
        from ltd_bert.common.textio import count_lines
        from ltd_bert.tasks.search import build_index, model_info

        path, student = load_student(ctx, model, threads)
        total = count_lines([sentences]) if os.path.isfile(sentences) else None
        pbar = bar(total=total, unit="sent", desc="index", quiet=quiet)
        try:
            n = build_index(
                student,
                model_info(path, student),
                sentences,
                output,
                batch_size,
                errors,
                pbar.update,
            )
        finally:
            pbar.close()
        click.echo(f"index: {n} sentences, dim {student.dim}, model {path} → {output}", err=True)

    @cli.command(context_settings=CONTEXT)
    @click.argument("index", type=click.Path(dir_okay=False))
    @click.argument("query", required=False)
    @click.option(
        "-k",
        "--top-k",
        "k",
        type=click.IntRange(min=1),
        default=10,
        show_default=True,
        help="Results per query.",
    )
    @click.option(
        "--queries",
        type=click.Path(dir_okay=False, allow_dash=True),
        help="A file of queries, one per line (blank lines skipped); output lines then "
        "start with the query.",
    )
    @click.option(
        "-m",
        "--model",
        help="Model for the queries.  [default: the model the index was built with, else "
        "WORKDIR/model, else the shipped model]",
    )
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per query.")
    @click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="CPU threads for encoding and scoring (more helps large --queries batches on an "
        "idle machine).",
    )
    @click.option("--errors", type=ERRORS, default="strict", show_default=True, help=ERRORS_HELP)
    @click.pass_context
    def search(ctx, index, query, k, queries, model, as_json, threads, errors):
        """The K sentences of INDEX closest to QUERY (cosine), best first:
        `score<TAB>sentence` lines.

        Exact search, block by block over the stored vectors (no approximate index): about
        0.2 s for one query over a million 384-dimensional sentences on one CPU core, 12 ms
        per query in a batch of 128 (--queries), after the command's ~2 s start-up.
        """
        from ltd_bert.common.textio import read_texts
        from ltd_bert.student.model import Student
        from ltd_bert.tasks.search import Index, model_info
        from ltd_bert.tasks.search import search as run

        if (query is None) == (queries is None):
            raise click.UsageError("give a QUERY or --queries FILE (one of them)")
        from ltd_bert.text.clean import clean_text

        texts = (
            [query]
            if queries is None
            else [t for t in read_texts([queries], errors) if clean_text(t)]
        )
        if not any(clean_text(t) for t in texts):  # empty once cleaned: a zero vector
            raise click.UsageError("the query is empty")
        import torch

        torch.set_num_threads(threads)
        with Index(index) as idx:
            built = idx.model.get("path")
            if not model and built and Path(built, "config.json").is_file():
                path = built
            else:
                path = resolve_model(ctx, model)
            student = Student.load(path)
            warning = idx.check_model(model_info(path, student))
            if warning:
                click.echo(f"Warning: {warning}", err=True)
            results = run(idx, student, texts, k, threads=threads)
        for text, hits in zip(texts, results, strict=True):
            if as_json:
                row = {
                    "query": text,
                    "hits": [
                        {"score": round(h.score, 6), "sentence": h.sentence, "line": h.line}
                        for h in hits
                    ],
                }
                click.echo(json.dumps(row, ensure_ascii=False))
                continue
            prefix = "" if queries is None else one_line(text) + "\t"
            for h in hits:
                click.echo(f"{prefix}{h.score:.4f}\t{one_line(h.sentence)}")

    # --- cluster ----------------------------------------------------------------------

    @cli.command(context_settings=CONTEXT)
    @click.argument("sentences", type=click.Path(dir_okay=False, allow_dash=True))
    @click.option(
        "-k",
        "--clusters",
        "k",
        type=click.IntRange(min=1),
        required=True,
        help="Number of clusters.",
    )
    @click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, allow_dash=True),
        help="Write `cluster<TAB>sentence` lines here (the summary then goes to stdout).  "
        "[default: stdout, summary on stderr]",
    )
    @click.option("-m", "--model", help=MODEL_HELP)
    @click.option("--seed", type=int, default=0, show_default=True, help="k-means++ seed.")
    @click.option("--max-iter", type=click.IntRange(min=1), default=100, show_default=True)
    @click.option(
        "--show",
        type=click.IntRange(min=0),
        default=3,
        show_default=True,
        help="Most central sentences shown per cluster.",
    )
    @click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
    @click.option("--threads", type=click.IntRange(min=1), default=None)
    @click.option("--errors", type=ERRORS, default="strict", show_default=True, help=ERRORS_HELP)
    @click.pass_context
    def cluster(
        ctx, sentences, k, output, model, seed, max_iter, show, batch_size, threads, errors
    ):
        """Group the lines of SENTENCES into K clusters (k-means++ then Lloyd's k-means on
        unit vectors, so by cosine; deterministic under --seed).

        Writes `cluster<TAB>sentence` for every input line, in order (clusters numbered by
        decreasing size; -1 for an empty line), and a summary: each cluster's size and its
        most central sentences.
        """
        from ltd_bert.tasks.cluster import cluster_file

        _, student = load_student(ctx, model, threads)
        result = cluster_file(student, sentences, k, seed, max_iter, show, batch_size, errors)
        with text_output(output) as fh:
            for label, text in zip(result.labels, result.sentences, strict=True):
                fh.write(f"{label}\t{one_line(text)}\n")
        to_file = bool(output) and output != "-"
        lines = []
        for c in result.clusters:
            lines.append(f"cluster {c.id}: {c.size} sentences")
            lines += [f"  {one_line(s)}" for s in c.central]
        r = result.result
        lines.append(
            f"k-means: {k} clusters of {int((result.labels >= 0).sum())} sentences, "
            f"{r.iterations} iterations{'' if r.converged else ' (not converged)'}, "
            f"inertia {r.inertia:.4f}" + (f" → {output}" if to_file else "")
        )
        click.echo("\n".join(lines), err=not to_file)

    # --- finetune / predict / plot ----------------------------------------------------

    @cli.command(context_settings=CONTEXT)
    @click.option(
        "--task",
        type=click.Choice(["classify", "pairs"]),
        default="classify",
        show_default=True,
        help="classify: `text<TAB>label` lines, linear head + cross-entropy.  pairs: "
        "`s1<TAB>s2<TAB>label` lines, CoSENT loss on the cosines.",
    )
    @click.option(
        "--train",
        "train_file",
        required=True,
        type=click.Path(dir_okay=False),
        help="Training examples.",
    )
    @click.option(
        "--valid",
        "valid_file",
        type=click.Path(dir_okay=False),
        help="Held-out examples.  [default: a --val-fraction of --train]",
    )
    @click.option(
        "--val-fraction",
        type=click.FloatRange(0, 0.5),
        default=0.1,
        show_default=True,
        help="Held out of --train (seeded random) when there is no --valid.",
    )
    @click.option("-m", "--model", help="Student to start from.  " + MODEL_HELP.split("  ")[1])
    @click.option(
        "-o",
        "--output",
        type=click.Path(file_okay=False),
        help="The fine-tuned model folder.  [default: WORKDIR/finetuned-TASK]",
    )
    @click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True)
    @click.option(
        "--lr",
        type=click.FloatRange(min=0, min_open=True),
        default=5e-4,
        show_default=True,
        help="The student's learning rate.",
    )
    @click.option(
        "--head-lr",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="The classification head's learning rate.  [default: 20 × --lr]",
    )
    @click.option("--batch-size", type=click.IntRange(min=2), default=32, show_default=True)
    @click.option(
        "--freeze",
        is_flag=True,
        help="Train only the classification head (the frozen-student baseline).",
    )
    @click.option("--seed", type=int, default=42, show_default=True)
    @click.option("--threads", type=click.IntRange(min=1), default=None)
    @click.option("--no-plot", is_flag=True, help="Do not draw metrics.png.")
    @click.option("--errors", type=ERRORS, default="strict", show_default=True, help=ERRORS_HELP)
    @click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
    @click.pass_context
    def finetune(
        ctx,
        task,
        train_file,
        valid_file,
        val_fraction,
        model,
        output,
        epochs,
        lr,
        head_lr,
        batch_size,
        freeze,
        seed,
        threads,
        no_plot,
        errors,
        quiet,
    ):
        """Fine-tune a trained student on labelled data; the best epoch on the held-out part
        is kept.

        \b
        --task classify  `text<TAB>label` lines (any label strings); a linear head on the
                         sentence vector, cross-entropy; metric: accuracy. The head goes
                         to head.safetensors + labels.json for `ltd predict`.
        --task pairs     `s1<TAB>s2<TAB>label` lines (numeric labels); CoSENT loss on
                         the cosines; metric: Spearman × 100.

        The output is a model folder `ltd encode` and `Student.load` use as any other,
        with metrics.jsonl (and metrics.png when matplotlib is installed).
        """
        from ltd_bert.cli.base import workdir
        from ltd_bert.common.progress import bar
        from ltd_bert.tasks.finetune import FinetuneConfig
        from ltd_bert.tasks.finetune import finetune as run
        from ltd_bert.tasks.plot import matplotlib_available

        if threads:
            import torch

            torch.set_num_threads(threads)
        start = resolve_model(ctx, model)
        out = Path(output) if output else workdir(ctx).ensure() / f"finetuned-{task}"
        cfg = FinetuneConfig(
            task=task,
            epochs=epochs,
            lr=lr,
            head_lr=head_lr,
            batch_size=batch_size,
            val_fraction=val_fraction,
            freeze=freeze,
            seed=seed,
            plot=not no_plot,
            errors=errors,
        )
        pbar = bar(unit="step", desc="finetune", quiet=quiet)

        def progress(step, total, loss):
            pbar.total = total
            pbar.n = step
            pbar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            pbar.refresh()

        try:
            result = run(start, train_file, out, cfg, valid_file, progress)
        finally:
            pbar.close()
        metric = result["metric"]
        for r in result["records"]:
            parts = [f"epoch {r['epoch']}"]
            parts += [f"{key} {r[key]:.4f}" for key in ("train_loss", "val_loss") if key in r]
            if metric in r:
                parts.append(f"{metric} {r[metric]:.4f}")
            click.echo("  ".join(parts), err=True)
        best = result["best"]
        best_note = (
            f"best {metric} {best[metric]:.4f} at epoch {best['epoch']}"
            if metric in best
            else f"no validation part, last epoch kept ({best['epoch']})"
        )
        click.echo(
            f"finetune ({task}{', frozen student' if freeze else ''}): "
            f"{result['train_examples']} training, {result['valid_examples']} validation "
            f"examples, {result['steps']} steps; {best_note} → {out}",
            err=True,
        )
        if not no_plot and not matplotlib_available():
            click.echo("finetune: matplotlib not installed, no metrics.png", err=True)

    @cli.command(context_settings=CONTEXT)
    @click.argument("texts", type=click.Path(dir_okay=False, allow_dash=True))
    @click.option(
        "-m",
        "--model",
        required=True,
        help="A model folder from `ltd finetune --task classify`.",
    )
    @click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, allow_dash=True),
        help="Write the predictions here.  [default: stdout]",
    )
    @click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
    @click.option("--threads", type=click.IntRange(min=1), default=None)
    @click.option("--errors", type=ERRORS, default="strict", show_default=True, help=ERRORS_HELP)
    def predict(texts, model, output, batch_size, threads, errors):
        """Classify each line of TEXTS (`-` for stdin) with a fine-tuned classifier:
        `label<TAB>probability<TAB>text` lines, in input order."""
        from ltd_bert.tasks.finetune import Classifier, predict_file

        if threads:
            import torch

            torch.set_num_threads(threads)
        clf = Classifier.load(model)
        with text_output(output) as fh:
            for text, label, prob in predict_file(clf, texts, batch_size, errors):
                fh.write(f"{label}\t{prob:.4f}\t{one_line(text)}\n")

    @cli.command(context_settings=CONTEXT)
    @click.argument("model_dir", type=click.Path(exists=True))
    @click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False),
        help="The PNG.  [default: metrics.png next to metrics.jsonl]",
    )
    def plot(model_dir, output):
        """Draw the training curves of MODEL_DIR (a model folder from `ltd train` or
        `ltd finetune`, or a metrics.jsonl): loss and the validation metric, per epoch or
        step. Needs matplotlib (an optional extra: pip install matplotlib)."""
        from ltd_bert.tasks.plot import plot_metrics

        out = plot_metrics(model_dir, output)
        if out is None:
            raise click.ClickException(
                "matplotlib is not installed: `pip install matplotlib` to draw training curves"
            )
        click.echo(f"plot: {out}", err=True)

    # --- serve ------------------------------------------------------------------------

    @cli.command(context_settings=CONTEXT)
    @click.option("-m", "--model", help=MODEL_HELP)
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
    @click.option(
        "--port",
        type=click.IntRange(0, 65535),
        default=8000,
        show_default=True,
        help="Port to listen on (0: a free one, shown at start).",
    )
    @click.option(
        "--max-batch",
        type=click.IntRange(min=1),
        default=256,
        show_default=True,
        help="Most sentences encoded in one batch (requests that arrive together share one).",
    )
    @click.option(
        "--max-wait-ms",
        type=click.FloatRange(min=0),
        default=10.0,
        show_default=True,
        help="Longest a batch waits for more requests (only while it has fewer requests "
        "than the batch before; 0: never waits).",
    )
    @click.option(
        "--max-inputs",
        type=click.IntRange(min=1),
        default=2048,
        show_default=True,
        help="Most strings in one request (or pairs in one /similarity request).",
    )
    @click.option(
        "--max-chars",
        type=click.IntRange(min=1),
        default=8192,
        show_default=True,
        help="Most characters in one string.",
    )
    @click.option(
        "--api-key",
        envvar="LTD_API_KEY",
        default=None,
        help="Require `Authorization: Bearer KEY` (all routes but /health). "
        "Also read from LTD_API_KEY.",
    )
    @click.option("--normalize", is_flag=True, help="Unit-length vectors (as `ltd encode`'s).")
    @click.option("--threads", type=click.IntRange(min=1), default=None, help="Torch CPU threads.")
    @click.option(
        "--log-level",
        type=click.Choice(["critical", "error", "warning", "info", "debug"]),
        default="warning",
        show_default=True,
        help="uvicorn's messages; info and debug add one line per request.",
    )
    @click.pass_context
    def serve(
        ctx,
        model,
        host,
        port,
        max_batch,
        max_wait_ms,
        max_inputs,
        max_chars,
        api_key,
        normalize,
        threads,
        log_level,
    ):
        """Serve the model over HTTP with an OpenAI-compatible embeddings API.

        \b
          POST /v1/embeddings  {"input": "一句话" or [...], "model": NAME}  (OpenAI's shape)
          POST /similarity     {"pairs": [["句子一", "句子二"], ...]} → cosines
          GET  /v1/models, GET /health
        NAME is the model folder's name; a request naming another model (as OpenAI clients,
        LangChain and LlamaIndex do with `text-embedding-ada-002` unless told) gets this one,
        as from TEI. Requests arriving together are encoded as one batch. The model is loaded
        before the port opens; Ctrl-C or SIGTERM finishes the requests in flight and exits.
        """
        from ltd_bert.tasks.serve import ServeSettings, bind, create_app, model_name, run

        path = resolve_model(ctx, model)
        sock = bind(host, port)  # a port in use fails before the model loads
        if threads and "torch" not in sys.modules:
            # OpenMP reads its thread count when torch loads; torch.set_num_threads alone
            # leaves small batches about half as fast on a busy machine
            os.environ.setdefault("OMP_NUM_THREADS", str(threads))
            os.environ.setdefault("MKL_NUM_THREADS", str(threads))
        try:
            _, student = load_student(ctx, path, threads)
            settings = ServeSettings(
                max_batch=max_batch,
                max_wait_ms=max_wait_ms,
                max_inputs=max_inputs,
                max_chars=max_chars,
                api_key=api_key or None,
                normalize=normalize,
                threads=threads,
            )
            name = model_name(path)
            created = int(os.path.getmtime(Path(path) / "config.json"))
            app = create_app(student, name, settings, created)
            key = ", API key required" if settings.api_key else ""

            def ready(url: str) -> None:
                click.echo(
                    f"serve: {name} (dim {student.dim}) on {url}, max batch {max_batch}, "
                    f"max wait {max_wait_ms:g} ms{key}; Ctrl-C or SIGTERM to stop",
                    err=True,
                )

            run(app, sock, log_level, ready)
        finally:
            sock.close()
        click.echo("serve: stopped", err=True)
