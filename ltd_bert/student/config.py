"""`TrainConfig`: every setting of a training run (a model folder records it under `train`)."""

from __future__ import annotations

from dataclasses import dataclass

LOSSES = ("cosine", "mse", "both", "relational")
#: the relational terms `ltd train --pair-loss` offers (student/pairs.py; "none": vectors alone)
PAIR_LOSSES = ("none", "mse", "corr", "list")


@dataclass
class TrainConfig:
    embedding_dim: int = 256
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.1
    loss: str = "both"  # measured best of cosine/mse/both/relational (docs/research-record-2026.md)
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of all steps
    epochs: int = 5
    max_steps: int = 0  # stop after this many steps (the schedule fits them); 0: epochs decide
    batch_size: int = 128
    val_fraction: float = 0.02
    max_val: int = 5000
    patience: int = 3
    seed: int = 42
    min_count: int = 2
    max_vocab: int = 12000
    window: int = 50_000  # rows read at once
    mix_files: bool = False  # each window a share of every --data file (`ltd train`: on)
    max_chars: int = 4096  # characters of a text the student reads (documents included)
    # read texts longer than this many characters in windows while training, as `encode`
    # reads them (runtime/base.py `windows`); 0: whole texts
    text_window: int = 0
    batch_chars: int = 32768  # a batch over this many (padded) characters is split in parts
    clip: float = 1.0
    eval_every: int = 0  # steps; 0 = at each epoch's end only
    checkpoint_every: int = 200  # steps
    init_embeddings: str = "auto"  # auto | teacher | random
    init_from: str | None = None  # a model folder whose weights (and sizes, vocab) start training
    grow: bool = False  # with init_from: widen it to embedding_dim/hidden_size (0 = keep)
    keep_mean: bool = False  # with init_from: keep its mean (targets centred as it learnt them)
    lexicon: int = 0  # words of the word path (runtime/lexicon.py); 0: none (or the model's)
    lexicon_dim: int = 128  # their vectors' size
    lexicon_fit_rows: int = 65536  # rows whose errors fit the word path added to a trained model
    # with init_from: new words for its word path, the most frequent of the last
    # lexicon_fit_rows training rows that it lacks (`ltd adapt` puts the domain's rows last)
    lexicon_add: int = 0
    # with init_from: pieces of the Latin words of those rows that the word path lacks
    # (runtime/lexicon.py `WordIndex`), the most frequent first, fitted with the new words
    lexicon_pieces: int = 0
    segmenter: str | None = None  # what the model cuts words with (None: its teacher files')
    # the relational term (student/pairs.py): none | mse | corr | list, its weight, the pair
    # batch (rows, in groups of a row and group - 1 of its mined neighbours), the neighbours
    # mined per row (same length class, other length class) and the table's file
    pair_loss: str = "none"
    pair_weight: float = 1.0
    pair_batch: int = 128
    pair_group: int = 4
    pair_k: int = 12
    pair_k_cross: int = 4
    pairs: str | None = None  # default: beside the first teacher file (`<stem>.pairs.h5`)
    # the groups are anchored on training rows from this one on (`ltd adapt`: the domain's,
    # which come last); their neighbours are any training rows
    pair_from: int = 0
    precision: str = "fp32"  # fp32 | bf16 (autocast; weights and optimiser stay fp32)
    threads: int | None = None
    device: str = "cpu"  # cpu | cuda | cuda:N | auto (CUDA when available)
