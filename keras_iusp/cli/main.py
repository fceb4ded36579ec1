"""``keras-iusp`` command line.

Each sub-command is a thin wrapper over a library function, so anything the CLI does can be done
from Python too. User errors (:class:`~keras_iusp.utils.errors.KerasIuspError`) end in one line on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from keras_iusp.cli import arg_types as check
from keras_iusp.distill.methods import METHODS, REGISTRY
from keras_iusp.train.defaults import DEFAULT_TEACHER
from keras_iusp.utils.console import filtered_stderr, is_startup_noise, quiet_tensorflow
from keras_iusp.utils.errors import ConfigError, KerasIuspError

# Each command imports what it runs inside its handler: `keras-iusp --help`, a bad flag and the
# quiet start-up filter must not wait for TensorFlow (tests/test_cli_flags.py checks it).


def _cmd_synth(args: argparse.Namespace) -> int:
    from keras_iusp.data.synth import synthesize

    out = synthesize(
        args.out,
        clips=args.clips,
        seed=args.seed,
        clip_seconds=args.clip_seconds,
        sample_rate=args.sample_rate,
        label_noise=args.label_noise,
        overwrite=args.overwrite,
        preset=args.preset,
        unlabeled=args.unlabeled,
    )
    print(f"wrote {args.clips} clips to {out} (annotations.csv, audio/)")
    if args.unlabeled:
        print(f"wrote {args.unlabeled} unlabelled clips to {Path(out) / 'unlabeled'} (listed in "
              "unlabeled.csv; distill --unlabeled takes either)")
    if args.plot:
        from keras_iusp.features.synth_plot import plot_class_examples

        png = plot_class_examples(Path(out) / "class_examples.png", seed=args.seed)
        print(f"class spectrograms: {png}")
    return 0


def _cmd_build_real_audio(args: argparse.Namespace) -> int:
    from keras_iusp.data.real_audio import (
        DEFAULT_MANIFEST,
        build_real_audio,
        fetch_sources,
        load_manifest,
    )

    manifest = args.manifest or DEFAULT_MANIFEST
    sources = args.sources or Path(os.path.abspath(args.out)).parent / "real_audio_sources"
    if args.fetch:
        fetch_sources(load_manifest(manifest), sources)
    out = build_real_audio(args.out, sources, manifest_path=manifest, seed=args.seed,
                           train=args.train, validate=args.validate, test=args.test,
                           unlabeled=args.unlabeled, clip_seconds=args.clip_seconds,
                           overwrite=args.overwrite)
    print(f"wrote {args.train}/{args.validate}/{args.test} train/validate/test clips and "
          f"{args.unlabeled} unlabelled clips to {out} (annotations.csv, audio/, unlabeled/)")
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    from keras_iusp.data import read_dataset
    from keras_iusp.features import build_feature_cache
    from keras_iusp.features.logmel import FeatureConfig

    index = read_dataset(args.data, args.train_rule,
                         missing_audio="skip" if args.skip_bad else "raise")
    print(index.describe())
    config = FeatureConfig(clip_seconds=args.clip_seconds)
    cache = build_feature_cache(
        index, config, cache_dir=args.cache_dir,
        on_error="skip" if args.skip_bad else "raise", strict_duration=args.strict,
    )
    print(cache.describe())
    return 0


def _load_cache(data: str, clip_seconds: float | None, train_rule: str, skip_bad: bool,
                config=None):
    """The feature cache of ``data`` for ``config``, else for clips of ``clip_seconds``."""
    from keras_iusp.data import read_dataset
    from keras_iusp.features import build_feature_cache
    from keras_iusp.features.logmel import FeatureConfig

    index = read_dataset(data, train_rule, missing_audio="skip" if skip_bad else "raise")
    print(index.describe())
    if config is None:
        config = FeatureConfig(clip_seconds=10.0 if clip_seconds is None else clip_seconds)
    cache = build_feature_cache(index, config, on_error="skip" if skip_bad else "raise")
    print(cache.describe())
    return cache


def _cmd_train_teacher(args: argparse.Namespace) -> int:
    from keras_iusp.distill.augment import default_augmentation
    from keras_iusp.train.training import train_teacher

    cache = _load_cache(args.data, args.clip_seconds, args.train_rule, args.skip_bad)
    frames = int(cache.features.shape[1])
    run = train_teacher(cache, args.out, model_name=args.model, epochs=args.epochs,
                        batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                        overwrite=args.overwrite, lr_schedule=args.lr_schedule,
                        warmup_epochs=args.warmup_epochs,
                        augmentation=default_augmentation(frames, args.seed) if args.augment
                        else None)
    print(f"teacher saved to {run.path} (model.keras, model_info.json, history.json)")
    return 0


def _cmd_train_fold_teachers(args: argparse.Namespace) -> int:
    from keras_iusp.experiments.cross_fit import train_fold_teachers
    from keras_iusp.train.saved_runs import load_run

    teacher = load_run(args.teacher)
    cache = _load_cache(args.data, None, args.train_rule, args.skip_bad,
                        config=teacher.feature_config)
    runs = train_fold_teachers(cache, args.out, args.folds, teacher, fold_seed=args.fold_seed)
    print(f"{len(runs)} fold teachers in {args.out}; distil from them with "
          f"`keras-iusp distill --teacher {args.teacher} --fold-teachers {args.out} ...`")
    return 0


#: ``keras-iusp distill`` flags (``DistillConfig`` field names) that only some methods read.
#: method -> the distill flags only it reads (from the registry, keras_iusp.distill.methods)
_METHOD_FLAGS = {name: m.flags for name, m in REGISTRY.items() if m.flags}


def _check_method_flags(args: argparse.Namespace) -> None:
    """Refuse a flag the chosen method would silently ignore.

    ``--method baseline --distill-epochs 30`` or ``--method kd --iusp-weight 3`` trains exactly
    what the flag-less command trains, so a user reading the command would be misled about the
    run; failing before any work is cheaper than finding out from the results.
    """
    used = _METHOD_FLAGS.get(args.method, ())
    ignored = [f"--{k.replace('_', '-')}" for k in dict.fromkeys(
        k for flags in _METHOD_FLAGS.values() for k in flags)
        if getattr(args, k, None) is not None and k not in used
        and not (k == "distill_epochs" and getattr(args, k) == 0)]  # 0: "never stop" = no-op
    # the teacher-output cache exists only for a teacher on clean inputs
    if getattr(args, "no_teacher_cache", False) and (args.method == "baseline"
                                                      or getattr(args, "augment", False)):
        ignored.append("--no-teacher-cache" + (" (with --augment the teacher always runs live)"
                                               if args.method != "baseline" else ""))
    if getattr(args, "fold_teachers", None) and args.method == "baseline":
        ignored.append("--fold-teachers")
    if ignored:
        raise ConfigError(f"--method {args.method} does not use {', '.join(ignored)}; drop "
                          f"{'it' if len(ignored) == 1 else 'them'} or choose a method that "
                          "does")


def _check_unlabeled_args(args: argparse.Namespace) -> None:
    """``--unlabeled``/``--unlabeled-ratio``: checked before any model or data is loaded
    (after :func:`_check_method_flags`, which refuses them for the baseline)."""
    if args.unlabeled_ratio is not None and not args.unlabeled:
        raise ConfigError("--unlabeled-ratio needs --unlabeled PATH (the unlabelled pool)")
    if args.unlabeled_ratio is not None and not args.unlabeled_ratio > 0:
        raise ConfigError(f"--unlabeled-ratio {args.unlabeled_ratio}: expected a number > 0 "
                          "(unlabelled clips per labelled clip in a batch)")
    if not args.unlabeled:
        return
    from keras_iusp.data.unlabeled import unlabeled_paths

    try:
        unlabeled_paths(args.unlabeled)
    except KerasIuspError as exc:
        raise ConfigError(f"--unlabeled: {exc}") from None


def _cmd_distill(args: argparse.Namespace) -> int:
    _check_method_flags(args)  # before TensorFlow loads: a wrong command fails at once
    _check_unlabeled_args(args)
    from keras_iusp.distill.augment import default_augmentation
    from keras_iusp.train.recipe import DistillConfig
    from keras_iusp.train.saved_runs import load_run
    from keras_iusp.train.training import distill

    teacher = load_run(args.teacher)
    cache = _load_cache(args.data, None, args.train_rule, args.skip_bad,
                        config=teacher.feature_config)
    frames = int(cache.features.shape[1])
    given = {k: getattr(args, k) for k in ("temperature", "student_loss_weight", "kd_weight",
                                           "sp_weight", "iusp_weight", "iusp_form",
                                           "distill_epochs")
             if getattr(args, k) is not None}
    config = DistillConfig(
        method=args.method, **given,
        teacher_layer=args.teacher_layer, student_layer=args.student_layer,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
        lr_schedule=args.lr_schedule, warmup_epochs=args.warmup_epochs,
        augmentation=default_augmentation(frames, args.seed) if args.augment else None,
        teacher_cache=not args.no_teacher_cache, seed=args.seed,
        cross_fitted=bool(args.fold_teachers), unlabeled=args.unlabeled or "",
        **({"unlabeled_ratio": args.unlabeled_ratio} if args.unlabeled_ratio is not None
           else {}))
    folds = None
    if args.fold_teachers:
        from keras_iusp.experiments.cross_fit import load_fold_teachers

        folds = load_fold_teachers(args.fold_teachers)
    run = distill(cache, teacher, args.student, args.out, config, overwrite=args.overwrite,
                  fold_teachers=folds)
    print(f"student saved to {run.path} (model.keras, model_info.json, history.json)")
    return 0


def _cmd_compress(args: argparse.Namespace) -> int:
    from keras_iusp.compress import CompressConfig, compress
    from keras_iusp.train.saved_runs import load_run

    student = load_run(args.run)
    cache = _load_cache(args.data, None, args.train_rule, args.skip_bad,
                        config=student.feature_config)
    teacher = load_run(args.teacher) if args.teacher else None
    config = CompressConfig(target_sparsity=args.sparsity, prune_epochs=args.prune_epochs,
                            qat_epochs=args.qat_epochs, learning_rate=args.lr,
                            batch_size=args.batch_size, seed=args.seed)
    out = compress(student, cache, args.out, config, teacher_run=teacher,
                   overwrite=args.overwrite)
    print(f"compressed model saved to {out} (model.keras, qat.weights.h5, compress_report.json)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from keras_iusp.export import export_model, format_report
    from keras_iusp.train.saved_runs import load_run

    operating_point = _operating_point(args)
    run = load_run(args.model)
    block = None
    if args.streaming:
        from keras_iusp.export.streaming import check_block_frames, check_streamable
        check_streamable(run.model)
        block = 8 if args.block_frames is None else args.block_frames
        check_block_frames(run.model, block, label="--block-frames")
    elif args.block_frames is not None:
        raise ConfigError("--block-frames: only used with --streaming")
    cache = _load_cache(args.data, None, args.train_rule, args.skip_bad,
                        config=run.feature_config)
    report = export_model(args.model, cache, args.out, window_seconds=args.window_seconds,
                          golden_vectors=args.golden, targets_dir=args.targets, seed=args.seed,
                          streaming_block_frames=block,
                          operating_point=operating_point)
    if not args.no_target_budget:
        from keras_iusp.export.target_budget import write_target_budget

        budget = write_target_budget(args.out)
        report["cortex_m4_budget"] = budget
    print(format_report(report))
    if "cortex_m4_budget" in report:
        b = report["cortex_m4_budget"]
        print("Cortex-M4F budget (emulated, instructions not cycles): not measured, "
              + b["not_measured"] if "not_measured" in b else
              f"Cortex-M4F budget (emulated, instructions not cycles): "
              f"{b['invoke_instructions']:,} per invoke, "
              f"{b['mhz_needed_at_1_instruction_per_cycle']:.1f} MHz at 1 instruction/cycle")
    if "streaming" in report:
        s = report["streaming"]
        print(f"streaming model: blocks of {s['block_frames']} frames, arena "
              f"{s['arena_bytes']:,} B + state {s['state_bytes']:,} B, int8 streaming AUPRC "
              f"{s['int8_streaming_auprc']:.3f} (stream_model.tflite, stream_settings.h)")
    print(f"firmware assets written to {report['out']}")
    return 0


def _operating_point(args: argparse.Namespace):
    """The detector's operating point from ``--target-precision``/``--false-alarms-per-hour``."""
    from keras_iusp.detect import OperatingPoint

    if args.target_precision is not None and not 0 < args.target_precision <= 1:
        raise ConfigError(f"--target-precision {args.target_precision}: expected a precision in "
                          "(0, 1]")
    if args.false_alarms_per_hour is not None and not args.false_alarms_per_hour >= 0:
        raise ConfigError(f"--false-alarms-per-hour {args.false_alarms_per_hour}: expected a "
                          "number >= 0")
    if args.target_precision is None and args.false_alarms_per_hour is None:
        return None
    return OperatingPoint(args.target_precision, args.false_alarms_per_hour)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from keras_iusp.evaluate import evaluate_model, format_evaluation, model_feature_config
    from keras_iusp.utils.atomic import atomic_write_text

    if args.stream and Path(args.model).suffix != ".tflite":
        raise ConfigError(f"--stream: {args.model} is not a .tflite; give the model.tflite of an "
                          "export folder (its calibrated detector is read from beside it)")
    if not args.collar > 0:
        raise ConfigError(f"--collar {args.collar}: expected seconds > 0")
    config = model_feature_config(args.model)
    cache = _load_cache(args.data, None, args.train_rule, args.skip_bad, config=config)
    if args.stream:
        from keras_iusp.export.stream_eval import evaluate_stream, format_stream_evaluation

        result = evaluate_stream(args.model, cache, args.split, seed=args.seed,
                                 collar=args.collar)
        print(format_stream_evaluation(result))
    else:
        result = evaluate_model(args.model, cache, args.split)
        print(format_evaluation(result))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(result, indent=1))
        print(f"metrics written to {out}")
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    from keras_iusp.experiments.config import load_config
    from keras_iusp.experiments.grid import run_experiment

    config = load_config(args.config)
    out = args.out or f"runs/experiment_{config.name}"
    command = f"keras-iusp experiment --config {args.config} --out {out}" + (
        f" --jobs {args.jobs}" if args.jobs != 1 else "")
    for flag, values in (("--students", args.students), ("--methods", args.methods)):
        if values:
            command += f" {flag} {' '.join(values)}"
    run_experiment(config, out, until=args.until, train=not args.report_only, command=command,
                   jobs=args.jobs, students=args.students, methods=args.methods,
                   restore=args.restore, archive=args.archive)
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from keras_iusp.experiments.config import load_config
    from keras_iusp.experiments.tune import run_tuning

    config = load_config(args.config)
    out = Path(args.out or f"runs/experiment_{config.name}")
    summary = run_tuning(config, out, trials=args.trials, student=args.student,
                         methods=args.methods, seed=args.seed, epochs=args.epochs,
                         seeds=args.seeds, storage=args.storage)
    for method, result in summary["methods"].items():
        print(f"{method:9s} best validation micro-AUPRC {result['best_value']:.4f}  "
              f"{result['best_params']}")
    print(f"winners as [method.*] tables: {out / 'tuning' / 'best.toml'}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from keras_iusp.features.logmel import FeatureConfig
    from keras_iusp.models import MODEL_SPECS, build_model, format_summary, model_summary

    config = FeatureConfig(clip_seconds=args.clip_seconds)
    shape = (config.num_frames(), config.n_mels)
    names = [args.name] if args.name else list(MODEL_SPECS)
    width = max(map(len, names))
    for name in names:
        summary = model_summary(build_model(name, shape))
        if args.name:
            print(format_summary(summary))
        else:
            spec = MODEL_SPECS[name]
            print(f"{name:{width}s} {spec.role:8s} {summary['params']:>10,d} params "
                  f"{summary['macs'] / 1e6:9.1f} M MACs   {spec.description}")
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from keras_iusp.experiments.quickstart import run_quickstart

    run_quickstart(Path(args.out), clips=args.clips, seed=args.seed, overwrite=args.overwrite,
                   teacher_epochs=args.teacher_epochs, student_epochs=args.student_epochs)
    return 0


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=check.existing_path,
                   help="SONYC-UST folder, its annotations.csv, or a plain label CSV")
    p.add_argument("--train-rule", choices=["majority", "any"], default="majority",
                   help="how crowd labels of train clips are combined (default majority)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip missing/unreadable audio with a report instead of stopping")


