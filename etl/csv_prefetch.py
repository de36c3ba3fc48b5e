"""A survey CSV read, digested and split into lines on a thread while the tree loader starts.

``smarttrees load trees survey.csv`` needs three things of the file's bytes before its first
row is checked: their SHA-256 (the run record that recognises a file loaded before,
``etl.runs.file_digest``), where each line starts and ends, and each line's hash
(``etl.line_digests``). On the province's 105 MB survey that is about 0.9 s of CPU, which
used to run on the loader's thread, read the file twice, and leave the server idle. Started
here first (``etl.prefetch.start_from_argv``, before the loader's modules are imported, as
``etl.xlsx_prefetch`` does for workbooks), the read and its SHA-256 run beside the imports
(hashlib lets go of Python's lock), and the split and the hashes beside the loader's opening
steps, once it has found the file is not one loaded before (:func:`split_now`). The readers
take the results (:func:`sha256`, :func:`lines`) when the read was started for that very file
(same path, size and modification time), else read the file themselves; both ways give the
same values.

This module imports nothing heavy: it runs before the loader's imports.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Larger files are not held in memory: they are read as a stream, and digested by their cells.
MAX_BYTES = 512 << 20
SUFFIXES = (".csv", ".txt", ".tsv")
# Lines are hashed here only when none is longer (the default field limit, Limits.field_bytes).
HASHED_LINE_BYTES = 1 << 20
HASHED_AT_ONCE = 1 << 17          # lines hashed between two looks at whether to stop

Key = tuple[str, int, int]           # resolved path, size, modification time


@dataclass
class _Read:
    """One file's read: its thread, the steps done, and what they found."""

    thread: threading.Thread | None = None
    digested: threading.Event = field(default_factory=threading.Event)
    data: bytes | None = None
    sha256: str | None = None
    # Every line's start, length (without the line break) and unseeded hash; None when the
    # lines are not the rows (etl.line_digests.spans).
    lines: tuple[Any, Any, Any] | None = None
    split: bool = False                  # the lines were looked for (found or not)
    go: threading.Event = field(default_factory=threading.Event)     # split them (or stop)
    stop: threading.Event = field(default_factory=threading.Event)


_STARTED: dict[Key, _Read] = {}
_LOCK = threading.Lock()


def start(paths: list[Path]) -> None:
    """Start reading ``paths`` when it is one CSV of at most :data:`MAX_BYTES`; else nothing.

    Never raises: whatever is wrong with the file, the loader says it when it opens it.
    """
    key = _key(paths[0]) if len(paths) == 1 else None
    with _LOCK:
        if key is not None and key in _STARTED:
            return
        _let_go()
        if (key is None or not 0 < key[1] <= MAX_BYTES
                or paths[0].suffix.lower() not in SUFFIXES):
            return
        read = _Read()
        # A daemon: it may wait for split_now() that a refused load never calls.
        read.thread = threading.Thread(target=_run, args=(Path(key[0]), key, read),
                                       name="csv-prefetch", daemon=True)
        _STARTED[key] = read
    read.thread.start()


def release() -> None:
    """Let go of any read not taken (its thread stops after its current step)."""
    with _LOCK:
        _let_go()


def _let_go() -> None:
    for read in _STARTED.values():
        read.stop.set()
        read.go.set()
    _STARTED.clear()


def split_now() -> None:
    """The lines of the file read will be needed: split and hash them now.

    The loader says so once the file is not one loaded before (its run record): until then
    the thread has only read the file and taken its SHA-256, work an unchanged file needs
    too, and leaves the loader's imports the other core.
    """
    with _LOCK:
        for read in _STARTED.values():
            read.go.set()


def sha256(path: Path) -> str | None:
    """The file's SHA-256 (hex) from the read started for it, waiting for it; else None."""
    read = _started(path)
    if read is None:
        return None
    read.digested.wait()
    return read.sha256


def lines(path: Path) -> tuple[bytes, tuple[Any, Any, Any] | None] | None:
    """The file's bytes and lines from the read started for it, waiting for it; else None.

    The lines are :class:`_Read`'s ``lines`` (None: they are not the rows). The read is let go
    of here; None also when nothing was started for this file.
    """
    key = _key(path)
    with _LOCK:
        read = _STARTED.get(key) if key is not None else None
    if read is None or read.thread is None:
        return None
    read.go.set()
    read.thread.join()
    with _LOCK:
        _STARTED.pop(key, None)     # type: ignore[arg-type]
    if read.data is None or not read.split:
        return None
    return read.data, read.lines


def _started(path: Path) -> _Read | None:
    key = _key(path)
    with _LOCK:
        return _STARTED.get(key) if key is not None else None


def _run(path: Path, key: Key, read: _Read) -> None:
    try:
        try:
            data = path.read_bytes()
        except OSError:
            return
        if len(data) != key[1]:
            return                       # changed while read: the loader reads it itself
        read.sha256 = hashlib.sha256(data).hexdigest()
        read.data = data
    finally:
        read.digested.set()
    read.go.wait()
    if read.stop.is_set():
        return
    try:
        _split(data, read)
    except Exception:  # noqa: BLE001 - not split here: the loader splits the file itself
        read.lines, read.split = None, False


def _split(data: bytes, read: _Read) -> None:
    """Every line's start, length and hash into ``read`` (see :class:`_Read`)."""
    import numpy as np

    from etl import hashing, line_digests

    found = line_digests.spans(data)
    if found is not None:
        if read.stop.is_set():
            return
        starts, lengths = found
        # A line costs a round of numpy calls per 8 of its bytes: one over the field limit is
        # refused before it is hashed (etl.line_digests.read), so none is hashed here.
        hashes = None
        if int(lengths.max(initial=0)) <= HASHED_LINE_BYTES:
            # A part at a time: a load that needs no lines (its file known by its run record)
            # lets go of the read, and the thread stops within a part.
            u8 = np.frombuffer(data, np.uint8)
            words, hashes = hashing.padded_words(u8), np.empty(len(starts), np.uint64)
            for at in range(0, len(starts), HASHED_AT_ONCE):
                if read.stop.is_set():
                    return
                part = slice(at, at + HASHED_AT_ONCE)
                hashes[part] = hashing.span_hash(u8, starts[part], lengths[part], words)
        read.lines = (starts, lengths, hashes)
    read.split = True


def _key(path: Path) -> Key | None:
    try:
        stat = path.stat()
        return str(path.resolve()), stat.st_size, stat.st_mtime_ns
    except OSError:
        return None
