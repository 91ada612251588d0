"""`ltd serve`: the student behind an OpenAI-compatible embeddings API, with dynamic batching.

    POST /v1/embeddings   OpenAI's request and response ({"input": "一句话" or [...],
                          "model": ..., "encoding_format": "float" | "base64"})
    POST /similarity      {"pairs": [["句子一", "句子二"], ...]} → the cosine of each pair
    GET  /v1/models       the one model served (a request naming another model gets it too,
                          as from a client that sends OpenAI's default name)
    GET  /health          {"status": "ok", ...} (no API key needed)

The vectors are `Student.encode`'s, as `ltd encode` writes them with the same model (the
similarity space; unit length only with `normalize`). Requests that arrive together are
encoded as one batch (`Batcher`: at most `max_batch` sentences, waiting at most `max_wait`
seconds after the first), in one worker thread, so the event loop keeps reading requests
while the model runs. Bad requests get a 4xx JSON error in OpenAI's shape.

Starlette and uvicorn: a small ASGI toolkit and its reference server, no more than these five
routes need (see docs/serve.md).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import hmac
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ltd_bert.common.errors import InputError, LtdError

log = logging.getLogger(__name__)

# The model's inner batches: Student.encode sorts a batch by length and runs it in pieces of
# this many sentences, so that one long sentence pads fewer others (a batch of 256 mixed
# lengths encodes ~20 % faster in pieces of 64 than at once; `ltd encode` gets the same from
# sorting blocks of 8,192 lines).
ENCODE_BATCH = 64
SHUTDOWN_GRACE = 30.0  # seconds SIGTERM waits for requests in flight
BACKLOG = 2048  # connections the kernel queues before accept


# --- dynamic batching ---------------------------------------------------------------------


@dataclass
class _Job:
    sentences: list[str]
    future: asyncio.Future


class Batcher:
    """Encodes the sentences of requests that arrive together in one call of `encode`.

    `await batcher.embed(sentences)` queues them (split into pieces of at most `max_batch`)
    and returns their vectors in order. One loop takes the oldest piece, adds the pieces
    queued behind it while the batch stays within `max_batch` sentences, and runs `encode`
    on the whole batch in a single worker thread. While the worker runs, new requests queue
    up, so under load the next batch is ready when the previous one ends.

    When the queue runs dry the batch waits for more, at most `max_wait` seconds, but only
    while it has fewer pieces than the previous batch had: the clients just answered are
    likely to send again (so they share one batch rather than split into groups that take
    turns in smaller, slower batches), and a lone client (a batch of one before) is never
    kept waiting.
    """

    def __init__(
        self,
        encode: Callable[[list[str]], np.ndarray],
        max_batch: int = 256,
        max_wait: float = 0.01,
        initializer: Callable[[], None] | None = None,
    ):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.encode = encode
        self.max_batch = max_batch
        self.max_wait = max(0.0, max_wait)
        self.batches = 0  # encode calls so far
        self.sentences = 0  # sentences encoded so far
        self.queued = 0  # sentences waiting for a batch
        self.encoding = 0  # sentences of the batch being encoded
        self._expect = 1  # pieces in the previous batch: worth waiting for that many
        self._initializer = initializer
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        """Start the batching loop and its worker thread (in the running event loop)."""
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(
            1, thread_name_prefix="ltd-encode", initializer=self._initializer
        )
        self._task = asyncio.create_task(self._run(), name="ltd-batcher")

    async def stop(self) -> None:
        """Stop the loop; queued requests that were not encoded yet get an error."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._queue is not None:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if not job.future.done():
                    job.future.set_exception(RuntimeError("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def __aenter__(self) -> Batcher:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def embed(self, sentences: Sequence[str]) -> np.ndarray:
        """The vectors of `sentences`, in order, encoded together with concurrent requests."""
        if self._queue is None or self._task is None:
            raise RuntimeError("Batcher.start() was not called")
        if not sentences:
            raise ValueError("no sentences to embed")
        loop = asyncio.get_running_loop()
        futures = []
        for start in range(0, len(sentences), self.max_batch):
            piece = list(sentences[start : start + self.max_batch])
            future = loop.create_future()
            self._queue.put_nowait(_Job(piece, future))
            self.queued += len(piece)
            futures.append(future)
        parts = await asyncio.gather(*futures)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    async def _next_batch(self, carry: _Job | None) -> tuple[list[_Job], _Job | None]:
        """The jobs of the next batch, and the job taken that did not fit (the next carry)."""
        assert self._queue is not None
        first = carry if carry is not None else await self._queue.get()
        carry = None
        batch, n = [first], len(first.sentences)
        deadline = time.monotonic() + self.max_wait
        while n < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.monotonic()
                if left <= 0 or len(batch) >= self._expect:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), left)
                except asyncio.TimeoutError:
                    break
            if n + len(job.sentences) > self.max_batch:
                carry = job
                break
            batch.append(job)
            n += len(job.sentences)
        self._expect = len(batch)
        return batch, carry

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        carry = None
        while True:
            batch, carry = await self._next_batch(carry)
            self.queued -= sum(len(j.sentences) for j in batch)
            batch = [j for j in batch if not j.future.done()]  # the client gave up
            if not batch:
                continue
            sentences = [s for j in batch for s in j.sentences]
            self.encoding = len(sentences)
            try:
                vecs = await loop.run_in_executor(self._executor, self.encode, sentences)
            except Exception as exc:  # every request of the batch gets the error
                log.error("encoding a batch of %d sentences failed: %r", len(sentences), exc)
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            finally:
                self.encoding = 0
            self.batches += 1
            self.sentences += len(sentences)
            start = 0
            for job in batch:
                end = start + len(job.sentences)
                if not job.future.done():
                    job.future.set_result(vecs[start:end])
                start = end


