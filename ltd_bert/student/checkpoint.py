"""The state folder of a training run (MODEL.partial): checkpoints to resume from, exact
under torchrun too, and the metrics log."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from ltd_bert.common.errors import InputError
from ltd_bert.student.config import TrainConfig
from ltd_bert.teacher import distributed


class Checkpoints:
    """The `Trainer`'s state folder (MODEL.partial): the checkpoint it resumes from (every rank's
    RNG state under torchrun), and the metrics log."""

    def _read_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint to resume from; else None, and an empty state folder (rank 0)."""
        cfg = self.cfg
        ckpt_path = self.state_dir / "checkpoint.pt"
        if self.resume and ckpt_path.is_file():
            try:
                ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
            except Exception as exc:  # torch raises several kinds for a damaged file
                raise InputError(
                    f"{ckpt_path}: unreadable checkpoint ({str(exc).splitlines()[0][:80]}); "
                    "drop --resume to start over"
                ) from None
            diff = [
                k
                for k, v in asdict(cfg).items()
                if k not in ("threads", "device", "precision")  # how, not what, it computes
                and ckpt["train_config"].get(k, TrainConfig.__dataclass_fields__[k].default) != v
            ]
            if diff or ckpt["data"] != self.data_paths:
                hint = " (or --no-mix-files: a run from before that option)" * (
                    diff == ["mix_files"] and cfg.mix_files
                )
                raise InputError(
                    f"{ckpt_path}: made with other settings "
                    f"({', '.join(diff) or 'data files'}); drop --resume to start over{hint}"
                )
            return ckpt
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        self.state_dir.mkdir(parents=True)
        return None

    def _rank_seed(self, step: int) -> int:
        return int(np.random.default_rng([self.cfg.seed, self.rank, step]).integers(2**62))

    def _rng_state(self, ckpt: dict[str, Any]) -> torch.Tensor:
        """This rank's torch RNG state from a checkpoint (exact when the number of ranks is
        the one that wrote it; other ranks are reseeded when it changed)."""
        states = ckpt.get("torch_rng_ranks")
        if states is not None and len(states) == self.world:
            return states[self.rank]
        if self.rank == 0:
            return ckpt["torch_rng"]
        return torch.Generator().manual_seed(self._rank_seed(ckpt["pos"]["step"])).get_state()

    def _checkpoint(self):
        if self.world > 1:  # every rank's RNG state (dropout), then rank 0 alone writes
            states = distributed.gather(torch.get_rng_state())
            if self.rank == 0:
                self._write_checkpoint({"torch_rng_ranks": states, "world_size": self.world})
            distributed.barrier()
            return
        self._write_checkpoint({})

    def _write_checkpoint(self, extra: dict[str, Any]):
        ckpt = {
            "train_config": asdict(self.cfg),
            "data": self.data_paths,
            "vocab": self.vocab,
            "lexicon_words": self.lexicon_words,
            "student": asdict(self.model.config),
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "pos": dict(self.pos),
            "best": dict(self.best),
            "bad_evals": self.bad_evals,
            **extra,
        }
        tmp = self.state_dir / "checkpoint.pt.tmp"
        torch.save(ckpt, tmp)
        os.replace(tmp, self.state_dir / "checkpoint.pt")

    def _log(self, record: dict[str, Any]):
        with open(self.state_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
