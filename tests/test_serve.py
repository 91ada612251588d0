"""`ltd serve`: a real server process on a free port of 127.0.0.1, spoken to over HTTP with
the `openai` client and httpx; the batcher on its own; the command's bad input."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from click.testing import CliRunner
from conftest import SAMPLE_CORPUS, assert_one_error

from ltd_bert.cli import cli
from ltd_bert.models import default_model_dir
from ltd_bert.tasks.serve import Batcher

MODEL = default_model_dir()
KEY = "sk-test-123"
MAX_INPUTS, MAX_CHARS = 64, 200
SENTENCES = [line for line in SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines() if line]


class Server:
    """`python -m ltd_bert serve ARGS --port 0` until stopped; `url` once it is listening."""

    def __init__(self, *args: str, env: dict[str, str] | None = None):
        cmd = [sys.executable, "-m", "ltd_bert", "serve", "-m", str(MODEL), "--port", "0"]
        cmd += ["--threads", "1", *args]
        base = {k: v for k, v in os.environ.items() if k != "LTD_API_KEY"}
        env = {**base, "OMP_NUM_THREADS": "1", **(env or {})}
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env,
        )  # fmt: skip
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        t0 = time.time()
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.time() - t0 > 60:
                self.stop()
                pytest.fail("the server did not start:\n" + "\n".join(self.lines))
        host, port = re.search(r"http://([\d.]+):(\d+)", self.lines[0]).groups()
        self.url = f"http://{host}:{port}"
        self.port = int(port)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if " on http://" in line:
                self._ready.set()

    def wait(self, timeout: float) -> int:
        """The exit status, once the process has ended and all its stderr is read."""
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.wait(30)


@pytest.fixture(scope="module")
def server():
    srv = Server(
        "--max-inputs", str(MAX_INPUTS), "--max-chars", str(MAX_CHARS), "--max-wait-ms", "20",
        env={"LTD_API_KEY": KEY},
    )  # fmt: skip
    yield srv
    assert srv.stop() == 0, "\n".join(srv.lines)


@pytest.fixture(scope="module")
def student():
    from ltd_bert.student.model import Student

    return Student.load(MODEL)


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)


def post(server, path: str, body, key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if isinstance(body, bytes | str):
        return httpx.post(server.url + path, content=body, headers=headers, timeout=60)
    return httpx.post(server.url + path, json=body, headers=headers, timeout=60)


def close(a, b) -> bool:
    return np.allclose(np.asarray(a, dtype=np.float32), b, rtol=1e-4, atol=1e-5)


# --- the API ------------------------------------------------------------------------------


def test_vectors_are_those_of_encode(client, student):
    texts = SENTENCES[:7]
    want = student.encode(texts)
    got = client.embeddings.create(model="zh-small", input=texts)  # the client asks base64
    assert [d.index for d in got.data] == list(range(7))
    assert close([d.embedding for d in got.data], want)
    assert got.model == "zh-small"
    assert got.usage.prompt_tokens == got.usage.total_tokens == sum(map(len, texts))
    floats = client.embeddings.create(model="zh-small", input=texts, encoding_format="float")
    assert close([d.embedding for d in floats.data], want)
    one = client.embeddings.create(model="zh-small", input=texts[3], encoding_format="float")
    assert len(one.data) == 1 and close(one.data[0].embedding, want[3:4])


def test_base64_is_little_endian_float32(server, student):
    r = post(server, "/v1/embeddings", {"input": ["今天天气很好"], "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["data"][0]["object"] == "embedding"
    vec = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="<f4")
    assert vec.shape == (student.dim,) and close(vec, student.encode(["今天天气很好"])[0])


def test_similarity_pairs(server, student):
    from ltd_bert.tasks.search import similarity

    pairs = [["今天天气很好", "今天天气不错"], ["今天天气很好", "我爱北京"], [SENTENCES[0]] * 2]
    r = post(server, "/similarity", {"pairs": pairs})
    assert r.status_code == 200, r.text
    scores = [d["score"] for d in r.json()["data"]]
    want = [similarity(student, a, b) for a, b in pairs]
    assert np.allclose(scores, want, atol=1e-5)
    assert scores[0] > scores[1] and abs(scores[2] - 1) < 1e-5


def test_models_and_health(server, client):
    assert [m.id for m in client.models.list()] == ["zh-small"]
    assert client.models.retrieve("zh-small").id == "zh-small"
    health = httpx.get(server.url + "/health").json()  # no key needed
    assert health["status"] == "ok" and health["model"] == "zh-small" and health["dim"] == 384


def test_concurrent_clients_get_their_own_vectors(server, student):
    groups = [SENTENCES[10 + 4 * i : 14 + 4 * i] for i in range(16)]
    want = [student.encode(g) for g in groups]
    before = httpx.get(server.url + "/health").json()
    start = threading.Barrier(16)

    def one(i):
        c = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)
        start.wait()
        out = []
        for _ in range(3):
            r = c.embeddings.create(model="zh-small", input=groups[i], encoding_format="float")
            out.append([d.embedding for d in r.data])
        return out

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(16)))
    for i, runs in enumerate(results):
        for got in runs:
            assert close(got, want[i]), f"client {i} got other vectors"
    after = httpx.get(server.url + "/health").json()
    assert after["sentences"] - before["sentences"] == 16 * 3 * 4
    assert after["batches"] - before["batches"] < 16 * 3  # requests were batched together


BAD = [
    ("/v1/embeddings", b"{not json", 400, None),
    ("/v1/embeddings", b"\xff\xfe", 400, None),
    ("/v1/embeddings", b'["a list"]', 400, None),
    ("/v1/embeddings", {"model": "zh-small"}, 400, "input"),
    ("/v1/embeddings", {"input": 3}, 400, "input"),
    ("/v1/embeddings", {"input": None}, 400, "input"),
    ("/v1/embeddings", {"input": []}, 400, "input"),
    ("/v1/embeddings", {"input": ""}, 400, "input"),
    ("/v1/embeddings", {"input": ["好", ""]}, 400, "input[1]"),
    ("/v1/embeddings", {"input": ["好", 7]}, 400, "input[1]"),
    ("/v1/embeddings", {"input": [[101, 102]]}, 400, "input[0]"),
    ("/v1/embeddings", {"input": ["好"] * (MAX_INPUTS + 1)}, 400, "input"),
    ("/v1/embeddings", {"input": "好" * (MAX_CHARS + 1)}, 400, "input"),
    ("/v1/embeddings", {"input": "好", "encoding_format": "int8"}, 400, "encoding_format"),
    ("/v1/embeddings", {"input": "好", "dimensions": 16}, 400, "dimensions"),
    ("/v1/embeddings", {"input": "好", "model": 5}, 400, "model"),
    ("/similarity", {"pairs": []}, 400, "pairs"),
    ("/similarity", {"pairs": "好"}, 400, "pairs"),
    ("/similarity", {"pairs": [["好"]]}, 400, "pairs[0]"),
    ("/similarity", {"pairs": [["好", ""]]}, 400, "pairs[0][1]"),
    ("/similarity", {"pairs": [["好", 1]]}, 400, "pairs[0][1]"),
    ("/v1/embeddings", b"x" * 300_000, 413, None),  # larger than any body within the limits
    ("/nowhere", {}, 404, None),
]


@pytest.mark.parametrize("path,body,status,param", BAD)
def test_bad_requests_get_openai_errors(server, path, body, status, param):
    r = post(server, path, body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param


def test_another_model_name_gets_the_served_model(server, client, student):
    """One model served: a client's default name (OpenAI's, which LangChain and LlamaIndex
    send unless told) gets it, as from TEI; the answer names the model that made them."""
    for name in ("text-embedding-ada-002", "text-embedding-3-small"):
        got = client.embeddings.create(model=name, input=["今天天气很好"])
        assert got.model == "zh-small"
        assert close(got.data[0].embedding, student.encode(["今天天气很好"])[0])
    r = post(server, "/similarity", {"pairs": [["好", "很好"]], "model": "bge-m3"})
    assert r.status_code == 200 and r.json()["model"] == "zh-small"


def test_several_models_served_an_unknown_name_is_404_listing_them():
    from ltd_bert.tasks.serve import ApiError, served_model

    assert served_model(None, ["zh-small"]) == "zh-small"
    assert served_model("text-embedding-ada-002", ["zh-small"]) == "zh-small"
    assert served_model("zh-tiny", ["zh-small", "zh-tiny"]) == "zh-tiny"
    with pytest.raises(ApiError) as err:
        served_model("text-embedding-ada-002", ["zh-small", "zh-tiny"])
    assert err.value.status == 404 and err.value.code == "model_not_found"
    assert "'zh-small', 'zh-tiny'" in err.value.message and err.value.param == "model"


def test_errors_reach_the_client_and_the_server_keeps_serving(server, client, student):
    with pytest.raises(openai.BadRequestError, match="empty list"):
        client.embeddings.create(model="zh-small", input=[])
    r = httpx.get(server.url + "/v1/embeddings")
    assert r.status_code == 405 and r.json()["error"]["type"] == "invalid_request_error"
    got = client.embeddings.create(model="zh-small", input=["好"], encoding_format="float")
    assert close(got.data[0].embedding, student.encode(["好"])[0])
    assert server.proc.poll() is None


@pytest.mark.parametrize("key", [None, "sk-wrong"])
def test_api_key(server, key):
    for path, body in (("/v1/embeddings", {"input": "好"}), ("/similarity", {"pairs": []})):
        r = post(server, path, body, key=key)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "invalid_api_key"
        assert r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.embeddings.create(model="zh-small", input="好")


def test_sigterm_finishes_requests_in_flight_and_exits_0(server, student):
    """The last test of the module's server: it stops it."""
    text = "".join(SENTENCES)
    texts = [text[i * MAX_CHARS : (i + 1) * MAX_CHARS] for i in range(MAX_INPUTS)]  # ~1 s
    result = {}

    def request():
        result["r"] = post(server, "/v1/embeddings", {"input": texts})

    thread = threading.Thread(target=request)
    thread.start()
    t0 = time.time()
    while time.time() - t0 < 30:  # until the server is working on it
        h = httpx.get(server.url + "/health").json()
        if h["queued"] or h["encoding"]:
            break
        assert thread.is_alive(), result["r"].text
        time.sleep(0.005)
    else:
        pytest.fail("the request never reached the server")
    server.proc.send_signal(signal.SIGTERM)
    thread.join(60)
    code = server.wait(60)
    r = result["r"]
    assert r.status_code == 200, r.text
    assert close([d["embedding"] for d in r.json()["data"]], student.encode(texts))
    assert code == 0, "\n".join(server.lines)
    assert "Traceback" not in "\n".join(server.lines)
    assert server.lines[-1] == "serve: stopped"
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/health")


