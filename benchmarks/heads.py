"""THUCNews titles: fine-tuned student vs frozen student + linear head vs teacher + linear
head, on the same train and test subsets (issue: "put the vectors to work").

    .venv/bin/python benchmarks/heads.py -m MODEL_DIR [--train 3000] [--test 2000] [--epochs 3]

The teacher row uses the built-in teacher as intended (mean pooling, `query: ` prefix); its
vectors are cached in $LTD_HOME/eval_cache. The head recipe is `ltd finetune --freeze`'s.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
THUC = ROOT.parent / "shared" / "data" / "eval" / "THUCNews"


def subset(path: Path, n: int, seed: int) -> list[tuple[str, str]]:
    rows = [tuple(x.split("\t")) for x in path.read_text(encoding="utf-8").splitlines() if x]
    idx = np.random.default_rng(seed).permutation(len(rows))[:n]
    return [rows[i] for i in sorted(idx)]


def teacher_head(train, test, epochs: int, seed: int) -> float:
    from ltd_bert.common.cache import eval_cache
    from ltd_bert.tasks.evaluate import TeacherVectors
    from ltd_bert.tasks.finetune import unit_scaled
    from ltd_bert.teacher.model import Teacher
    from ltd_bert.text.idf import load_idf
    from ltd_bert.text.weights import Weighter

    t = Teacher("builtin")
    tv = TeacherVectors(
        t,
        Weighter(load_idf("jieba")),
        "query: ",
        poolings=["mean"],
        cache_dir=eval_cache(),
    )
    labels = sorted({y for _, y in train})
    ids = {y: i for i, y in enumerate(labels)}
    xtr = unit_scaled(torch.from_numpy(tv.vectors([s for s, _ in train], "mean")))
    xte = unit_scaled(torch.from_numpy(tv.vectors([s for s, _ in test], "mean")))
    ytr = torch.tensor([ids[y] for _, y in train])
    yte = torch.tensor([ids[y] for _, y in test])
    torch.manual_seed(seed)
    head = torch.nn.Linear(xtr.shape[1], len(labels))
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=0.01)
    best = 0.0
    for _ in range(epochs):
        for b in torch.randperm(len(xtr)).split(32):
            loss = F.cross_entropy(head(xtr[b]), ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            best = max(best, float((head(xte).argmax(1) == yte).float().mean()))
    return best


def student_head(
    model: str, train_file: Path, test_file: Path, out: Path, freeze: bool, epochs: int, seed: int
) -> float:
    from ltd_bert.tasks.finetune import FinetuneConfig, finetune

    cfg = FinetuneConfig(task="classify", epochs=epochs, freeze=freeze, seed=seed, plot=False)
    return finetune(model, str(train_file), out, cfg, valid=str(test_file))["best"]["val_accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(2)
    train = subset(THUC / "dev.txt", a.train, a.seed)
    test = subset(THUC / "test.txt", a.test, a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tr, te = Path(tmp) / "train.tsv", Path(tmp) / "test.tsv"
        tr.write_text("".join(f"{s}\t{y}\n" for s, y in train), encoding="utf-8")
        te.write_text("".join(f"{s}\t{y}\n" for s, y in test), encoding="utf-8")
        rows = {
            "student, fine-tuned": student_head(
                a.model, tr, te, Path(tmp) / "ft", False, a.epochs, a.seed
            ),
            "student frozen + linear head": student_head(
                a.model, tr, te, Path(tmp) / "fz", True, a.epochs, a.seed
            ),
            "teacher (mean pooling) frozen + linear head": teacher_head(
                train, test, a.epochs, a.seed
            ),
        }
    print(
        f"THUCNews titles, {a.train} train (dev) / {a.test} test, {a.epochs} epochs, "
        "accuracy of the best epoch on test:"
    )
    print("| encoder | accuracy |\n|---|--:|")
    for k, v in rows.items():
        print(f"| {k} | {100 * v:.1f} % |")


if __name__ == "__main__":
    main()
