#!/usr/bin/env bash
# Train the baseline and IUSP students of the read-once test grid's recipes
# (configs/experiment_real_audio_test.toml, [method.baseline] / [method.iusp]) for probes that
# read the validation split only: `keras-iusp distill` saves each run's model.keras, which the
# grid's archived records do not keep. Two runs at a time (one per core), seed after seed.
#
#   bash benchmarks/real_audio/train_probe_students.sh STUDENT OUT_DIR SEED...
#   e.g. bash benchmarks/real_audio/train_probe_students.sh cnn_lstm_xs_meanmax runs/probe/meanmax 0 1 2 3 4
#
# writes OUT_DIR/{baseline,iusp}/seedN (skipped when finished: distill resumes or keeps a run)
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 STUDENT OUT_DIR SEED..." >&2
  exit 2
fi
student=$1 out=$2
shift 2
cli=${KERAS_IUSP:-keras-iusp}
for seed in "$@"; do
  common=(--data runs/data/real_audio --teacher runs/real_audio/teacher --student "$student"
          --epochs 30 --batch-size 16 --lr 0.009680337716973868 --lr-schedule cosine
          --warmup-epochs 1 --seed "$seed")
  mkdir -p "$out/baseline" "$out/iusp"
  "$cli" distill "${common[@]}" --method baseline --out "$out/baseline/seed$seed" \
    > "$out/baseline/seed$seed.log" 2>&1 &
  "$cli" distill "${common[@]}" --method iusp --temperature 1.0 \
    --student-loss-weight 0.524821628931401 --iusp-weight 10 --iusp-form cosine \
    --student-layer lstm --out "$out/iusp/seed$seed" > "$out/iusp/seed$seed.log" 2>&1 &
  wait
  echo "seed $seed done: $out/{baseline,iusp}/seed$seed"
done
