"""Peak resident memory and env-build time of ML45 meta-batches on the process backend.

Two consecutive meta-batches of 45 tasks x 10 episodes (an ML45 MAML iteration samples twice), each
with new goals, on ``make_sampler("ml45", "process", workers=2)``. Episodes are cut to
``--steps`` steps: memory is the envs' (a Meta-World env holds ~20 MB), not the episodes'.
Peak memory is the largest sum of the resident set sizes of this process and its children,
read from /proc every 0.1 s.

Runs against whatever ``metarl`` is importable, so the same script measures an older checkout
(``PYTHONPATH=/path/to/old/checkout python experiments/ml45_memory.py --label before``):

    python experiments/ml45_memory.py --label after --max-envs 225 --out experiments/results/ml45_memory
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path


def tree_rss_mb(pid: int) -> float:
    """Resident MB of ``pid`` and all its descendants."""
    total, stack = 0.0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += int(f.read().split("VmRSS:")[1].split()[0]) / 1024
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    stack += [int(c) for c in f.read().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True)
    parser.add_argument("--max-envs", type=int, default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    import sys

    sys.path.insert(0, os.getcwd())  # the checkout being measured (its tests.test_sampling_helpers)
    import torch

    from metarl.envs import make_family
    from metarl.sampling import make_sampler
    from tests.test_sampling_helpers import random_actor

    peak, stop = [0.0], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss_mb(os.getpid()))
            time.sleep(0.1)

    threading.Thread(target=watch, daemon=True).start()
    torch.set_num_threads(1)
    family = make_family("ml45")
    actor = random_actor(39, family.action_space, 45)
    kwargs = {"max_envs": args.max_envs} if args.max_envs else {}
    rows = []
    with make_sampler("ml45", "process", workers=2, max_episode_steps=args.steps, **kwargs) as sampler:
        for it in range(2):
            tasks = family.sample(45, it)
            t0 = time.perf_counter()
            episodes = sampler.sample(tasks, actor, 10, seed=it)
            rows.append({"iteration": it, "seconds": time.perf_counter() - t0, "steps": int(episodes.n_steps),
                         "peak_rss_mb_so_far": peak[0]})
            print(rows[-1], flush=True)
    stop.set()
    result = {"label": args.label, "max_envs": args.max_envs, "steps_per_episode": args.steps,
              "meta_batch": "45 tasks x 10 episodes", "backend": "process, 2 workers", "calls": rows,
              "peak_rss_mb": peak[0]}
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{args.label}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
