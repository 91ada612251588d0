"""Throughput and latency of `ltd serve` under 1, 4, 16 and 64 concurrent clients, against
one direct `Student.encode` over the same sentences; prints one markdown table.

    .venv/bin/python benchmarks/serve.py [--model ltd_bert/models/zh-small]
        [--sentences 2048] [--per-request 4] [--clients 1,4,16,64] [--threads 1]
        [--max-batch 256] [--max-wait-ms 10] [--format float] [--seconds 60]

The server is a real `python -m ltd_bert serve` subprocess on 127.0.0.1 and a free port,
stopped with SIGTERM at the end. Each client is a keep-alive HTTP/1.1 connection (a small
asyncio client, so that the client's own CPU stays out of the numbers) that POSTs
/v1/embeddings requests of --per-request sentences, taken in turn from the same sentences
the reference encodes; a level ends when every sentence was sent once or after --seconds.
The reference is one `Student.encode(sentences)` call in this process with the server's
threads, after a warm-up pass (the server gets one too: both have warm word caches), timed
right before and right after each level (a busy machine drifts); the ratio is the level's
sentences/s over the mean of those two. CPU ms per sentence: the server process's user +
system time over the level, and the reference's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "data" / "corpus" / "zh_big.txt"
FALLBACK = ROOT / "data" / "corpus_sample.txt"
MODEL = ROOT / "ltd_bert" / "models" / "zh-small"


def read_sentences(n: int) -> tuple[list[str], Path]:
    """The first n non-empty lines (at most 200 characters each) of the big corpus, else of
    the sample corpus."""
    path = CORPUS if CORPUS.is_file() else FALLBACK
    out = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if line:
                out.append(line[:200])
                if len(out) == n:
                    break
    return out, path


# --- the server ---------------------------------------------------------------------------


class Server:
    """`ltd serve` in a subprocess on a free port of 127.0.0.1."""

    def __init__(self, args: argparse.Namespace):
        cmd = [sys.executable, "-m", "ltd_bert", "serve", "-m", str(args.model)]
        cmd += ["--port", "0", "--threads", str(args.threads)]
        cmd += ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env=env,
        )  # fmt: skip
        self.lines: list[str] = []
        found = threading.Event()

        def read() -> None:
            for line in self.proc.stderr:
                self.lines.append(line.rstrip())
                if " on http://" in line:
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        t0 = time.time()
        while not found.wait(0.1):
            if self.proc.poll() is not None or time.time() - t0 > 120:
                self.stop()
                sys.exit("the server did not start:\n" + "\n".join(self.lines))
        line = next(x for x in self.lines if " on http://" in x)
        host, port = re.search(r"http://([\d.]+):(\d+)", line).groups()
        self.host, self.port = host, int(port)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server process so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


# --- a minimal keep-alive HTTP/1.1 client -------------------------------------------------


class Connection:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


def payload(sentences: list[str], model: str, fmt: str) -> bytes:
    return json.dumps({"input": sentences, "model": model, "encoding_format": fmt}).encode()


async def health(server: Server) -> dict:
    conn = Connection(server.host, server.port)
    try:
        status, body = await conn.request("GET", "/health")
    finally:
        await conn.close()
    return json.loads(body)


async def load(server: Server, requests: list[bytes], clients: int, seconds: float) -> dict:
    """`clients` connections send `requests` in turn, each once, until done or `seconds`."""
    latencies: list[float] = []
    todo = iter(enumerate(requests))
    stop_at = time.perf_counter() + seconds
    failures: list[str] = []

    async def client() -> None:
        conn = Connection(server.host, server.port)
        try:
            for _, body in todo:
                if time.perf_counter() > stop_at:
                    break
                t = time.perf_counter()
                status, data = await conn.request("POST", "/v1/embeddings", body)
                latencies.append(time.perf_counter() - t)
                if status != 200:
                    failures.append(data.decode(errors="replace")[:200])
                    break
        finally:
            await conn.close()

    before = await health(server)
    cpu0 = server.cpu_seconds()
    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - t0
    cpu = server.cpu_seconds() - cpu0
    after = await health(server)
    if failures:
        sys.exit(f"the server answered an error: {failures[0]}")
    lat = sorted(latencies)
    batches = after["batches"] - before["batches"]
    return {
        "clients": clients,
        "requests": len(lat),
        "sentences": after["sentences"] - before["sentences"],
        "seconds": wall,
        "per_s": (after["sentences"] - before["sentences"]) / wall,
        "p50_ms": 1000 * lat[len(lat) // 2],
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "mean_batch": (after["sentences"] - before["sentences"]) / max(batches, 1),
        "cpu_ms": 1000 * cpu / max(after["sentences"] - before["sentences"], 1),
    }


# --- main ---------------------------------------------------------------------------------


class Reference:
    """Direct `Student.encode` in this process, with the server's thread count."""

    def __init__(self, args: argparse.Namespace, sentences: list[str]):
        import torch

        from ltd_bert.student.model import Student

        torch.set_num_threads(args.threads)
        self.student = Student.load(args.model)
        self.sentences = sentences
        self.student.encode(sentences)  # warm-up: the word cache, torch's first calls

    def per_s(self) -> tuple[float, float]:
        """Sentences/s of one `encode` call over all the sentences, and its CPU ms per
        sentence."""
        t, c = time.perf_counter(), time.process_time()
        self.student.encode(self.sentences)
        n = len(self.sentences)
        return n / (time.perf_counter() - t), 1000 * (time.process_time() - c) / n

    def p50_ms(self, k: int, calls: int = 200) -> float:
        """Median ms of `encode` on k sentences (one request's), over `calls` calls."""
        times = []
        for start in range(0, min(len(self.sentences), calls * k), k):
            t = time.perf_counter()
            self.student.encode(self.sentences[start : start + k])
            times.append(time.perf_counter() - t)
        return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--sentences", type=int, default=2048)
    ap.add_argument("--per-request", type=int, default=4)
    ap.add_argument("--clients", default="1,4,16,64")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--max-wait-ms", type=float, default=10.0)
    ap.add_argument("--format", choices=["float", "base64"], default="float")
    ap.add_argument("--seconds", type=float, default=60.0, help="Time bound of each level.")
    ap.add_argument("--json", type=Path, help="Also write the rows here.")
    args = ap.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before torch loads, as `ltd serve`
        os.environ[var] = str(args.threads)

    sentences, source = read_sentences(args.sentences)
    k = args.per_request
    name = args.model.resolve().name
    requests = [
        payload(sentences[i : i + k], name, args.format) for i in range(0, len(sentences), k)
    ]
    load_before = os.getloadavg()
    ref = Reference(args, sentences)
    ref_p50 = ref.p50_ms(k)

    server = Server(args)
    rows = []
    try:
        warm = [
            payload(sentences[i : i + 256], name, "base64") for i in range(0, len(sentences), 256)
        ]
        asyncio.run(load(server, warm, 1, args.seconds))  # the server's warm-up pass
        # the reference right before and right after each level (a busy machine drifts
        # within minutes); a level is compared with the mean of the two
        refs = [ref.per_s()]
        for c in levels:
            row = asyncio.run(load(server, requests, c, args.seconds))
            refs.append(ref.per_s())
            (a, cpu_a), (b, cpu_b) = refs[-2:]
            rows.append({**row, "direct": (a + b) / 2, "direct_cpu_ms": (cpu_a + cpu_b) / 2})
    finally:
        code = server.stop()
    load_after = os.getloadavg()

    print("| clients | sentences/s | direct `encode` around it | ratio | p50 ms | p99 ms "
          "| mean batch | CPU ms/sentence: server, direct |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['clients']} | {r['per_s']:,.0f} | {r['direct']:,.0f} | "
            f"{r['per_s'] / r['direct']:.2f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['mean_batch']:.1f} | {r['cpu_ms']:.2f}, {r['direct_cpu_ms']:.2f} |"
        )
    import torch

    chars = statistics.mean(map(len, sentences))
    cpu = platform.processor() or platform.machine()
    print(
        f"\n{len(sentences)} sentences of {source.name} (mean {chars:.0f} characters), {k} per "
        f"request, encoding_format {args.format}; direct `encode` of {k} sentences: p50 "
        f"{ref_p50:.1f} ms; server --threads {args.threads} --max-batch {args.max_batch} "
        f"--max-wait-ms {args.max_wait_ms:g}; {Path(args.model).name}; nproc "
        f"{os.cpu_count()}, {cpu}, torch {torch.__version__}; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after; server exit status {code}"
    )
    if args.json:
        args.json.write_text(json.dumps({"p50_ms_direct": ref_p50, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
