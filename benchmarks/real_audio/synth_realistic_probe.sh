#!/usr/bin/env bash
# Calibration probe of `synth --preset realistic`: teacher and smallest baseline, test micro-AUPRC.
# Usage: benchmarks/real_audio/synth_realistic_probe.sh WORKDIR CLIPS EPOCHS RESULT_JSON
# The short probe in docs/real_audio.md ran with CLIPS=240 EPOCHS=12; the full calibration is
# CLIPS=2000 EPOCHS=30 (CLI defaults otherwise).
set -euo pipefail
work=$1 clips=$2 epochs=$3 result=$4
kiu=${KERAS_IUSP:-keras-iusp}
start=$(date +%s)
$kiu synth "$work/data" --preset realistic --clips "$clips" --seed 0 --overwrite
$kiu train-teacher --data "$work/data" --out "$work/teacher" --epochs "$epochs" --overwrite
$kiu distill --data "$work/data" --teacher "$work/teacher" --student cnn_lstm_xs \
    --method baseline --out "$work/baseline" --epochs "$epochs" --overwrite
$kiu evaluate "$work/teacher" --data "$work/data" --split test --out "$work/teacher_test.json"
$kiu evaluate "$work/baseline" --data "$work/data" --split test --out "$work/baseline_test.json"
end=$(date +%s)
python3 - "$work" "$clips" "$epochs" "$result" "$((end - start))" <<'PY'
import json, platform, sys
work, clips, epochs, result, wall = sys.argv[1:]
load = lambda n: json.load(open(f"{work}/{n}_test.json"))
out = {
    "command": f"benchmarks/real_audio/synth_realistic_probe.sh WORK {clips} {epochs} {result}",
    "preset": "realistic", "clips": int(clips), "epochs": int(epochs), "split": "test",
    "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, shared 2-core host",
    "wall_s": int(wall),
    "teacher": load("teacher"), "baseline_cnn_lstm_xs": load("baseline"),
}
json.dump(out, open(result, "w"), indent=1, sort_keys=True)
print(json.dumps({k: out[k] for k in ("clips", "epochs", "wall_s")}))
PY
