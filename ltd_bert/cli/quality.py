"""Commands on how well a model keeps to its teacher across kinds of text:
`ltd eval suite` (the label-free fidelity suite) and `ltd adapt` (a model to a user's own
unlabeled text)."""

from __future__ import annotations

import json

import click

from ltd_bert.cli.base import CONTEXT, pair_options, resolve_model
from ltd_bert.tasks.adapt import NEW_WORDS, PAIR_ANCHORS, PAIR_K, REPLAY_TARGETS


def texts_per_kind_option(which: str, them: str):
    return click.option(
        "--texts-per-kind",
        type=click.IntRange(min=11),
        default=None,
        help=f"Only the first N texts of {which}: quicker where the teacher has not embedded "
        f"{them} yet, and a rougher measure.  [default: all]",
    )


@click.command("suite", context_settings=CONTEXT)
@click.option("-m", "--model", help="Model folder.  [default: WORKDIR/model, else shipped]")
@click.option(
    "--suite",
    "suite_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder of <kind>.txt files, one text per line.  [default: the suite shipped in the "
    "package, ltd_bert/suites/suite]",
)
@click.option("--kind", "kinds", multiple=True, help="Only this kind (repeatable).")
@texts_per_kind_option("each kind", "the suite")
@click.option(
    "--teacher",
    default=None,
    help="The teacher, when the one the model records is elsewhere here (a folder).",
)
@click.option(
    "--cache",
    type=click.Path(file_okay=False),
    default=None,
    help="Teacher vectors of the suite.  [default: LTD_HOME/suite/<teacher settings>]",
)
@click.option(
    "--calibrate-on",
    type=click.Path(file_okay=False),
    default=None,
    help="First choose the similarity map (norm map, whitening, share of the mean) on the kinds of "
    "this folder (a mix held apart from the suite, e.g. the package's ltd_bert/suites/calib) "
    "so that no kind orders its neighbour pairs worse than the plain centred vectors, and "
    "write it into the model.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def eval_suite(ctx, model, suite_dir, kinds, texts_per_kind, teacher, cache, calibrate_on, as_json):
    """The fidelity suite: per kind of text, the mean centred cosine between the student and
    the teacher (fidelity), and how like the teacher the student orders near-neighbour
    pairs (Spearman × 100) with plain centred vectors and with the model's default ones;
    then, where the suite has documents (kinds of 200+ characters on average) and sentences,
    the same pair agreement with each document paired with a near sentence. No labels;
    the teacher's vectors are computed once and cached (resumable)."""
    from ltd_bert.student.model import Student
    from ltd_bert.tasks.suite import as_dicts, cross_row, run_suite, table
    from ltd_bert.tasks.suite import calibrate_on as calibrate

    model_dir = resolve_model(ctx, model)

    def say(msg: str) -> None:
        if not as_json:
            click.echo(msg, err=True)

    if calibrate_on:
        cal = calibrate(model_dir, calibrate_on, cache, teacher, say, texts_per_kind)
        say(
            f"calibrated on {calibrate_on}: {'a' if cal.norm is not None else 'no'} norm map, "
            f"whitening {cal.whiten:g}, mean scale {cal.mean_scale:g} (written to {model_dir})"
        )
    student, vectors = Student.load(model_dir), {}
    rows = run_suite(student, suite_dir, kinds, cache, teacher, say, vectors, texts_per_kind)
    cross = cross_row(student, vectors)
    if as_json:
        click.echo(json.dumps(as_dicts(rows + [cross] * bool(cross)), ensure_ascii=False))
        return
    click.echo(table(rows, cross))


@click.command("adapt", context_settings=CONTEXT)
@click.argument("corpus", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-m", "--model", help="The model to adapt.  [default: WORKDIR/model, else shipped]")
@click.option("-o", "--output", required=True, type=click.Path(), help="The adapted model folder.")
@click.option(
    "--replay",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="General text replayed beside the domain so nothing else is forgotten: teacher "
    "files (.h5) made with the model's teacher settings, or text files (embedded here, at "
    "most --replay-ratio × the domain's lines). Repeatable.  [default: the 40,000 general "
    "sentences shipped in the package, their teacher vectors cached under LTD_HOME/replay]",
)
@click.option(
    "--replay-ratio",
    type=click.FloatRange(min=0.1),
    default=3.0,
    show_default=True,
    help="Replayed rows per domain row, for replay text files and the shipped set.",
)
@click.option(
    "--replay-lines",
    type=click.IntRange(min=1),
    default=None,
    help="At most N lines of each replay text (the shipped set's included).  "
    "[default: --replay-ratio × the domain's lines]",
)
@click.option(
    "--replay-targets",
    type=click.Choice(REPLAY_TARGETS),
    default="teacher",
    show_default=True,
    help="Targets of the replayed text (the shipped set or --replay text files): the "
    "teacher's vectors, or the model's own vectors before adapting (no teacher time; what "
    "is kept is exactly what the model did). Teacher files given with --replay keep theirs.",
)
@click.option(
    "--replay-docs",
    type=click.IntRange(min=0),
    default=None,
    help="Documents of the shipped set (ltd_bert/suites/replay_docs.txt.gz) replayed as the "
    "windows the model reads them in, with its own vectors before adapting as targets (no "
    "teacher time), so that adapting to short text keeps documents; 0: none.  [default: all "
    "605]",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Read at most N domain lines."
)
@click.option(
    "--new-words",
    type=click.IntRange(min=0),
    default=None,
    help="Words of the domain the model's word path lacks (the most frequent first) added "
    "to it before training, each fitted to the model's errors on the domain; 0: none.  "
    f"[default: {NEW_WORDS:,} when the model has a word path]",
)
@click.option(
    "--new-pieces",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Pieces of the domain's Latin words that the word path lacks (`##piece`; such a "
    "word is cut into its pieces, longest first) added with the new words and fitted with "
    "them: words the domain text never showed get rows too.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="0 (with --new-words or --new-pieces): only the new words, no training step: "
    "seconds, and nothing the model knew changes.",
)
@pair_options(
    "The relational term of training (ltd train --pair-loss): near neighbours by the "
    "teacher are mined among the domain's and the replayed rows "
    "(WORK/pairs-k<K>-<rows>.h5), and the cosines of groups drawn around the rows of "
    "--pair-anchors fitted; none: vectors alone.",
    default="corr",
    k=PAIR_K,
)
@click.option(
    "--pair-anchors",
    type=click.Choice(PAIR_ANCHORS),
    default="domain",
    show_default=True,
    help="The rows the relational term's groups are drawn around: all training rows, or the "
    "domain's only (their neighbours may be replayed rows; the replayed text then keeps to "
    "the vector loss).",
)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=128, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Torch CPU threads.")
@click.option(
    "--work",
    type=click.Path(file_okay=False),
    default=None,
    help="Teacher files (reused when rerun: the embedding resumes).  [default: OUTPUT.work]",
)
@click.option("--teacher", default=None, help="The teacher, when the model's is elsewhere here.")
@click.option(
    "--calib",
    type=click.Path(file_okay=False),
    default=None,
    help="General kinds the similarity map is chosen on, with the domain.  "
    "[default: the calibration mix shipped in the package, ltd_bert/suites/calib]",
)
@click.option(
    "--suite",
    "suite_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="The general suite measured before and after.  [default: the suite shipped in the "
    "package, ltd_bert/suites/suite]",
)
@click.option("--no-suite", is_flag=True, help="Measure only the domain (and --pairs).")
@texts_per_kind_option("each general kind (--calib and --suite)", "them")
@click.option(
    "--pairs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Labelled pair files scored before and after (Spearman). Repeatable.",
)
@click.option("-q", "--quiet", is_flag=True)
@click.pass_context
def adapt(
    ctx,
    corpus,
    model,
    output,
    replay,
    replay_ratio,
    replay_lines,
    replay_targets,
    replay_docs,
    limit,
    new_words,
    new_pieces,
    epochs,
    pair_loss,
    pair_weight,
    pair_batch,
    pair_group,
    pair_k,
    pair_anchors,
    lr,
    batch_size,
    seed,
    threads,
    work,
    teacher,
    calib,
    suite_dir,
    no_suite,
    texts_per_kind,
    pairs,
    quiet,
):
    """Adapt a model to your own unlabeled text: the teacher embeds CORPUS (resumable; teacher
    files (.h5) made with the model's teacher settings are used as they are, before the text's
    rows, and the last file's tail is held out), training continues from the model with general
    rows replayed, the similarity map is chosen again over the general kinds and the domain, and
    fidelity is printed before and after, on the domain's held-out rows and on the general
    suite."""
    from ltd_bert.common.progress import bar
    from ltd_bert.tasks.adapt import adapt as run
    from ltd_bert.tasks.adapt import report_table

    model_dir = resolve_model(ctx, model)
    bars = {}

    def embed_progress(name, lines):
        if name not in bars:
            bars[name] = bar(unit="line", desc=f"teacher ({name})", quiet=quiet)
        bars[name].n = lines
        bars[name].refresh()

    tbar = bar(unit="step", desc="train", quiet=quiet)

    def train_progress(step, total, loss_value, rate):
        tbar.total = total
        tbar.n = step
        tbar.set_postfix(loss=f"{loss_value:.4f}", sent_s=f"{rate:,.0f}", refresh=False)
        tbar.refresh()

    def say(msg):
        if not quiet:
            click.echo(msg, err=True)

    try:
        report = run(
            model_dir,
            list(corpus),
            output,
            list(replay),
            work,
            teacher,
            limit,
            replay_ratio,
            epochs,
            lr,
            batch_size,
            seed,
            threads,
            calib,
            False if no_suite else suite_dir,
            list(pairs),
            say,
            embed_progress,
            train_progress,
            new_words=new_words,
            new_pieces=new_pieces,
            replay_lines=replay_lines,
            replay_docs=replay_docs,
            replay_targets=replay_targets,
            pair_anchors=pair_anchors,
            texts_per_kind=texts_per_kind,
            pair_loss=pair_loss,
            pair_settings={
                "pair_weight": pair_weight,
                "pair_batch": pair_batch,
                "pair_group": pair_group,
                "pair_k": pair_k,
            },
        )
    finally:
        for b in (*bars.values(), tbar):
            b.close()
    c = report.calibration
    click.echo(
        f"adapt: {report.domain_rows} domain rows, {report.replay_rows} replayed, "
        f"{report.replay_windows} document windows replayed, "
        f"{report.held_out} held out, {report.words_added} words and pieces added; similarity map: "
        f"{'a' if c.get('norm_map') else 'no'} norm map, whitening {c['whiten']:g}, mean scale "
        f"{c['mean_scale']:g} → {output}"
    )
    click.echo(report_table(report))


def register(cli: click.Group) -> None:
    cli.commands["eval"].add_command(eval_suite)
    cli.add_command(adapt)
