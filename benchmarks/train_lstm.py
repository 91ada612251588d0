"""Training step cost of the student's BiLSTM: nn.LSTM over packed sequences (what training
used before) against the padded per-direction path `BiLSTMStudent` runs now.

    .venv/bin/python benchmarks/train_lstm.py [--model zh-small] [--threads 2]

Forward and backward of one batch (random characters, lengths from a third of T up to T,
so the packed batch sizes change every step as in real batches); the median of 3 after a
warm-up; both paths give the same states (checked, max |diff| printed). Prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ltd_bert.student.model import Student

SHAPES = [(128, 32), (128, 64), (32, 256), (8, 512), (8, 1024), (8, 2048), (8, 4096)]


def packed_states(model, ids, lengths):
    x = model.dropout(model.embedding(ids))
    packed = pack_padded_sequence(x, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
    out, _ = model.lstm(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
    return model.dropout(out)


def step_seconds(fn, model, ids, lengths, w, repeats: int) -> float:
    times = []
    for i in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        states = fn(model, ids, lengths)
        pooled = torch.bmm(w.unsqueeze(1), states).squeeze(1)
        model.proj(pooled).pow(2).mean().backward()
        if i:  # the first is a warm-up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="zh-small")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--packed-max", type=int, default=1024, help="longest T the packed path is timed at"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = Student.load(args.model, precision="fp32").model.train()
    c = model.config
    print(f"\n{args.model}: {c.embedding_dim}/{c.hidden_size}, {args.threads} threads\n")
    print("| batch × T | packed nn.LSTM s | padded s | × | max diff |")
    print("|---|--:|--:|--:|--:|")
    gen = torch.Generator().manual_seed(0)
    for B, T in SHAPES:
        ids = torch.randint(2, c.vocab_size, (B, T), generator=gen)
        lengths = torch.randint(T // 3, T + 1, (B,), generator=gen)
        lengths[0] = T
        w = torch.rand(B, T, generator=gen) * (torch.arange(T)[None] < lengths[:, None])
        w = w / w.sum(1, keepdim=True)
        model.eval()
        with torch.no_grad():
            diff = (packed_states(model, ids, lengths) - model.token_states(ids, lengths)).abs()
        model.train()
        padded = step_seconds(
            lambda m, i, n: m.token_states(i, n), model, ids, lengths, w, args.repeats
        )
        if args.packed_max >= T:
            packed = step_seconds(packed_states, model, ids, lengths, w, args.repeats)
            row = f"{packed:.2f} | {padded:.2f} | {packed / padded:.1f}×"
        else:
            row = f"– | {padded:.2f} | –"
        print(f"| {B} × {T} | {row} | {diff.max().item():.1e} |", flush=True)


if __name__ == "__main__":
    main()
