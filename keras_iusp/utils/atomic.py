"""Atomic file and folder writes: write under a temporary name in the same folder, then rename.

A reader (or a resumed run) then sees either the old file or the complete new one, never a
half-written file, even when the writer is killed. A folder is replaced with two renames
(:func:`replace_dir`); what a writer killed between them leaves is put right by the next one
(:func:`recover_dir`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps ``path``'s suffix, because writers such as Keras pick the file
    format from it (``.keras``, ``.weights.h5``).
    """
    path = Path(path)
    suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _leftovers(out: Path, kind: str) -> list[tuple[Path, int]]:
    """``(path, pid)`` of ``.NAME.<kind>-PID...`` entries beside ``out`` (``kind``: old, tmp)."""
    prefix = f".{out.name}.{kind}-"
    found = []
    if out.parent.is_dir():
        for entry in out.parent.iterdir():
            if entry.name.startswith(prefix):
                pid = entry.name[len(prefix):].split("-")[0]
                if pid.isdigit():
                    found.append((entry, int(pid)))
    return found


def staging_dir(out: str | os.PathLike) -> Path:
    """A new empty folder beside ``out`` to write a replacement in (see :func:`replace_dir`).

    Its name carries this process's id, so :func:`recover_dir` can tell the staging folder of a
    killed writer from one a live writer still fills.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))


def replace_dir(tmp: str | os.PathLike, out: str | os.PathLike) -> None:
    """Replace the folder ``out`` by the complete folder ``tmp`` (from :func:`staging_dir`).

    Two renames: ``out`` to ``.NAME.old-PID``, then ``tmp`` to ``out``; the old folder is
    deleted only afterwards. If the second rename fails, the old folder is renamed back. A
    writer killed between the two renames leaves no ``out`` but the old folder whole at
    ``.NAME.old-PID``: :func:`recover_dir` (called by the next writer) puts it back.
    """
    tmp, out = Path(tmp), Path(out)
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def recover_dir(out: str | os.PathLike) -> str | None:
    """Undo what a writer killed inside :func:`replace_dir` left beside ``out``.

    Only leftovers of processes that no longer run are touched: with ``out`` missing, the old
    folder (``.NAME.old-PID``, complete: it was moved whole) becomes ``out`` again; with ``out``
    present (killed after the second rename), the old folder is deleted. Staging folders of
    dead writers (``.NAME.tmp-PID-*``, maybe half-written) are deleted. So ``out`` afterwards
    holds the old assets or the new ones, whole, never a mix and never nothing. Returns what was
    done, in words, or None when there was nothing to recover.
    """
    out = Path(out)
    done = []
    olds = sorted((p for p, pid in _leftovers(out, "old") if not _pid_alive(pid)),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    if olds and not os.path.lexists(out):
        os.replace(olds.pop(0), out)
        done.append(f"restored {out} from an interrupted replacement")
    for path in olds:
        shutil.rmtree(path, ignore_errors=True)
        done.append(f"removed {path.name}")
    for path, pid in _leftovers(out, "tmp"):
        if not _pid_alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"removed {path.name}")
    return "; ".join(done) or None
