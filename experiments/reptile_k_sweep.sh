#!/usr/bin/env bash
# Reptile-PPO on point-nav: how the number of inner PPO updates k trades the zero-shot return of the
# initialization (round 0) against adaptation speed, each run against the same joint multi-task
# baseline fine-tuned with the same inner PPO (reptile-ppo-joint-point-nav-10it). init_std=0.1 as
# in that baseline (the default became 0.05 later, see reptile_summary.md, session 7).
# Nichol et al. (2018, section 5): with k = 1 Reptile's update is the joint-training gradient;
# each extra inner step adds the term that favours fast adaptation.
#   bash experiments/reptile_k_sweep.sh [K ...]      (default: 1 2 3 5)
set -euo pipefail
cd "$(dirname "$0")/.."
METARL=${METARL:-.venv/bin/metarl}
OUT=experiments/results/reptile-k-sweep
JOINT=experiments/results/reptile-ppo-joint-point-nav-10it
ks=("$@"); [ ${#ks[@]} -gt 0 ] || ks=(1 2 3 5)
for k in "${ks[@]}"; do
  run=$OUT/k$k
  if [ ! -f "$run/eval/curves.csv" ]; then
    "$METARL" train reptile-ppo --env point-nav --seed 0 --iterations 10 --set anneal_iterations=10 --set eval.every=5 \
        --set inner_updates="$k" --set init_std=0.1 --set trainer.keep_last=1 --run-dir "$run" --no-progress > /dev/null
    "$METARL" evaluate "$run" --tasks 10 --seeds 2 --rounds 3 --episodes 10 \
        --baselines random,pretrained-finetune --pretrained "$JOINT" --no-progress > "$run/eval.log"
  fi
  echo "== k=$k"; tail -n 12 "$run/eval.log"
done
