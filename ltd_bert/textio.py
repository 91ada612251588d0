"""Streaming text input: many files, `-` for stdin, `.gz`, BOM, CRLF, and decoding errors.

Lines are read as bytes and decoded one at a time, so an undecodable byte is reported with
its file and line number, and nothing is ever held in memory beyond one line.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ltd_bert.errors import InputError

ERROR_POLICIES = ("strict", "replace", "skip")


@dataclass
class LineReader:
    """Iterate over `(source, line_number, text)` of several inputs, counting as it goes.

    `errors`: `strict` raises `InputError` on undecodable bytes, `replace` substitutes
    U+FFFD, `skip` drops the line. `bytes_read`, `lines_read` and `bad_lines` are live
    counters for progress bars and summaries.
    """

    paths: list[str]
    errors: str = "strict"
    bytes_read: int = 0
    lines_read: int = 0
    bad_lines: int = 0
    total_bytes: int | None = field(default=None)

    def __post_init__(self) -> None:
        if self.errors not in ERROR_POLICIES:
            raise InputError(f"--errors must be one of {', '.join(ERROR_POLICIES)}")
        self.paths = [str(p) for p in self.paths]
        if not self.paths:
            raise InputError("no input files given")
        total = 0
        for p in self.paths:
            if p == "-":
                total = None
                continue
            check_readable(p)
            if total is not None:
                total += os.path.getsize(p)
        self.total_bytes = total

    def __iter__(self) -> Iterator[tuple[str, int, str]]:
        for path in self.paths:
            yield from self._read_one(path)

    def _read_one(self, path: str) -> Iterator[tuple[str, int, str]]:
        with _open_binary(path) as fh:
            for lineno, raw in enumerate(fh, start=1):
                self.bytes_read += len(raw)
                self.lines_read += 1
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                raw = raw.rstrip(b"\r\n")
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    self.bad_lines += 1
                    if self.errors == "strict":
                        raise InputError(
                            f"{path}:{lineno}: not valid UTF-8 (byte {exc.start}); "
                            "use --errors replace or --errors skip to go on"
                        ) from None
                    if self.errors == "skip":
                        continue
                    text = raw.decode("utf-8", errors="replace")
                yield path, lineno, text


def check_readable(path: str | Path) -> None:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a text file")
    if not os.access(p, os.R_OK):
        raise InputError(f"{p}: not readable (permission denied)")


def _open_binary(path: str) -> io.BufferedReader:
    if path == "-":
        return sys.stdin.buffer  # type: ignore[return-value]
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def read_texts(paths: Iterable[str], errors: str = "strict") -> Iterator[str]:
    """Just the texts of `LineReader`."""
    for _, _, text in LineReader(list(paths), errors=errors):
        yield text
