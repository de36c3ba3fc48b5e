"""A workbook's sheet read by fastexcel in a thread while the tree loader starts.

fastexcel reads a sheet whole, in Rust, without holding Python's lock: a million-row survey
takes about five seconds of one core, and the loader's own start (importing its modules, about
a second) needs the other. ``smarttrees load trees`` on one workbook starts the read here
first (:func:`start`); ``etl.xlsx_arrow.load`` takes its result (:func:`read`), or reads the
sheet itself when nothing was started for that file. Both call fastexcel the same way, so the
result is the same.

This module imports nothing heavy: it runs before the loader's imports.
"""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path
from typing import Any

# The file started, as (resolved path, size, modification time), with its thread and result.
_STARTED: dict[tuple[str, int, int], tuple[threading.Thread, dict[str, Any]]] = {}
_LOCK = threading.Lock()
# A shared text table this small is under the loader's bound whatever the settings say (16 ×
# SMARTTREES_LOAD_BATCH_BYTES, at least 64 KiB; ``etl.readers._check_shared_strings``).
ALWAYS_READ = 1 << 20


def start(paths: list[Path]) -> None:
    """Start reading the sheet of ``paths`` when it is a single workbook; else do nothing.

    A read started for that very file (``etl.prefetch.start_from_argv``) is kept. Never
    raises: whatever is wrong with the file, the loader says it when it opens it. A workbook
    whose shared text table the loader would refuse (``etl.readers``) is not read.
    """
    try:
        key = _key(paths[0]) if len(paths) == 1 else None
    except Exception:  # noqa: BLE001 - the loader reports it, in its own words
        key = None
    with _LOCK:
        if key is not None and key in _STARTED:
            return
        _STARTED.clear()                 # a result not taken by an earlier load is let go
    if key is None or not key[1] or paths[0].suffix.lower() not in (".xlsx", ".xlsm"):
        return
    result: dict[str, Any] = {}
    thread = threading.Thread(target=_read, args=(Path(key[0]), result), name="xlsx-prefetch")
    with _LOCK:
        _STARTED[key] = (thread, result)
    thread.start()


def read(path: Path) -> Any:
    """The first sheet as ``etl.xlsx_arrow.load`` reads it: a RecordBatch, or the exception.

    Taken from :func:`start`'s thread when it read this very file (waiting for it), else read
    now.
    """
    key = _key(path)
    with _LOCK:
        started = _STARTED.pop(key, None) if key is not None else None
    if started is not None:
        thread, result = started
        # (pyarrow imports pandas at its first conversion of Python values, 0.3 s of CPU: not
        # here, while the sheet is read, as it adds 33 MB to the read's peak of 950 MB.)
        thread.join()
        if "sheet" in result or "error" in result:
            return result.get("sheet", result.get("error"))
    return _load(path)


def shared_strings_size(path: Path) -> int:
    """Bytes the workbook's shared text table unpacks to (raises ``zipfile.BadZipFile``)."""
    with zipfile.ZipFile(path) as archive:
        return sum(i.file_size for i in archive.infolist()
                   if i.filename.lower().endswith("sharedstrings.xml"))


def _read(path: Path, result: dict[str, Any]) -> None:
    try:
        strings = shared_strings_size(path)
        if strings > ALWAYS_READ:
            # Only then the settings' bound (their import takes a quarter of a second).
            from etl.limits import Limits

            if strings > Limits.from_settings().shared_strings_bytes:
                return                   # refused by the loader: not read
    except Exception:  # noqa: BLE001 - the loader says what is wrong with it
        return
    try:
        result["sheet"] = _load(path)
    except Exception as exc:  # noqa: BLE001 - handed to the caller, who decides
        result["error"] = exc


def _load(path: Path) -> Any:
    import fastexcel

    return fastexcel.read_excel(str(path)).load_sheet(
        0, header_row=0, dtype_coercion="strict", schema_sample_rows=None, eager=True)


def _key(path: Path) -> tuple[str, int, int] | None:
    try:
        stat = path.stat()
        return str(path.resolve()), stat.st_size, stat.st_mtime_ns
    except OSError:
        return None
