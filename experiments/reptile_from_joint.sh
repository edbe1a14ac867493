#!/usr/bin/env bash
# "Pretrain jointly, then meta-train": Reptile-PPO started from the joint multi-task policy
# (init_from), against the joint policy trained on for the same extra iterations, so both have
# seen the same number of env steps. Both are fine-tuned at meta-test by the same inner PPO.
#   bash experiments/reptile_from_joint.sh point-nav|halfcheetah-vel
set -euo pipefail
cd "$(dirname "$0")/.."
METARL=${METARL:-.venv/bin/metarl}
case "${1:?family: point-nav or halfcheetah-vel}" in
  point-nav)       joint=reptile-ppo-joint-point-nav-10it; extra=10 ;;
  halfcheetah-vel) joint=reptile-ppo-joint-halfcheetah-vel; extra=50 ;;
  *) echo "unknown family $1 (point-nav, halfcheetah-vel)" >&2; exit 2 ;;
esac
R=experiments/results
base=$("${METARL%/metarl}/python" -c "from metarl.runs import load_checkpoint; print(load_checkpoint('$R/$joint').iteration)")
total=$((base + extra))
more="$R/$joint-to$total"          # the joint baseline, trained on for the same extra iterations
meta="$R/reptile-ppo-$1-from-joint" # Reptile from the joint policy
if [ ! -f "$more/checkpoints/latest" ]; then
  mkdir -p "$more" && cp -r "$R/$joint/." "$more/" && rm -rf "$more/eval" "$more"/*.log
  "$METARL" train --resume "$more" --iterations "$total" --no-progress > "$more/train.log"
fi
if [ ! -f "$meta/checkpoints/latest" ]; then
  "$METARL" train reptile-ppo --env "$1" --seed 0 --iterations "$extra" --set anneal_iterations="$extra" --set init_from="$R/$joint" \
      --set trainer.keep_last=1 --run-dir "$meta" --no-progress > /dev/null
fi
"$METARL" evaluate "$meta" --tasks 10 --seeds 2 --rounds 3 --episodes 10 --baselines random,pretrained-finetune,ppo-scratch \
    --pretrained "$more" --no-progress | tee "$meta/eval.log"
