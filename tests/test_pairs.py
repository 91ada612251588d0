"""The relational term: mined neighbours, the pair batches drawn from them, the three losses,
and training with them (resumable, the table reused)."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch
from conftest import tiny_train_config
from safetensors.torch import load_file

from ltd_bert.common.errors import InputError, StoreError
from ltd_bert.student.data import Data
from ltd_bert.student.pairs import (
    PairSampler,
    default_path,
    mine_pairs,
    near_mask,
    pair_loss,
)
from ltd_bert.student.train import train


class FakeFile:
    def __init__(self, path, n):
        self.path, self.n = path, n

    def __len__(self):
        return self.n


class FakeData:
    """Four sentences and two documents, with hand-made teacher vectors (mean zero)."""

    def __init__(self):
        self.sents = ["a", "b", "c", "d", "长" * 300, "文" * 250]
        v = np.array(
            [[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.8, 0.2], [0.6, 0, 0.8], [0, 0.3, -1]],
            dtype=np.float32,
        )
        self.vecs = v
        self.mean = np.zeros(3, np.float32)
        self.files = [FakeFile("t.h5", 6)]

    def read(self, start, end):
        return self.sents[start:end], self.vecs[start:end], [None] * (end - start)


def test_mine_pairs_exact_neighbours_and_other_lengths(tmp_path):
    out = mine_pairs(FakeData(), tmp_path / "t.pairs.h5", 6, k=2, k_cross=1, block=4)
    with h5py.File(out, "r") as f:
        idx, cos = f["idx"][:], f["cos"][:]
    # row 0 (a sentence): nearest 1, then the document 4 (cosine 0.6); the nearest document: 4
    assert idx[0].tolist() == [1, 4, 4]
    assert cos[0, 0] == pytest.approx(0.9 / np.sqrt(0.82), abs=1e-3)
    # row 5 (a document): nearest 2 (0.287), then 3 (0.046); its nearest sentence: 2
    assert idx[5].tolist() == [2, 3, 2]
    assert idx[4].tolist() == [0, 1, 0]
    # mined once: the same call returns the file, a different k is refused by name
    assert mine_pairs(FakeData(), out, 6, k=2, k_cross=1) == out
    with pytest.raises(StoreError, match="pairs mined from other rows"):
        mine_pairs(FakeData(), out, 6, k=3, k_cross=1)


def test_mine_pairs_resumes_a_partial_table(tmp_path):
    out = tmp_path / "t.pairs.h5"
    calls = []

    def stop_after_first(done, total):
        calls.append(done)
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mine_pairs(FakeData(), out, 6, k=2, k_cross=1, block=2, progress=stop_after_first)
    assert not out.exists() and out.with_name(out.name + ".partial").exists()
    mine_pairs(FakeData(), out, 6, k=2, k_cross=1, block=2, progress=lambda d, n: calls.append(d))
    assert calls == [2, 4, 6]  # the first block (2) was not done again
    whole = mine_pairs(FakeData(), tmp_path / "w.pairs.h5", 6, k=2, k_cross=1, block=6)
    with h5py.File(out, "r") as a, h5py.File(whole, "r") as b:
        assert (a["idx"][:] == b["idx"][:]).all()


def test_sampler_draws_groups_of_neighbours_deterministically(tmp_path):
    out = mine_pairs(FakeData(), tmp_path / "t.pairs.h5", 6, k=2, k_cross=1)
    s = PairSampler(FakeData(), out, 6, seed=3, k=2)
    g = s.draw(step=7, anchors=5, group=3)
    assert g.shape == (5, 3)
    for row in g:
        assert set(row[1:]) <= set(s.idx[row[0]].tolist()) and row[1] != row[2]
    # a sentence's group: its own length class only; a document's: its sentences too
    assert s.valid[0].tolist() == [True, True, False] and s.valid[5].all()
    assert (s.draw(7, 5, 3) == g).all() and not (s.draw(8, 5, 3) == g).all()


def test_sampler_anchors_groups_on_the_rows_it_is_given(tmp_path):
    out = mine_pairs(FakeData(), tmp_path / "t.pairs.h5", 6, k=2, k_cross=1)
    s = PairSampler(FakeData(), out, 6, seed=3, k=2, anchors_from=4)
    g = s.draw(step=7, anchors=50, group=3)
    # anchors: the documents (rows 4 and 5) only; their neighbours any rows (row 2 is row
    # 5's nearest)
    assert set(g[:, 0].tolist()) == {4, 5}
    assert 2 in set(g[:, 1:].ravel().tolist())
    # anchored on every row, the draws are those of a sampler without the argument
    every = PairSampler(FakeData(), out, 6, seed=3, k=2, anchors_from=0)
    assert (every.draw(7, 5, 3) == PairSampler(FakeData(), out, 6, seed=3, k=2).draw(7, 5, 3)).all()
    with pytest.raises(InputError, match="anchors from row 6, of 6 training rows"):
        PairSampler(FakeData(), out, 6, seed=3, k=2, anchors_from=6)


def test_pair_losses_vanish_on_the_teacher_and_grow_with_disorder():
    torch.manual_seed(0)
    t = torch.randn(12, 5)
    for kind in ("mse", "corr", "list"):
        assert float(pair_loss(t.clone(), t, kind, 3, 4)) == pytest.approx(0, abs=1e-5)
        noisy = pair_loss(t + 0.3 * torch.randn(12, 5), t, kind, 3, 4)
        shuffled = pair_loss(t[torch.randperm(12)], t, kind, 3, 4)
        assert 0 < float(noisy) < float(shuffled)
    # corr only looks at order: a rescaled copy of the teacher's cosines costs nothing
    assert near_mask(2, 3).sum() == 2 * 3 * 2 and not near_mask(2, 3).diagonal().any()
    with pytest.raises(InputError, match="--pair-loss"):
        pair_loss(t, t, "none", 3, 4)


def test_default_path_beside_the_first_file(tmp_path):
    assert default_path([tmp_path / "a.h5"]) == tmp_path / "a.pairs.h5"
    two = default_path([tmp_path / "a.h5", tmp_path / "b.h5"])
    assert two.parent == tmp_path and two.name.startswith("a-") and two.name.endswith(".pairs.h5")


def test_training_with_pairs_resumes_like_an_uninterrupted_run(tiny_teacher_file, tmp_path):
    data = tmp_path / "t.h5"
    shutil.copy(tiny_teacher_file, data)
    cfg = tiny_train_config(pair_loss="corr", pair_batch=12, pair_group=3, pair_k=4, epochs=2)
    whole = train([str(data)], tmp_path / "whole", cfg)
    pairs = tmp_path / "t.pairs.h5"
    n_train = int(Data([str(data)]).n * 0.9)
    with h5py.File(pairs, "r") as f:
        assert f["idx"].shape == (n_train, 4 + cfg.pair_k_cross)
    assert "score" in whole["best"]
    with pytest.raises(KeyboardInterrupt):
        train([str(data)], tmp_path / "again", cfg, stop_after_steps=9)
    train([str(data)], tmp_path / "again", cfg, resume=True)
    a = load_file(str(tmp_path / "whole" / "model.safetensors"))
    b = load_file(str(tmp_path / "again" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    # the term changes what is learnt
    plain = train([str(data)], tmp_path / "plain", tiny_train_config(epochs=2))
    c = load_file(str(tmp_path / "plain" / "model.safetensors"))
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert plain["best"]["val_cos"] > 0


def test_the_cli_offers_the_pair_losses_training_knows():
    from ltd_bert.cli.base import PAIR_LOSSES as CLI
    from ltd_bert.student.config import PAIR_LOSSES

    assert CLI == PAIR_LOSSES


def test_mine_pairs_starts_over_from_a_partial_table_of_other_settings(tmp_path):
    out = tmp_path / "t.pairs.h5"

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mine_pairs(FakeData(), out, 6, k=3, k_cross=1, block=2, progress=stop)
    mine_pairs(FakeData(), out, 6, k=2, k_cross=1, block=2)
    with h5py.File(out, "r") as f:
        assert f["idx"].shape == (6, 3) and f["idx"][0].tolist() == [1, 4, 4]
