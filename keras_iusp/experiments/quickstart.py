"""``keras-iusp quickstart``: the whole chain on built-in synthetic data, small enough for a laptop.

Every stage is a real one (no canned numbers); each prints what it made and where. Stages whose
outputs already exist for the same settings are reused, so a second run is quick.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from keras_iusp.features.logmel import FeatureConfig
from keras_iusp.train.defaults import DEFAULT_TEACHER
from keras_iusp.train.run_folder import METRICS_FILE, is_finished

# The pipeline's modules are imported inside run_quickstart(): the CLI imports this module while
# it builds its parser, before TensorFlow may load (tests/test_cli_flags.py).

#: Quickstart clip length: shorter than SONYC's 10 s so the chain runs in minutes on 2 CPU cores.
QUICKSTART_CLIP_SECONDS = 4.0
TEACHER = DEFAULT_TEACHER
STUDENT = "cnn_lstm_xs"
TEACHER_EPOCHS = 12
STUDENT_EPOCHS = 30


def _stage(number: int, title: str) -> float:
    print(f"\n[{number}] {title}", flush=True)
    return time.perf_counter()


def _done(start: float, *outputs: str) -> None:
    for line in outputs:
        print(f"    -> {line}")
    print(f"    ({time.perf_counter() - start:.1f} s)", flush=True)


def _existing_dataset(data_dir: Path, clips: int, seed: int, clip_seconds: float) -> bool:
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
            and params.get("clip_seconds") == clip_seconds)


def run_quickstart(out: Path, *, clips: int = 240, seed: int = 0, overwrite: bool = False,
                   clip_seconds: float = QUICKSTART_CLIP_SECONDS,
                   teacher_epochs: int = TEACHER_EPOCHS,
                   student_epochs: int = STUDENT_EPOCHS, prune_epochs: int = 6,
                   qat_epochs: int = 3) -> dict:
    """Run every implemented stage of the chain into ``out`` and return a summary of outputs.

    The keyword arguments shrink the run (the tests use a few short clips and one epoch).
    """
    import numpy as np
    import tf_keras as keras

    from keras_iusp.compress import CompressConfig, compress
    from keras_iusp.data import read_sonyc, synthesize
    from keras_iusp.experiments.distances import layer_output_batches, mean_iusp_distances
    from keras_iusp.experiments.figures import pick_repetitive_clip, plot_teacher_student_similarity
    from keras_iusp.export import export_model, format_report
    from keras_iusp.features import build_feature_cache
    from keras_iusp.features.synth_plot import plot_class_examples
    from keras_iusp.models import MODEL_SPECS, build_model
    from keras_iusp.train.recipe import DEFAULT_STUDENT_LAYER, DEFAULT_TEACHER_LAYER, DistillConfig
    from keras_iusp.train.training import distill, train_teacher

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / "data"
    summary: dict = {"out": str(out)}

    t = _stage(1, f"synthesise {clips} SONYC-UST-format clips ({clip_seconds:g} s each)")
    if not overwrite and _existing_dataset(data_dir, clips, seed, clip_seconds):
        print("    reusing the existing synthetic dataset")
    else:
        synthesize(data_dir, clips=clips, seed=seed, clip_seconds=clip_seconds, overwrite=True)
    png = plot_class_examples(out / "class_examples.png", seed=seed)
    _done(t, f"dataset: {data_dir} (annotations.csv + audio/)", f"class spectrograms: {png}")
    summary["data"] = str(data_dir)
    summary["class_examples"] = str(png)

    t = _stage(2, "read annotations (SONYC-UST loader) and cache log-mel features")
    index = read_sonyc(data_dir)
    print("    " + index.describe().replace("\n", "\n    "))
    config = FeatureConfig(clip_seconds=clip_seconds)
    cache = build_feature_cache(index, config)
    _done(t, cache.describe())
    summary["feature_cache"] = str(cache.path)

    t = _stage(3, f"train the teacher ({TEACHER} on labels, {teacher_epochs} epochs)")
    teacher_dir = out / "teacher"
    teacher = _reuse(teacher_dir, overwrite) or train_teacher(
        cache, teacher_dir, model_name=TEACHER, epochs=teacher_epochs, seed=seed, verbose=2,
        overwrite=overwrite)
    _done(t, f"teacher: {teacher_dir} ({_auprc(teacher_dir)})")

    students = {}
    for number, method in ((4, "baseline"), (5, "iusp")):
        what = "no distillation" if method == "baseline" else "BCE + KD + IUSP"
        t = _stage(number, f"train student {STUDENT} with {what} ({student_epochs} epochs)")
        run_dir = out / f"student_{method}"
        students[method] = _reuse(run_dir, overwrite) or distill(
            cache, teacher, STUDENT, run_dir,
            DistillConfig(method=method, epochs=student_epochs, seed=seed), verbose=2,
            overwrite=overwrite)
        _done(t, f"student: {run_dir} ({_auprc(run_dir)})")
        summary[f"student_{method}"] = str(run_dir)

    t = _stage(6, "self-similarity matrices of a repetitive validation clip")
    x_val, y_val = cache.split("validate")
    clip = pick_repetitive_clip(y_val, cache.class_names)
    student_layer = DEFAULT_STUDENT_LAYER[MODEL_SPECS[STUDENT].family]
    keras.utils.set_random_seed(seed)
    untrained = build_model(STUDENT, x_val.shape[1:], len(cache.class_names), cache.stats)
    labels = ", ".join(n for n, v in zip(cache.class_names, y_val[clip]) if v) or "no event"
    png, distances = plot_teacher_student_similarity(
        teacher.model, DEFAULT_TEACHER_LAYER,
        [("student before training", untrained, student_layer),
         ("student, baseline", students["baseline"].model, student_layer),
         ("student after IUSP", students["iusp"].model, student_layer)],
        np.asarray(x_val[clip]), out / "similarity.png",
        title=f"{cache.split_filenames('validate')[clip]} ({labels})")
    # one clip's distance moves with its content; the mean over the split is the measurement
    form = DistillConfig().iusp_form
    teacher_frames = layer_output_batches(teacher.model, DEFAULT_TEACHER_LAYER, x_val)
    mean_distances = {
        label: mean_iusp_distances(teacher.model, model, student_layer, x_val,
                                   teacher_batches=teacher_frames)[form]
        for label, model in (("before training", untrained),
                             ("baseline", students["baseline"].model),
                             ("after IUSP", students["iusp"].model))}
    _done(t, f"figure: {png}",
          *(f"IUSP distance to the teacher on this clip, {k}: {v:.2e}"
            for k, v in distances.items()),
          f"mean IUSP distance ({form} form) over the {len(x_val)} validation clips: "
          + ", ".join(f"{k} {v:.2e}" for k, v in mean_distances.items()))
    summary["similarity_figure"] = str(png)
    summary["iusp_distance_validation"] = mean_distances

    t = _stage(7, "prune (50 %) and quantisation-aware training of the IUSP student, "
                  "still distilling from the teacher")
    compressed_dir = out / "student_iusp_compressed"
    if overwrite or not (compressed_dir / "compress_report.json").is_file():
        compress(students["iusp"], cache, compressed_dir,
                 CompressConfig(prune_epochs=prune_epochs, qat_epochs=qat_epochs, seed=seed),
                 teacher_run=teacher, verbose=2, overwrite=overwrite)
    else:
        print(f"    reusing {compressed_dir}")
    _done(t, f"compressed student: {compressed_dir}")
    summary["compressed"] = str(compressed_dir)

    t = _stage(8, "export: int8 TFLite, TFLite-Micro vs LiteRT check, C/C++ firmware assets")
    report = export_model(compressed_dir, cache, out / "firmware", seed=seed)
    print("    " + format_report(report).replace("\n", "\n    "))
    _done(t, f"firmware assets: {out / 'firmware'}")
    summary["firmware"] = str(out / "firmware")
    summary["export_report"] = report

    print("\nvalidation micro-AUPRC (Keras PR-AUC):")
    for name, run_dir in [("teacher", teacher_dir)] + [
            (f"{STUDENT} {m}", out / f"student_{m}") for m in students]:
        print(f"    {name:24s} {_auprc(run_dir)}")
    detector = report["detector"]
    print(f"    {'firmware int8, windowed':24s} val AUPRC {report['int8_windowed_auprc']:.3f}; "
          f"event detector ({detector['operating_point_text']}): "
          f"{detector['validation']['overall']['false_alarms_per_hour']:.1f} false alarms/hour "
          f"on the {detector['validation_stream_seconds'] / 60:.1f}-min validation stream")
    print(f"\nquickstart finished; outputs under {out.resolve()}")
    return summary


def _reuse(run_dir: Path, overwrite: bool):
    """A finished run directory is loaded instead of retrained (delete it or pass --overwrite)."""
    from keras_iusp.train.saved_runs import load_run

    if overwrite or not is_finished(run_dir):
        return None
    print(f"    reusing {run_dir}")
    return load_run(run_dir)


def _auprc(run_dir: Path) -> str:
    try:
        value = json.loads((run_dir / METRICS_FILE).read_text()).get("val_auprc")
    except (OSError, json.JSONDecodeError):
        return "no metrics"
    return "val AUPRC n/a" if value is None else f"val AUPRC {value:.3f}"
