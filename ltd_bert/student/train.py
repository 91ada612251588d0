"""`ltd train`: fit the BiLSTM student to the teacher file's vectors.

- Targets are centred: the file's mean vector (the common direction every teacher vector
  shares) is subtracted, and the student learns what tells sentences apart.
- Data is read in windows of contiguous rows (memory does not grow with the file); inside a
  window, rows are sorted by length into batches and the batches shuffled. Window order and
  batch order derive from (seed, epoch, window), so a run resumed from a checkpoint sees the
  same batches as an uninterrupted one.
- The last `val_fraction` of the rows (at most `max_val`) is held out for validation.
- AdamW, linear warm-up then linear decay, gradient clipping, best model kept on the
  validation centred cosine, early stopping after `patience` evaluations without progress.
- At the end, the share of the mean that the similarity vectors keep (`mean_scale`) is
  chosen on the validation rows, without labels (see calibrate.py).
- Under torchrun (DistributedDataParallel, gloo): every rank builds the same plan of global
  batches and takes rows r, r + N, ... of each (per-rank batch = batch_size / N, so the
  global batch is unchanged); DDP averages the gradients, each rank's loss weighted by its
  share of the rows. Rank 0 alone evaluates and writes checkpoints, metrics and the model;
  on `--resume` it reads the checkpoint and sends it to the other ranks.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ltd_bert.common.cpu import require_bf16
from ltd_bert.common.errors import InputError, LtdError, StoreError
from ltd_bert.common.version import __version__
from ltd_bert.runtime.base import windows
from ltd_bert.runtime.lexicon import (
    PIECE,
    SHORTEST_PIECE,
    WordIndex,
    padded_word_ids,
    spelled,
    word_index,
)
from ltd_bert.student.calibrate import calibrate
from ltd_bert.student.checkpoint import Checkpoints
from ltd_bert.student.config import LOSSES, TrainConfig
from ltd_bert.student.data import Data, epoch_plan, split, steps_per_epoch, window_batches
from ltd_bert.student.model import (
    BiLSTMStudent,
    Student,
    StudentConfig,
    batch_tensors,
    build_vocab,
    fit_projection,
    growth_problem,
    length_batches,
    narrow,
    pooled_states,
    round_to_stored,
    save_model_folder,
    unit_importance,
    widen,
    with_default_buffers,
)
from ltd_bert.student.pairs import PairSampler, default_path, mine_pairs, pair_loss
from ltd_bert.student.validation import Validation, loss_fn
from ltd_bert.teacher import distributed
from ltd_bert.teacher.store import TARGET_KEYS, same_setting, setting

log = logging.getLogger(__name__)


def char_parts(rows, lengths: list[int], cfg: TrainConfig) -> list:
    """`rows` (one batch), longest first, in parts of at most `cfg.batch_chars` padded
    characters (texts cut to `max_chars`; a text longer than that is a part alone): one
    part for a batch of sentences, the documents of a mixed batch in parts of their own
    (each part is padded to its longest text). Their gradients add up to the batch's."""
    order = sorted(range(len(rows)), key=lambda i: -lengths[i])
    parts: list[list] = []
    longest = 0
    for i in order:
        n = max(1, min(lengths[i], cfg.max_chars))
        if parts and (len(parts[-1]) + 1) * longest <= cfg.batch_chars:
            parts[-1].append(rows[i])
        else:
            parts.append([rows[i]])
            longest = n
    return parts


#: the ridge of the word path's first fit (`Trainer._fit_lexicon`): on 78,643 rows, held-out
#: fidelity was best at 0.1 of 1e-3 … 1
LEXICON_RIDGE = 0.1
#: training rows a narrowed model's units are chosen and its projection fitted again on
NARROW_FIT_ROWS = 8192
NARROW_RIDGE = 1.0
LONGEST_PIECE = 8  # characters of a piece of a Latin word (`piece_candidates`)


def lexicon_words(data: Data, segmenter, size: int, min_count: int = 2) -> list[str]:
    """The `size` most frequent words of the training texts: a word path's lexicon."""
    counts: Counter = Counter()
    for text in data.iter_sentences():
        counts.update(segmenter.lcut(text, HMM=True))
    return lexicon_candidates(counts, min_count)[:size]


