"""Streaming text input: many files, `-` for stdin, `.gz`, BOM, CRLF, and decoding errors.

Lines are read as bytes and decoded one at a time, so an undecodable byte is reported with
its file and line number, and nothing is ever held in memory beyond one line. Lines that
`--errors replace` or `skip` let through are counted and, at the end of each file, reported
as a warning (the CLI prints it as one `Warning: ...` line).
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import sys
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ltd_bert.common.errors import InputError

log = logging.getLogger(__name__)

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
        bad, first_bad, lineno = 0, 0, 0
        try:
            with _open_binary(path) as fh:
                for lineno, raw in enumerate(fh, start=1):  # noqa: B007 (read after the loop)
                    self.bytes_read += len(raw)
                    self.lines_read += 1
                    if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                        raw = raw[3:]
                    raw = raw.rstrip(b"\r\n")
                    try:
                        text = raw.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        self.bad_lines += 1
                        bad += 1
                        first_bad = first_bad or lineno
                        if self.errors == "strict":
                            raise InputError(
                                f"{path}:{lineno}: not valid UTF-8 (byte {exc.start}); "
                                "use --errors replace or --errors skip to go on"
                            ) from None
                        if self.errors == "skip":
                            continue
                        text = raw.decode("utf-8", errors="replace")
                    yield path, lineno, text
        except (OSError, EOFError, zlib.error) as exc:  # a corrupt or truncated .gz, EIO
            raise InputError(
                f"{path}:{lineno + 1}: cannot read ({str(exc) or type(exc).__name__}); "
                "is the file truncated or corrupt?"
            ) from None
        if bad:
            done = "kept, bad bytes replaced by U+FFFD" if self.errors == "replace" else "skipped"
            log.warning(
                "%s: %d line%s not valid UTF-8 (first: line %d) %s (--errors %s)",
                path, bad, "s" * (bad > 1), first_bad, done, self.errors,
            )  # fmt: skip


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


def check_output_dir(output: str | Path) -> Path:
    """The directory `output` will be written in: checked before any long work starts."""
    out = Path(output)
    parent = out.resolve().parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "output directory does not exist"
        raise InputError(f"{out.parent}: {what}")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{out.parent}: output directory is not writable (permission denied)")
    return parent


def output_tempfile(output: str | Path, suffix: str = ".partial") -> tuple[int, str]:
    """`(fd, path)` of a new file beside `output`, to be renamed onto it once complete (so
    nothing half-written ever has the final name); errors name `output`, not the temp file."""
    parent = check_output_dir(output)
    name = Path(output).name
    try:
        return tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=parent)
    except OSError as exc:
        raise InputError(f"{output}: cannot write there ({exc.strerror or exc})") from None


def count_lines(paths: list[str], stop_after: int | None = None) -> int | None:
    """Lines of plain files (fast byte count), or None for stdin/gzip. With `stop_after`,
    reading stops once more lines than that are counted (the count returned is then only
    known to exceed it)."""
    total = 0
    for p in paths:
        if p == "-" or p.endswith(".gz"):
            return None
        check_readable(p)
        with open(p, "rb") as fh:
            for buf in iter(lambda: fh.read(1 << 24 if stop_after is None else 1 << 20), b""):
                total += buf.count(b"\n")
                if stop_after is not None and total > stop_after:
                    return total
    return total
