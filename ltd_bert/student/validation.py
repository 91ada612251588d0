"""What a training run measures on its validation rows: the loss, the centred cosines, and
the best model kept (`Validation`, a part of the `Trainer`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ltd_bert.runtime.base import read_chars
from ltd_bert.student.calibrate import NEIGHBOURS, neighbour_pairs, pair_fidelity
from ltd_bert.student.data import split
from ltd_bert.teacher import distributed


def loss_fn(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Distance between student and (centred) teacher vectors, (B, D) each.

    cosine: 1 - mean cosine; mse: squared distance relative to the targets' squared norm;
    both: their sum; relational: cosine plus the mean squared difference between the
    batch's student and teacher cosine-similarity matrices (the structure STS measures).
    """
    cos = 1 - F.cosine_similarity(pred, target, dim=-1).mean()
    if kind == "cosine":
        return cos
    if kind == "relational":
        p, t = F.normalize(pred, dim=-1), F.normalize(target, dim=-1)
        return cos + ((p @ p.T - t @ t.T) ** 2).mean()
    mse = ((pred - target) ** 2).sum(-1).mean() / target.pow(2).sum(-1).mean().clamp(min=1e-8)
    return mse if kind == "mse" else cos + mse


class Validation:
    """The `Trainer`'s evaluations: predictions of the validation rows, their metrics, the best
    model kept, patience, and the verdict shared by every rank."""

    @torch.no_grad()
    def _val_predictions(self) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """The student's (centred) vectors of the validation rows, their raw targets and
        their texts' lengths in characters."""
        self.model.eval()
        n_train, n_val = split(self.data.n, self.cfg)
        sents, vecs, weights = self.data.read(n_train, n_train + n_val)
        index = {c: i for i, c in enumerate(self.vocab)}
        preds = []
        order = np.argsort([len(s) for s in sents])
        for i in range(0, len(order), 256):
            idx = order[i : i + 256]
            texts = [sents[j] for j in idx]
            # in float32 whatever the run's precision
            pred = self.predict(self.model, texts, [weights[j] for j in idx], index, False)
            preds.append((idx, pred.cpu()))
        pred = torch.zeros(vecs.shape, dtype=torch.float32)
        for idx, p in preds:
            pred[torch.from_numpy(idx)] = p
        self.model.train()
        return pred, vecs, read_chars(sents, self.cfg.max_chars)

    def evaluate(self) -> dict[str, float]:
        pred, vecs, _ = self._val_predictions()
        target = torch.from_numpy(vecs - self.data.mean)
        mean = torch.from_numpy(self.data.mean)
        metrics = {
            "val_loss": float(loss_fn(pred, target, self.cfg.loss)),
            "val_cos": float(F.cosine_similarity(pred, target, dim=-1).mean()),
            "val_raw_cos": float(F.cosine_similarity(pred + mean, target + mean, dim=-1).mean()),
        }
        if len(vecs) > NEIGHBOURS:  # how like the teacher the rows' neighbour pairs are ordered
            pairs = neighbour_pairs(vecs, NEIGHBOURS)  # (centred vectors on both sides)
            metrics["val_pairs"] = pair_fidelity(
                pred.numpy(), target.numpy(), self.data.mean, 0.0, pairs
            )
        return metrics

    def score(self, metrics: dict[str, float]) -> float:
        """What the best model is kept on: the validation centred cosine; with a relational
        term, plus the pair agreement / 100 (both on the same footing)."""
        if self.cfg.pair_loss != "none" and "val_pairs" in metrics:
            return metrics["val_cos"] + metrics["val_pairs"] / 100
        return metrics["val_cos"]

    def _after_eval(self, metrics: dict[str, float]) -> bool:
        """Keep the best model; True when patience has run out."""
        score = self.score(metrics)
        improved = score > self.best.get("score", self.best["val_cos"]) + 1e-4
        if improved:
            self.best = {"val_cos": metrics["val_cos"], "score": score, "step": self.pos["step"]}
            self.bad_evals = 0
            torch.save(self.model.state_dict(), self.state_dir / "best.pt")
        else:
            self.bad_evals += 1
        return self.bad_evals >= self.cfg.patience

    def _evaluate_and_log(self, epoch: int, loss: float) -> bool:
        if self.world > 1:  # the global batch's loss; rank 0 evaluates, all learn the verdict
            shares = distributed.gather((loss, self._rows))
            rows = sum(n for _, n in shares)
            if rows:
                loss = sum(v * n for v, n in shares if n) / rows
            stop = self._evaluate_and_log_here(epoch, loss) if self.rank == 0 else False
            return distributed.broadcast(stop)
        return self._evaluate_and_log_here(epoch, loss)

    def _evaluate_and_log_here(self, epoch: int, loss: float) -> bool:
        metrics = self.evaluate()
        stop = self._after_eval(metrics)
        self._log(
            {
                "step": self.pos["step"],
                "epoch": epoch + 1,
                "train_loss": loss,
                **metrics,
                "lr": self.opt.param_groups[0]["lr"],
            }
        )
        return stop