# --- requests and errors ------------------------------------------------------------------


@dataclass(frozen=True)
class ServeSettings:
    """What `ltd serve` was asked for: batching, request limits, the key, the vectors."""

    max_batch: int = 256
    max_wait_ms: float = 10.0  # the longest a batch waits for more requests
    max_inputs: int = 2048  # strings per request (OpenAI's limit too)
    max_chars: int = 8192  # characters per string
    api_key: str | None = None
    normalize: bool = False
    threads: int | None = None

    @property
    def max_body(self) -> int:
        """Bytes a request body may have: enough for max_inputs strings of max_chars
        characters even when every character is JSON-escaped as a surrogate pair."""
        return self.max_inputs * (self.max_chars * 12 + 8) + 65536


class ApiError(Exception):
    """An error response in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = (
            status,
            message,
            param,
            code,
            kind,
        )

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


def check_texts(value: Any, param: str, settings: ServeSettings) -> list[str]:
    """`input` of /v1/embeddings: a non-empty string or a non-empty list of them, within
    the limits; anything else is an ApiError naming the parameter."""
    if isinstance(value, str):
        value = [value]
        where = lambda i: param  # noqa: E731
    elif isinstance(value, list):
        where = lambda i: f"{param}[{i}]"  # noqa: E731
        if not value:
            raise ApiError(400, f"'{param}' is an empty list: give at least one string", param)
    elif value is None:
        raise ApiError(400, f"'{param}' is missing: give a string or a list of strings", param)
    else:
        raise ApiError(
            400,
            f"'{param}' must be a string or a list of strings, not {_json_type(value)}",
            param,
        )
    if len(value) > settings.max_inputs:
        raise ApiError(
            400,
            f"'{param}' has {len(value)} strings; at most {settings.max_inputs} per request "
            "(the server's --max-inputs)",
            param,
        )
    for i, s in enumerate(value):
        if not isinstance(s, str):
            what = "token ids" if isinstance(s, int | list) else _json_type(s)
            raise ApiError(400, f"'{where(i)}' must be a string, not {what} (send text)", where(i))
        if not s:
            raise ApiError(400, f"'{where(i)}' is an empty string", where(i))
        if len(s) > settings.max_chars:
            raise ApiError(
                400,
                f"'{where(i)}' has {len(s)} characters; at most {settings.max_chars} "
                "(the server's --max-chars)",
                where(i),
            )
    return value


def check_pairs(value: Any, settings: ServeSettings) -> list[tuple[str, str]]:
    """`pairs` of /similarity: a non-empty list of [sentence, sentence] lists."""
    if value is None:
        raise ApiError(400, "'pairs' is missing: give a list of [sentence, sentence]", "pairs")
    if not isinstance(value, list):
        raise ApiError(400, f"'pairs' must be a list, not {_json_type(value)}", "pairs")
    if not value:
        raise ApiError(400, "'pairs' is an empty list: give at least one pair", "pairs")
    if len(value) > settings.max_inputs:
        raise ApiError(
            400,
            f"'pairs' has {len(value)} pairs; at most {settings.max_inputs} per request "
            "(the server's --max-inputs)",
            "pairs",
        )
    for i, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ApiError(400, f"'pairs[{i}]' must be a list of two strings", f"pairs[{i}]")
        check_texts(pair, f"pairs[{i}]", settings)
    return [(a, b) for a, b in value]


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def authorized(header: str | None, api_key: str | None) -> bool:
    """True when no key is set, or `header` is `Bearer KEY` (compared in constant time)."""
    if not api_key:
        return True
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), api_key.encode()
    )


def embedding_data(vecs: np.ndarray, encoding_format: str) -> list[dict[str, Any]]:
    """OpenAI's `data` list: float32 rows (for `json_bytes`), or base64 of their
    little-endian float32 bytes."""
    raw = np.ascontiguousarray(vecs, dtype="<f4")
    if encoding_format == "base64":
        items = [base64.b64encode(v.tobytes()).decode("ascii") for v in raw]
    else:
        items = list(raw)
    return [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(items)]


def json_bytes(content: Any) -> bytes:
    """JSON with numpy float32 arrays written as the shortest decimals that read back as the
    same float32 values (orjson: some 20 times faster than json.dumps over `tolist()`)."""
    import orjson

    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def require_packages() -> None:
    """An LtdError naming the install command when the serve extra is missing."""
    missing = []
    for module in ("starlette", "uvicorn", "orjson"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise LtdError(
            f"ltd serve needs {', '.join(missing)}: pip install 'ltd-bert[serve]' "
            "(or pip install starlette uvicorn orjson)"
        )


def usage(texts: Sequence[str]) -> dict[str, int]:
    """OpenAI's `usage`, counted in characters (the student reads characters, not tokens)."""
    n = sum(len(t) for t in texts)
    return {"prompt_tokens": n, "total_tokens": n}


