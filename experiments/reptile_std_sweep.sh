#!/usr/bin/env bash
# Reptile-PPO on point-nav: the initial action std, each Reptile run against a joint multi-task
# baseline (joint-ppo) trained with the same std (everything else equal), both fine-tuned by the same inner PPO.
# Scored on two disjoint sets of 60 held-out tasks (evaluation seeds 0-5 and 6-11).
# The zero-step ceiling of both is measured by experiments/diagnostics/zero_step_ceiling.py.
#   bash experiments/reptile_std_sweep.sh [STD ...]      (default: 0.02 0.05)
set -euo pipefail
cd "$(dirname "$0")/.."
METARL=${METARL:-.venv/bin/metarl}
OUT=experiments/results/reptile-std-sweep
train() {  # agent run_dir std
  [ -f "$2/checkpoints/latest" ] || "$METARL" train "$1" --env point-nav --seed 0 --iterations 10 \
      --set anneal_iterations=10 --set eval.every=5 --set init_std="$3" --set trainer.keep_last=1 --run-dir "$2" --no-progress > /dev/null
}
stds=("$@"); [ ${#stds[@]} -gt 0 ] || stds=(0.02 0.05)
for s in "${stds[@]}"; do
  tag=std${s/./}
  train reptile-ppo "$OUT/reptile-$tag" "$s"
  train joint-ppo "$OUT/joint-$tag" "$s"
  for first in 0 6; do
    "$METARL" evaluate "$OUT/reptile-$tag" --tasks 10 --seeds 6 --seed $first --rounds 3 --episodes 10 \
        --baselines pretrained-finetune --pretrained "$OUT/joint-$tag" --out "$OUT/reptile-$tag/eval-seeds$first" \
        --no-progress > "$OUT/reptile-$tag/eval-seeds$first.log"
    echo "== std $s, evaluation seeds $first-$((first + 5))"; tail -n 8 "$OUT/reptile-$tag/eval-seeds$first.log"
  done
done
