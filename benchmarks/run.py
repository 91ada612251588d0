"""Benchmark every stage of ltd_bert on the same sentences and print one markdown table.

    .venv/bin/python benchmarks/run.py [--sentences 2000] [--only idf,weights,...]
        [--threads 2] [--model DIR ...] [--json OUT]

Each measurement runs in a fresh subprocess (this script with the hidden `--child NAME`
flag), so the peak RSS it reports is its own. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "data" / "corpus" / "zh_big.txt"
FALLBACK = ROOT / "data" / "corpus_sample.txt"
STAGES = ("idf", "weights", "teacher", "embed", "student", "train")
IDF_MIN_LINES = 20_000
PREFIX = "query: "
BATCH = 64
MAX_LENGTH = 256


# --- helpers shared by parent and children ------------------------------------------------


def read_lines(path: str | Path) -> list[str]:
    """The lines of a file this script wrote (`\\n`-separated, one trailing `\\n`)."""
    text = Path(path).read_text(encoding="utf-8")
    return text[:-1].split("\n") if text else []


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def init_jieba() -> None:
    """jieba's dictionary is loaded before any timing (forked idf workers inherit it)."""
    from ltd_bert.weights import get_segmenter

    get_segmenter()


# --- measurements: each runs in its own process -------------------------------------------


def m_idf_bare(ctx: dict) -> dict:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    lines = read_lines(ctx["idf_file"])
    secs, _ = timed(lambda: [jieba.lcut(line) for line in lines])
    return {"seconds": secs, "items": len(lines)}


def _idf_build(ctx: dict, workers: int) -> dict:
    from ltd_bert.idf import build_idf

    init_jieba()
    out = Path(ctx["tmp"]) / f"idf-w{workers}.tsv"
    secs, stats = timed(build_idf, [ctx["idf_file"]], out, workers=workers)
    return {"seconds": secs, "items": stats.lines, "words": stats.words}


def m_idf_w1(ctx: dict) -> dict:
    return _idf_build(ctx, 1)


def m_idf_w2(ctx: dict) -> dict:
    return _idf_build(ctx, 2)


def m_weights(ctx: dict) -> dict:
    from ltd_bert.idf import load_idf
    from ltd_bert.weights import Weighter

    init_jieba()
    load_s, table = timed(load_idf, "jieba")
    weighter = Weighter(table, 1.0)
    sents = read_lines(ctx["sentences"])
    cold, _ = timed(lambda: [weighter(s) for s in sents])
    warm, _ = timed(lambda: [weighter(s) for s in sents])
    return {"seconds": cold, "warm_seconds": warm, "items": len(sents), "idf_load_s": load_s}


def _teacher_forward(ctx: dict, sort: bool) -> dict:
    import torch

    from ltd_bert.teacher import Teacher

    load_s, teacher = timed(Teacher, "builtin")
    sents = read_lines(ctx["sentences"])
    order = list(range(len(sents)))
    if sort:
        order.sort(key=lambda i: len(sents[i]))
    batches = [[sents[i] for i in order[s : s + BATCH]] for s in range(0, len(order), BATCH)]
    real = padded = 0

    def step(batch: list[str]):
        inputs = teacher.tokenizer(
            [PREFIX + s for s in batch],
            padding=True,
            truncation=True,
            max_length=MAX_LENGTH,
            return_tensors="pt",
        )
        teacher.model(**inputs)
        return inputs["attention_mask"]

    with torch.inference_mode():
        step(sents[:8])  # warm-up, not timed
        t0 = time.perf_counter()
        for batch in batches:
            mask = step(batch)
            real += int(mask.sum())
            padded += mask.numel()
        secs = time.perf_counter() - t0
    return {
        "seconds": secs,
        "items": len(sents),
        "real_tokens": real,
        "padded_tokens": padded,
        "load_s": load_s,
    }


def m_teacher_sorted(ctx: dict) -> dict:
    return _teacher_forward(ctx, sort=True)


def m_teacher_unsorted(ctx: dict) -> dict:
    return _teacher_forward(ctx, sort=False)


