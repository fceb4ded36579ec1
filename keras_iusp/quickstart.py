"""``keras-iusp quickstart``: the whole chain on built-in synthetic data, small enough for a laptop.

Every stage is a real one (no canned numbers); each prints what it made and where. Stages whose
outputs already exist for the same settings are reused, so a second run is quick.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from keras_iusp.features import FeatureConfig

#: Quickstart clip length: shorter than SONYC's 10 s so the chain runs in minutes on 2 CPU cores.
QUICKSTART_CLIP_SECONDS = 4.0


def _stage(number: int, title: str) -> float:
    print(f"\n[{number}] {title}", flush=True)
    return time.perf_counter()


def _done(start: float, *outputs: str) -> None:
    for line in outputs:
        print(f"    -> {line}")
    print(f"    ({time.perf_counter() - start:.1f} s)", flush=True)


def _existing_dataset(data_dir: Path, clips: int, seed: int) -> bool:
    """True when ``data_dir`` already holds the synthetic set these settings would write."""
    config_path = data_dir / "synth_config.json"
    if not config_path.is_file():
        return False
    try:
        saved = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    params = saved.get("parameters", saved)
    return (params.get("clips") == clips and params.get("seed") == seed
            and params.get("clip_seconds") == QUICKSTART_CLIP_SECONDS)


def run_quickstart(out: Path, *, clips: int = 240, seed: int = 0, overwrite: bool = False) -> dict:
    """Run every implemented stage of the chain into ``out`` and return a summary of outputs."""
    from keras_iusp.data import build_feature_cache, read_sonyc, synthesize
    from keras_iusp.data.synth_plot import plot_class_examples

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / "data"
    summary: dict = {"out": str(out)}

    t = _stage(1, f"synthesise {clips} SONYC-UST-format clips ({QUICKSTART_CLIP_SECONDS:g} s each)")
    if not overwrite and _existing_dataset(data_dir, clips, seed):
        print("    reusing the existing synthetic dataset")
    else:
        synthesize(data_dir, clips=clips, seed=seed, clip_seconds=QUICKSTART_CLIP_SECONDS,
                   overwrite=True)
    png = plot_class_examples(out / "class_examples.png", seed=seed)
    _done(t, f"dataset: {data_dir} (annotations.csv + audio/)", f"class spectrograms: {png}")
    summary["data"] = str(data_dir)
    summary["class_examples"] = str(png)

    t = _stage(2, "read annotations (SONYC-UST loader) and cache log-mel features")
    index = read_sonyc(data_dir)
    print("    " + index.describe().replace("\n", "\n    "))
    config = FeatureConfig(clip_seconds=QUICKSTART_CLIP_SECONDS)
    cache = build_feature_cache(index, config)
    _done(t, cache.describe())
    summary["feature_cache"] = str(cache.path)

    print(f"\nquickstart finished; outputs under {out.resolve()}")
    return summary