def lexicon_candidates(counts: Counter, min_count: int = 2) -> list[str]:
    """Words that hold a content character and occur at least `min_count` times, the most
    frequent first (ties by the word)."""
    from ltd_bert.text.clean import is_content_char

    words = [
        w
        for w, n in counts.items()
        if n >= min_count and any(map(is_content_char, w)) and not w.startswith(PIECE)
    ]
    words.sort(key=lambda w: (-counts[w], w))
    return words


def piece_candidates(counts: Counter, known: set[str], min_count: int = 2) -> list[str]:
    """Lexicon entries (`##piece`) for pieces of the Latin words in `counts` outside `known`
    (`spelled`, lower-cased): every piece of LONGEST_PIECE characters or fewer, ranked by the
    characters it covers (occurrences × length; ties by the piece), those occurring at least
    `min_count` times and not in `known` already."""
    seen: Counter = Counter()
    for w, n in counts.items():
        if w in known or not spelled(w):
            continue
        w = w.lower()
        for a in range(len(w)):
            for b in range(a + SHORTEST_PIECE, min(a + LONGEST_PIECE, len(w)) + 1):
                seen[w[a:b]] += n
    pieces = [p for p, n in seen.items() if n >= min_count and PIECE + p not in known]
    pieces.sort(key=lambda p: (-seen[p] * len(p), p))
    return [PIECE + p for p in pieces]


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    warm = max(1, int(total * cfg.warmup))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * max(0.0, (total - step) / max(1, total - warm))


def teacher_embedding_init(settings: dict, vocab: list[str], dim: int) -> np.ndarray | None:
    """Each character's teacher input embedding (mean over its pieces), PCA'd to `dim`."""
    from ltd_bert.teacher.model import Teacher

    name = settings.get("teacher_path") or settings.get("teacher")
    if not Path(name).exists():
        name = settings.get("teacher")
    try:
        t = Teacher(name)
    except Exception as exc:  # a hub id offline, a moved folder: fall back to random
        log.warning("cannot load teacher %r for embedding init (%s); random init", name, exc)
        return None
    table = t.model.get_input_embeddings().weight.detach().float().numpy()
    out = np.zeros((len(vocab), table.shape[1]), dtype=np.float32)
    for i, ch in enumerate(vocab[2:], start=2):
        ids = [
            j
            for j in t.tokenizer(ch, add_special_tokens=False)["input_ids"]
            if j not in t.tokenizer.all_special_ids
        ]
        if ids:
            out[i] = table[ids].mean(0)
    del t
    body = out[2:] - out[2:].mean(0)
    if dim < body.shape[1]:
        _, _, vt = np.linalg.svd(body, full_matrices=False)
        body = body @ vt[:dim].T
    elif dim > body.shape[1]:
        body = np.pad(body, ((0, 0), (0, dim - body.shape[1])))
    body = body / (body.std() + 1e-8) * 0.5  # scale like a fresh nn.Embedding would be
    out2 = np.zeros((len(vocab), dim), dtype=np.float32)
    out2[2:] = body
    return out2


def warm_start(path: str, settings: dict[str, Any], dim: int):
    """The `Student` of a float32 model folder trained on the same kind of teacher vectors,
    to continue training it (`--init-from`): more epochs, or more sentences."""
    p = Path(path)
    try:
        student = Student.load(p)
    except LtdError as exc:  # missing files, bad config, unreadable weights or IDF
        raise InputError(f"--init-from: {exc}") from None
    meta = student.meta
    if meta.get("quantized"):
        raise InputError(f"--init-from {p}: an int8 model cannot be trained; use its float32 one")
    diff = [k for k in TARGET_KEYS if not same_setting(k, setting(meta, k), setting(settings, k))]
    if diff or student.dim != dim:
        raise InputError(
            f"--init-from {p}: trained on other teacher vectors than the data "
            f"({', '.join(diff) or 'dimension'} differ)"
        )
    return student