def m_embed(ctx: dict) -> dict:
    from ltd_bert.embed import teacher_embed
    from ltd_bert.idf import load_idf
    from ltd_bert.teacher import PoolingSettings, Teacher
    from ltd_bert.weights import Weighter

    init_jieba()
    teacher = Teacher("builtin")
    weighter = Weighter(load_idf("jieba"), 1.0)
    pooling = PoolingSettings("idf", -1, PREFIX, MAX_LENGTH)
    warm = [weighter(s) for s in read_lines(ctx["sentences"])[:8] if s.strip()]
    teacher.embed([t for t, _ in warm], [w for _, w in warm], pooling)  # warm-up, not timed
    secs, stats = timed(
        teacher_embed,
        [ctx["sentences"]],
        ctx["teacher_h5"],
        teacher,
        weighter,
        pooling,
        batch_size=BATCH,
        chunk_size=2048,
        overwrite=True,
    )
    return {"seconds": secs, "items": stats.lines, "rows": stats.rows, "truncated": stats.truncated}


def m_student(ctx: dict) -> dict:
    from ltd_bert.student import Student

    model_dir = Path(ctx["model"])
    sents = read_lines(ctx["sentences"])
    load_s, student = timed(Student.load, model_dir)
    student.encode(sents[:100])  # warm-up, not timed
    secs, _ = timed(student.encode, sents)
    fresh = Student.load(model_dir)  # same word-cache state as the encode run above
    fresh.prepare(sents[:100])
    prep, _ = timed(fresh.prepare, sents)
    params = sum(p.numel() for p in student.model.parameters())
    return {
        "seconds": secs,
        "items": len(sents),
        "prepare_seconds": prep,
        "params": params,
        "file_bytes": (model_dir / "model.safetensors").stat().st_size,
        "load_s": load_s,
    }


def m_train(ctx: dict) -> dict:
    from ltd_bert.train import TrainConfig, train

    cfg = TrainConfig(
        epochs=1, embedding_dim=256, hidden_size=256, batch_size=128, threads=ctx["threads"]
    )
    out = Path(ctx["tmp"]) / "student"
    wall, res = timed(train, [ctx["teacher_h5"]], out, cfg)
    return {
        "seconds": res["seconds"],  # the training loop only
        "items": round(res["sentences_per_s"] * res["seconds"]),
        "wall_seconds": wall,  # + vocabulary, teacher embedding init, evaluation, saving
        "steps": res["steps"],
        "params": res["params"],
    }


MEASURES: dict[str, Callable[[dict], dict]] = {
    "idf_bare": m_idf_bare,
    "idf_w1": m_idf_w1,
    "idf_w2": m_idf_w2,
    "weights": m_weights,
    "teacher_sorted": m_teacher_sorted,
    "teacher_unsorted": m_teacher_unsorted,
    "embed": m_embed,
    "student": m_student,
    "train": m_train,
}


