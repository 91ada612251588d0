"""`ltd train`."""

from __future__ import annotations

from pathlib import Path

import click

from ltd_bert.cli.base import CONTEXT, SEGMENTERS, cli, pair_options, workdir


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
@pair_options(
    "A relational term beside --loss: the student's cosines within groups of a text and "
    "its nearest texts by the teacher (mined once from the training files into "
    "<first --data>.pairs.h5, resumable) should match the teacher's: mse of the cosines, "
    "corr (one minus their correlation over the near pairs: their order), list (each "
    "text's neighbours as a distribution, KL at a low temperature)."
)
@click.option(
    "--pairs",
    type=click.Path(dir_okay=False),
    default=None,
    help="The mined pair table.  [default: beside the first --data file, <stem>.pairs.h5]",
)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True)
@click.option(
    "--epochs",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="0 (with --init-from): no training step; the model is saved again, with any "
    "--lexicon-add words, and its similarity map chosen again.",
)
@click.option(
    "--max-steps",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Stop after this many steps (the learning-rate schedule fits them); 0: --epochs decide.",
)
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
    "vectors (new units start silent), for more capacity without starting over. A smaller "
    "--hidden-size keeps the units that move the output most, with the projection fitted "
    "again on the first training rows, for a faster model to train further.",
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
@click.option(
    "--text-window",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Read texts longer than this many characters in windows while training, combined "
    "by their share of the text's IDF weight, as `ltd encode` reads them (384 there); the "
    "model records it. 0: whole texts.",
)
@click.option(
    "--lexicon",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Give the student a word path of this many words (the training texts' most "
    "frequent): a vector per word, summed with the character weights (docs/quality.md). "
    "Added to an --init-from model without one, it starts fitted to that model's errors. "
    "0: none (an --init-from model keeps its own).",
)
@click.option(
    "--lexicon-dim",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="The word vectors' size (stored as float16: 2 bytes × words × size).",
)
@click.option(
    "--lexicon-add",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="With --init-from a model with a word path: add this many words to it, the most "
    "frequent of the last --lexicon-fit-rows training rows that it lacks, each started as "
    "the ridge fit of the model's errors there (with --epochs 0 nothing else changes).",
)
@click.option(
    "--lexicon-pieces",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="With --init-from a model with a word path: add this many pieces of the Latin words "
    "of those rows that it lacks (`##piece`: a Latin word outside the path is cut into its "
    "pieces, longest first), fitted with the new words.",
)
@click.option(
    "--lexicon-fit-rows",
    type=click.IntRange(min=1),
    default=65536,
    show_default=True,
    help="Training rows a new word path (--lexicon) or new words (--lexicon-add) are fitted "
    "on: the first ones for --lexicon, the last ones for --lexicon-add.",
)
@click.option(
    "--segmenter",
    type=click.Choice(SEGMENTERS),
    default=None,
    help="What the model cuts words with when it encodes: rjieba is faster than jieba and "
    "differs on ~1 line in 100 (teacher files of any of the three agree).  "
    "[default: the teacher files']",
)
@click.option(
    "--mix-files/--no-mix-files",
    default=True,
    show_default=True,
    help="With several --data files, every window of rows read at once takes its share of "
    "each file (sentences and documents mixed all along); --no-mix-files reads the files' "
    "rows in plain ranges, as runs before this option did.",
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
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default="fp32",
    show_default=True,
    help="bf16: the forward and backward passes under bf16 autocast (weights and optimiser "
    "stay fp32); ~2× faster on CPUs with AMX (docs/speed.md). A CPU without native bf16 "
    "(AMX or AVX512-BF16): refused with a one-line error.",
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
    pair_loss,
    pair_weight,
    pair_batch,
    pair_group,
    pair_k,
    pairs,
    lr,
    epochs,
    max_steps,
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
    text_window,
    lexicon,
    lexicon_dim,
    lexicon_add,
    lexicon_pieces,
    lexicon_fit_rows,
    segmenter,
    mix_files,
    seed,
    device,
    checkpoint_every,
    precision,
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
    from ltd_bert.common.progress import bar
    from ltd_bert.student.config import TrainConfig
    from ltd_bert.student.model import SIZES
    from ltd_bert.student.train import train as run
    from ltd_bert.teacher import distributed

    if not init_from and (epochs == 0 or lexicon_add or lexicon_pieces):
        flag = (
            "--epochs 0" if epochs == 0 else "--lexicon-add" if lexicon_add else "--lexicon-pieces"
        )
        raise click.UsageError(f"{flag} goes with --init-from (a trained model)")
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
        pair_loss=pair_loss,
        pair_weight=pair_weight,
        pair_batch=pair_batch,
        pair_group=pair_group,
        pair_k=pair_k,
        pairs=pairs,
        lr=lr,
        epochs=epochs,
        max_steps=max_steps,
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
        text_window=text_window,
        lexicon=lexicon,
        lexicon_dim=lexicon_dim,
        lexicon_add=lexicon_add,
        lexicon_pieces=lexicon_pieces,
        lexicon_fit_rows=lexicon_fit_rows,
        segmenter=segmenter,
        mix_files=mix_files,
        seed=seed,
        device=device,
        checkpoint_every=checkpoint_every,
        precision=precision,
        threads=threads,
    )
    if precision == "bf16":  # refused before a progress bar shows
        from ltd_bert.common.cpu import require_bf16

        require_bf16("--precision bf16", distributed.resolve_device(device))
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
