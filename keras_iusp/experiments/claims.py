"""Claims on grid cells, so that several processes can work through one experiment folder.

An experiment grid on a small CPU machine is throughput-bound, and one small CNN-LSTM training
process does not keep every core busy, so several processes can share a grid
(``keras-iusp experiment --jobs N``; ``benchmarks/jobs_throughput.py``). A
process that trains a cell first *claims* it: it takes an exclusive ``flock`` on
``<run dir>/.claim.lock`` and keeps that file open until it releases the claim. Any other process
fails to take the lock and skips the cell, so no run is trained twice.

The kernel drops the lock when its process ends in any way (killed, out of memory, crashed), so
the claim of a dead process is free again at once, whatever happened to its process id or host
name; its run then resumes from its last epoch (:mod:`keras_iusp.train.resume`). ``<run
dir>/.claim`` only tells people who holds the cell (host and process id).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

CLAIM_NAME = ".claim"
LOCK_NAME = ".claim.lock"

#: The lock files this process holds open, by run folder.
_held: dict[Path, IO[str]] = {}


def _key(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir).resolve()


def _lock(handle: IO[str]) -> bool:
    """Take the exclusive lock on ``handle`` without waiting; False when another holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking, claims always succeed
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def claim_holder(run_dir: str | os.PathLike) -> str | None:
    """Who holds the cell (``"host pid"`` from ``.claim``), or None when it is free or ours."""
    run_dir = Path(run_dir)
    if _key(run_dir) in _held or not (run_dir / LOCK_NAME).is_file():
        return None
    with open(run_dir / LOCK_NAME, "a") as handle:
        if _lock(handle):  # nobody holds it (closing the file drops our test lock)
            return None
    try:
        return (run_dir / CLAIM_NAME).read_text().strip() or "another process"
    except FileNotFoundError:
        return "another process"


def try_claim(run_dir: str | os.PathLike) -> bool:
    """Claim the cell for this process; False when another live process holds it."""
    run_dir = Path(run_dir)
    key = _key(run_dir)
    if key in _held:
        return True
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir / LOCK_NAME, "a")
    if not _lock(handle):
        handle.close()
        return False
    _held[key] = handle
    tmp = run_dir / f"{CLAIM_NAME}.{os.getpid()}.tmp"
    tmp.write_text(f"{socket.gethostname()} {os.getpid()}")
    os.replace(tmp, run_dir / CLAIM_NAME)
    return True


def release(run_dir: str | os.PathLike) -> None:
    """Drop this process's claim on the cell (a claim it does not hold is left alone)."""
    handle = _held.pop(_key(run_dir), None)
    if handle is None:
        return
    with contextlib.suppress(FileNotFoundError):
        (Path(run_dir) / CLAIM_NAME).unlink()
    handle.close()  # drops the lock


@contextlib.contextmanager
def claimed(run_dir: str | os.PathLike) -> Iterator[bool]:
    """``with claimed(run_dir) as mine:`` -- ``mine`` says whether this process holds the cell;
    the claim is dropped on leaving, whatever happened inside."""
    mine = try_claim(run_dir)
    try:
        yield mine
    finally:
        if mine:
            release(run_dir)


#: Lock file of an experiment folder's shared outputs (results.json/.csv, the report).
RESULTS_LOCK_NAME = ".results.lock"

#: Per thread: experiment folders whose results lock this thread holds, with a nesting depth.
_results_held = threading.local()


@contextlib.contextmanager
def results_lock(out: str | os.PathLike) -> Iterator[None]:
    """Hold the experiment folder's results lock (an exclusive ``flock``, waited for) while the
    block runs; nested use in one thread takes it once.

    Every process sharing ``out`` collects the finished runs and writes ``results.json``,
    ``results.csv`` and the report inside this lock, so one process's older view of the grid
    cannot overwrite a newer one written in between: runs only ever become finished, so the
    writer that takes the lock last has seen every run the others saw.
    """
    key = _key(out)
    held = getattr(_results_held, "depth", None)
    if held is None:
        held = _results_held.depth = {}
    if held.get(key):
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    with open(Path(out) / RESULTS_LOCK_NAME, "a") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no locking
            fcntl = None
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        held[key] = 1
        try:
            yield
        finally:
            held.pop(key, None)  # closing the file drops the lock
