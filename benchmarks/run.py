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
from dataclasses import replace
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "data" / "corpus" / "zh_big.txt"
DOCS = ROOT.parent / "shared" / "data" / "corpus" / "zh_docs.txt"
#: the document row's texts: lengths in characters
DOC_CHARS = (200, 4000)
FALLBACK = ROOT / "data" / "corpus_sample.txt"
STAGES = (
    "idf",
    "weights",
    "teacher",
    "bert",
    "embed",
    "student",
    "encode",
    "sizes",
    "train",
    "startup",
    "docs",
)
#: what an AVX2-only CPU (no AVX-512, no AMX) leaves the libraries, imitated on a larger one:
#: the limits oneDNN, MKL, ATen and FBGEMM read. LTD_PRECISION is left unset, as on a real
#: AVX2 machine: `auto` sees no native bf16 under these limits and picks int8 or fp32 itself.
AVX2_ENV = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",
}
#: the rows measured again under AVX2_ENV (`--avx2`)
AVX2_STAGES = ("teacher", "bert", "encode", "docs")
#: how the student runs: the model's own forward (torch.lstm per direction over the padded
#: batch), the fused loop in fp32 or bf16 (student/fused.py), numpy (LightStudent), int8
#: (`ltd quantize`), ONNX (`ltd export`); benchmarks/fused.py also times the packed nn.LSTM
VARIANTS = ("padded", "fp32", "bf16", "numpy", "int8", "onnx")
#: bert-base-chinese's sizes, for a random-weight BertModel built here (no hub access)
BERT_BASE = dict(
    vocab_size=21128,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    max_position_embeddings=512,
    type_vocab_size=2,
)
IDF_MIN_LINES = 20_000
PREFIX, BATCH, MAX_LENGTH = "query: ", 64, 256
TOKENIZE = {"padding": True, "truncation": True, "max_length": MAX_LENGTH, "return_tensors": "pt"}


def read_lines(path: str | Path) -> list[str]:
    """The lines of a file `write_lines` wrote (split on `\\n` only, as LineReader does)."""
    text = Path(path).read_text(encoding="utf-8")
    return text[:-1].split("\n") if text else []


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def cpu_now() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


class Clock:
    """`with Clock() as c:` → `c.result(items=...)`: wall and CPU seconds of the block."""

    def __enter__(self) -> Clock:
        self.t0, self.c0 = time.perf_counter(), cpu_now()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.cpu = cpu_now() - self.c0

    def result(self, **extra: Any) -> dict:
        return {"seconds": self.seconds, "cpu_seconds": self.cpu, **extra}


def init_jieba() -> None:
    """jieba's dictionary is loaded before any timing (forked idf workers inherit it)."""
    from ltd_bert.text.segment import get_segmenter

    get_segmenter()


# --- measurements: each runs in a process of its own --------------------------------------


def m_idf_bare(ctx: dict) -> dict:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    lines = read_lines(ctx["idf_file"])
    with Clock() as c:
        for line in lines:
            jieba.lcut(line)
    return c.result(items=len(lines))


def m_idf_build(ctx: dict) -> dict:
    from ltd_bert.text.idf import build_idf

    init_jieba()
    out = Path(ctx["tmp"]) / f"idf-w{ctx['workers']}.tsv"
    with Clock() as c:
        stats = build_idf([ctx["idf_file"]], out, workers=ctx["workers"])
    return c.result(items=stats.lines, words=stats.words)


def m_weights(ctx: dict) -> dict:
    from ltd_bert.text.idf import load_idf
    from ltd_bert.text.weights import Weighter

    init_jieba()
    with Clock() as load:
        weighter = Weighter(load_idf("jieba"), 1.0)
    sents = read_lines(ctx["sentences"])
    with Clock() as cold:
        for s in sents:
            weighter(s)
    with Clock() as warm:
        for s in sents:
            weighter(s)
    return cold.result(items=len(sents), warm_seconds=warm.seconds, idf_load_s=load.seconds)


def m_teacher(ctx: dict) -> dict:
    """Bare forward loop: tokenise a batch, run the model; sorted by length or not."""
    import torch

    from ltd_bert.teacher.model import Teacher

    teacher = Teacher("builtin", dtype="bf16" if ctx.get("bf16") else None)
    sents = read_lines(ctx["sentences"])
    order = list(range(len(sents)))
    if ctx["sort"]:
        order.sort(key=lambda i: len(sents[i]))
    batches = [[sents[i] for i in order[s : s + BATCH]] for s in range(0, len(order), BATCH)]
    real = padded = 0

    def step(batch: list[str]) -> torch.Tensor:
        inputs = teacher.tokenizer([PREFIX + s for s in batch], **TOKENIZE)
        teacher.model(**inputs)
        return inputs["attention_mask"]

    with torch.inference_mode():
        step(sents[:8])  # warm-up, not timed
        with Clock() as c:
            for batch in batches:
                mask = step(batch)
                real += int(mask.sum())
                padded += mask.numel()
    return c.result(items=len(sents), real_tokens=real, padded_tokens=padded)


