"""Long texts read in windows (runtime/base.py `windows`): fidelity, pair agreement and
encode speed on the calibration mix's document kinds for several window sizes.

    .venv/bin/python experiments/window_grid.py [MODEL] [--windows 0,128,256,384,512]
        [--suite ltd_bert/suites/calib]

Window 0 reads every text whole (as the model was trained). Speed is characters per second
of `encode` on the kind's texts (the student's whole `encode`, one process, best of 2).
Then the mix's documents × sentences row (`ltd eval suite`'s last row) for each window.
"""

from __future__ import annotations

import argparse
import time

from ltd_bert.student.model import Student
from ltd_bert.tasks.suite import (
    cache_dir,
    cross_row,
    load_kind,
    measure,
    run_suite,
    suite_files,
    teacher_vectors,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="zh-small")
    ap.add_argument("--windows", default="0,128,256,384,512")
    ap.add_argument("--suite", default=None, help="suite folder (default: the calibration mix)")
    ap.add_argument("--kinds", default="docs_200_1000,docs_1000_4000")
    args = ap.parse_args()
    from ltd_bert.suites import CALIB

    student = Student.load(args.model)
    files = {f.stem: f for f in suite_files(args.suite or CALIB)}
    cache = cache_dir(student)
    print("| kind | window | fidelity | pairs matched | pairs default | chars/s |")
    print("|---|--:|--:|--:|--:|--:|")
    for kind in args.kinds.split(","):
        texts = load_kind(files[kind])
        targets = teacher_vectors(student, files[kind], texts, cache, None, None)
        chars = sum(len(t) for t in texts)
        for w in [int(x) for x in args.windows.split(",")]:
            student.window = w
            best = float("inf")
            for _ in range(2):
                t0 = time.perf_counter()
                pred = student.encode(texts, space="centred")
                best = min(best, time.perf_counter() - t0)
            lengths = [len(t) for t in texts]
            fid, _, default, matched, _ = measure(student, pred, targets, lengths)
            print(
                f"| {kind} | {w} | {fid:.4f} | {matched:.1f} | {default:.1f} | "
                f"{chars / best:,.0f} |",
                flush=True,
            )

    print("\n| window | documents × sentences: pairs centred | default | matched |")
    print("|--:|--:|--:|--:|")
    for w in [int(x) for x in args.windows.split(",")]:
        student.window = w
        vectors: dict = {}
        run_suite(student, args.suite or CALIB, vectors=vectors)
        r = cross_row(student, vectors)
        print(f"| {w} | {r.pairs_centred:.1f} | {r.pairs_default:.1f} | {r.pairs_matched:.1f} |")


if __name__ == "__main__":
    main()
