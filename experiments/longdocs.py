"""Do texts of several hundred characters still encode well? (issue 5)

The corpus has no line over 225 characters, so long texts are built from THUCNews test
titles: a "document" is --titles titles of one news class joined with "。" (about 300
characters), a topic-coherent text. Two measures, for short texts and for documents:

- fidelity: mean cosine between the student's vector and the teacher's (IDF pooling, the
  student's target, centred on the model's mean), as `ltd eval fidelity` reports it; for
  corpus lines by length (rows far past the shipped model's training rows) and for the
  documents;
- topic: leave-one-out 1-nearest-neighbour class accuracy (cosine), over single titles and
  over documents, for the student and the teacher (mean pooling as intended, IDF pooling).

    .venv/bin/python experiments/longdocs.py [-m MODEL] [--docs-per-class 20] [--titles 15]
"""

from __future__ import annotations

import argparse
import itertools
import random
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
BUCKETS = ((1, 25), (25, 50), (50, 100), (100, 300))


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def nn_accuracy(v: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy by cosine."""
    sim = unit(v) @ unit(v).T
    np.fill_diagonal(sim, -np.inf)
    return float((labels[sim.argmax(1)] == labels).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", default=str(ROOT / "ltd_bert" / "models" / "zh-small"))
    ap.add_argument("--corpus", default=str(DATA / "corpus" / "zh_big.txt"))
    ap.add_argument("--titles-file", default=str(DATA / "eval" / "THUCNews" / "test.txt"))
    ap.add_argument("--skip", type=int, default=1_900_000, help="corpus lines skipped first")
    ap.add_argument("--per-bucket", type=int, default=200)
    ap.add_argument("--docs-per-class", type=int, default=20)
    ap.add_argument("--titles", type=int, default=15, help="titles joined into a document")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from ltd_bert.student.model import Student
    from ltd_bert.teacher.model import PoolingSettings, Teacher
    from ltd_bert.text.clean import clean_text

    student = Student.load(args.model)
    buckets: dict[tuple[int, int], list[str]] = {b: [] for b in BUCKETS}
    with open(args.corpus, encoding="utf-8") as f:
        for line in itertools.islice(f, args.skip, None):
            text = clean_text(line)
            for lo, hi in BUCKETS:
                if lo <= len(text) < hi and len(buckets[(lo, hi)]) < args.per_bucket:
                    buckets[(lo, hi)].append(text)
            if all(len(v) == args.per_bucket for v in buckets.values()):
                break

    by_class: dict[str, list[str]] = {}
    with open(args.titles_file, encoding="utf-8") as f:
        for line in f:
            title, _, label = line.rstrip("\n").rpartition("\t")
            if title:
                by_class.setdefault(label, []).append(clean_text(title))
    rng = random.Random(args.seed)
    titles, title_labels, docs, doc_labels = [], [], [], []
    for label, items in sorted(by_class.items()):
        rng.shuffle(items)
        need = args.docs_per_class * args.titles
        for i in range(args.docs_per_class):
            docs.append("。".join(items[i * args.titles : (i + 1) * args.titles]))
            doc_labels.append(label)
        titles += items[need : need + args.docs_per_class]
        title_labels += [label] * args.docs_per_class

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

    def fidelity(texts: list[str], t: dict[str, np.ndarray], s: np.ndarray) -> float:
        return float((unit(s) * unit(t["idf"] - student.mean)).sum(1).mean())

    print("| texts | n | mean chars | fidelity (centred cosine to the teacher) |")
    print("|---|--:|--:|--:|")
    for (lo, hi), texts in buckets.items():
        fid = fidelity(texts, teach(texts), student.encode(texts, space="centred"))
        chars = np.mean([len(x) for x in texts])
        print(
            f"| corpus lines of {lo}-{hi - 1} characters | {len(texts)} | {chars:.0f} | {fid:.4f} |"
        )
    sets = {}
    for name, texts, labels in [
        ("single titles", titles, title_labels),
        ("documents", docs, doc_labels),
    ]:
        t, s = teach(texts), student.encode(texts)  # similarity vectors for the topic test
        sets[name] = (t, s, np.array(labels))
        chars = np.mean([len(x) for x in texts])
        fid = fidelity(texts, t, student.encode(texts, space="centred"))
        print(f"| THUCNews {name} | {len(texts)} | {chars:.0f} | {fid:.4f} |")
    print()
    n_classes = len(by_class)
    print(
        f"topic: leave-one-out 1-NN class accuracy ({n_classes} classes, chance "
        f"{1 / n_classes:.2f}); documents = {args.titles} titles of one class"
    )
    print("| encoder | single titles | documents |")
    print("|---|--:|--:|")
    for name, pick in [
        ("student", lambda t, s: s),
        ("teacher, mean pooling", lambda t, s: t["mean"]),
        ("teacher, IDF pooling", lambda t, s: t["idf"]),
    ]:
        accs = [nn_accuracy(pick(t, s), y) for t, s, y in sets.values()]
        print(f"| {name} | {accs[0]:.3f} | {accs[1]:.3f} |")


if __name__ == "__main__":
    main()
