"""Diagnostic branch: an RL² run's checkpoint with its action std reset, to resume beside the original.

``rl2_std_pressure.py`` found the ML10 run's log-std head deep in tanh's flat region (pre-tanh output
about 2, where tanh' is 0.07) on every class it does not solve, while the policy gradient of the
current batch no longer asks for a wider std. That reads as a trap: the std was pushed to its cap
earlier and the vanishing slope keeps it there. This script tests it: it copies the run (config and
progress up to the checkpoint) to DST and writes the checkpoint again with the std head reset to
std ``--std`` everywhere (weights 0, bias ``atanh(log std)``: the head's initial state) and Adam's
moments and step count of those two tensors cleared; everything else, RNG included, is untouched, so
``metarl train --resume DST`` draws the same training tasks as the original run and the iterations
pair up (``experiments/paired_branches.py SRC DST --after N``). What was changed is written to
``DST/branch.json``. This is a measurement, not a method.

    python experiments/diagnostics/rl2_reset_std_branch.py SRC_RUN DST_RUN [--checkpoint DIR] [--std 1.0]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import sys
from pathlib import Path

import torch

from metarl.api import load_agent
from metarl.runs.checkpoint import find_latest, load_checkpoint, save_checkpoint

HEAD = "policy.head.log_std_layer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--checkpoint", default=None, help="checkpoint dir of SRC (default: its latest)")
    parser.add_argument("--std", type=float, default=1.0, help="the std to reset to, in (1/e, e) (default 1.0)")
    args = parser.parse_args()
    src, dst = Path(args.src), Path(args.dst)
    if not 1 / math.e < args.std < math.e:
        sys.exit(f"--std {args.std}: a tanh head's std lies in (1/e, e)")
    if dst.exists():
        sys.exit(f"{dst} exists; name a new run dir")
    ckpt_dir = Path(args.checkpoint) if args.checkpoint else find_latest(src)
    if ckpt_dir is None:
        sys.exit(f"{src} has no checkpoint")
    ckpt = load_checkpoint(ckpt_dir)
    agent = load_agent(src, ckpt_dir)  # for the optimizer's parameter order
    names = [name for name, _ in agent.net.named_parameters()]
    agent.close()
    net, opt = ckpt.state["agent"]["net"], ckpt.state["agent"]["optimizer"]
    before = float(torch.tanh(net[f"{HEAD}.bias"]).exp().mean())
    net[f"{HEAD}.weight"].zero_()
    net[f"{HEAD}.bias"].fill_(math.atanh(math.log(args.std)))
    for suffix in ("weight", "bias"):
        state = opt["state"][names.index(f"{HEAD}.{suffix}")]
        state["exp_avg"].zero_()
        state["exp_avg_sq"].zero_()
        state["step"].zero_()  # with a large step count Adam would not correct the zeroed moments' bias
    dst.mkdir(parents=True)
    shutil.copy2(src / "config.yaml", dst / "config.yaml")
    with (src / "progress.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    col = rows[0].index("time/iteration")
    with (dst / "progress.csv").open("w", newline="") as f:
        csv.writer(f).writerows([rows[0]] + [r for r in rows[1:] if float(r[col]) <= ckpt.iteration])
    save_checkpoint(dst, ckpt.state, agent=ckpt.agent, iteration=ckpt.iteration)
    (dst / "branch.json").write_text(json.dumps({
        "source_run": str(src), "source_checkpoint": str(ckpt_dir), "source_sha256": ckpt.meta.get("sha256"),
        "iteration": ckpt.iteration, "changed": f"{HEAD} weight=0, bias=atanh(log {args.std}); its Adam moments and step zeroed",
        "std_bias_before": before, "std_after": args.std}, indent=2) + "\n")
    print(f"{dst}: iteration {ckpt.iteration}, std head reset to {args.std} (its bias alone gave {before:.2f})")


if __name__ == "__main__":
    main()