def m_bert(ctx: dict) -> dict:
    """A BERT-base forward (bert-base-chinese's sizes, random weights: speed does not depend
    on their values) on one token per character plus [CLS] and [SEP], sorted batches."""
    import torch
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(**BERT_BASE)).eval()
    if ctx.get("bf16"):
        model = model.to(torch.bfloat16)
    sents = read_lines(ctx["sentences"])
    order = sorted(range(len(sents)), key=lambda i: len(sents[i]))
    batches = [[sents[i] for i in order[s : s + BATCH]] for s in range(0, len(order), BATCH)]
    cls, sep, vocab = 101, 102, BERT_BASE["vocab_size"]

    def tensors(batch: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [[cls, *(1000 + ord(ch) % (vocab - 1000) for ch in s[:510]), sep] for s in batch]
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return ids, mask

    real = 0
    with torch.inference_mode():
        model(*tensors(sents[:8]))  # warm-up, not timed
        with Clock() as c:
            for batch in batches:
                ids, mask = tensors(batch)
                model(input_ids=ids, attention_mask=mask)
                real += int(mask.sum())
    return c.result(items=len(sents), real_tokens=real)


def m_startup(ctx: dict) -> dict:
    """Wall time of fresh `ltd` processes answering one request: `similarity A B`, `encode`
    of one line on stdin (torch-free), and the same encode through torch (`--threads`)."""
    ltd = [sys.executable, "-m", "ltd_bert", "--workdir", ctx["tmp"]]
    runs = {
        "similarity": ([*ltd, "similarity", "今天天气很好", "天气不错"], ""),
        "encode": ([*ltd, "encode", "-"], "今天天气很好\n"),
        "encode_torch": ([*ltd, "encode", "-", "--threads", str(ctx["threads"])], "今天天气很好\n"),
    }
    subprocess.run(runs["similarity"][0], capture_output=True, check=True)  # caches written
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(ctx.get("repeats", 3)):
        for key, (cmd, stdin) in runs.items():  # interleaved: the same load for each
            with Clock() as c:
                subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=True)
            times[key].append(c.seconds)
    median = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return {"seconds": median["similarity"], "items": 1, "times": times, "median": median}


def m_embed(ctx: dict) -> dict:
    from ltd_bert.teacher.embed import teacher_embed
    from ltd_bert.teacher.model import PoolingSettings, Teacher
    from ltd_bert.text.idf import load_idf
    from ltd_bert.text.weights import Weighter

    init_jieba()
    teacher = Teacher("builtin")
    weighter = Weighter(load_idf("jieba"), 1.0)
    pooling = PoolingSettings("idf", -1, PREFIX, MAX_LENGTH)
    warm = [weighter(s) for s in read_lines(ctx["sentences"])[:8] if s.strip()]
    teacher.embed([t for t, _ in warm], [w for _, w in warm], pooling)  # warm-up, not timed
    with Clock() as c:
        stats = teacher_embed(
            [ctx["sentences"]], ctx["teacher_h5"], teacher, weighter, pooling, BATCH, 2048
        )
    return c.result(items=stats.lines, rows=stats.rows, truncated=stats.truncated)


def load_variant(model_dir: Path, variant: str, tmp: str):
    """The student as float32, numpy (float32 without torch: `LightStudent`), int8 (`ltd
    quantize`) or ONNX (`ltd export`, onnxruntime)."""
    from ltd_bert.student.model import Student

    if variant == "numpy":
        from ltd_bert.runtime.light import LightStudent

        return LightStudent.load(model_dir), model_dir / "model.safetensors"

    if variant == "int8":
        from ltd_bert.student.quantize import quantize_model

        out = Path(tmp) / f"{model_dir.name}-int8"
        if not out.exists():
            quantize_model(model_dir, out)
        return Student.load(out), out / "model.safetensors"
    if variant == "onnx":
        from ltd_bert.student.export import OnnxStudent, export_onnx

        onnx = Path(tmp) / f"{model_dir.name}.onnx"
        if not onnx.exists():
            export_onnx(model_dir, onnx)
        return OnnxStudent.load(model_dir, onnx), onnx
    student = Student.load(model_dir, precision="bf16" if variant == "bf16" else "fp32")
    if variant == "padded":
        student.fused = False  # the model's forward: torch.lstm per direction, padded
    return student, model_dir / "model.safetensors"


def m_encode(ctx: dict) -> dict:
    """`ltd encode FILE -o OUT.npy` as a user runs it (a fresh process, wall time: imports,
    model, jieba's dictionary included) on the bigger sentence file."""
    ltd = [sys.executable, "-m", "ltd_bert", "--workdir", ctx["tmp"]]
    out = Path(ctx["tmp"]) / "encode-out.npy"
    cmd = [*ltd, "encode", ctx["big_sentences"], "-m", ctx["model"], "-o", str(out), "-q"]
    cmd += ctx.get("args", [])
    with Clock() as c:
        subprocess.run(cmd, capture_output=True, check=True)
    return c.result(items=ctx["big_count"])