def cosines(vecs_a: np.ndarray, vecs_b: np.ndarray) -> list[float]:
    """Row-wise cosine, 0 where a vector is zero (as `ltd similarity` scores)."""
    na = np.maximum(np.linalg.norm(vecs_a, axis=1), 1e-12)
    nb = np.maximum(np.linalg.norm(vecs_b, axis=1), 1e-12)
    return ((vecs_a * vecs_b).sum(1) / (na * nb)).tolist()


def served_model(requested: Any, served: Sequence[str]) -> str:
    """The served model a request's `model` asks for. Any name gets the one model when only
    one is served, as TEI does: clients such as LangChain and LlamaIndex send OpenAI's
    default (`text-embedding-ada-002`) unless told. With several served, an unknown name is
    a 404 that lists them. No name: the first."""
    if requested is None:
        return served[0]
    if not isinstance(requested, str):
        raise ApiError(400, f"'model' must be a string, not {_json_type(requested)}", "model")
    if requested in served:
        return requested
    if len(served) == 1:
        return served[0]
    raise ApiError(
        404,
        f"the model '{requested}' does not exist here; this server serves "
        + ", ".join(f"'{m}'" for m in served),
        "model",
        "model_not_found",
    )


# --- the ASGI app -------------------------------------------------------------------------


