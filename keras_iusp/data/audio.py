"""Audio decoding with soundfile and resampling with soxr.

Real SONYC-UST audio is 44.1 or 48 kHz, user data can be anything soundfile reads (WAV, FLAC,
OGG, ...). Every clip is turned into float32 mono at the feature rate, then padded or trimmed to
the configured duration. Anything that would poison training silently (no samples, NaN/inf,
undecodable, truncated or absurd data) is an :class:`~keras_iusp.utils.errors.AudioError` naming the
file, on one line.
"""

from __future__ import annotations

import math
import os
import stat
import struct
from pathlib import Path

import numpy as np

from keras_iusp.utils.errors import AudioError

#: Plausible sample rates of an audio file header, in Hz. Outside this range the header is corrupt
#: (or the file is not audio), and resampling would make an empty or gigantic signal.
MIN_FILE_RATE = 1_000
MAX_FILE_RATE = 10_000_000

#: Largest decoded size (frames x channels) accepted; a header claiming more is corrupt.
MAX_SAMPLES = 1 << 31

#: Largest sample magnitude accepted. Decoded integer PCM lies in [-1, 1]; float files may exceed
#: it a little, but values like 1e30 are garbage and overflow to inf in the features.
MAX_ABS_SAMPLE = 1e6

#: WAV data-chunk sizes from here on are taken as "unknown length", not as a truncation.
_PLACEHOLDER_LENGTH = 0x7FFF0000


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_file(path: Path) -> None:
    """The path is a readable, non-empty regular file; a WAV header is sane. Else AudioError."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise AudioError(f"{path}: audio file not found") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _one_line(exc)
        raise AudioError(f"{path}: cannot access audio file ({reason})") from None
    if stat.S_ISDIR(info.st_mode):
        raise AudioError(f"{path}: is a directory, expected an audio file")
    if not stat.S_ISREG(info.st_mode):
        raise AudioError(f"{path}: not a regular file, expected an audio file")
    if info.st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes), expected audio")
    try:
        with open(path, "rb") as handle:
            problem = _wav_header_problem(handle, info.st_size)
    except OSError as exc:
        raise AudioError(f"{path}: cannot read audio file ({exc.strerror or exc})") from None
    if problem:
        raise AudioError(f"{path}: {problem}")


def _wav_header_problem(handle, size: int) -> str | None:
    """What is wrong with a RIFF/WAVE header that libsndfile reports unclearly or not at all.

    A sample rate or channel count of 0 ends in libsndfile's "SF_INFO struct incomplete", and a
    file cut short in its data chunk decodes without complaint. Other files return None.
    """
    head = handle.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    position = 12
    for _ in range(256):  # chunks: 4-byte id, little-endian uint32 size, data, pad to even
        handle.seek(position)
        chunk = handle.read(8)
        if len(chunk) < 8:
            return None
        name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if name == b"fmt " and length >= 16:
            fmt = handle.read(16)
            if len(fmt) < 16:
                return None  # libsndfile reports the cut header
            channels, rate = struct.unpack("<HI", fmt[2:8])
            if rate == 0:
                return "WAV header gives sample rate 0, expected > 0"
            if channels == 0:
                return "WAV header gives 0 channels, expected >= 1"
        elif name == b"data":
            available = size - position - 8
            # Streaming writers leave 0 or a huge placeholder (0xFFFFFFFF, 0x7FFFFFFF, ...)
            # when the length is unknown; libsndfile copes with those.
            if 0 < length < _PLACEHOLDER_LENGTH and length > available:
                return (
                    f"truncated WAV: the header declares {length} bytes of audio data, the file "
                    f"holds {max(available, 0)}"
                )
            return None
        position += 8 + length + (length & 1)
    return None


def read_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Decode ``path`` to float32 mono at ``sample_rate`` Hz, keeping its natural length.

    Channels are averaged (a downmix, not a pick of the first channel) because urban sensors and
    user recordings may be stereo with the event louder on one side.

    Raises:
        AudioError: naming the file, when it is missing, a directory, unreadable, empty,
            undecodable, truncated, has an implausible header, or holds NaN/inf/absurd samples.
    """
    import soundfile
    import soxr

    path = Path(path)
    if (isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer))
            or sample_rate <= 0):
        raise AudioError(
            f"{path}: target sample rate must be a positive integer, got {sample_rate!r}"
        )
    _check_file(path)
    try:
        with soundfile.SoundFile(str(path)) as handle:
            file_rate, channels, frames = handle.samplerate, handle.channels, handle.frames
            if not MIN_FILE_RATE <= file_rate <= MAX_FILE_RATE:
                raise AudioError(
                    f"{path}: header gives sample rate {file_rate!r} Hz, expected "
                    f"{MIN_FILE_RATE}..{MAX_FILE_RATE} (corrupt header?)"
                )
            if frames * channels > MAX_SAMPLES:
                raise AudioError(
                    f"{path}: header declares {frames} frames x {channels} channels, more than "
                    f"{MAX_SAMPLES} samples (corrupt header?)"
                )
            data = handle.read(dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError, ...
        raise AudioError(f"{path}: cannot decode audio ({_one_line(exc)})") from exc
    if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(f"{path}: audio file holds no samples")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: audio holds NaN or infinite samples")
    peak = float(np.max(np.abs(data)))
    if peak > MAX_ABS_SAMPLE:
        raise AudioError(
            f"{path}: sample magnitude {peak:.3g}, expected audio within about [-1, 1] "
            "(corrupt float data?)"
        )
    mono = data.mean(axis=1, dtype=np.float32)
    if file_rate != sample_rate:
        try:
            mono = soxr.resample(mono, file_rate, int(sample_rate), quality="HQ")
        except Exception as exc:  # soxr raises ValueError/RuntimeError on odd inputs
            raise AudioError(
                f"{path}: cannot resample {file_rate} Hz to {sample_rate} Hz ({_one_line(exc)})"
            ) from exc
        mono = np.asarray(mono, dtype=np.float32)
        if mono.shape[0] == 0:
            raise AudioError(
                f"{path}: {data.shape[0]} sample(s) at {file_rate} Hz are too short to resample "
                f"to {sample_rate} Hz"
            )
        if not np.all(np.isfinite(mono)):
            raise AudioError(f"{path}: resampling to {sample_rate} Hz gave non-finite samples")
    return np.ascontiguousarray(mono, dtype=np.float32).reshape(-1)


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad at the end or trim the end so that ``samples`` has exactly ``length`` samples."""
    if samples.shape[0] >= length:
        return samples[:length]
    out = np.zeros(length, dtype=np.float32)
    out[: samples.shape[0]] = samples
    return out


def load_audio(path: str | os.PathLike, sample_rate: int, duration: float) -> np.ndarray:
    """Decode, downmix, resample to ``sample_rate`` and pad/trim to ``duration`` seconds.

    Returns a float32 array of ``round(duration * sample_rate)`` samples.
    """
    if (isinstance(duration, bool) or not isinstance(duration, (int, float, np.number))
            or not math.isfinite(duration) or duration <= 0):
        raise AudioError(f"{path}: duration must be a finite number > 0 seconds, got {duration!r}")
    samples = read_audio(path, sample_rate)  # checks sample_rate
    length = int(round(duration * sample_rate))
    if length <= 0:
        raise AudioError(f"{path}: duration {duration!r} s is shorter than one sample")
    return fit_length(samples, length)