def m_docs(ctx: dict) -> dict:
    """The document file through `ltd encode` (the student) or `ltd teacher-embed` (the
    teacher, with the model's IDF table and segmenter), as a user runs them: wall time of a
    fresh process; items are characters."""
    model = Path(ctx["model"])
    meta = json.loads((model / "config.json").read_text(encoding="utf-8"))
    ltd = [sys.executable, "-m", "ltd_bert", "--workdir", ctx["tmp"]]
    if ctx["who"] == "teacher":
        out = Path(ctx["tmp"]) / "docs-teacher.h5"
        out.unlink(missing_ok=True)
        cmd = [*ltd, "teacher-embed", "-i", ctx["docs"], "--idf", str(model / "idf.tsv.gz")]
        cmd += ["-o", str(out), "--segmenter", meta.get("segmenter", "jieba"), "-q"]
    else:
        out = Path(ctx["tmp"]) / "docs-student.npy"
        cmd = [*ltd, "encode", ctx["docs"], "-m", str(model), "-o", str(out), "-q"]
        cmd += ctx.get("args", [])
    with Clock() as c:
        subprocess.run(cmd, capture_output=True, check=True)
    return c.result(items=ctx["doc_chars"])


def m_random_model(ctx: dict) -> dict:
    """A model folder of another size with random weights (speed does not depend on their
    values) and the vocabulary, IDF and settings of `ctx["model"]`."""
    import torch

    from ltd_bert.student.model import BiLSTMStudent, Student, StudentConfig, save_model_folder

    src = Student.load(ctx["model"], precision="fp32")
    torch.manual_seed(0)
    lexicon = src.lexicon  # kept: the word path costs the same at every network size
    words = (len(lexicon.words), lexicon.dim) if lexicon is not None else (0, 0)
    config = StudentConfig(len(src.vocab), ctx["emb"], ctx["hid"], output_dim=src.dim)
    config = replace(config, lexicon_size=words[0], lexicon_dim=words[1])
    drop = ("student", "train", "best", "calibration_kinds", "mean_scale_scores", "whiten_scores")
    meta = {k: v for k, v in src.meta.items() if k not in drop}
    model = BiLSTMStudent(config).eval()
    save_model_folder(ctx["out"], model, src.vocab, src.weighter.idf.source, meta, lexicon=lexicon)
    return {"seconds": 0.0, "items": 0, "params": sum(p.numel() for p in model.parameters())}


def m_student(ctx: dict) -> dict:
    from ltd_bert.student.model import Student

    model_dir = Path(ctx["model"])
    sents = read_lines(ctx["sentences"])
    student, weights_file = load_variant(model_dir, ctx.get("variant", "fp32"), ctx["tmp"])
    student.encode(sents[:100])  # warm-up, not timed
    with Clock() as enc:
        student.encode(sents)
    fresh = Student.load(model_dir)  # the same word-cache state as the encode run above
    fresh.prepare(sents[:100])
    with Clock() as prep:
        fresh.prepare(sents)
    return enc.result(
        items=len(sents),
        prepare_seconds=prep.seconds,
        params=sum(p.numel() for p in Student.load(model_dir).model.parameters()),
        file_bytes=weights_file.stat().st_size,
    )


def m_train(ctx: dict) -> dict:
    from ltd_bert.student.config import TrainConfig
    from ltd_bert.student.train import train

    cfg = TrainConfig(
        epochs=1, embedding_dim=256, hidden_size=256, batch_size=128, threads=ctx["threads"]
    )
    with Clock() as wall:
        res = train([ctx["teacher_h5"]], Path(ctx["tmp"]) / "student", cfg)
    return {
        "seconds": res["seconds"],  # the training loop only
        "items": round(res["sentences_per_s"] * res["seconds"]),
        "wall_seconds": wall.seconds,  # + vocabulary, embedding init, evaluation, saving
        "steps": res["steps"],
        "params": res["params"],
    }


def m_sizes(ctx: dict) -> dict:
    """Network-only encode speed of an untrained student of one size and batch size (speed
    does not depend on the weights' values), weights and vocabulary fixed beforehand."""
    import numpy as np

    from ltd_bert.student.model import BiLSTMStudent, Student, StudentConfig, build_vocab
    from ltd_bert.text.idf import load_idf
    from ltd_bert.text.weights import Weighter

    sents = read_lines(ctx["sentences"])
    weighter = Weighter(load_idf("jieba"), 1.0)
    vocab = build_vocab(sents)
    config = StudentConfig(len(vocab), ctx["emb"], ctx["hid"], output_dim=384)
    student = Student(BiLSTMStudent(config), vocab, weighter, {})
    texts, weights = student.prepare(sents)
    student.encode_prepared(texts[:100], weights[:100], ctx["batch"])
    with Clock() as c:
        out = student.encode_prepared(texts, weights, ctx["batch"])
    assert np.isfinite(out).all()
    params = sum(p.numel() for p in student.model.parameters() if p is not None)
    return c.result(items=len(sents), params=params)


MEASURES: dict[str, Callable[[dict], dict]] = {
    f.__name__[2:]: f
    for f in (
        m_idf_bare,
        m_idf_build,
        m_weights,
        m_teacher,
        m_bert,
        m_embed,
        m_student,
        m_encode,
        m_random_model,
        m_train,
        m_sizes,
        m_startup,
        m_docs,
    )
}


