"""Do documents of several hundred characters still encode well? (issue 5)

Documents are runs of consecutive corpus lines from far past the shipped model's training
rows, joined until they reach --min-chars. Two measures, for short lines and for documents:

- fidelity: mean cosine between the student's vector and the teacher's (IDF pooling, the
  student's target, centred on the model's mean), as `ltd eval fidelity` reports it;
- half matching: each document is cut in two at a line boundary; the first half must find
  its own second half among all second halves (top-1 accuracy and MRR), for the student
  and for the teacher used as intended (mean pooling, `query: ` prefix).

    .venv/bin/python scripts/longdocs.py [-m MODEL] [--docs 200] [--min-chars 300]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "data" / "corpus" / "zh_big.txt"


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def half_matching(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Top-1 accuracy and MRR of finding b[i] for a[i] among all of b by cosine."""
    sim = unit(a) @ unit(b).T
    rank = (sim > sim.diagonal()[:, None]).sum(1)  # 0 = found first
    return float((rank == 0).mean()), float((1.0 / (rank + 1)).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", default=str(ROOT / "ltd_bert" / "models" / "zh-small"))
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--skip", type=int, default=1_900_000, help="corpus lines skipped first")
    ap.add_argument("--docs", type=int, default=200)
    ap.add_argument("--min-chars", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()

    from ltd_bert.student import Student
    from ltd_bert.teacher import PoolingSettings, Teacher
    from ltd_bert.weights import clean_text

    student = Student.load(args.model)
    with open(args.corpus, encoding="utf-8") as f:
        lines = [clean_text(x) for x in itertools.islice(f, args.skip, None)]
    docs: list[list[str]] = []
    buf: list[str] = []
    for line in lines:
        if not line:
            continue
        buf.append(line)
        if sum(map(len, buf)) >= args.min_chars and len(buf) >= 2:
            docs.append(buf)
            buf = []
            if len(docs) == args.docs:
                break
    used = sum(len(d) for d in docs)
    short = [x for x in lines[used : used + 3 * args.docs] if x][: 2 * args.docs]
    whole = ["".join(d) for d in docs]
    firsts = ["".join(d[: len(d) // 2]) for d in docs]
    seconds = ["".join(d[len(d) // 2 :]) for d in docs]

    teacher = Teacher("builtin")
    settings = PoolingSettings("idf", -1, student.meta.get("prefix", "query: "), 512)

    def teach(texts: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, list[np.ndarray]] = {"idf": [], "mean": []}
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for i in range(0, len(order), args.batch):
            chunk = [texts[j] for j in order[i : i + args.batch]]
            weights = [student.weighter.char_weights(x) for x in chunk]
            vecs, _ = teacher.embed_poolings(chunk, weights, settings, ["idf", "mean"])
            for k in out:
                out[k].append(vecs[k])
        back = np.argsort(order)
        return {k: np.concatenate(v)[back] for k, v in out.items()}

    def fidelity(texts: list[str]) -> float:
        t = teach(texts)["idf"] - student.mean
        s = student.encode(texts)
        return float((unit(s) * unit(t)).sum(1).mean())

    rows = [
        ("short lines", len(short), np.mean([len(x) for x in short]), fidelity(short)),
        ("documents", len(whole), np.mean([len(x) for x in whole]), fidelity(whole)),
    ]
    print("| texts | n | mean chars | fidelity (centred cosine to the teacher) |")
    print("|---|---:|---:|---:|")
    for name, n, chars, fid in rows:
        print(f"| {name} | {n} | {chars:.0f} | {fid:.4f} |")
    ta, tb = teach(firsts), teach(seconds)
    print()
    print(f"half matching over {len(docs)} documents (first half → its second half):")
    print("| encoder | top-1 | MRR |")
    print("|---|---:|---:|")
    for name, (a, b) in [
        ("student", (student.encode(firsts), student.encode(seconds))),
        ("teacher, mean pooling", (ta["mean"], tb["mean"])),
        ("teacher, IDF pooling", (ta["idf"], tb["idf"])),
    ]:
        top1, mrr = half_matching(a, b)
        print(f"| {name} | {top1:.3f} | {mrr:.3f} |")


if __name__ == "__main__":
    main()
