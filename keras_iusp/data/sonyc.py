"""Readers for SONYC-UST ``annotations.csv`` and for a plain label CSV.

SONYC-UST v2 (DCASE 2019 Task 5) has one row per (clip, annotator): positive ``annotator_id`` are
crowd volunteers, negative ones SONYC team members, and ``0`` the label the team agreed on after
verification. Validation and test clips are scored against the verified row; training clips only
have crowd rows, which are aggregated by a rule the user picks.

Only the coarse-level presence columns are read. Fine-level ``X-Y_*_presence``, ``*_proximity``
and any other extra columns are ignored, so the same reader handles v1, v2 and user extensions.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from keras_iusp.data.index import DatasetIndex
from keras_iusp.data.schema import (
    COARSE_CLASSES,
    COARSE_COLUMNS,
    ID_COLUMNS,
    SPLITS,
    VERIFIED_ANNOTATOR,
)
from keras_iusp.utils.errors import DataError

#: Rules for turning several crowd annotations of one clip into one label.
TRAIN_RULES = ("any", "majority")

#: Folders (relative to the dataset root) searched for ``audio_filename``; SONYC-UST v2 ships the
#: development audio in ``audio/`` and the evaluation audio in ``audio-eval/``.
AUDIO_DIRS = ("audio", "audio-eval")


def _show(text: str) -> str:
    """``text`` as is when it prints on one line, else its escaped ``repr``."""
    return text if text.isprintable() else repr(text)


def _brief(value: str, limit: int = 40) -> str:
    """``repr`` of a cell value for a message, cut short when long."""
    return repr(value) if len(value) <= limit else repr(value[: limit - 3]) + "..."


def _decode(path: Path, data: bytes) -> str:
    """UTF-8 text of a CSV file (a BOM is allowed); other encodings are a clear error."""
    if not data.strip():
        raise DataError(f"{path}: file is empty, expected a CSV header row")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{path}: file is UTF-16 encoded, expected UTF-8 text (save it as UTF-8)")
    if b"\x00" in data:
        raise DataError(f"{path}: not a text CSV (contains NUL bytes; binary file?)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}: line {line}: byte 0x{data[exc.start]:02x} is not UTF-8, expected UTF-8 "
            "text (save the CSV as UTF-8)"
        ) from None


def _read_csv(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Header and ``(line_number, row)`` pairs; errors name the file and line."""
    try:
        with path.open("rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    text = _decode(path, data)
    # newline="" keeps line ends for the csv module (quoted fields may span lines) and makes
    # reader.line_num count the file's lines, which is what error messages report.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: file is empty, expected a CSV header row") from None
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: malformed CSV header ({exc})") from exc
    header = [h.strip() for h in header]
    if not any(header):
        raise DataError(f"{path}: line {reader.line_num}: empty header row, expected column names")
    duplicated = sorted({h for h in header if h and header.count(h) > 1})
    if duplicated:
        raise DataError(f"{path}: header repeats column(s) {duplicated}")

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        try:
            for record in reader:
                line = reader.line_num
                if not record or all(not cell.strip() for cell in record):
                    continue
                if len(record) != len(header):
                    raise DataError(
                        f"{path}: line {line}: {len(record)} fields, expected {len(header)} "
                        "(as many as header columns)"
                    )
                yield line, dict(zip(header, (cell.strip() for cell in record)))
        except csv.Error as exc:
            raise DataError(f"{path}: line {reader.line_num}: malformed CSV ({exc})") from exc

    return header, rows()


def _require_columns(path: Path, header: list[str], required: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in header]
    if not missing:
        return
    hints = []
    for column in missing:
        close = difflib.get_close_matches(column, header, n=1, cutoff=0.75)
        hints.append(f"{column!r}" + (f" (found {close[0]!r}: misspelled?)" if close else ""))
    shown = [_show(h) for h in header[:8]] + (["..."] if len(header) > 8 else [])
    raise DataError(
        f"{path}: missing required column(s): {', '.join(hints)}; the header has {shown}"
    )


#: A coarse-level SONYC presence column (``5_alert-signal_presence``); fine-level columns carry a
#: dash and a sub-number (``5-3_siren_presence``) and do not match.
_COARSE_LIKE = re.compile(r"\d+_[a-z-]+_presence", re.ASCII)


def _reject_extra_coarse(path: Path, header: list[str]) -> None:
    """A coarse-looking column that is not one of the 8 coarse classes would be silently dropped."""
    extra = [h for h in header if _COARSE_LIKE.fullmatch(h) and h not in COARSE_COLUMNS]
    if extra:
        raise DataError(
            f"{path}: unexpected coarse-level column(s) {extra}; expected exactly the SONYC-UST "
            f"coarse columns {list(COARSE_COLUMNS)} (fine-level 'X-Y_*_presence' and "
            "'*_proximity' columns are ignored)"
        )


def _parse_label(path: Path, line: int, column: str, value: str) -> int:
    if value in ("0", "1"):
        return int(value)
    if value in ("0.0", "1.0"):
        return int(float(value))
    if not value:
        raise DataError(f"{path}: line {line}: column {column!r} is empty, expected 0 or 1")
    raise DataError(
        f"{path}: line {line}: column {column!r} is {_brief(value)}, expected 0 or 1"
    )


_INTEGER = re.compile(r"[+-]?\d+(\.0*)?", re.ASCII)


def _parse_annotator(path: Path, line: int, value: str) -> int:
    """``annotator_id`` as an int; ``"3.0"`` (pandas output) is accepted, ``"3.5"`` is not."""
    if _INTEGER.fullmatch(value):
        try:
            return int(value.split(".")[0])
        except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
            pass
    raise DataError(
        f"{path}: line {line}: annotator_id {_brief(value)} is not an integer, expected e.g. 7, "
        "0 (verified) or -3 (SONYC team)"
    )


def _parse_split(path: Path, line: int, value: str) -> str:
    if value not in SPLITS:
        raise DataError(
            f"{path}: line {line}: split {_brief(value)}, expected one of {list(SPLITS)}"
        )
    return value


def _resolve_audio(root: Path, filename: str, search_dirs: tuple[str, ...]) -> Path | None:
    for folder in search_dirs:
        candidate = root / folder / filename
        if os.path.isfile(candidate):  # False (not OSError) for e.g. a too-long name
            return candidate
    return None


def aggregate(votes: np.ndarray, rule: str) -> np.ndarray:
    """Combine ``[annotators, classes]`` 0/1 votes into one label row.

    ``any``: positive if at least one annotator said so (the DCASE 2019 baseline's choice; high
    recall, noisier). ``majority``: positive if more than half of the annotators said so (a tie is
    negative).
    """
    if rule == "any":
        return (votes.max(axis=0) > 0).astype(np.uint8)
    if rule == "majority":
        return (2 * votes.sum(axis=0) > votes.shape[0]).astype(np.uint8)
    raise DataError(f"train_rule {rule!r} is not known; expected one of {list(TRAIN_RULES)}")


def read_sonyc(
    root: str | os.PathLike,
    train_rule: str = "majority",
    *,
    annotations: str | os.PathLike | None = None,
    missing_audio: str = "raise",
) -> DatasetIndex:
    """Read a SONYC-UST style dataset folder (``annotations.csv`` + ``audio/``).

    Args:
        root: dataset folder.
        train_rule: how crowd rows of a *train* clip are combined: ``"majority"`` (default) or
            ``"any"``. Validate/test clips use the verified row (``annotator_id == 0``) when there
            is one, and fall back to this rule over their crowd rows otherwise.
        annotations: the CSV to read (default ``root/annotations.csv``).
        missing_audio: ``"raise"`` (default) to fail on a row whose audio file does not exist, or
            ``"skip"`` to drop such clips with a printed report.

    Returns:
        A :class:`DatasetIndex` with one entry per clip, classes in SONYC coarse order.
    """
    root = Path(root)
    if train_rule not in TRAIN_RULES:
        raise DataError(
            f"train_rule {train_rule!r} is not known; expected one of {list(TRAIN_RULES)}"
        )
    if missing_audio not in ("raise", "skip"):
        raise DataError(f"missing_audio={missing_audio!r}: expected 'raise' or 'skip'")
    csv_path = Path(annotations) if annotations is not None else root / "annotations.csv"
    if not os.path.isdir(root):
        raise DataError(f"{root}: dataset folder not found")
    if not os.path.isfile(csv_path):
        raise DataError(
            f"{csv_path}: annotations file not found (expected SONYC-UST annotations.csv)"
        )

    header, rows = _read_csv(csv_path)
    _require_columns(csv_path, header, ID_COLUMNS + COARSE_COLUMNS)
    _reject_extra_coarse(csv_path, header)

    # filename -> (split, first line, {"verified": [...], "crowd": [...], "team": [...]})
    clips: dict[str, tuple[str, int, dict[str, list[np.ndarray]]]] = {}
    rated: dict[tuple[str, int], int] = {}  # (filename, annotator) -> line
    for line, row in rows:
        filename = row["audio_filename"]
        if not filename:
            raise DataError(f"{csv_path}: line {line}: empty audio_filename")
        split = _parse_split(csv_path, line, row["split"])
        annotator = _parse_annotator(csv_path, line, row["annotator_id"])
        first = rated.setdefault((filename, annotator), line)
        if first != line:
            raise DataError(
                f"{csv_path}: line {line}: duplicate row for audio_filename {filename!r} and "
                f"annotator_id {annotator} (first on line {first}); expected one row per clip "
                "and annotator"
            )
        vote = np.array(
            [_parse_label(csv_path, line, c, row[c]) for c in COARSE_COLUMNS], dtype=np.uint8
        )
        if filename not in clips:
            clips[filename] = (split, line, {"verified": [], "crowd": [], "team": []})
        first_split, first_line, votes = clips[filename]
        if split != first_split:
            raise DataError(
                f"{csv_path}: line {line}: {_show(filename)} is in split {split!r} but line "
                f"{first_line} put it in {first_split!r}"
            )
        if annotator == VERIFIED_ANNOTATOR:
            kind = "verified"
        else:
            kind = "crowd" if annotator > 0 else "team"
        votes[kind].append(vote)
    if not clips:
        raise DataError(f"{csv_path}: no annotation rows")

    search_dirs = AUDIO_DIRS + (".",)
    paths, splits, labels, missing = [], [], [], []
    for filename, (split, line, votes) in clips.items():
        path = _resolve_audio(root, filename, search_dirs)
        if path is None:
            missing.append((line, filename))
            continue
        if split != "train" and votes["verified"]:
            label = votes["verified"][0]
        else:
            for kind in ("crowd", "verified", "team"):
                if votes[kind]:
                    label = aggregate(np.stack(votes[kind]), train_rule)
                    break
        paths.append(path.resolve())
        splits.append(split)
        labels.append(label)
    _report_missing(csv_path, root, missing, missing_audio, [f"{d}/" for d in AUDIO_DIRS])
    return _make_index(csv_path, root, paths, splits, labels, COARSE_CLASSES)


def read_label_csv(
    csv_path: str | os.PathLike,
    *,
    audio_dir: str | os.PathLike | None = None,
    missing_audio: str = "raise",
) -> DatasetIndex:
    """Read a plain CSV ``filename, split, <label columns...>`` for users with their own data.

    Every column after ``filename`` and ``split`` is a 0/1 label; its header is the class name.
    Each filename appears once. Audio paths are relative to ``audio_dir`` (default: the CSV's
    folder).
    """
    csv_path = Path(csv_path)
    if missing_audio not in ("raise", "skip"):
        raise DataError(f"missing_audio={missing_audio!r}: expected 'raise' or 'skip'")
    if not os.path.isfile(csv_path):
        raise DataError(f"{csv_path}: label CSV not found")
    base = Path(audio_dir) if audio_dir is not None else csv_path.parent
    header, rows = _read_csv(csv_path)
    _require_columns(csv_path, header, ("filename", "split"))
    for position, name in enumerate(header, start=1):
        if not name:
            raise DataError(
                f"{csv_path}: header column {position} has no name, expected a class name"
            )
    class_names = tuple(c for c in header if c not in ("filename", "split"))
    if not class_names:
        raise DataError(f"{csv_path}: no label columns after 'filename' and 'split'")

    seen: dict[str, int] = {}
    paths, splits, labels, missing = [], [], [], []
    for line, row in rows:
        filename = row["filename"]
        if not filename:
            raise DataError(f"{csv_path}: line {line}: empty filename")
        if filename in seen:
            raise DataError(
                f"{csv_path}: line {line}: duplicate filename {filename!r} (first on line "
                f"{seen[filename]})"
            )
        seen[filename] = line
        split = _parse_split(csv_path, line, row["split"])
        label = np.array(
            [_parse_label(csv_path, line, c, row[c]) for c in class_names], dtype=np.uint8
        )
        path = base / filename
        if not os.path.isfile(path):
            missing.append((line, filename))
            continue
        paths.append(path.resolve())
        splits.append(split)
        labels.append(label)
    if not seen:
        raise DataError(f"{csv_path}: no rows after the header")
    _report_missing(csv_path, base, missing, missing_audio, ["."])
    return _make_index(csv_path, base, paths, splits, labels, class_names)


def read_dataset(path: str | os.PathLike, train_rule: str = "majority", **kwargs) -> DatasetIndex:
    """Read a SONYC-UST folder, a SONYC-UST ``annotations.csv`` or a plain label CSV.

    The format is recognised from the header, so the CLI takes one ``--data`` argument for all.
    """
    path = Path(path)
    if os.path.isdir(path):
        return read_sonyc(path, train_rule, **kwargs)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such dataset folder or CSV file")
    header, _ = _read_csv(path)
    # SONYC when it has both id columns, or some SONYC column and no plain-CSV "filename" (so a
    # SONYC file with one misspelled column gets SONYC's error message, not the plain CSV's).
    sonyc_markers = {"audio_filename", "annotator_id", *COARSE_COLUMNS}
    if ("audio_filename" in header and "annotator_id" in header) or (
        "filename" not in header and sonyc_markers.intersection(header)
    ):
        return read_sonyc(path.parent, train_rule, annotations=path, **kwargs)
    return read_label_csv(path, **kwargs)


def _report_missing(
    csv_path: Path, root: Path, missing: list[tuple[int, str]], mode: str, where: list[str]
) -> None:
    if not missing:
        return
    first_line, first_name = missing[0]
    if mode == "raise":
        raise DataError(
            f"{csv_path}: line {first_line}: audio file {first_name!r} not found under {root} "
            f"(looked in {', '.join(where)}); {len(missing)} clip(s) missing in all "
            "(use missing_audio='skip' / --skip-bad to drop them)"
        )
    names = ", ".join(name for _, name in missing[:5]) + (" ..." if len(missing) > 5 else "")
    print(f"[keras-iusp] skipped {len(missing)} clip(s) listed in {csv_path} "
          f"without audio: {names}")


def _make_index(
    csv_path: Path,
    root: Path,
    paths: list[Path],
    splits: list[str],
    labels: list[np.ndarray],
    class_names: tuple[str, ...],
) -> DatasetIndex:
    if not paths:
        raise DataError(f"{csv_path}: no clip with an existing audio file")
    return DatasetIndex(
        root=root.resolve(),
        paths=tuple(paths),
        splits=np.array(splits, dtype=object).astype(str),
        labels=np.stack(labels).astype(np.uint8),
        class_names=tuple(class_names),
    )
