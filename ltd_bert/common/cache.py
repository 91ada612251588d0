"""The user's cache folder (`$LTD_HOME`, default `~/.cache/ltd_bert`) and atomic writes of
cache files into it: converted teachers, the parsed IDF tables, teacher vectors of the
suite and of eval."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def ltd_home() -> Path:
    """`$LTD_HOME`, else `~/.cache/ltd_bert`."""
    env = os.environ.get("LTD_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ltd_bert"


def eval_cache() -> Path:
    """Where the teacher's vectors of evaluation sets are cached (`ltd eval --teacher`)."""
    return ltd_home() / "eval_cache"


def write_cache_file(path: Path, data: bytes) -> bool:
    """Write `data` to `path` through a temporary file renamed into place, so a reader never
    sees half a file; a cache that cannot be written (read-only home, full disk) is only
    logged. Whether it was written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as exc:
        log.debug("cache %s not written: %s", path, exc)
        return False
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        return True
    except OSError as exc:
        log.debug("cache %s not written: %s", path, exc)
        Path(tmp).unlink(missing_ok=True)
        return False
