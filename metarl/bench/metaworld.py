"""``metarl bench metaworld``: a Meta-World step, stock against metarl's fast path, against physics.

Meta-World v3 spends most of a step in Python around MuJoCo. This bench measures, in one run and
on the same envs, the time per env step of:

* **stock**: metarl's env with ``fast=False``, which runs Meta-World 3.1.1's own code;
* **fast**: the same env with ``fast=True`` (:mod:`metarl.envs.metaworld_fast`, bitwise equal);
* **physics**: ``mj_step`` x ``frame_skip`` on the same model and data (controls left as the
  reset put them), the floor no implementation of a step can go below on one core.

Each row is one ML1 class (the ten ML10 train classes and pick-place). A step is timed over full
500-step episodes of seeded random actions (resets are not timed), and the best of ``--repeats``
passes is reported, since other jobs on a shared machine only add time. The last row is the mix
of the ten ML10 train classes (their mean step time). Writes ``bench_metaworld.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from metarl.bench import add_out_argument, choose, finish

ML10_TRAIN = ("reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-close-v3", "button-press-topdown-v3",
              "peg-insert-side-v3", "window-open-v3", "sweep-v3", "basketball-v3")
EPISODE = 500


def _timed_episode(env: Any, actions: np.ndarray, physics: bool) -> float:
    """Seconds for one episode of ``actions`` (after an untimed reset)."""
    import mujoco

    env.reset(seed=0)
    if physics:
        base = env.unwrapped
        model, data, skip = base.model, base.data, base.frame_skip
        start = time.perf_counter()
        for _ in range(len(actions)):
            mujoco.mj_step(model, data, nstep=skip)
        return time.perf_counter() - start
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    return time.perf_counter() - start


def bench_class(name: str, steps: int, repeats: int) -> dict[str, float]:
    """Microseconds per env step of ``name`` on the stock, fast and physics-only paths."""
    from metarl.envs import make_family

    episodes = max(1, steps // EPISODE)
    actions = np.random.default_rng(0).uniform(-1, 1, (episodes, EPISODE, 4)).astype(np.float32)
    out: dict[str, float] = {}
    for label, fast, physics in (("stock", False, False), ("fast", True, False), ("physics", True, True)):
        family = make_family(f"ml1-{name.removesuffix('-v3')}?fast={str(fast).lower()}")
        env = family.make_env(family.sample(1, rng=0, split="train")[0])
        best = min(sum(_timed_episode(env, ep, physics) for ep in actions) for _ in range(repeats))
        env.close()
        out[label] = 1e6 * best / (episodes * EPISODE)
    return out


def render(rows: dict[str, dict[str, float]], info: dict[str, Any]) -> str:
    lines = ["# Meta-World v3: time per env step, stock vs metarl's fast path vs physics alone", "",
             f"Machine: {info['platform']}, {info['cpus']} CPUs, Python {info['python']}, MuJoCo {info['mujoco']}. "
             "One process, one core; best of the repeats over full 500-step episodes of random actions.", "",
             "| class | stock µs/step | fast µs/step | physics µs/step | fast / stock speed | fast / physics limit |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['stock']:.0f} | {r['fast']:.0f} | {r['physics']:.0f} | "
                     f"{r['stock'] / r['fast']:.2f}x | {r['physics'] / r['fast']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="metarl bench metaworld", allow_abbrev=False,
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="timed steps per class and path (whole episodes)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--classes", nargs="+", default=None, help="subset of: " + ", ".join(ML10_TRAIN))
    add_out_argument(parser, "bench_metaworld")
    args = parser.parse_args(argv)
    classes = choose(parser, args.classes, list(ML10_TRAIN), "classes")
    steps, repeats = (EPISODE, 1) if args.quick else (args.steps, args.repeats)
    from metarl.bench.sampling import machine

    info = machine()
    rows: dict[str, dict[str, float]] = {}
    for name in classes:
        rows[name] = bench_class(name, steps, repeats)
        r = rows[name]
        print(f"{name:26s} stock {r['stock']:6.0f} µs  fast {r['fast']:6.0f} µs  physics {r['physics']:5.0f} µs  "
              f"({r['stock'] / r['fast']:.2f}x)", flush=True)
    if len(rows) > 1:
        rows["mix of the classes above"] = {k: float(np.mean([r[k] for r in rows.values()]))
                                            for k in ("stock", "fast", "physics")}
    payload = {"machine": info, "rows": rows, "steps": steps, "repeats": repeats}
    return finish(args, "bench_metaworld", render(rows, info), payload)