def child_main(name: str, ctx_path: str) -> None:
    ctx = json.loads(Path(ctx_path).read_text(encoding="utf-8"))
    import torch

    torch.set_num_threads(ctx["threads"])
    result = MEASURES[name](ctx)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Largest waited-for child (the idf workers); a fork counts its parent's pages too.
    result["children_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    Path(ctx["result"]).write_text(json.dumps(result), encoding="utf-8")


# --- the parent: run the children, build the table ----------------------------------------


def run_child(key: str, ctx: dict, name: str | None = None) -> dict:
    """Run measurement `name` (default: `key`) in a fresh process; its result or an error.
    Under `ctx["avx2"]` the process sees AVX2_ENV (an AVX2-only CPU)."""
    tmp = Path(ctx["tmp"])
    if ctx.get("avx2"):
        key = f"avx2_{key}"
    ctx = dict(ctx, result=str(tmp / f"result-{key}.json"))
    (tmp / f"ctx-{key}.json").write_text(json.dumps(ctx), encoding="utf-8")
    n = str(ctx["threads"])
    env = dict(os.environ, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, RAYON_NUM_THREADS=n)
    env.update(TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(ROOT))
    if ctx.get("avx2"):
        env.pop("LTD_PRECISION", None)
        env.update(AVX2_ENV)
    print(f"[bench] {key} ...", file=sys.stderr, flush=True)
    cmd = [sys.executable, __file__, "--child", name or key, "--ctx", str(tmp / f"ctx-{key}.json")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        print(f"[bench] {key} FAILED:\n{proc.stderr[-3000:]}", file=sys.stderr, flush=True)
        return {"error": tail[:120]}
    return json.loads(Path(ctx["result"]).read_text(encoding="utf-8"))


def load_docs(n: int) -> tuple[list[str], Path]:
    """The first `n` texts of DOC_CHARS characters from the shared documents, else texts
    made of consecutive sample sentences."""
    lo, hi = DOC_CHARS
    docs: list[str] = []
    if DOCS.is_file():
        with open(DOCS, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.rstrip("\r\n")
                if lo <= len(line) <= hi:
                    docs.append(line)
                if len(docs) >= n:
                    break
        return docs, DOCS
    text, i = read_lines(FALLBACK), 0
    while len(docs) < n and text:
        size = lo + (len(docs) * 997) % (hi - lo)  # lengths spread over the range
        doc = ""
        while len(doc) < size:
            doc, i = doc + text[i % len(text)], i + 1
        docs.append(doc[:size])
    return docs, FALLBACK


def docs_run(ctx: dict, key: str, **extra) -> tuple[dict, float | None]:
    """One document row's command on the file and on its first document alone (through the
    runtime `ltd encode` chose for the file: a file as small as one document would run
    without torch): the file's result, and its seconds past start-up (its wall time minus
    the one document's; None if either failed)."""
    r = run_child(key, dict(ctx, **extra), "docs")
    args = []
    if extra["who"] == "student":  # the one document through the runtime the file took
        from ltd_bert.cli.encode import auto_workers
        from ltd_bert.tasks.encode import auto_runtime

        workers = auto_workers(ctx["docs"], False)
        args = ["--runtime", auto_runtime(extra["model"], ctx["docs"], workers)]
    one = run_child(f"{key}_one", dict(ctx, docs=ctx["doc1"], args=args, **extra), "docs")
    if "error" in r or "error" in one:
        return r, None
    r["startup_seconds"] = one["seconds"]
    return r, max(r["seconds"] - one["seconds"], 1e-9)


def bench_docs(ctx: dict, models: list[str], table: Table, results: dict) -> None:
    """Documents: `ltd encode` against `ltd teacher-embed` on the same file, characters/s of
    the whole command (the target) and past start-up (each command's time on the first
    document alone taken off: what a longer file tends to)."""
    lo, hi = DOC_CHARS
    teacher, t_past = docs_run(ctx, "docs_teacher", model=models[0], who="teacher")
    results["docs_teacher"] = teacher
    what = f"documents ({ctx['doc_count']:,} of {lo:,}–{hi:,} chars, {ctx['doc_chars']:,} chars)"
    table.add(f"{what}: `ltd teacher-embed` (wall), chars/s", teacher, "1.00×")
    for i, model in enumerate(models):
        r, past = docs_run(ctx, f"docs_student{i}", model=model, who="student")
        results[f"docs:{model}"] = r
        name = f"{what}: `ltd encode`, `{rel(model)}` (wall), chars/s"
        if "error" in r or "error" in teacher:
            table.add(name, r)
            continue
        speed, x = r["items"] / r["seconds"], teacher["seconds"] / r["seconds"]
        ratio = f"{x:.1f}× teacher-embed"
        if past and t_past:
            ratio += f" ({t_past / past:.1f}× past start-up: {r['startup_seconds']:.1f} s"
            ratio += f" against {teacher['startup_seconds']:.1f} s)"
        ok = speed >= 25_000 and x >= 20
        table.add(name, r, ratio, goal("≥ 25,000/s, ≥ 20×", ok))


def load_sentences(n: int) -> tuple[list[str], Path]:
    src = CORPUS if CORPUS.is_file() else FALLBACK
    lines: list[str] = []
    with open(src, "rb") as fh:
        for raw in fh:
            if len(lines) >= n:
                break
            lines.append(raw.rstrip(b"\r\n").decode("utf-8", errors="replace"))
    return lines, src


def default_models() -> list[str]:
    found = sorted(str(p.parent) for p in (ROOT / "ltd_bert" / "models").glob("*/config.json"))
    if (ROOT / "demo_work" / "model" / "config.json").is_file():
        found.append(str(ROOT / "demo_work" / "model"))
    return found


def rel(path: str | Path) -> str:
    r = os.path.relpath(Path(path).resolve(), ROOT)
    return str(Path(path).resolve()) if r.startswith("../..") else r


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def pct(x: float) -> str:
    return f"{100 * x:+.0f} %"


def goal(text: str, ok: bool) -> str:
    return f"{text} {'✓' if ok else '✗'}"


class Table:
    HEAD = "| what | items/s | time s | peak MB | ratio | target |\n|---|--:|--:|--:|--:|--:|"

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        #: put before each row's text (the AVX2 rows')
        self.prefix = ""

    def add(self, what: str, r: dict, ratio: str = "–", target: str = "–", peak: str = ""):
        what = self.prefix + what
        if "error" in r:
            return self.note(f"{what}: FAILED ({r['error']})")
        secs, peak = r["seconds"], peak or f"{r['peak_mb']:.0f}"
        items_s = r["items"] / secs if secs > 0 else 0.0
        row = dict(what=what, items_s=items_s, seconds=secs, peak=peak, ratio=ratio, target=target)
        self.rows.append(row)

    def note(self, what: str) -> None:
        self.rows.append({"what": self.prefix + what, "items_s": None})

    def markdown(self) -> str:
        lines = [self.HEAD]
        for r in self.rows:
            if r["items_s"] is None:
                lines.append(f"| {r['what']} | – | – | – | – | – |")
            else:
                lines.append(
                    f"| {r['what']} | {r['items_s']:,.1f} | {r['seconds']:.2f} | {r['peak']} "
                    f"| {r['ratio']} | {r['target']} |"
                )
        return "\n".join(lines)


def bench_idf(ctx: dict, sents: list[str], table: Table, results: dict) -> None:
    reps = max(1, math.ceil(IDF_MIN_LINES / len(sents)))
    write_lines(Path(ctx["tmp"]) / "idf.txt", sents * reps)
    ctx = dict(ctx, idf_file=str(Path(ctx["tmp"]) / "idf.txt"))
    bare = results["idf_bare"] = run_child("idf_bare", ctx)
    table.add(f"idf: bare `jieba.lcut` loop, 1 process, {len(sents) * reps:,} lines", bare, "1.00×")
    for workers in (1, 2):
        key, want = f"idf_w{workers}", 0.9 * workers
        r = results[key] = run_child(key, dict(ctx, workers=workers), "idf_build")
        what, peak = f"idf: `build_idf` workers={workers}", ""
        if "error" in r or "error" in bare:
            table.add(what, r, "–", f"≥ {want:.2f}×")
            continue
        speed = bare["seconds"] / r["seconds"]
        if workers > 1:
            what += f" (cpu {r['cpu_seconds'] / r['seconds']:.2f}× wall)"
            peak = f"{r['peak_mb']:.0f} + {r['children_peak_mb']:.0f}/worker"
        table.add(what, r, f"{speed:.2f}× bare", goal(f"≥ {want:.2f}×", speed >= want), peak)


def ratios(seconds: float, teacher_s: float | None, bert_s: float | None, items=None) -> str:
    """× teacher and × BERT-base of an encoder row, from times of the same run (`items`:
    when the row encoded another number of sentences than the teacher's rows, its time is
    scaled to theirs)."""
    scale = (items / BENCH_ITEMS[0]) if items and BENCH_ITEMS else 1.0
    parts = [
        f"{ref * scale / seconds:.1f}× {name}"
        for ref, name in ((teacher_s, "teacher"), (bert_s, "BERT-base"))
        if ref
    ]
    return ", ".join(parts) or "–"


#: the sentence count the teacher and BERT rows ran on (set by main)
BENCH_ITEMS: list[int] = []


def bench_sizes(ctx: dict, teacher_s, table: Table, results: dict, bert_s=None) -> None:
    """Student speed over size presets and batch sizes (network only, float32)."""
    from ltd_bert.student.model import SIZES

    for size, (emb, hid) in SIZES.items():
        for batch in (32, 128, 512):
            key = f"sizes_{size}_{batch}"
            r = results[key] = run_child(key, dict(ctx, emb=emb, hid=hid, batch=batch), "sizes")
            ratio = ratios(r["seconds"], teacher_s, bert_s) if "error" not in r else "–"
            table.add(f"student size {size} ({emb}/{hid}), batch {batch}, network only", r, ratio)


def bench_idf_stream(ctx: dict, table: Table, results: dict) -> None:
    """`idf build` streams: peak memory over 100 k and 1 M corpus lines, 1 and 2 workers, and
    the 2-worker file equals the 1-worker file byte for byte. Not in the default run."""
    import itertools

    src = CORPUS if CORPUS.exists() else FALLBACK
    files = {}
    for n in (100_000, 1_000_000):
        with open(src, encoding="utf-8") as fh:
            lines = [x.rstrip("\n") for x in itertools.islice(itertools.cycle(fh), n)]
        files[n] = Path(ctx["tmp"]) / f"idf{n}.txt"
        write_lines(files[n], lines)
        del lines
    outputs = {}
    for n, workers in ((100_000, 2), (1_000_000, 1), (1_000_000, 2)):
        key = f"idf_stream_{n}_w{workers}"
        r = results[key] = run_child(
            key, dict(ctx, idf_file=str(files[n]), workers=workers), "idf_build"
        )
        outputs[(n, workers)] = Path(ctx["tmp"]) / f"idf-w{workers}.tsv"
        if (n, workers) == (1_000_000, 1):
            one = outputs[(n, workers)].read_bytes()
        same = ""
        if (n, workers) == (1_000_000, 2):
            same = (
                "same file as 1 worker" if outputs[(n, workers)].read_bytes() == one else "DIFFERS"
            )
        peak = f"{r.get('peak_mb', 0):.0f}" + (
            f" + {r['children_peak_mb']:.0f}/worker" if workers > 1 and "peak_mb" in r else ""
        )
        table.add(f"idf build, {n:,} lines, workers={workers}", r, same or "–", "flat memory", peak)


def native_bf16(ctx: dict | None = None) -> bool:
    """Whether bf16 rows run here: a CPU that multiplies bf16 natively (elsewhere they would
    time an emulation, slower than fp32, which nobody would run); never in the AVX2 pass."""
    from ltd_bert.common.cpu import native_bf16 as native

    return not (ctx or {}).get("avx2") and native()


SKIP_BF16 = "skipped: this CPU has no native bf16 (it would be emulated)"


def bench_teacher(ctx: dict, table: Table, results: dict) -> float | None:
    """Rows 3a/3b; returns the sorted forward time (= teacher encode) or None."""
    sorted_s = None
    for label, sort in (("sorted", True), ("unsorted", False)):
        r = results[f"teacher_{label}"] = run_child(
            f"teacher_{label}", dict(ctx, sort=sort), "teacher"
        )
        what = f"teacher: forward, {label} batches of {BATCH}"
        if "error" in r:
            table.add(what, r)
            continue
        pad = 1 - r["real_tokens"] / r["padded_tokens"]
        what += f" ({pad:.0%} of {r['padded_tokens']:,} tokens are padding)"
        if sort:
            sorted_s = r["seconds"]
            table.add(what + " = teacher encode", r, "1.00×")
        elif sorted_s:
            gain = r["seconds"] / sorted_s
            table.add(what, r, f"sorted {gain:.2f}× faster", goal("≥ 1.30×", gain >= 1.3))
        else:
            table.add(what, r)
    what = f"teacher: forward, sorted batches of {BATCH}, bf16 (`teacher-embed --precision bf16`)"
    if not native_bf16(ctx):
        table.note(f"{what}: {SKIP_BF16}")
        return sorted_s
    r = results["teacher_bf16"] = run_child(
        "teacher_bf16", dict(ctx, sort=True, bf16=True), "teacher"
    )
    table.add(
        what, r, f"{sorted_s / r['seconds']:.2f}× teacher" if sorted_s and "error" not in r else "–"
    )
    return sorted_s


def bench_bert(ctx: dict, teacher_s, table: Table, results: dict) -> float | None:
    """The BERT-base row (the article's teacher size, float32 as the article ran it) and
    the same in bf16 (what this CPU's AMX gives a transformer too); returns the float32
    time or None."""
    fp32 = None
    for key, bf16 in (("bert", False), ("bert_bf16", True)):
        what = (
            f"BERT-base shape (random weights): forward, sorted batches of {BATCH}, "
            f"1 token/char{', bf16' if bf16 else ''}"
        )
        if bf16 and not native_bf16(ctx):
            table.note(f"{what}: {SKIP_BF16}")
            continue
        r = results[key] = run_child(key, dict(ctx, bf16=bf16), "bert")
        if "error" in r:
            table.add(what, r)
            continue
        ratio = f"{teacher_s / r['seconds']:.2f}× teacher" if teacher_s else "–"
        if bf16 and fp32:
            ratio += f", {fp32 / r['seconds']:.2f}× BERT-base fp32"
        table.add(what, r, ratio)
        if not bf16:
            fp32 = r["seconds"]
    return fp32


def bench_startup(ctx: dict, table: Table, results: dict) -> None:
    """Fresh `ltd` processes answering one request (median of 3, interleaved)."""
    r = results["startup"] = run_child("startup", ctx)
    if "error" in r:
        return table.add("start-up: fresh `ltd similarity A B`", r)
    med = r["median"]
    for key, what in (
        ("similarity", "start-up: a fresh `ltd similarity A B` process (wall)"),
        ("encode", "start-up: a fresh `ltd encode -` of one line (wall, torch-free)"),
        ("encode_torch", "start-up: the same through torch (`--threads`; wall)"),
    ):
        ratio = (
            f"{med['encode_torch'] / med[key]:.2f}× faster than torch"
            if key != "encode_torch"
            else "1.00×"
        )
        target = goal("< 2 s", med[key] < 2.0) if key != "encode_torch" else "–"
        table.add(what, dict(r, seconds=med[key], items=1, peak_mb=0), ratio, target, peak="–")


def bench_student(
    ctx: dict, models: list[str], teacher_s, table: Table, results: dict, bert_s=None
) -> None:
    if not models:
        table.note("student: no model folder found (pass --model DIR); skipped")
    for i, (model, variant) in enumerate((m, v) for m in models for v in VARIANTS):
        name = f"{rel(model)}` {variant}"
        if variant == "bf16" and not native_bf16():
            table.note(f"student `{name}: {SKIP_BF16}")
            continue
        r = results[f"student:{model}:{variant}"] = run_child(
            f"student{i}", dict(ctx, model=model, variant=variant), "student"
        )
        if "error" in r:
            table.add(f"student `{name}", r)
            continue
        size = f"{r['file_bytes'] / 1e6:.1f} MB file; {r['params'] / 1e6:.2f} M params"
        table.add(f"student `{name}: encode ({size})", r, ratios(r["seconds"], teacher_s, bert_s))
        if variant != "fp32":
            continue
        share = r["prepare_seconds"] / r["seconds"]
        prep = dict(r, seconds=r["prepare_seconds"])
        table.add(f"student `{name}: its weights alone (`prepare`)", prep, f"{share:.0%} of encode")


def size_pair(size: str) -> tuple[int, int]:
    """A size preset's (embedding, hidden), or EMBxHID such as 128x64."""
    from ltd_bert.runtime.base import SIZES

    if size in SIZES:
        return SIZES[size]
    try:
        emb, hid = (int(x) for x in size.split("x"))
    except ValueError:
        raise ValueError(f"{size!r}: one of {', '.join(SIZES)} or EMBxHID (128x64)") from None
    return emb, hid


def bench_encode(ctx: dict, models: list[str], teacher_s, table: Table, results, bert_s=None):
    """`ltd encode FILE` as a user runs it (the default: one worker per core for a big
    file), and in one process."""

    targets = "≥ 30× teacher, ≥ 100× BERT-base"
    models = list(models)  # every --model folder, then the random-weight sizes
    for size in ctx.get("encode_sizes", []):
        emb, hid = size_pair(size)
        out = str(Path(ctx["tmp"]) / f"random-{size}")
        r = run_child(
            f"random_{size}", dict(ctx, model=models[0], emb=emb, hid=hid, out=out), "random_model"
        )
        if "error" not in r:
            models.append(out)
    for model in models:
        for key, args in (
            ("encode_1", ["--workers", "1", "--runtime", "torch"]),
            ("encode_default", []),
        ):
            r = results[f"{key}:{model}"] = run_child(
                key, dict(ctx, model=model, args=args), "encode"
            )
            name = rel(model) if "random-" not in model else Path(model).name + " (random weights)"
            flags = " ".join(args) or "default flags"
            what = f"`ltd encode` {ctx['big_count']:,} lines, `{name}`, {flags}"
            if "error" in r:
                table.add(what, r)
                continue
            t = teacher_s * (r["items"] / BENCH_ITEMS[0]) / r["seconds"] if teacher_s else 0
            b = bert_s * (r["items"] / BENCH_ITEMS[0]) / r["seconds"] if bert_s else 0
            tiny = "tiny" in Path(model).name  # issue 18: a zh-tiny at >= 100x the teacher
            ok = t >= 100 if tiny else t >= 30 and b >= 100
            ratio = ratios(r["seconds"], teacher_s, bert_s, r["items"])
            goals = "≥ 100× teacher" if tiny else targets
            target = goal(goals, ok) if teacher_s and bert_s else "–"
            table.add(what + " (wall)", r, ratio, target)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=2000, help="the first N corpus lines")
    ap.add_argument(
        "--only",
        default=",".join(STAGES),
        help="comma list of: " + ",".join(STAGES) + " (and idf-stream: 1 M lines, not default)",
    )
    ap.add_argument("--threads", type=int, default=2, help="torch threads in every measurement")
    ap.add_argument(
        "--encode-lines",
        type=int,
        default=100000,
        help="corpus lines for the `ltd encode` rows (100,000: a file big enough that the "
        "start-up, ~1-2 s, is not what is measured)",
    )
    ap.add_argument(
        "--encode-sizes",
        default="",
        help="comma list of size presets (tiny, small, ...) or EMBxHID (128x64) to add "
        "`ltd encode` rows for, with random weights and the model's vocabulary and word path",
    )
    ap.add_argument(
        "--doc-lines",
        type=int,
        default=1000,
        help="documents for the `docs` rows: the first N of 200-4,000 characters in zh_docs.txt",
    )
    ap.add_argument(
        "--avx2",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also measure " + ",".join(AVX2_STAGES) + " as on an AVX2-only CPU (imitated: "
        "AVX2_ENV); default: where this CPU has more than AVX2",
    )
    ap.add_argument("--model", nargs="+", action="extend", metavar="DIR", help="student folders")
    ap.add_argument("--json", metavar="OUT", help="also write everything as JSON")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--ctx", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child_main(args.child, args.ctx)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if only - set(STAGES) - {"idf-stream"}:
        ap.error(f"--only: unknown {', '.join(sorted(only - set(STAGES) - {'idf-stream'}))}")
    sents, src = load_sentences(args.sentences)
    if not sents:
        ap.error(f"{src}: no sentences")
    load_before = os.getloadavg()[0]
    tmpdir = tempfile.TemporaryDirectory(prefix="ltd-bench-")
    tmp = Path(tmpdir.name)
    write_lines(tmp / "sentences.txt", sents)
    BENCH_ITEMS.append(len(sents))
    ctx = {"tmp": str(tmp), "threads": args.threads, "sentences": str(tmp / "sentences.txt")}
    if "encode" in only:
        big, _ = load_sentences(args.encode_lines)
        write_lines(tmp / "big.txt", big)
        ctx.update(big_sentences=str(tmp / "big.txt"), big_count=len(big))
        ctx["encode_sizes"] = [x for x in args.encode_sizes.split(",") if x]
        for size in ctx["encode_sizes"]:
            try:
                size_pair(size)
            except ValueError as e:
                ap.error(f"--encode-sizes: {e}")
    if "docs" in only:
        docs, _ = load_docs(args.doc_lines)
        write_lines(tmp / "docs.txt", docs)
        write_lines(tmp / "doc1.txt", docs[:1])  # start-up: each command on one document
        ctx.update(docs=str(tmp / "docs.txt"), doc_count=len(docs), doc1=str(tmp / "doc1.txt"))
        ctx["doc_chars"] = sum(len(d) for d in docs)
    ctx["teacher_h5"] = str(tmp / "teacher.h5")
    table, results = Table(), {}
    t_start = time.perf_counter()
    models = [str(Path(m).resolve()) for m in args.model] if args.model else default_models()

    if "idf-stream" in only:
        bench_idf_stream(ctx, table, results)
    if "idf" in only:
        bench_idf(ctx, sents, table, results)
    if "weights" in only:
        r = results["weights"] = run_child("weights", ctx)
        table.add("weights: `Weighter`, jieba IDF, cold word cache", r)
        if "error" not in r:
            gain = r["seconds"] / r["warm_seconds"]
            warm = dict(r, seconds=r["warm_seconds"])
            table.add("weights: warm word cache (second pass)", warm, f"{gain:.2f}× cold")
    teacher_s = bench_teacher(ctx, table, results) if "teacher" in only else None
    embed_ok = False
    if "embed" in only or "train" in only:
        r = results["embed"] = run_child("embed", ctx)
        embed_ok = "error" not in r
        if "embed" not in only:
            table.note("(`teacher_embed` run only to make the teacher file for train)")
        elif teacher_s and embed_ok:
            over = r["seconds"] / teacher_s - 1
            ratio, target = f"{pct(over)} vs forward", goal("≤ +10 %", over <= 0.10)
            table.add("embed: `teacher_embed` → HDF5, idf pooling", r, ratio, target)
        else:
            table.add("embed: `teacher_embed` → HDF5, idf pooling", r, "–", "≤ +10 %")
    bert_s = bench_bert(ctx, teacher_s, table, results) if "bert" in only else None
    if "sizes" in only:
        bench_sizes(ctx, teacher_s, table, results, bert_s)
    if "student" in only:
        bench_student(ctx, models, teacher_s, table, results, bert_s)
    if "encode" in only:
        bench_encode(ctx, models, teacher_s, table, results, bert_s)
    if "startup" in only:
        bench_startup(ctx, table, results)
    if "train" in only:
        if not embed_ok:
            table.note("train: skipped, no teacher file (the embed run failed)")
        else:
            r = results["train"] = run_child("train", ctx)
            what = "train: 1 epoch, base 256/256, batch 128, training loop"
            if "error" not in r:
                what += f" (wall {r['wall_seconds']:.1f} s with setup)"
            table.add(what, r)
    if "docs" in only:
        bench_docs(ctx, models, table, results)

    from ltd_bert.common.cpu import cpu_features, features_line

    avx2 = args.avx2
    if avx2 is None:  # by default where this CPU (as the environment leaves it) has more
        f = cpu_features()
        avx2 = f["avx2"] and (f["avx512"] or f["amx"])
    if avx2 and only & set(AVX2_STAGES):
        # the same rows again as on an AVX2-only CPU, ratios within this pass
        table.note(
            f"**As on an AVX2-only CPU** ({' '.join(f'{k}={v}' for k, v in AVX2_ENV.items())}):"
        )
        table.prefix, actx, results["avx2"] = "AVX2 · ", dict(ctx, avx2=True), {}
        res = results["avx2"]
        t_s = bench_teacher(actx, table, res) if "teacher" in only else None
        b_s = bench_bert(actx, t_s, table, res) if "bert" in only else None
        if "encode" in only:
            bench_encode(actx, models, t_s, table, res, b_s)
        if "docs" in only:
            bench_docs(actx, models, table, res)
        table.prefix = ""

    meta = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu_model(),
        "cpu_features": features_line(),
        "torch": metadata.version("torch"),
        "threads": args.threads,
        "sentences": len(sents),
        "corpus": rel(src),
        "loadavg_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "total_seconds": round(time.perf_counter() - t_start, 1),
    }
    print(f"\nltd_bert benchmark: the first {len(sents):,} lines of `{meta['corpus']}`")
    print(f"{meta['cpu']}; {meta['cpu_features']}\n")
    print(table.markdown())
    print(
        f"\n{meta['date']} · nproc {meta['nproc']} · {meta['cpu']} · torch {meta['torch']} · "
        f"threads {meta['threads']} · load avg {load_before:.2f} → {os.getloadavg()[0]:.2f} · "
        f"{meta['total_seconds']} s in all"
    )
    if args.json:
        doc = {"meta": meta, "rows": table.rows, "results": results}
        Path(args.json).write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
    tmpdir.cleanup()


if __name__ == "__main__":
    main()
