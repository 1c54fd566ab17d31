"""UTF-8 decoding of input files: a bad byte stops with its file and line, or is replaced and counted.

Every text loader opens its files through `open_text` (or calls `check` before polars reads them).
`decoding(errors)` sets the mode for the loaders it wraps; a context variable carries it so that the
loaders' signatures stay about their data, not about this one setting.
"""

from __future__ import annotations

import codecs
import gzip
import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

MODES = ("strict", "replace")
_CHUNK = 1 << 20
_mode: ContextVar[str] = ContextVar("sidrec_encoding_errors", default="strict")
_report: ContextVar[dict[str, int] | None] = ContextVar("sidrec_encoding_report", default=None)
_hits: list[int] = []  # byte offsets of bad bytes in the buffer being decoded, filled by `_count`


def _count(err: UnicodeDecodeError) -> tuple[str, int]:
    _hits.extend(range(err.start, err.end))
    return "\ufffd", err.end


codecs.register_error("sidrec.count", _count)


@contextmanager
def decoding(errors: str = "strict") -> Iterator[dict[str, int]]:
    """Decode the files read inside the block with `errors`; yields {path: bad bytes replaced}."""
    if errors not in MODES:
        raise ValueError(f"unknown data.encoding_errors '{errors}'; choose one of {', '.join(MODES)}")
    report: dict[str, int] = {}
    tokens = _mode.set(errors), _report.set(report)
    try:
        yield report
    finally:
        _mode.reset(tokens[0])
        _report.reset(tokens[1])


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def scan(path: Path) -> tuple[int, int, int]:
    """(bad bytes, line of the first, that byte's value) of a UTF-8 file; (0, 0, 0) when it is clean."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="sidrec.count")
    bad, first_line, first_byte, lines = 0, 0, 0, 0
    try:
        with _open_binary(path) as f:
            while True:
                chunk = f.read(_CHUNK)
                final = not chunk
                buffered = decoder.getstate()[0] + chunk
                _hits.clear()
                decoder.decode(chunk, final=final)
                if _hits:
                    if not bad:
                        first_line = lines + buffered[: _hits[0]].count(b"\n") + 1
                        first_byte = buffered[_hits[0]] if _hits[0] < len(buffered) else 0
                    bad += len(_hits)
                lines += chunk.count(b"\n")
                if final:
                    break
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: not a readable {'gzip ' if path.suffix == '.gz' else ''}file ({err})") from None
    return bad, first_line, first_byte


def check(path: Path) -> None:
    """Stop at the first non-UTF-8 byte of `path` (strict), or count and log the bad bytes (replace)."""
    path = Path(path)
    bad, line, byte = scan(path)
    if not bad:
        return
    if _mode.get() == "strict":
        raise ValueError(
            f"{path}, line {line}: byte 0x{byte:02x} is not UTF-8 ({bad} bad byte(s) in the file; "
            "Latin-1 or Windows-1252 text looks like this). Re-save the file as UTF-8 "
            f"(e.g. iconv -f latin1 -t utf-8 {path.name}), or set data.encoding_errors=replace to replace "
            "each bad byte with U+FFFD (counted and reported in data_stats.json)"
        )
    logger.warning("%s: replaced %d non-UTF-8 byte(s) with U+FFFD, the first on line %d", path, bad, line)
    report = _report.get()
    if report is not None:
        report[str(path)] = bad


def open_text(path: Path, newline: str | None = None) -> IO[str]:
    """`path` (gzip-compressed if it ends in .gz) opened for reading as UTF-8, after `check`."""
    path = Path(path)
    check(path)
    errors = _mode.get()
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors=errors, newline=newline)
    return open(path, encoding="utf-8", errors=errors, newline=newline)


def polars_encoding() -> str:
    """The `encoding` argument of `pl.read_csv` for the current mode (call `check` first)."""
    return "utf8-lossy" if _mode.get() == "replace" else "utf8"
