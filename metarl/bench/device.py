"""``metarl bench device``: the tensor env path on an accelerator against the same path on the CPU.

The check the tensor-env issue asks for when a GPU machine is lent. It is one short command,
under 10 minutes on one GPU:

* **RL² (GRU 256)** on ``bandit?k=5&n=100``: trial steps per second, collection plus PPO update,
  with 4,096 trials per iteration on the device (1,024 tasks x 4 trials). The CPU row runs
  ``--cpu-trials`` trials, 256 by default: the CPU's steps/s hardly grows with the batch beyond
  that, and 4,096 trials of BPTT would take minutes per iteration on the CPU;
* **MAML-TRPO** on ``point-nav`` (20 tasks x 20 episodes): seconds per meta-iteration, sampling
  and update, on the device and on the CPU.

Both rows use ``sampling.backend: tensor``, so the env, the policy and the update stay on one
device. The ratio is device over CPU; the issue's target is >= 10x. Writes ``bench_device.md``
and ``.json``. Without CUDA, ``--device cpu`` runs the same code on the CPU twice: a smoke
test of the script, not a measurement.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from collections.abc import Sequence
from typing import Any

import torch

from metarl.bench import add_out_argument, finish
from metarl.bench.maml import TimedIteration
from metarl.bench.rl2 import bench_one
from metarl.errors import UsageError

BANDIT = "bandit?k=5&n=100"


def machine(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpus": os.cpu_count(), "torch": torch.__version__, "device": device}
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def maml_seconds(device: str, tasks: int, episodes: int, repeats: int) -> dict[str, float]:
    timed = TimedIteration("point-nav", tasks, episodes, None, "structured", 0, backend="tensor", device=device)
    try:
        timed.run()  # warm-up: allocator, kernels
        runs = [timed.run() for _ in range(repeats)]
    finally:
        timed.close()
    return {k: statistics.median(r[k] for r in runs) for k in ("seconds", "sampling_s", "update_s", "env_steps")}


def to_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    rl2, maml = result["rl2"], result["maml"]
    lines = ["# The tensor env path on a device against the CPU (`metarl bench device`)", "",
             f"Command: `metarl bench device {' '.join(result['argv'])}`", "",
             f"Machine: {m['platform']}, {m['cpus']} CPUs, torch {m['torch']}, device {m['device']}"
             f"{' (' + m['gpu'] + ')' if 'gpu' in m else ''}.", "",
             "| workload | where | size | collect / sampling s | update s | rate | device / CPU |",
             "|---|---|---|---:|---:|---:|---:|"]
    for key in ("cpu", "device"):
        r = rl2[key]
        ratio = f"**{rl2['device']['trial_steps_per_s'] / rl2['cpu']['trial_steps_per_s']:.1f}x**" if key == "device" else ""
        lines.append(f"| RL² GRU, {BANDIT} | {r['device']} | {r['tasks'] * r['trials_per_task']} trials | "
                     f"{r['collect_s']:.2f} | {r['update_s']:.2f} | {r['trial_steps_per_s']:,.0f} trial steps/s | {ratio} |")
    for key in ("cpu", "device"):
        r = maml[key]
        ratio = f"**{maml['cpu']['seconds'] / maml['device']['seconds']:.1f}x**" if key == "device" else ""
        lines.append(f"| MAML-TRPO, point-nav | {r['where']} | {result['maml_size']} | {r['sampling_s']:.2f} | "
                     f"{r['update_s']:.2f} | {r['seconds']:.2f} s / iteration | {ratio} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="metarl bench device", allow_abbrev=False,
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="the accelerator (default cuda)")
    parser.add_argument("--trials", type=int, default=4096, help="RL² trials per iteration on the device")
    parser.add_argument("--cpu-trials", type=int, default=256, help="RL² trials per iteration on the CPU")
    parser.add_argument("--repeats", type=int, default=3)
    add_out_argument(parser, "bench_device")
    args = parser.parse_args(argv)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: no CUDA device on this machine; allowed: a machine with a GPU, "
                         "or --device cpu for a smoke run of this script")
    repeats, trials, cpu_trials = (1, 64, 16) if args.quick else (args.repeats, args.trials, args.cpu_trials)
    maml_size = (4, 4) if args.quick else (20, 20)
    torch.set_num_threads(os.cpu_count() or 1)
    rl2 = {}
    for key, device, n in (("cpu", "cpu", cpu_trials), ("device", args.device, trials)):
        rl2[key] = bench_one(BANDIT, "gru", max(1, n // 4), 4, 100, repeats, backend="tensor", device=device)
        print(f"RL² {device}: {rl2[key]['trial_steps_per_s']:,.0f} trial steps/s", flush=True)
    maml = {}
    for key, device in (("cpu", "cpu"), ("device", args.device)):
        maml[key] = {**maml_seconds(device, *maml_size, repeats), "where": device}
        print(f"MAML-TRPO {device}: {maml[key]['seconds']:.2f} s / iteration", flush=True)
    result = {"argv": list(argv or []), "machine": machine(args.device), "rl2": rl2, "maml": maml,
              "maml_size": f"{maml_size[0]} tasks x {maml_size[1]} episodes"}
    return finish(args, "bench_device", to_markdown(result), result)