def child_main(name: str, ctx_path: str) -> None:
    ctx = json.loads(Path(ctx_path).read_text(encoding="utf-8"))
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(ctx["threads"])
    result = MEASURES[name](ctx)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["children_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    Path(ctx["result"]).write_text(json.dumps(result), encoding="utf-8")


# --- the parent: run the children, build the table ----------------------------------------


def run_child(name: str, ctx: dict, tag: str = "") -> dict:
    key = name + (f"-{tag}" if tag else "")
    tmp = Path(ctx["tmp"])
    ctx = dict(ctx, result=str(tmp / f"result-{key}.json"))
    ctx_path = tmp / f"ctx-{key}.json"
    ctx_path.write_text(json.dumps(ctx), encoding="utf-8")
    threads = str(ctx["threads"])
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    env.update(RAYON_NUM_THREADS=threads, TOKENIZERS_PARALLELISM="false")
    print(f"[bench] {key} ...", file=sys.stderr, flush=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--ctx", str(ctx_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        print(f"[bench] {key} FAILED:\n{proc.stderr[-3000:]}", file=sys.stderr, flush=True)
        return {"error": tail[:120]}
    return json.loads(Path(ctx["result"]).read_text(encoding="utf-8"))


def load_sentences(n: int) -> tuple[list[str], Path]:
    src = CORPUS if CORPUS.is_file() else FALLBACK
    lines: list[str] = []
    with open(src, "rb") as fh:
        for raw in fh:
            lines.append(raw.rstrip(b"\r\n").decode("utf-8", errors="replace"))
            if len(lines) >= n:
                break
    return lines, src


def default_models() -> list[str]:
    found = sorted(str(p.parent) for p in (ROOT / "ltd_bert" / "models").glob("*/config.json"))
    if (ROOT / "demo_work" / "model" / "config.json").is_file():
        found.append(str(ROOT / "demo_work" / "model"))
    return found


def rel(path: str | Path) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def check(ok: bool) -> str:
    return " ✓" if ok else " ✗"


class Table:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, what: str, r: dict, ratio: str = "–", target: str = "–", **extra: Any):
        if "error" in r:
            self.rows.append({"what": f"{what}: FAILED ({r['error']})"})
            return
        secs = r.get("seconds", 0.0)
        row = {"what": what, "items_s": r["items"] / secs if secs > 0 else 0.0, "seconds": secs}
        row.update(peak_mb=r["peak_mb"], ratio=ratio, target=target, **extra)
        self.rows.append(row)

    def note(self, what: str) -> None:
        self.rows.append({"what": what})

    def markdown(self) -> str:
        out = [
            "| what | items/s | time s | peak MB | ratio | target |",
            "|---|--:|--:|--:|--:|--:|",
        ]
        for r in self.rows:
            if "seconds" not in r:
                out.append(f"| {r['what']} | – | – | – | – | – |")
                continue
            peak = f"{r['peak_mb']:.0f}" + (
                f" (+{r['workers_mb']:.0f}/worker)" if "workers_mb" in r else ""
            )
            out.append(
                f"| {r['what']} | {r['items_s']:,.1f} | {r['seconds']:.2f} | {peak} "
                f"| {r['ratio']} | {r['target']} |"
            )
        return "\n".join(out)


def pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=2000, help="first N corpus lines")
    ap.add_argument("--only", default=",".join(STAGES), help="comma list of " + ",".join(STAGES))
    ap.add_argument("--threads", type=int, default=2, help="torch threads in every measurement")
    ap.add_argument("--model", nargs="+", action="extend", default=None, metavar="DIR")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--ctx", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_main(args.child, args.ctx)
        return
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if only - set(STAGES):
        ap.error(f"--only: unknown {', '.join(sorted(only - set(STAGES)))}")
    sents, src = load_sentences(args.sentences)
    n = len(sents)
    if n == 0:
        ap.error(f"{src}: no sentences")
    tmpdir = tempfile.TemporaryDirectory(prefix="ltd-bench-")
    tmp = Path(tmpdir.name)
    write_lines(tmp / "sentences.txt", sents)
    ctx = {
        "tmp": str(tmp),
        "threads": args.threads,
        "sentences": str(tmp / "sentences.txt"),
        "teacher_h5": str(tmp / "teacher.h5"),
    }
    results: dict[str, dict] = {}
    table = Table()
    t_start = time.perf_counter()

    if "idf" in only:
        reps = max(1, math.ceil(IDF_MIN_LINES / n))
        write_lines(tmp / "idf.txt", sents * reps)
        ctx["idf_file"] = str(tmp / "idf.txt")
        bare, w1, w2 = (run_child(k, ctx) for k in ("idf_bare", "idf_w1", "idf_w2"))
        results.update(idf_bare=bare, idf_w1=w1, idf_w2=w2)
        lines = n * reps
        table.add(f"idf: bare `jieba.lcut` loop, {lines:,} lines", bare, "1.00×")
        for workers, r in ((1, w1), (2, w2)):
            ok = "error" not in r and "error" not in bare
            speed = bare["seconds"] / r["seconds"] if ok else float("nan")
            goal = 0.9 * workers
            extra = {"workers_mb": r["children_peak_mb"]} if workers > 1 and ok else {}
            table.add(
                f"idf: `build_idf` workers={workers} (lines/s)",
                r,
                f"{speed:.2f}× bare",
                f"≥ {goal:.2f}×" + check(speed >= goal),
                **extra,
            )

    if "weights" in only:
        r = results["weights"] = run_child("weights", ctx)
        table.add("weights: `Weighter` jieba IDF, cold cache", r)
        if "error" not in r:
            warm = dict(r, seconds=r["warm_seconds"])
            table.add(
                "weights: warm cache (second pass)",
                warm,
                f"{r['seconds'] / r['warm_seconds']:.2f}× cold",
            )

    teacher_s = None
    if "teacher" in only:
        s = results["teacher_sorted"] = run_child("teacher_sorted", ctx)
        u = results["teacher_unsorted"] = run_child("teacher_unsorted", ctx)
        for label, r in (("sorted", s), ("unsorted", u)):
            if "error" in r:
                table.add(f"teacher: forward, {label} batches", r)
                continue
            pad = 1 - r["real_tokens"] / r["padded_tokens"]
            what = (
                f"teacher: forward, {label} batches of {BATCH} ({r['real_tokens']:,} real / "
                f"{r['padded_tokens']:,} padded tokens, {pct(pad)} pad)"
            )
            if label == "sorted":
                teacher_s = r["seconds"]
                table.add(what + " = teacher encode", r, "1.00×")
            else:
                gain = r["seconds"] / teacher_s if teacher_s else float("nan")
                table.add(what, r, f"sorted {gain:.2f}×", "≥ 1.30×" + check(gain >= 1.3))

    embed_ok = False
    if "embed" in only or "train" in only:
        r = results["embed"] = run_child("embed", ctx)
        embed_ok = "error" not in r
        if "embed" not in only:
            table.note("(embed run only to make the teacher file for train; not timed here)")
        else:
            ratio, target = "–", "≤ 10 %"
            if teacher_s and embed_ok:
                over = r["seconds"] / teacher_s - 1
                ratio, target = f"+{pct(over)} vs forward", target + check(over <= 0.10)
            table.add("embed: `teacher_embed` → HDF5 (idf pooling)", r, ratio, target)

    if "student" in only:
        models = args.model if args.model is not None else default_models()
        if not models:
            table.note("student: no model folder found (train one, or pass --model DIR); skipped")
        for i, model in enumerate(models):
            r = results[f"student:{model}"] = run_child("student", dict(ctx, model=model), str(i))
            name = rel(model)
            if "error" in r:
                table.add(f"student `{name}`", r)
                continue
            size = f"{r['file_bytes'] / 1e6:.1f} MB file, {r['params'] / 1e6:.2f} M params"
            size += f" × 4 = {r['params'] * 4 / 1e6:.1f} MB"
            ratio = "–"
            if teacher_s:
                ratio = f"{teacher_s / r['seconds']:.1f}× teacher"
            table.add(f"student `{name}`: encode ({size})", r, ratio)
            prep = dict(r, seconds=r["prepare_seconds"])
            share = r["prepare_seconds"] / r["seconds"]
            table.add(
                f"student `{name}`: weights alone (`prepare`)", prep, f"{pct(share)} of encode"
            )

    if "train" in only:
        if not embed_ok:
            table.note("train: skipped, no teacher file (the embed run failed)")
        else:
            r = results["train"] = run_child("train", ctx)
            what = "train: 1 epoch, base 256/256, batch 128 (loop only"
            if "error" not in r:
                what += f"; wall {r['wall_seconds']:.1f} s with setup)"
            table.add(what, r)

    meta = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu": cpu_model(),
        "torch": metadata.version("torch"),
        "threads": args.threads,
        "sentences": n,
        "corpus": rel(src),
        "total_seconds": round(time.perf_counter() - t_start, 1),
    }
    print(f"\nBenchmark of ltd_bert on the first {n:,} lines of `{meta['corpus']}`\n")
    print(table.markdown())
    print(
        f"\n{meta['date']} · nproc {meta['nproc']} · {meta['cpu']} · torch {meta['torch']} · "
        f"threads {meta['threads']} · {meta['total_seconds']} s in all"
    )
    if args.json:
        doc = {"meta": meta, "rows": table.rows, "results": results}
        Path(args.json).write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
    tmpdir.cleanup()


if __name__ == "__main__":
    main()
