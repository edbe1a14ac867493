"""``metarl bench rl2``: RL² trial steps per second, collection plus PPO update, GRU vs SNAIL.

What a user sizing a run wants to know is how many environment steps of whole
trials one iteration turns over per second, and where the time goes: stepping
the envs with one batched network step per time step (collection), or
backpropagating through whole trials (update). Each contender is timed over a
few iterations after a warm-up; the median is reported, since other jobs on a
shared machine add noise to single measurements.

Families: ``bandit?k=5&n=100`` (100 one-step episodes per trial: the network
dominates), ``tabular-mdp?n=10`` (10 episodes of 10 steps) and ``halfcheetah-dir`` with trials
of 2 episodes (400 MuJoCo steps per trial: the simulator and the long BPTT dominate). Families
with a tensor env run twice, on the gymnasium path (``serial``) and the device path
(``tensor``), side by side; the ratio is the device path's trial steps/s over the gymnasium
path's, for the same policy.

Writes ``experiments/results/bench_rl2.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch

from metarl.agents.base import SamplingConfig
from metarl.agents.rl2 import RL2, RL2Config
from metarl.bench import add_out_argument, out_folder, write_report
from metarl.envs import make_family
from metarl.runs import TrainerConfig

#: family -> (tasks, trials per task, episodes per trial)
FULL = {"bandit?k=5&n=100": (32, 4, 100), "tabular-mdp?n=10": (32, 4, 10), "halfcheetah-dir": (4, 2, 2)}
QUICK = {"bandit?k=5&n=100": (8, 2, 100), "tabular-mdp?n=10": (8, 2, 10), "halfcheetah-dir": (2, 1, 2)}
POLICIES = ("gru", "snail")


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "load_average_start": os.getloadavg()}


def bench_one(spec: str, policy: str, tasks: int, trials: int, episodes: int, repeats: int,
              backend: str = "serial", device: str = "cpu") -> dict[str, Any]:
    cfg = RL2Config(policy=policy, meta_batch_size=tasks, trials_per_task=trials, trial_episodes=episodes,
                    trainer=TrainerConfig(iterations=1), sampling=SamplingConfig(backend=backend))
    agent = RL2(cfg, spec, seed=0, device=device)
    collect_s, update_s, steps = [], [], 0
    try:
        for r in range(repeats + 1):  # the first round warms up envs and allocator
            batch = agent.family.sample(tasks, agent.rng, split="train")
            t0 = time.perf_counter()
            episodes_ = agent.collect(batch, trials, episodes, seed=r)
            _synchronize(device)
            t1 = time.perf_counter()
            agent.update(episodes_)
            _synchronize(device)
            t2 = time.perf_counter()
            steps = episodes_.n_steps
            if r:
                collect_s.append(t1 - t0)
                update_s.append(t2 - t1)
    finally:
        agent.close()
    c, u = statistics.median(collect_s), statistics.median(update_s)
    return {"family": spec, "policy": policy, "backend": backend, "device": device, "tasks": tasks, "trials_per_task": trials,
            "episodes_per_trial": episodes,
            "steps_per_iteration": steps, "collect_s": c, "update_s": u, "collect_steps_per_s": steps / c,
            "update_steps_per_s": steps / u, "trial_steps_per_s": steps / (c + u), "repeats": repeats}


def _synchronize(device: str) -> None:
    """Wait for queued device work, so a timer reads finished work (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def to_markdown(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    lines = ["# RL² trial throughput (collection + PPO update)", "",
             f"Machine: {info['platform']}, {info['cpus']} CPUs, Python {info['python']}, torch {info['torch']} "
             f"({info['torch_threads']} thread), load average at start {tuple(round(x, 2) for x in info['load_average_start'])}.",
             "Default sizes (GRU 256 hidden; SNAIL 32-wide blocks), 4 PPO epochs x 4 minibatches, full BPTT; "
             "median of the timed iterations.", "",
             "| family | policy | path | trials (tasks x per task x episodes) | steps/iter | collect s | update s "
             "| collect steps/s | update steps/s | **trial steps/s** | vs gymnasium path (trial / collect) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = (f"{r['ratio_trial']:.2f}x / {r['ratio_collect']:.1f}x" if "ratio_trial" in r else "")
        lines.append(f"| {r['family']} | {r['policy']} | {r['backend']} | {r['tasks']} x {r['trials_per_task']} x "
                     f"{r['episodes_per_trial']} | {r['steps_per_iteration']} | {r['collect_s']:.3f} | "
                     f"{r['update_s']:.2f} | {r['collect_steps_per_s']:.0f} | {r['update_steps_per_s']:.0f} | "
                     f"**{r['trial_steps_per_s']:.0f}** | {ratio} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="metarl bench rl2", allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, help="timed iterations per contender (default 3, quick 1)")
    parser.add_argument("--families", nargs="*", help="subset of the families to run")
    add_out_argument(parser, "bench_rl2")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the machine is shared; and one thread is what training runs use
    sizes = QUICK if args.quick else FULL
    repeats = args.repeats or (1 if args.quick else 3)
    info = machine()
    rows = []
    for spec, (tasks, trials, episodes) in sizes.items():
        if args.families and spec not in args.families:
            continue
        backends = ("serial", "tensor") if make_family(spec).has_tensor_env else ("serial",)
        for policy in POLICIES:
            for backend in backends:
                row = bench_one(spec, policy, tasks, trials, episodes, repeats, backend)
                if backend != "serial":
                    ref = rows[-1]
                    row["ratio_trial"] = row["trial_steps_per_s"] / ref["trial_steps_per_s"]
                    row["ratio_collect"] = row["collect_steps_per_s"] / ref["collect_steps_per_s"]
                print(f"{spec:18s} {policy:5s} {backend:6s} {row['trial_steps_per_s']:8.0f} trial steps/s "
                      f"(collect {row['collect_s']:.3f} s, update {row['update_s']:.2f} s)", flush=True)
                rows.append(row)
    write_report(out_folder(args), "bench_rl2", to_markdown(rows, info), {"machine": info, "rows": rows})
    return 0