# --- the command's bad input --------------------------------------------------------------


def test_missing_model_folder(tmp_path):
    result = CliRunner().invoke(cli, ["serve", "-m", str(tmp_path / "nope"), "--port", "0"])
    assert_one_error(result, "no such model folder")


def test_port_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "-m", str(MODEL), "--port", str(port)])
    assert_one_error(result, f"127.0.0.1:{port} is already in use", "--port")


def test_address_not_here():
    result = CliRunner().invoke(cli, ["serve", "-m", str(MODEL), "--host", "192.0.2.1"])
    assert_one_error(result, "cannot listen on 192.0.2.1:8000")


# --- the batcher on its own ---------------------------------------------------------------


def fake_encode(calls: list[int], seconds: float = 0.0):
    """Vectors [n, len] for sentences "s{n}"; records each batch's size."""

    def encode(sentences: list[str]) -> np.ndarray:
        calls.append(len(sentences))
        time.sleep(seconds)
        return np.array([[int(s[1:]), len(s)] for s in sentences], dtype=np.float32)

    return encode


def test_batcher_groups_concurrent_requests_and_keeps_order():
    calls: list[int] = []

    async def main():
        async with Batcher(fake_encode(calls, 0.02), max_batch=8, max_wait=0.05) as b:
            groups = [[f"s{10 * i + j}" for j in range(3)] for i in range(10)]
            outs = await asyncio.gather(*(b.embed(g) for g in groups))
            big = await b.embed([f"s{i}" for i in range(20)])  # split into 8 + 8 + 4
            return groups, outs, big

    groups, outs, big = asyncio.run(main())
    for g, out in zip(groups, outs, strict=True):
        assert out[:, 0].tolist() == [int(s[1:]) for s in g]
    assert big[:, 0].tolist() == list(range(20))
    assert max(calls) <= 8 and sum(calls) == 50
    assert len(calls) <= 10  # 30 sentences in batches of up to two requests (6), then 8+8+4


