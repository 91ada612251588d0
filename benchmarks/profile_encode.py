"""Where `ltd encode`'s time goes, and the arithmetic that bounds the student/teacher ratio.

    .venv/bin/python benchmarks/profile_encode.py [-m MODEL ...] [--sentences 2000] [--threads 2]

For each model: the stages of `Student.encode` timed separately on the same sentences
(character weights, batch tensors, embedding lookup, the BiLSTM with packing, pooling and
projection), best of --repeat passes, and the multiply-adds per sentence of the student
against the built-in teacher's (its encoder layers, at the measured token counts). A student
can only be as many times faster than the teacher as it does fewer multiply-adds, unless it
runs them more efficiently: that ratio is the ceiling printed last.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "data" / "corpus" / "zh_big.txt"
FALLBACK = ROOT / "data" / "corpus_sample.txt"


def student_macs(cfg, chars: float) -> float:
    """Multiply-adds per sentence: input and recurrent LSTM matrices per character and
    direction and layer, then the projection once."""
    e, h = cfg.embedding_dim, cfg.hidden_size
    lstm = 0.0
    for layer in range(cfg.num_layers):
        inp = e if layer == 0 else 2 * h
        lstm += 2 * 4 * h * (inp + h) * chars
    proj = 2 * h * cfg.output_dim
    return lstm + proj


def teacher_macs(config, tokens: float) -> float:
    """Encoder multiply-adds per sentence: per layer and token the QKV, output and two
    feed-forward matrices, plus attention scores and mixing (tokens × hidden each)."""
    d, f, n = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return n * tokens * (4 * d * d + 2 * d * f + 2 * tokens * d)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", nargs="+", default=[str(ROOT / "ltd_bert/models/zh-small")])
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from ltd_bert.student.model import Student, batch_tensors

    torch.set_num_threads(args.threads)
    corpus = CORPUS if CORPUS.is_file() else FALLBACK
    with open(corpus, encoding="utf-8") as f:
        sentences = [x.rstrip("\n") for x in itertools.islice(f, args.sentences)]

    from transformers import AutoConfig, AutoTokenizer

    from ltd_bert.teacher.model import resolve_teacher

    _, tpath = resolve_teacher("builtin")
    tok = AutoTokenizer.from_pretrained(tpath)
    tcfg = AutoConfig.from_pretrained(tpath)
    tokens = sum(len(tok("query: " + s)["input_ids"]) for s in sentences) / len(sentences)

    print(
        f"{len(sentences):,} lines of {corpus.name}, {args.threads} threads, "
        f"batch {args.batch_size}, best of {args.repeat}"
    )
    for path in args.model:
        student = Student.load(path)
        net = student.model
        student.weighter.char_weights("预热")  # jieba's dictionary loads outside the clock
        stages = dict.fromkeys(
            [
                "character weights",
                "batch tensors",
                "embedding",
                "BiLSTM (packed)",
                "pooling + projection",
            ],
            float("inf"),
        )
        for _ in range(args.repeat):
            t = {k: 0.0 for k in stages}
            t0 = time.perf_counter()
            texts, weights = student.prepare(sentences)
            t["character weights"] = time.perf_counter() - t0
            order = sorted((i for i, x in enumerate(texts) if x), key=lambda i: -len(texts[i]))
            with torch.inference_mode():
                for start in range(0, len(order), args.batch_size):
                    idx = order[start : start + args.batch_size]
                    t0 = time.perf_counter()
                    ids, lengths, w = batch_tensors(
                        [texts[i] for i in idx],
                        [weights[i] for i in idx],
                        student.index,
                        student.max_chars,
                    )
                    t1 = time.perf_counter()
                    x = net.embedding(ids)
                    t2 = time.perf_counter()
                    packed = pack_padded_sequence(
                        x, lengths.clamp(min=1), batch_first=True, enforce_sorted=False
                    )
                    out, _ = net.lstm(packed)
                    out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
                    t3 = time.perf_counter()
                    pooled = torch.bmm(w.unsqueeze(1), out).squeeze(1)
                    if net.proj is not None:
                        pooled = net.proj(pooled)
                    pooled.numpy()
                    t4 = time.perf_counter()
                    t["batch tensors"] += t1 - t0
                    t["embedding"] += t2 - t1
                    t["BiLSTM (packed)"] += t3 - t2
                    t["pooling + projection"] += t4 - t3
            for k in stages:
                stages[k] = min(stages[k], t[k])
        total = sum(stages.values())
        chars = sum(len(x) for x in texts) / len(texts)
        cfg = net.config
        print(
            f"\n### {path}: {cfg.embedding_dim}/{cfg.hidden_size}, "
            f"{total:.2f} s = {len(sentences) / total:,.0f} sentences/s\n"
        )
        print("| stage | seconds | share |")
        print("|---|--:|--:|")
        for k, v in stages.items():
            print(f"| {k} | {v:.3f} | {100 * v / total:.0f} % |")
        s_macs, t_macs = student_macs(cfg, chars), teacher_macs(tcfg, tokens)
        print(
            f"\nmultiply-adds per sentence: student {s_macs / 1e6:.1f} M "
            f"({chars:.1f} characters), teacher {t_macs / 1e6:.0f} M "
            f"({tokens:.1f} tokens with the prefix) → ceiling at equal efficiency "
            f"{t_macs / s_macs:.1f}×"
        )


if __name__ == "__main__":
    main()