def _fit_args(p: argparse.ArgumentParser, epochs: int, lr: float) -> None:
    p.add_argument("--epochs", type=check.positive_int, default=epochs,
                   help=f"epochs (default {epochs})")
    p.add_argument("--batch-size", type=check.positive_int, default=16,
                   help="batch size (default 16)")
    p.add_argument("--lr", type=check.positive_float, default=lr,
                   help=f"Adam learning rate (default {lr:g})")
    p.add_argument("--seed", type=check.seed, default=0, help="random seed (default 0)")
    p.add_argument("--lr-schedule", choices=["cosine", "constant"], default="cosine",
                   help="cosine: linear warm-up then cosine decay to 0 (default)")
    p.add_argument("--warmup-epochs", type=check.non_negative_int, default=1,
                   help="warm-up epochs (default 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="train again even if OUT holds a finished run (an unfinished run in OUT "
                        "is resumed from its last epoch without this flag)")


class OneLineErrorParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors end in one ``keras-iusp: error:`` line, exit 2.

    argparse's own error output is the usage block followed by ``PROG: error: ...``; the
    project's promise for bad input is one line naming the flag and what was expected (the
    usage stays one ``--help`` away, named in the line). Sub-parsers inherit the class.
    """

    def error(self, message: str):  # type: ignore[override]
        text = " ".join(message.split())
        self.exit(2, f"keras-iusp: error: {text} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from keras_iusp import __version__

    parser = OneLineErrorParser(
        prog="keras-iusp",
        description="IUSP knowledge distillation for tiny sound-event detectors.",
    )
    parser.add_argument("--version", action="version", version=f"keras-iusp {__version__}")
    parser.add_argument("--verbose", action="store_true",
                        help="also show TensorFlow's own start-up and info log lines")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="write a synthetic SONYC-UST-format urban-sound dataset")
    p.add_argument("out", help="output folder (must not exist or be empty)")
    p.add_argument("--clips", type=check.positive_int, default=300,
                   help="number of clips (default 300)")
    p.add_argument("--seed", type=check.seed, default=0, help="random seed (default 0)")
    p.add_argument("--clip-seconds", type=check.positive_float, default=10.0,
                   help="clip length (default 10)")
    p.add_argument("--sample-rate", type=check.IntRange(8000), default=22050,
                   help="audio rate (default 22050)")
    p.add_argument("--label-noise", type=check.probability, default=0.1,
                   help="probability that a crowd annotator misses a present class; false "
                        "alarms at a quarter of it (default 0.1)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument("--preset", choices=("default", "realistic"), default="default",
                   help="regime: 'realistic' = lower SNRs, faint distractors and structured "
                        "crowd errors (ignores --label-noise); default 'default'")
    p.add_argument("--unlabeled", type=check.non_negative_int, default=0, metavar="N",
                   help="also write N clips without labels from the same generator "
                        "(OUT/unlabeled/, listed in OUT/unlabeled.csv) for distill "
                        "--unlabeled (default 0)")
    p.add_argument("--plot", action="store_true",
                   help="also write class_examples.png: one log-mel spectrogram per class")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("build-real-audio",
                       help="mix the real-recordings benchmark from pinned Debian sound packages")
    p.add_argument("out", help="output folder (must not exist or be empty)")
    p.add_argument("--sources", default=None,
                   help="folder of unpacked packages (<package>/<path>); default "
                        "OUT/../real_audio_sources")
    p.add_argument("--fetch", action="store_true",
                   help="first download and unpack the manifest's pinned packages into "
                        "--sources (apt-get download + dpkg-deb -x; nothing is installed)")
    p.add_argument("--manifest", default=None,
                   help="source manifest JSON (default benchmarks/real_audio/manifest.json)")
    p.add_argument("--seed", type=check.seed, default=0, help="random seed (default 0)")
    p.add_argument("--train", type=check.positive_int, default=480,
                   help="train clips (default 480)")
    p.add_argument("--validate", type=check.positive_int, default=150,
                   help="validate clips (default 150)")
    p.add_argument("--test", type=check.positive_int, default=600, help="test clips (default 600)")
    p.add_argument("--unlabeled", type=check.non_negative_int, default=1920,
                   help="unlabelled pool clips, from train sources only (default 1920)")
    p.add_argument("--clip-seconds", type=check.positive_float, default=10.0,
                   help="clip length (default 10)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.set_defaults(func=_cmd_build_real_audio)

    p = sub.add_parser("features", help="compute (or reuse) the log-mel feature cache of a dataset")
    _data_args(p)
    p.add_argument("--clip-seconds", type=check.positive_float, default=10.0,
                   help="clip length (default 10)")
    p.add_argument("--cache-dir", default=None,
                   help="cache folder (default DATA/.keras-iusp-cache)")
    p.add_argument("--strict", action="store_true",
                   help="a clip whose length differs from --clip-seconds is an error")
    p.set_defaults(func=_cmd_features)

    p = sub.add_parser("train-teacher", help="train a teacher on a dataset's labels")
    _data_args(p)
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--model", default=DEFAULT_TEACHER,
                   help=f"zoo model (default {DEFAULT_TEACHER})")
    p.add_argument("--clip-seconds", type=check.positive_float, default=10.0,
                   help="clip length (default 10)")
    p.add_argument("--no-augment", dest="augment", action="store_false",
                   help="train without mixup and SpecAugment masks (default: with them)")
    _fit_args(p, epochs=30, lr=1e-3)
    p.set_defaults(func=_cmd_train_teacher)

    p = sub.add_parser("distill", help="distil a student from a trained teacher")
    _data_args(p)
    p.add_argument("--teacher", required=True, type=check.existing_dir,
                   help="teacher run directory (train-teacher --out)")
    p.add_argument("--student", default="cnn_lstm_xs", help="zoo student (default cnn_lstm_xs)")
    p.add_argument("--method", choices=METHODS, default="iusp")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--teacher-layer", default=None, help="teacher layer for SP/IUSP")
    p.add_argument("--student-layer", default=None, help="student layer for SP/IUSP")
    # Defaults (None here) come from keras_iusp.train.recipe.DistillConfig, the measured recipe;
    # importing it would load TensorFlow before the quiet start-up filter is in place.
    p.add_argument("--temperature", type=check.positive_float, default=None,
                   help="KD temperature (default 1)")
    p.add_argument("--student-loss-weight", type=check.probability, default=None,
                   help="weight of the label loss, rest goes to distillation (default 0.5)")
    p.add_argument("--kd-weight", type=check.non_negative_float, default=None, help="default 1")
    p.add_argument("--sp-weight", type=check.non_negative_float, default=None, help="default 100")
    p.add_argument("--iusp-weight", type=check.non_negative_float, default=None, help="default 1")
    p.add_argument("--iusp-form", choices=["cosine", "paper", "centered"], default=None,
                   help="IUSP self-similarity form (default cosine)")
    p.add_argument("--distill-epochs", type=check.non_negative_int, default=None,
                   help="distil only in the first N epochs, then labels alone (default 0: "
                        "every epoch)")
    p.add_argument("--augment", action="store_true",
                   help="consistent teaching: teacher and student see the same mixup + "
                        "SpecAugment batches (no teacher-output cache then)")
    p.add_argument("--no-teacher-cache", action="store_true",
                   help="run the teacher in every step instead of caching its outputs once")
    p.add_argument("--fold-teachers", default=None, metavar="DIR", type=check.existing_dir,
                   help="cross-fitting: each training clip is taught by the fold teacher in DIR "
                        "that did not train on it (train-fold-teachers --out); --teacher "
                        "teaches the validation clips")
    p.add_argument("--unlabeled", default=None, metavar="PATH",
                   help="unlabelled pool: a folder of audio files or a CSV with an "
                        "audio_filename column and no labels; its clips enter the KD/SP/IUSP "
                        "terms only (docs/unlabeled.md)")
    p.add_argument("--unlabeled-ratio", type=check.positive_float, default=None, metavar="R",
                   help="unlabelled clips per labelled clip in each batch (default 1)")
    _fit_args(p, epochs=30, lr=1e-2)
    p.set_defaults(func=_cmd_distill)

    p = sub.add_parser("train-fold-teachers",
                       help="cross-fitting: K teachers with a teacher's recipe, each trained "
                            "without one fold of the training clips")
    _data_args(p)
    p.add_argument("--teacher", required=True, type=check.existing_dir,
                   help="the full teacher's run directory; its recorded recipe is repeated")
    p.add_argument("--folds", type=check.IntRange(2), default=5,
                   help="number of folds K (default 5)")
    p.add_argument("--fold-seed", type=check.seed, default=0,
                   help="seed of the fold assignment (default 0)")
    p.add_argument("--out", required=True, help="folder for fold0 .. fold{K-1}")
    p.set_defaults(func=_cmd_train_fold_teachers)

    p = sub.add_parser("compress", help="prune + quantisation-aware training of a student run")
    p.add_argument("run", type=check.existing_dir, help="student run directory (from distill)")
    _data_args(p)
    p.add_argument("--out", required=True, help="compressed run directory to write")
    p.add_argument("--teacher", default=None, type=check.existing_dir,
                   help="teacher run (default: the one the student was distilled from)")
    p.add_argument("--sparsity", type=check.sparsity, default=0.5,
                   help="target sparsity (default 0.5)")
    p.add_argument("--prune-epochs", type=check.non_negative_int, default=6,
                   help="pruning epochs (default 6)")
    p.add_argument("--qat-epochs", type=check.non_negative_int, default=3,
                   help="QAT epochs (default 3)")
    p.add_argument("--batch-size", type=check.positive_int, default=16,
                   help="batch size (default 16)")
    p.add_argument("--lr", type=check.positive_float, default=5e-4,
                   help="learning rate (default 5e-4)")
    p.add_argument("--seed", type=check.seed, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true",
                   help="run again even if OUT holds a finished compression")
    p.set_defaults(func=_cmd_compress)

    p = sub.add_parser("export", help="int8 TFLite + TFLM verification + C/C++ firmware assets")
    p.add_argument("model", type=check.existing_dir, help="student or compressed run directory")
    _data_args(p)
    p.add_argument("--out", required=True, help="asset folder, e.g. firmware_assets/NAME")
    p.add_argument("--window-seconds", type=check.positive_float, default=1.0,
                   help="input window the device runs (default 1.0 s)")
    p.add_argument("--golden", type=check.positive_int, default=4,
                   help="golden test vectors (default 4)")
    p.add_argument("--targets", default=None, type=check.existing_dir,
                   help="folder of target TOML profiles "
                   "(default deploy/targets)")
    p.add_argument("--seed", type=check.seed, default=0, help="random seed (default 0)")
    p.add_argument("--streaming", action="store_true", help="also write the streaming model "
                   "(stream_* files: blocks of new frames, carried state; docs/streaming.md)")
    p.add_argument("--block-frames", type=check.positive_int, default=None, metavar="N",
                   help="frames per streaming invoke, a multiple of the model's time stride "
                   "(default 8; needs --streaming)")
    point = p.add_mutually_exclusive_group()
    point.add_argument("--target-precision", type=check.probability, default=None,
                       help="calibrate the event detector for this event precision per class "
                            "on the validation stream (default 0.5)")
    point.add_argument("--false-alarms-per-hour", type=check.positive_float, default=None,
                       help="instead: at most this many false alarms per hour per class")
    p.add_argument("--no-target-budget", action="store_true",
                   help="skip counting the instructions on an emulated Cortex-M4F (done by "
                        "default when arm-none-eabi-g++ and qemu-system-arm are installed)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("evaluate", help="metrics of a run directory or .tflite on a split")
    p.add_argument("model", type=check.existing_path,
                   help="run directory, or a .tflite file inside an export folder")
    _data_args(p)
    p.add_argument("--split", choices=["validate", "test"], default="validate")
    p.add_argument("--out", default=None, help="also write the metrics as JSON here")
    p.add_argument("--stream", action="store_true",
                   help="the split's clips as one continuous stream (seeded random order): "
                        "windowed int8 model + the export's calibrated detector, event F1, "
                        "false alarms per hour, latency (MODEL: an exported .tflite)")
    p.add_argument("--seed", type=check.seed, default=0,
                   help="--stream: clip order seed (default 0)")
    p.add_argument("--collar", type=check.positive_float, default=1.0,
                   help="--stream: onset collar of the event matching, seconds (default 1.0)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("experiment", help="baseline/KD/SP/IUSP x student sizes x seeds grid")
    p.add_argument("--config", required=True, type=check.existing_file,
                   help="TOML config (see configs/)")
    p.add_argument("--out", default=None, help="output folder (default runs/experiment_NAME)")
    p.add_argument("--until", choices=["teacher"], default=None,
                   help="stop after preparing the data and training the teacher")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing; write the report of the runs finished so far")
    p.add_argument("--jobs", type=check.positive_int, default=1,
                   help="train this many runs at once, in separate processes (default 1)")
    p.add_argument("--students", nargs="+", default=None, metavar="STUDENT",
                   help="train only these grid students now (the report covers every finished "
                   "run)")
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help="train only these grid methods or variants now")
    p.add_argument("--restore", default=None, metavar="DIR",
                   help="first copy the finished-run records archived in DIR into the grid "
                   "(refused when they were trained against another teacher; a DIR that does "
                   "not exist yet restores nothing, so --restore and --archive can name one "
                   "folder from the first call)")
    p.add_argument("--archive", default=None, metavar="DIR",
                   help="at the end, copy every finished run's record (metrics, settings, "
                   "history, scores, IUSP distance; no weights) into DIR, e.g. to commit it")
    p.set_defaults(func=_cmd_experiment)

    p = sub.add_parser("tune", help="same-budget Optuna search per method on the validation split")
    p.add_argument("--config", required=True, type=check.existing_file,
                   help="TOML experiment config (see configs/)")
    p.add_argument("--out", default=None, help="experiment folder (default runs/experiment_NAME); "
                   "the teacher there is reused")
    p.add_argument("--trials", type=check.positive_int, default=4,
                   help="trials per method (default 4)")
    p.add_argument("--student", default="cnn_lstm_xs", help="student to tune on")
    p.add_argument("--methods", nargs="+", default=None, choices=METHODS,
                   help="methods to tune (default: the config's)")
    p.add_argument("--epochs", type=check.positive_int, default=None,
                   help="epochs per trial (default: grid's)")
    p.add_argument("--seed", type=check.seed, default=0,
                   help="seed of the sampler, and of every trial unless --seeds is given")
    p.add_argument("--seeds", type=check.seed, nargs="+", default=None,
                   help="student seeds every trial trains (paired); a trial scores their mean "
                        "validation micro-AUPRC (default: --seed alone)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna database shared by several tune processes, e.g. "
                        "postgresql://USER@HOST/DB (default: one SQLite file per method in OUT)")
    p.set_defaults(func=_cmd_tune)

    p = sub.add_parser("models", help="list the model zoo, or one model's layers and sizes")
    p.add_argument("name", nargs="?", help="a model name for its layer table")
    p.add_argument("--clip-seconds", type=check.positive_float, default=10.0,
                   help="clip length (default 10)")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("quickstart", help="run the whole chain on built-in synthetic data")
    p.add_argument("--out", default="runs/quickstart",
                   help="output folder (default runs/quickstart)")
    p.add_argument("--clips", type=check.positive_int, default=240,
                   help="synthetic clips (default 240)")
    p.add_argument("--seed", type=check.seed, default=0, help="random seed (default 0)")
    p.add_argument("--teacher-epochs", type=check.positive_int, default=12,
                   help="teacher epochs (default 12)")
    p.add_argument("--student-epochs", type=check.positive_int, default=30,
                   help="student epochs (default 30)")
    p.add_argument("--overwrite", action="store_true", help="start again from scratch")
    p.set_defaults(func=_cmd_quickstart)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``keras-iusp`` console script; returns the exit code (2: bad input).

    The arguments are checked before any work starts: a bad flag ends in one
    ``keras-iusp: error:`` line and 2, as do the user errors a command raises later.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (2), or --help / --version (0)
        return exc.code if isinstance(exc.code, int) else 2
    if args.verbose:
        return _run(args)
    with filtered_stderr(is_startup_noise):
        # synth (without --plot) and build-real-audio never import TensorFlow; every other
        # command does, so it is loaded here, before the command prints anything
        if args.command not in ("synth", "build-real-audio") or getattr(args, "plot", False):
            quiet_tensorflow()
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KerasIuspError as exc:
        print(f"keras-iusp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("keras-iusp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