def test_batcher_does_not_keep_a_lone_client_waiting():
    calls: list[int] = []

    async def main():
        async with Batcher(fake_encode(calls), max_batch=64, max_wait=1.0) as b:
            t = time.perf_counter()
            for i in range(5):  # one client, request after request
                await b.embed([f"s{i}"])
            return time.perf_counter() - t

    assert asyncio.run(main()) < 0.5 and calls == [1] * 5


def test_batcher_waits_for_the_clients_of_the_previous_batch():
    calls: list[int] = []

    async def client(b, i):
        for k in range(3):
            await b.embed([f"s{100 * i + k}", f"s{100 * i + k}"])
            await asyncio.sleep(0.003 * i)  # each comes back at its own pace

    async def main():
        async with Batcher(fake_encode(calls, 0.01), max_batch=64, max_wait=0.5) as b:
            await asyncio.gather(*(client(b, i) for i in range(8)))

    asyncio.run(main())
    assert calls == [16, 16, 16]


def test_batcher_error_reaches_its_requests_and_it_goes_on():
    calls: list[int] = []

    def encode(sentences):
        if "s666" in sentences:
            raise RuntimeError("boom")
        return fake_encode(calls)(sentences)

    async def main():
        async with Batcher(encode, max_batch=4, max_wait=0.0) as b:
            with pytest.raises(RuntimeError, match="boom"):
                await b.embed(["s666"])
            return await b.embed(["s1", "s2"])

    assert asyncio.run(main())[:, 0].tolist() == [1, 2]


def test_readme_lists_the_serve_options():
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    for option in ("--max-batch", "--max-wait-ms", "--max-inputs", "--max-chars", "--api-key"):
        assert option in text