class Trainer(Checkpoints, Validation):
    def __init__(
        self,
        data_paths: list[str],
        output: str | Path,
        cfg: TrainConfig,
        resume: bool = False,
        progress=None,
        stop_after_steps: int | None = None,
    ):
        self.cfg = cfg
        self.output = Path(output)
        self.state_dir = self.output.with_name(self.output.name + ".partial")
        self.progress = progress
        self.stop_after_steps = stop_after_steps
        self.resume = resume
        self.data = Data(data_paths)
        self.data_paths = [str(Path(p).resolve()) for p in data_paths]
        if cfg.loss not in LOSSES:
            raise InputError(f"--loss must be one of {', '.join(LOSSES)}")
        if self.data.n < 2:
            raise InputError(f"{data_paths[0]}: needs at least 2 rows to train")
        from ltd_bert.text.idf import find_recorded_idf, idf_file_sha256

        recorded = self.data.settings.get("idf_source") or ""
        self.idf_source = find_recorded_idf(recorded, data_paths[0])
        if idf_file_sha256(self.idf_source) != self.data.settings.get("idf_sha256"):
            raise StoreError(
                f"{data_paths[0]} was made with IDF file {self.idf_source}, which is gone or "
                "has changed since; the model needs the same weights: rerun teacher-embed"
            )
        self._word_index: WordIndex | None = None  # the word path's words → ids
        from ltd_bert.text.segment import get_segmenter

        self._segmenter = get_segmenter(None, self.data.settings.get("segmenter", "jieba"))
        self.warm = None
        if cfg.init_from:
            self.warm = warm_start(cfg.init_from, self.data.settings, self.data.dim)
            if cfg.keep_mean:  # e.g. adapting to a domain: general vectors stay where they were
                self.data.mean = self.warm.mean.copy()
            c = self.warm.model.config
            emb, hid = c.embedding_dim, c.hidden_size
            if cfg.grow:
                emb, hid = cfg.embedding_dim or emb, cfg.hidden_size or hid
                problem = growth_problem(c, emb, hid, narrowing=True)
                if problem:  # refused before any training, not when widening
                    raise InputError(f"--init-from {cfg.init_from}: {problem}")
            self.cfg = cfg = replace(
                cfg,
                embedding_dim=emb,
                hidden_size=hid,
                num_layers=c.num_layers,
                init_from=str(Path(cfg.init_from).resolve()),
            )

    # --- state -----------------------------------------------------------------------
    def _setup(self):
        cfg = self.cfg
        if self.world == 1:
            ckpt = self._read_checkpoint()
        else:  # rank 0 reads the checkpoint (or starts over) and sends it to the others
            ckpt, failure = None, None
            if self.rank == 0:
                try:
                    ckpt = self._read_checkpoint()
                except InputError as exc:
                    failure = str(exc)
            ckpt, failure = distributed.broadcast((ckpt, failure))
            if failure:
                raise InputError(failure)
        if ckpt is not None:
            self.vocab = ckpt["vocab"]
            self._use_lexicon(ckpt.get("lexicon_words"))
            self.model = BiLSTMStudent(StudentConfig.from_dict(ckpt["student"]))
            self.model.load_state_dict(with_default_buffers(ckpt["model"], self.model.config))
            self.model.to(self.device)  # before the optimizer: its state follows
            self.opt = self._optimizer()
            self.opt.load_state_dict(ckpt["optimizer"])
            torch.set_rng_state(self._rng_state(ckpt))
            self.pos = ckpt["pos"]
            self.best = ckpt["best"]
            self.bad_evals = ckpt["bad_evals"]
            return True
        torch.manual_seed(cfg.seed)
        if self.warm is not None:
            self.vocab = self.warm.vocab
            config = replace(self.warm.model.config, dropout=cfg.dropout)
            add_lexicon = cfg.lexicon > 0 and not config.lexicon_size
            if add_lexicon:
                config = replace(config, lexicon_size=cfg.lexicon, lexicon_dim=cfg.lexicon_dim)
            self.model = BiLSTMStudent(config)
            self.model.load_state_dict(self.warm.model.state_dict(), strict=not add_lexicon)
            if self.warm.lexicon is not None:
                self._use_lexicon(self.warm.lexicon.words)
                if cfg.lexicon_add or cfg.lexicon_pieces:  # every rank: the shape changes
                    self._grow_lexicon(cfg.lexicon_add, cfg.lexicon_pieces)
            elif cfg.lexicon_add or cfg.lexicon_pieces:
                flag = "--lexicon-add" if cfg.lexicon_add else "--lexicon-pieces"
                raise InputError(
                    f"{flag}: {cfg.init_from} has no word path (give it one with --lexicon)"
                )
            if (cfg.embedding_dim, cfg.hidden_size) != (
                self.model.config.embedding_dim,
                self.model.config.hidden_size,
            ):
                if cfg.hidden_size < self.model.config.hidden_size:  # fewer units, refitted
                    self._narrow(cfg.hidden_size)
                # the same vectors from a wider model (DDP copies rank 0's weights)
                self.model = widen(self.model, cfg.embedding_dim, cfg.hidden_size, cfg.seed)
            self.model.mean.copy_(torch.from_numpy(self.data.mean))
            if add_lexicon:
                self._use_lexicon(lexicon_words(self.data, self._segmenter, cfg.lexicon))
                if self.rank == 0:  # DDP copies rank 0's weights
                    self._fit_lexicon()
            return self._fresh_state()
        self.vocab = build_vocab(self.data.iter_sentences(), cfg.min_count, cfg.max_vocab)
        if cfg.lexicon:
            self._use_lexicon(lexicon_words(self.data, self._segmenter, cfg.lexicon))
        scfg = StudentConfig(
            len(self.vocab),
            cfg.embedding_dim,
            cfg.hidden_size,
            cfg.num_layers,
            cfg.dropout,
            self.data.dim,
            len(self.lexicon_words or ()),
            cfg.lexicon_dim if self.lexicon_words else 0,
        )
        self.model = BiLSTMStudent(scfg)
        self.model.mean.copy_(torch.from_numpy(self.data.mean))
        init = cfg.init_embeddings
        if init in ("auto", "teacher") and self.rank == 0:  # DDP copies rank 0's weights
            table = teacher_embedding_init(self.data.settings, self.vocab, cfg.embedding_dim)
            if table is None and init == "teacher":
                raise InputError("--init-embeddings teacher: the teacher cannot be loaded")
            if table is not None:
                with torch.no_grad():
                    self.model.embedding.weight.copy_(torch.from_numpy(table))
        return self._fresh_state()

    # --- the word path ------------------------------------------------------------------
    @property
    def lexicon_words(self) -> list[str] | None:
        """The word path's words, in id order; None without one."""
        return None if self._word_index is None else list(self._word_index)

    def _use_lexicon(self, words: list[str] | None) -> None:
        self._word_index = word_index(words) if words else None

    def predict(
        self, net, texts: list[str], weights: list, index: dict, autocast: bool = True
    ) -> torch.Tensor:
        """`net`'s vectors of `texts` (on the device) as this run reads them: whole, or with
        `text_window`, long texts in windows combined by their share of the text's weight
        (runtime/base.py `windows`, what `encode` does); in bf16 autocast when the run is
        bf16 and `autocast`."""
        cfg, dev = self.cfg, self.device
        win = windows(texts, weights, cfg.text_window, cfg.max_chars)
        ids, lengths, w = batch_tensors(win.rows, win.weights, index, cfg.max_chars)
        word_ids = self.word_ids(win.rows, ids, dev)
        bf16 = autocast and cfg.precision == "bf16"
        with torch.autocast(dev.type, torch.bfloat16, enabled=bf16):
            out = net(ids.to(dev), lengths, w.to(dev), word_ids)  # lengths stay on the CPU
        if len(win.rows) == len(texts):
            return out
        share = torch.from_numpy(win.share).to(dev)[:, None]
        res = torch.zeros(len(texts), out.shape[1], device=dev, dtype=torch.float32)
        return res.index_add(0, torch.from_numpy(win.owner).to(dev), out.float() * share)

    def word_ids(self, texts: list[str], ids: torch.Tensor, device=None) -> torch.Tensor | None:
        """The padded batch's word ids (B, T) for the word path (on `device`); None without
        one."""
        if self._word_index is None:
            return None
        out = padded_word_ids(self._word_index, texts, self._words_of, ids.shape[1])
        return torch.from_numpy(out).to(device) if device is not None else torch.from_numpy(out)

    def _words_of(self, text: str) -> list[str]:
        return self._segmenter.lcut(text, HMM=True)

    @torch.no_grad()
    def _narrow(self, hidden: int) -> None:
        """Keep `hidden` units of each direction of the warm model: those whose pooled state
        moves the output most over the first NARROW_FIT_ROWS training rows
        (`model.unit_importance`), with the projection fitted again on those rows (ridge
        regression of the centred target less the word path on the kept units' pooled
        states). On zh-small's corpus rows, 384 → 128 units: mean centred cosine 0.887 →
        0.740 with the old projection's columns, 0.798 refitted, 0.773 for random units
        refitted (`experiments/narrow.py`). Every rank computes the same."""
        cfg = self.cfg
        n_train, _ = split(self.data.n, cfg)
        sents, vecs, weights = self.data.read(0, min(NARROW_FIT_ROWS, n_train))
        index = {c: i for i, c in enumerate(self.vocab)}
        model = self.model.eval()
        states = pooled_states(model, index, sents, weights, cfg.max_chars)
        small = narrow(model, hidden, unit_importance(model, states))
        kept = pooled_states(small, index, sents, weights, cfg.max_chars)
        target = (vecs - self.data.mean).astype(np.float64)
        if model.lexicon is not None:  # what the word path adds stays its own
            for idx in length_batches(sents, 256, cfg.max_chars):
                texts = [sents[i] for i in idx]
                ids, _, w = batch_tensors(texts, [weights[i] for i in idx], index, cfg.max_chars)
                target[idx] -= model.lexicon(self.word_ids(texts, ids), w).numpy()
        fit_projection(small, kept, target, NARROW_RIDGE)
        self.model = small.train()
        log.info("narrowed to %d units per direction, fitted on %d rows", hidden, len(sents))

    @torch.no_grad()
    def _fit_lexicon(self) -> None:
        """Start a word path added to a trained model where it helps at once: the ridge
        regression of the network's errors (centred target − prediction) on the weighted
        bag of lexicon words, over the first `lexicon_fit_rows` training rows, cut to
        `lexicon_dim` by its SVD (docs/research-record-2026.md: on held-out rows the full map
        lifted the fidelity 0.809 → 0.856)."""
        cfg = self.cfg
        n_train, _ = split(self.data.n, cfg)
        rows = min(cfg.lexicon_fit_rows, n_train)
        solution = self._word_regression(self.data.read(0, rows), 0)  # (k, D)
        u, s, vt = torch.linalg.svd(solution, full_matrices=False)
        d = min(cfg.lexicon_dim, s.numel())
        lex = self.model.lexicon
        lex.embedding.weight.zero_()
        lex.embedding.weight[1:, :d] = (u[:, :d] * s[:d]).float()
        lex.proj.weight.zero_()
        lex.proj.weight[:, :d] = vt[:d].T.float()
        log.info("word path: %d words fitted on %d rows (rank %d)", solution.shape[0], rows, d)

    @torch.no_grad()
    def _grow_lexicon(self, n: int, pieces: int = 0) -> None:
        """Add up to `n` words to a warm model's word path: the most frequent words of the
        last `lexicon_fit_rows` training rows (the domain's, in `ltd adapt`) that it lacks,
        and up to `pieces` pieces of the Latin words there it still lacks (`lexicon_pieces`),
        each started as the ridge regression of the model's errors there on the new
        entries' masses, through the path's projection (words new to the model are what a
        character network follows least: zh-small's first word path lifted held-out fidelity
        0.809 → 0.856 before any training)."""
        cfg = self.cfg
        n_train, _ = split(self.data.n, cfg)
        start = max(0, n_train - cfg.lexicon_fit_rows)
        rows = self.data.read(start, n_train)  # (texts, vectors, weights)
        counts: Counter = Counter()
        for text in rows[0]:
            counts.update(self._words_of(text))
        known = set(self.lexicon_words)
        new = [w for w in lexicon_candidates(counts) if w not in known][:n]
        if pieces:
            new += piece_candidates(counts, known | set(new))[:pieces]
        if not new:
            log.info("word path: nothing new in the last %d training rows", n_train - start)
            return
        old = self.model
        k0 = len(known)
        config = replace(old.config, lexicon_size=k0 + len(new))
        self.model = BiLSTMStudent(config)
        state = old.state_dict()
        key = "lexicon.embedding.weight"
        state[key] = torch.cat([state[key], state[key].new_zeros(len(new), state[key].size(1))])
        self.model.load_state_dict(state)
        self._use_lexicon(self.lexicon_words + new)
        solution = self._word_regression(rows, k0)  # (new, D)
        lex = self.model.lexicon
        proj = lex.proj.weight.double()  # (D, dim): a row's vector is row · projᵀ
        lex.embedding.weight[k0 + 1 :] = (solution @ torch.linalg.pinv(proj.T)).float()
        log.info("word path: %d entries added, fitted on %d rows", len(new), n_train - start)

    def _word_regression(self, rows: tuple, first: int) -> torch.Tensor:
        """Ridge regression (`LEXICON_RIDGE`) of the model's errors (centred target −
        prediction, the word path included) over `rows` (texts, vectors, weights, as
        `Data.read` gives them) on the weighted bag of the lexicon's words after the
        `first`: (words, D), float64."""
        cfg = self.cfg
        sents, vecs, weights = rows
        index = {c: i for i, c in enumerate(self.vocab)}
        self.model.eval()
        k = len(self.lexicon_words) - first
        gram = np.zeros(k * k)  # X^T X of the word masses X (rows × k), flattened
        cross = np.zeros((k, self.data.dim))  # X^T errors
        order = np.argsort([len(s) for s in sents])
        for i in range(0, len(sents), 256):
            idx = order[i : i + 256]
            texts = [sents[j] for j in idx]
            ids, lengths, w = batch_tensors(texts, [weights[j] for j in idx], index, cfg.max_chars)
            word_ids = self.word_ids(texts, ids)
            err = (vecs[idx] - self.data.mean) - self.model(ids, lengths, w, word_ids).numpy()
            word_ids, mass = word_ids.numpy() - first, w.numpy()
            real = (word_ids > 0) & (mass > 0)
            row = np.broadcast_to(np.arange(len(idx))[:, None], word_ids.shape)[real]
            key, inv = np.unique(row * k + word_ids[real] - 1, return_inverse=True)
            m = np.bincount(inv, mass[real].astype(np.float64))  # each text's word masses
            r, c = key // k, key % k
            np.add.at(cross, c, m[:, None] * err[r])
            bounds = np.flatnonzero(np.r_[True, r[1:] != r[:-1], True])
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
                cc, mm = c[lo:hi], m[lo:hi]
                np.add.at(gram, (cc[:, None] * k + cc[None, :]).ravel(), np.outer(mm, mm).ravel())
        self.model.train()
        gram = torch.from_numpy(gram.reshape(k, k))
        gram.diagonal().add_(LEXICON_RIDGE)
        return torch.linalg.solve(gram, torch.from_numpy(cross))

    def _fresh_state(self) -> bool:
        self.model.to(self.device)  # before the optimizer: its state follows
        self.opt = self._optimizer()
        self.pos = {"epoch": 0, "window": 0, "batch": 0, "step": 0}
        self.best = {"val_cos": -2.0, "step": -1}
        self.bad_evals = 0
        if self.rank > 0:  # dropout masks of their own (rank 0 keeps the 1-process stream)
            torch.manual_seed(self._rank_seed(0))
        return False

    def _optimizer(self):
        return torch.optim.AdamW(
            self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )

    # --- the loop --------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train; under torchrun, inside a joined process group (see `train`)."""
        cfg = self.cfg
        self.rank, self.world = 0, 1
        if distributed.is_initialized():
            self.rank, self.world = distributed.rank(), distributed.world_size()
        from ltd_bert.teacher.model import pick_device

        self.device = pick_device(distributed.resolve_device(cfg.device))
        resumed = self._setup()
        net = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            net = DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)
        self._rows = 0  # this rank's rows in its last batch (for the logged loss)
        n_train, n_val = split(self.data.n, cfg)
        self.pairs = self._pair_sampler(n_train) if cfg.pair_loss != "none" and cfg.epochs else None
        per_epoch = steps_per_epoch(n_train, cfg, self.data.offsets)
        total = per_epoch * cfg.epochs
        if cfg.max_steps:
            total = min(total, cfg.max_steps)
        index = {c: i for i, c in enumerate(self.vocab)}
        self.model.train()
        mean = self.data.mean
        t0 = time.perf_counter()
        seen = 0
        loss = torch.tensor(float("nan"))
        stopped_early = False
        done_steps_this_run = 0
        while self.pos["epoch"] < cfg.epochs and not stopped_early and self.pos["step"] < total:
            epoch = self.pos["epoch"]
            plan = epoch_plan(n_train, cfg, epoch, self.data.offsets)
            while self.pos["window"] < len(plan):
                window = plan[self.pos["window"]]
                sents, vecs, weights = self.data.read_window(window)
                batches = window_batches([len(s) for s in sents], cfg, epoch, window[0][0])
                while self.pos["batch"] < len(batches) and self.pos["step"] < total:
                    idx = batches[self.pos["batch"]]
                    rows, share = idx, 1.0
                    if self.world > 1:  # rows r, r + N, ... of the global batch
                        rows = idx[self.rank :: self.world]
                        # DDP averages over ranks: weight each rank's mean by its rows
                        share = len(rows) * self.world / len(idx)
                        if len(rows) == 0:  # a short last batch: join with zero weight
                            rows, share = idx, 0.0
                    for g in self.opt.param_groups:
                        g["lr"] = lr_at(self.pos["step"], total, cfg)
                    self.opt.zero_grad(set_to_none=True)
                    loss = torch.zeros(())
                    # long documents: the batch in parts whose gradients add up (memory)
                    for part in char_parts(rows, [len(sents[i]) for i in rows], cfg):
                        texts = [sents[i] for i in part]
                        pred = self.predict(net, texts, [weights[i] for i in part], index)
                        target = torch.from_numpy(vecs[part] - mean).to(self.device)
                        part_loss = loss_fn(pred.float(), target, cfg.loss) * (
                            len(part) / len(rows)
                        )
                        (part_loss * share if self.world > 1 else part_loss).backward()
                        loss = loss + part_loss.detach().cpu()
                    if self.pairs is not None:
                        loss = loss + self._pair_term(net, index)
                    self._rows = len(rows) if share else 0
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip)
                    self.opt.step()
                    self.pos["batch"] += 1
                    self.pos["step"] += 1
                    seen += len(idx)
                    done_steps_this_run += 1
                    if self.progress is not None:
                        self.progress(
                            self.pos["step"],
                            total,
                            float(loss.detach()),
                            seen / (time.perf_counter() - t0),
                        )
                    if cfg.eval_every and self.pos["step"] % cfg.eval_every == 0:
                        stopped_early = self._evaluate_and_log(epoch, float(loss.detach()))
                    if self.pos["step"] % cfg.checkpoint_every == 0:
                        self._checkpoint()
                    if (
                        self.stop_after_steps is not None
                        and done_steps_this_run >= self.stop_after_steps
                    ):
                        raise KeyboardInterrupt("simulated kill")
                    if stopped_early:
                        break
                if stopped_early or self.pos["step"] >= total:  # --max-steps: mid-epoch
                    break
                self.pos["window"] += 1
                self.pos["batch"] = 0
            if not stopped_early:
                self.pos["epoch"] += 1
                self.pos["window"] = 0
                if not cfg.eval_every or self.pos["step"] % cfg.eval_every:
                    stopped_early = self._evaluate_and_log(epoch, float(loss.detach()))
                self._checkpoint()
        if cfg.epochs == 0:  # no step (e.g. --lexicon-add alone): the model as it starts
            self._evaluate_and_log(-1, None)
        return self._finish(resumed, stopped_early, time.perf_counter() - t0, seen)

    # --- the relational term (student/pairs.py) --------------------------------------------
    def _pair_sampler(self, n_train: int) -> PairSampler:
        """The mined pair table (rank 0 mines it once, resumable), and its sampler."""
        cfg = self.cfg
        path = Path(cfg.pairs) if cfg.pairs else default_path(self.data_paths)
        if self.rank == 0:
            t0 = time.perf_counter()
            mine_pairs(self.data, path, n_train, cfg.pair_k, cfg.pair_k_cross, self.data.mean)
            log.info("pairs: %s (%.0f s)", path, time.perf_counter() - t0)
        distributed.barrier()
        return PairSampler(self.data, path, n_train, cfg.seed, cfg.pair_k, cfg.pair_from)

    def _pair_term(self, net, index: dict[str, int]) -> torch.Tensor:
        """This step's relational term, its gradient added to the parameters'. The pair
        batch's vectors are computed first without gradients, in parts (`char_parts`); the
        term's gradient with respect to them is then carried back through each part computed
        again with the same dropout (memory of one part, not of the whole pair batch)."""
        cfg, dev = self.cfg, self.device
        groups = max(1, cfg.pair_batch // cfg.pair_group)
        rows = self.pairs.draw(self.pos["step"], groups, cfg.pair_group, self.rank).reshape(-1)
        sents, weights = self.pairs.sents, self.pairs.weights
        parts = char_parts(list(range(len(rows))), [len(sents[r]) for r in rows], cfg)

        def forward(part):
            texts = [sents[rows[i]] for i in part]
            return self.predict(net, texts, [weights[rows[i]] for i in part], index).float()

        vecs = torch.empty(len(rows), self.data.dim, device=dev)
        states = []
        with torch.no_grad():
            for part in parts:
                states.append(torch.get_rng_state())
                vecs[part] = forward(part)
        vecs.requires_grad_(True)
        target = torch.from_numpy(self.pairs.vecs[rows] - self.data.mean).to(dev)
        term = pair_loss(vecs, target, cfg.pair_loss, groups, cfg.pair_group) * cfg.pair_weight
        term.backward()
        after = torch.get_rng_state()
        for part, state in zip(parts, states, strict=True):
            torch.set_rng_state(state)
            forward(part).backward(vecs.grad[part])
        torch.set_rng_state(after)
        return term.detach().cpu()

    def _finish(self, resumed, stopped_early, seconds, seen) -> dict[str, Any]:
        if self.rank == 0:
            self._save_model()
        self.data.close()
        distributed.barrier()  # the model folder exists on return, on every rank
        return {
            "best": self.best,
            "stopped_early": stopped_early,
            "seconds": seconds,
            "sentences_per_s": seen / max(seconds, 1e-9),
            "resumed": resumed,
            "steps": self.pos["step"],
            "params": sum(p.numel() for p in self.model.parameters()),
            "rank": self.rank,
            "world_size": self.world,
        }

    def _save_model(self) -> None:
        best_path = self.state_dir / "best.pt"
        if best_path.is_file():
            state = torch.load(best_path, map_location="cpu")
            self.model.load_state_dict(with_default_buffers(state, self.model.config))
        round_to_stored(self.model)
        pred, vecs, chars = self._val_predictions()
        cal = calibrate(pred.numpy(), vecs, self.data.mean, chars=chars)
        self.model.similarity.copy_(torch.from_numpy(cal.map))
        if cal.scores:
            plain = cal.scores[0.0]
            log.info(
                "similarity vectors: %s norm map, whitening %.2f, %.2f × the mean (neighbour-"
                "pair Spearman %.2f; no whitening %.2f, centred %.2f, all of the mean %.2f)",
                "a" if cal.norm is not None else "no",
                cal.whiten,
                cal.mean_scale,
                cal.score,
                max(plain.values()),
                plain[0.0],
                plain[1.0],
            )
        s = self.data.settings
        meta = {
            "teacher": s.get("teacher"),
            "teacher_config": s.get("teacher_config"),
            "pooling": s.get("pooling"),
            "layer": s.get("layer"),
            "prefix": s.get("prefix"),
            "eps": s.get("eps"),
            "segmenter": self.cfg.segmenter or s.get("segmenter", "jieba"),
            "idf_sha256": s.get("idf_sha256"),
            "max_chars": self.cfg.max_chars,
            **({"window": self.cfg.text_window} if self.cfg.text_window else {}),
            "centered": True,
            **cal.config_entries(),
            "train": asdict(self.cfg),
            "train_data": self.data_paths,
            "train_rows": split(self.data.n, self.cfg)[0],
            "best": self.best,
        }
        self.model.eval()
        lexicon = None
        if self.model.lexicon is not None:
            lexicon = self.model.lexicon.numpy_lexicon(self.lexicon_words)
        save_model_folder(
            self.output,
            self.model,
            self.vocab,
            self.idf_source,
            meta,
            [self.state_dir / "metrics.jsonl"],
            lexicon=lexicon,
        )
        shutil.rmtree(self.state_dir, ignore_errors=True)


def train(
    data_paths, output, cfg: TrainConfig, resume=False, progress=None, stop_after_steps=None
) -> dict[str, Any]:
    """Train a student; under torchrun with several processes, as one DDP job (gloo)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = distributed.resolve_device(cfg.device)
    if cfg.precision == "bf16":
        require_bf16("--precision bf16", device)  # oneDNN has no emulated bf16 LSTM
    with distributed.process_group(device, backend=distributed.backend_for(device)):
        return Trainer(data_paths, output, cfg, resume, progress, stop_after_steps).run()


__all__ = ["TrainConfig", "train", "__version__"]
