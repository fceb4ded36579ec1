"""Read audio files packed inside two archive formats that Debian sound packages ship.

* ``cat``: the OpenTTD base-sound container (``opensfx.cat``): a table of ``(offset, size)``
  pairs (little-endian uint32, the offset's top bit set), each entry a length-prefixed name
  followed by a RIFF/WAV file. Members are addressed by their index.
* ``rcc``: a compiled Qt resource file (``qres`` magic, big-endian): a tree of directory and
  file nodes, UTF-16 names, file data optionally zlib-compressed (``qCompress``). Members are
  addressed by their path inside the tree.

:func:`read_member` returns the member's bytes exactly as packed (the sha256 the benchmark
manifest records is over these bytes).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from keras_iusp.utils.errors import DataError

__all__ = ["cat_members", "rcc_members", "read_member"]


def cat_members(data: bytes) -> list[tuple[str, bytes]]:
    """``(name, wav_bytes)`` of every entry of an OpenTTD ``.cat`` sound container."""
    if len(data) < 8:
        raise DataError("sound container is too short for a .cat header")
    first = struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF
    if first % 8 or first > len(data):
        raise DataError("not an OpenTTD .cat sound container (bad header)")
    members = []
    for i in range(first // 8):
        offset, size = struct.unpack_from("<II", data, 8 * i)
        offset &= 0x7FFFFFFF
        if offset + size > len(data) or size < 1:
            raise DataError(f".cat entry {i} points outside the file")
        name_len = data[offset]
        name = data[offset + 1: offset + 1 + name_len].rstrip(b"\0").decode("latin-1")
        members.append((name, data[offset + 1 + name_len: offset + size]))
    return members


def rcc_members(data: bytes) -> dict[str, bytes]:
    """``{path: bytes}`` of every file in a compiled Qt resource (``.rcc``) file."""
    if data[:4] != b"qres":
        raise DataError("not a Qt resource file (no 'qres' magic)")
    version, tree, payload, names = struct.unpack_from(">IIII", data, 4)
    if version not in (1, 2, 3):
        raise DataError(f"Qt resource format version {version} is not supported")
    node_size = 14 if version == 1 else 22

    def name(offset: int) -> str:
        length = struct.unpack_from(">H", data, names + offset)[0]
        start = names + offset + 6
        return data[start: start + 2 * length].decode("utf-16-be")

    out: dict[str, bytes] = {}
    stack = [(0, "")]
    while stack:
        index, prefix = stack.pop()
        base = tree + index * node_size
        name_offset, flags = struct.unpack_from(">IH", data, base)
        node_name = name(name_offset) if index else ""
        if flags & 2:  # directory
            count, first = struct.unpack_from(">II", data, base + 6)
            child_prefix = f"{prefix}{node_name}/" if index else ""
            stack.extend((child, child_prefix) for child in range(first, first + count))
            continue
        data_offset = struct.unpack_from(">I", data, base + 10)[0]
        size = struct.unpack_from(">I", data, payload + data_offset)[0]
        blob = data[payload + data_offset + 4: payload + data_offset + 4 + size]
        if flags & 1:
            blob = zlib.decompress(blob[4:])
        elif flags & 4:
            raise DataError(f"{prefix}{node_name}: zstd-compressed resources are not supported")
        out[prefix + node_name] = blob
    return out


def read_member(path: str | Path, member: str | None) -> bytes:
    """Bytes of ``path`` itself (``member`` None) or of one member of a ``.cat``/``.rcc`` file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if member is None:
        return data
    if path.suffix == ".cat":
        entries = cat_members(data)
        try:
            return entries[int(member)][1]
        except (ValueError, IndexError):
            raise DataError(f"{path}: no member {member!r} (expected an index below "
                            f"{len(entries)})") from None
    if path.suffix == ".rcc":
        entries = rcc_members(data)
        if member not in entries:
            raise DataError(f"{path}: no member {member!r}")
        return entries[member]
    raise DataError(f"{path}: members can only be read from .cat or .rcc files")