def create_app(student, name: str, settings: ServeSettings, created: int | None = None):
    """The Starlette app serving `student` as model `name`."""
    require_packages()
    import orjson
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    class JSON(JSONResponse):
        def render(self, content: Any) -> bytes:
            return json_bytes(content)

    def encode(sentences: list[str]) -> np.ndarray:
        return student.encode(sentences, ENCODE_BATCH, settings.normalize)

    def set_threads() -> None:
        if settings.threads:  # torch's thread count is per OS thread with OpenMP
            import torch

            torch.set_num_threads(settings.threads)

    batcher = Batcher(encode, settings.max_batch, settings.max_wait_ms / 1000, set_threads)
    created = int(time.time()) if created is None else created

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with batcher:
            yield

    def error(exc: ApiError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSON(exc.body(), exc.status, headers=headers)

    def endpoint(handler, open_: bool = False):
        """The handler with the key check, and ApiErrors turned into their responses."""

        async def run(request: Request) -> Response:
            try:
                if not open_ and not authorized(
                    request.headers.get("authorization"), settings.api_key
                ):
                    raise ApiError(
                        401,
                        "missing or wrong API key: send the header 'Authorization: Bearer KEY'",
                        code="invalid_api_key",
                    )
                return await handler(request)
            except ApiError as exc:
                return error(exc)

        return run

    async def read_json(request: Request) -> dict[str, Any]:
        size = request.headers.get("content-length")
        if size and size.isdigit() and int(size) > settings.max_body:
            raise ApiError(413, f"the request body is larger than {settings.max_body} bytes")
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > settings.max_body:
                raise ApiError(413, f"the request body is larger than {settings.max_body} bytes")
            chunks.append(chunk)
        try:
            body = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError as exc:  # also undecodable bytes
            raise ApiError(400, f"the body is not valid JSON ({exc})") from None
        if not isinstance(body, dict):
            raise ApiError(400, f"the body must be a JSON object, not {_json_type(body)}")
        return body

    def check_model(body: dict[str, Any]) -> None:
        served_model(body.get("model"), [name])

    async def embeddings(request: Request) -> Response:
        body = await read_json(request)
        texts = check_texts(body.get("input"), "input", settings)
        check_model(body)
        fmt = body.get("encoding_format")
        if fmt is None:
            fmt = "float"
        if fmt not in ("float", "base64"):
            raise ApiError(400, "'encoding_format' must be 'float' or 'base64'", "encoding_format")
        dims = body.get("dimensions")
        if dims is not None and (isinstance(dims, bool) or dims != student.dim):
            raise ApiError(
                400,
                f"'dimensions' must be {student.dim}, the model's dimension (or left out)",
                "dimensions",
            )
        vecs = await batcher.embed(texts)
        return JSON(
            {
                "object": "list",
                "data": embedding_data(vecs, fmt),
                "model": name,
                "usage": usage(texts),
            }
        )

    async def similarity(request: Request) -> Response:
        body = await read_json(request)
        pairs = check_pairs(body.get("pairs"), settings)
        check_model(body)
        uniq = sorted({s for pair in pairs for s in pair})
        pos = {s: i for i, s in enumerate(uniq)}
        vecs = await batcher.embed(uniq)
        scores = cosines(vecs[[pos[a] for a, _ in pairs]], vecs[[pos[b] for _, b in pairs]])
        return JSON(
            {
                "object": "list",
                "data": [
                    {"object": "similarity", "index": i, "score": s} for i, s in enumerate(scores)
                ],
                "model": name,
                "usage": usage([s for pair in pairs for s in pair]),
            }
        )

    def model_card() -> dict[str, Any]:
        return {"id": name, "object": "model", "created": created, "owned_by": "ltd-bert"}

    async def models(request: Request) -> Response:
        return JSON({"object": "list", "data": [model_card()]})

    async def model(request: Request) -> Response:
        if request.path_params["model"] != name:
            raise ApiError(
                404,
                f"the model '{request.path_params['model']}' does not exist here; this "
                f"server serves '{name}'",
                "model",
                "model_not_found",
            )
        return JSON(model_card())

    async def health(request: Request) -> Response:
        return JSON(
            {
                "status": "ok",
                "ready": True,
                "model": name,
                "dim": student.dim,
                "normalized": settings.normalize,
                "max_batch": batcher.max_batch,
                "batches": batcher.batches,
                "sentences": batcher.sentences,
                "queued": batcher.queued,
                "encoding": batcher.encoding,
            }
        )

    async def http_error(request: Request, exc: HTTPException) -> Response:
        reason = {404: "no such route", 405: "method not allowed"}.get(exc.status_code)
        message = f"{request.method} {request.url.path}: {reason or exc.detail}"
        return error(ApiError(exc.status_code, message, code=None))

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed: %r", request.method, request.url.path, exc)
        return error(ApiError(500, f"internal error: {exc}", kind="server_error"))

    app = Starlette(
        routes=[
            Route("/v1/embeddings", endpoint(embeddings), methods=["POST"]),
            Route("/embeddings", endpoint(embeddings), methods=["POST"]),
            Route("/similarity", endpoint(similarity), methods=["POST"]),
            Route("/v1/models", endpoint(models), methods=["GET"]),
            Route("/v1/models/{model:path}", endpoint(model), methods=["GET"]),
            Route("/health", endpoint(health, open_=True), methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    return app


# --- running ------------------------------------------------------------------------------


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: a free one), not listening yet (`run` opens it),
    or an InputError saying why not (port in use, unknown host, address not here)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"--host {host}: {exc.strerror}") from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InputError(
                f"{host}:{port} is already in use (another server?); choose another --port"
            ) from None
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def model_name(model_dir: str | Path) -> str:
    """The id the model is served under: its folder's name (`zh-small`, `model`, ...)."""
    return Path(model_dir).resolve().name


def run(
    app,
    sock: socket.socket,
    log_level: str = "warning",
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve `app` on the bound `sock` until SIGINT or SIGTERM: then stop accepting
    connections, finish the requests in flight (up to SHUTDOWN_GRACE seconds) and return.
    `ready(url)` is called once connections are accepted (they wait in the backlog until
    the event loop runs)."""
    require_packages()
    import uvicorn

    sock.listen(BACKLOG)
    if ready is not None:
        ready(address(sock))

    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=log_level in ("info", "debug", "trace"),
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
        backlog=BACKLOG,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    with _signals_end_quietly():
        server.run(sockets=[sock])


@contextlib.contextmanager
def _signals_end_quietly():
    """uvicorn re-raises the signal that stopped it once it has shut down gracefully; with
    these handlers that is a no-op, so a stop by SIGTERM or Ctrl-C ends with status 0."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.signal(s, lambda signum, frame: None) for s in sigs}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
