"""``metarl bench sampling``: env steps per second against the stock envs and the physics limit.

Per family, measured side by side in one run on the same tasks (random actions, so the policy's
cost is left out and what is compared is env stepping):

* **stock loop**: the stock envs (gymnasium ``HalfCheetah-v5`` / ``Ant-v5``, Meta-World 3.1.1's
  own code) stepped in a Python loop, one process; reset when an episode ends;
* **physics**: the same envs' models and data doing nothing but ``mj_step`` x ``frame_skip``,
  on one core and on all of them (threads: ``mj_step`` releases the GIL). No implementation of a
  step goes below it;
* **rollout**: (MuJoCo families) ``mujoco.rollout`` with a thread pool, called once per policy
  step as a sampler would, which is what :mod:`metarl.envs.mujoco_batch` chose not to use;
* **metarl serial, 1 core** / **all cores**: ``make_sampler(backend="serial")`` with
  ``env_threads=1`` / every core (the batched MuJoCo families step their physics on threads);
* **metarl process xN**: one worker process per core;
* **metarl ray xN** (unless ``--no-ray``);
* **metarl tensor, cpu**: (families with a tensor env: point-nav, bandits, tabular MDPs)
  ``make_sampler(backend="tensor")``, the device rollout loop of :mod:`metarl.sampling.tensor`,
  here on the CPU; its ratio to ``metarl serial, 1 core`` is the device path's gain on env stepping.

Every row shows its rate against the stock loop and against the physics rate on the same number
of cores. Measurements are interleaved (each repeat runs every contender once, order rotated)
and the median is reported, so load from other jobs hits all contenders alike. Meta-World
episodes run ``--mw-horizon`` steps (default: the full 500; each reset runs 50 frames of
physics to place the hand, so short episodes would weigh resets more than training does).

Writes ``bench_sampling.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from metarl.bench import add_out_argument, choose, finish
from metarl.envs import Task, TaskFamily, make_family
from metarl.sampling import make_sampler
from metarl.sampling.actor import ActorOutput
from metarl.sampling.backend import available_cores

#: family -> [(tasks, episodes per task), ...]: the locomotion families at 40 envs (the issue's probe)
#: and at 200 (a MAML/ProMP meta-batch is 40 tasks x 20 episodes, so hundreds of envs is the
#: usual case); the ML10 row samples its tasks class-balanced, one per class.
FULL = {"halfcheetah-vel": [(10, 4), (20, 10)], "ant-goal": [(10, 4), (20, 10)], "ml1-reach": [(10, 2)],
        "ml1-pick-place": [(10, 2)], "ml10": [(10, 4)], "point-nav": [(10, 8), (20, 20)],
        "bandit?k=5&n=100": [(32, 400)], "tabular-mdp?n=10": [(32, 40)]}
QUICK = {"halfcheetah-vel": [(2, 2)], "ant-goal": [(2, 2)], "ml1-reach": [(2, 1)], "ml1-pick-place": [(2, 1)],
         "ml10": [(2, 1)], "point-nav": [(2, 2)], "bandit?k=5&n=100": [(4, 20)], "tabular-mdp?n=10": [(4, 4)]}
LOCOMOTION = ("halfcheetah-vel", "ant-goal")
METAWORLD = ("ml1-reach", "ml1-pick-place", "ml10")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc (0 where /proc is unavailable)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, Any]:
    import mujoco

    try:
        import ray

        ray_version = ray.__version__
    except ImportError:  # pragma: no cover
        ray_version = None
    return {
        "platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "mujoco": mujoco.__version__,
        "ray": ray_version, "load_average_start": os.getloadavg(),
    }


class RandomActor:
    """Uniform random actions from the sampler's generator: env stepping, not a policy.

    In [-1, 1] per dimension for a ``Box`` (``act_dim``), uniform arms for ``Discrete(n_actions)``.
    """

    def __init__(self, act_dim: int, n_actions: int | None = None) -> None:
        self.act_dim, self.n_actions = act_dim, n_actions

    def initial_state(self, n_tasks: int, n_slots: int) -> None:
        return None

    def act(self, obs: torch.Tensor, state: None, episode_start: torch.Tensor, generator: torch.Generator):
        T, S = obs.shape[:2]
        if self.n_actions is not None:
            arms = torch.randint(self.n_actions, (T, S), generator=generator, device=generator.device)
            return ActorOutput(arms, torch.zeros(T, S, device=generator.device), None, {})
        actions = torch.rand(T, S, self.act_dim, generator=generator, device=generator.device) * 2 - 1
        return ActorOutput(actions, torch.zeros(T, S, device=generator.device), None, {})

    def observe(self, state: None, actions, rewards, dones) -> None:
        return None


def stock_family(spec: str) -> TaskFamily:
    """The family on its stock code paths: gymnasium envs one by one, Meta-World's own step."""
    if spec in LOCOMOTION:
        return make_family(f"{spec}?batched=false")
    if spec in METAWORLD:
        return make_family(f"{spec}?fast=false")
    return make_family(spec)


def stock_envs(spec: str, tasks: Sequence[Task], eps: int) -> list[Any]:
    """One stock env per slot: the bare gymnasium env for locomotion (no metarl wrapper at all)."""
    family = stock_family(spec)
    if spec in LOCOMOTION:
        return [family._base_env() for _ in tasks for _ in range(eps)]
    return [family.make_env(task) for task in tasks for _ in range(eps)]


def stock_loop(envs: list[Any], horizon: int, seed: int) -> Callable[[], int]:
    """Every env steps ``horizon`` times with random actions; an env whose episode ends is reset."""
    rng = np.random.default_rng(seed)
    space = envs[0].action_space
    shape = space.shape

    def run() -> int:
        for i, env in enumerate(envs):
            env.reset(seed=seed + i)
        if isinstance(space, gym.spaces.Discrete):
            actions = rng.integers(int(space.n), size=(horizon, len(envs)))
        else:
            actions = rng.uniform(-1, 1, size=(horizon, len(envs), *shape)).astype(np.float32)
        for t in range(horizon):
            for i, env in enumerate(envs):
                _, _, term, trunc, _ = env.step(actions[t, i])
                if term or trunc:
                    env.reset()
        return horizon * len(envs)

    return run


def physics_loop(envs: list[Any], horizon: int, threads: int, seed: int) -> Callable[[], int]:
    """``mj_step`` x ``frame_skip`` on the envs' own models and data, split over ``threads`` threads.

    With random controls written before each step, as the envs get them: the physics of a
    cheetah moving costs less than that of one lying still (fewer contacts), so controls left at
    zero would understate the limit.
    """
    import mujoco

    parts = [(e.unwrapped.model, e.unwrapped.data, int(e.unwrapped.frame_skip)) for e in envs]
    nu = parts[0][0].nu
    controls = np.random.default_rng(seed).uniform(-1, 1, size=(horizon, len(envs), nu))
    chunks = [list(range(k, len(parts), threads)) for k in range(threads)]

    def work(chunk: list[int]) -> None:
        step = mujoco.mj_step
        for t in range(horizon):
            for i in chunk:
                model, data, skip = parts[i]
                data.ctrl[:] = controls[t, i]
                step(model, data, skip)

    def run() -> int:
        for e in envs:
            e.reset(seed=0)
        if threads == 1:
            work(list(range(len(parts))))
        else:
            pool = [threading.Thread(target=work, args=(c,)) for c in chunks]
            for th in pool:
                th.start()
            for th in pool:
                th.join()
        return horizon * len(envs)

    return run


def rollout_loop(envs: list[Any], horizon: int, threads: int) -> Callable[[], int]:
    """``mujoco.rollout`` called once per policy step for the whole batch, carrying the states."""
    import mujoco
    from mujoco import rollout

    base = [e.unwrapped for e in envs]
    model, skip = base[0].model, int(base[0].frame_skip)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    runner = rollout.Rollout(nthread=threads)
    datas = [mujoco.MjData(model) for _ in range(max(1, threads))]
    state = np.empty((len(base), mujoco.mj_stateSize(model, spec)))
    rng = np.random.default_rng(0)

    def run() -> int:
        for i, b in enumerate(base):
            b.reset(seed=0)
            mujoco.mj_getState(model, b.data, state[i], spec)
        current = state.copy()
        out = np.empty((len(base), skip, state.shape[1]))
        models = [model] * len(base)
        for _ in range(horizon):
            ctrl = np.repeat(rng.uniform(-1, 1, (len(base), 1, model.nu)), skip, axis=1)
            runner.rollout(models, datas, current, ctrl, nstep=skip, state=out)
            current = out[:, -1].copy()
        return horizon * len(envs)

    run.close = runner.close  # type: ignore[attr-defined]
    return run


def sampler_run(spec: str, tasks: Sequence[Task], eps: int, horizon: int, seed: int, **kwargs: Any):
    sampler = make_sampler(spec, max_episode_steps=horizon, **kwargs)
    space = sampler.family.action_space
    actor = RandomActor(int(np.prod(space.shape)), int(space.n) if isinstance(space, gym.spaces.Discrete) else None)

    def run() -> int:
        return sampler.sample(tasks, actor, eps, seed=seed).n_steps

    return sampler, run


def bench_family(spec: str, n_tasks: int, eps: int, repeats: int, seed: int, mw_horizon: int,
                 ray: bool) -> dict[str, Any]:
    cores = available_cores()
    family = make_family(spec)
    horizon = min(family.horizon, mw_horizon) if spec in METAWORLD else family.horizon
    tasks = family.sample(n_tasks, np.random.default_rng(seed))
    envs = stock_envs(spec, tasks, eps)
    mujoco_family = spec in LOCOMOTION or spec in METAWORLD
    runs: dict[str, tuple[Callable[[], int], int]] = {"stock loop": (stock_loop(envs, horizon, seed), 1)}
    if mujoco_family:
        runs["physics, 1 core"] = (physics_loop(envs, horizon, 1, seed), 1)
        runs[f"physics, {cores} cores"] = (physics_loop(envs, horizon, cores, seed), cores)
    if spec in LOCOMOTION:
        runs[f"mujoco.rollout, {cores} threads"] = (rollout_loop(envs, horizon, cores), cores)
    contenders: list[tuple[str, int, dict[str, Any]]] = [("metarl serial, 1 core", 1, {"env_threads": 1})]
    if spec in LOCOMOTION:
        contenders.append((f"metarl serial, {cores} cores", cores, {"env_threads": cores}))
    contenders.append((f"metarl process x{cores}", cores, {"backend": "process", "workers": cores}))
    if ray:
        contenders.append((f"metarl ray x{cores}", cores, {"backend": "ray", "workers": cores}))
    if family.has_tensor_env:
        contenders.append(("metarl tensor, cpu", 1, {"backend": "tensor"}))
    samplers = []
    try:
        for label, used, kwargs in contenders:
            sampler, run = sampler_run(spec, tasks, eps, horizon, seed, **kwargs)
            samplers.append(sampler)
            run()  # warm-up: builds the envs (in the workers)
            runs[label] = (run, used)
        rates: dict[str, list[float]] = {k: [] for k in runs}
        names = list(runs)
        for r in range(repeats):
            for name in names[r % len(names):] + names[: r % len(names)]:
                t0 = time.perf_counter()
                steps = runs[name][0]()
                rates[name].append(steps / (time.perf_counter() - t0))
    finally:
        for s in samplers:
            s.close()
        for run, _ in runs.values():
            getattr(run, "close", lambda: None)()
        for e in envs:
            e.close()
    median = {k: statistics.median(v) for k, v in rates.items()}
    stock = median["stock loop"]
    physics = {1: median.get("physics, 1 core"), cores: median.get(f"physics, {cores} cores")}
    rows = []
    for name, rate in median.items():
        used = runs[name][1]
        limit = physics.get(used) if not name.startswith("physics") else None
        rows.append({"contender": name, "cores": used, "steps_per_s": rate, "x_stock": rate / stock,
                     "x_physics": rate / limit if limit else None, "us_per_step_per_core": 1e6 * used / rate,
                     "all_runs": rates[name]})
    return {"family": spec, "tasks": n_tasks, "episodes_per_task": eps, "envs": len(envs), "horizon": horizon,
            "cores": cores, "rows": rows}


def targets(families: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, checked against this run."""
    out = []
    for r in families:
        rate = {row["contender"]: row for row in r["rows"]}
        cores = r["cores"]
        if r["family"] in LOCOMOTION:
            best = max((rate[k] for k in (f"metarl serial, {cores} cores", f"metarl process x{cores}")),
                       key=lambda row: row["steps_per_s"])
            xs, xp = best["x_stock"], best["x_physics"]
            out.append(f"{r['family']}, {r['envs']} envs: {best['contender']} = {xs:.2f}x the stock loop (target >= 2: "
                       f"{'met' if xs >= 2 else 'NOT met'}), {xp:.2f}x physics on {cores} cores "
                       f"(target >= 0.7: {'met' if xp >= 0.7 else 'NOT met'})")
        if "metarl tensor, cpu" in rate:
            gain = rate["metarl tensor, cpu"]["steps_per_s"] / rate["metarl serial, 1 core"]["steps_per_s"]
            out.append(f"{r['family']}, {r['envs']} envs: the tensor env path = {gain:.1f}x metarl serial on one core "
                       f"(env stepping with random actions; the policy's cost is left out)")
        if r["family"] == "ml10":
            serial, proc = rate["metarl serial, 1 core"], rate[f"metarl process x{cores}"]
            out.append(f"ML10 train mix: metarl serial = {serial['x_stock']:.2f}x stock on one core (target >= 1.8: "
                       f"{'met' if serial['x_stock'] >= 1.8 else 'NOT met'}); process x{cores} = "
                       f"{proc['x_stock']:.2f}x stock serial (target >= 3: {'met' if proc['x_stock'] >= 3 else 'NOT met'})")
    return out


def to_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "# Sampler throughput against the stock envs and the physics limit (`metarl bench sampling`)", "",
        f"Command: `metarl bench sampling {' '.join(result['argv'])}`", "",
        f"Machine: {m['platform']}, {m['cpus']} CPUs, Python {m['python']}, torch {m['torch']}, "
        f"MuJoCo {m['mujoco']}, Ray {m['ray']}. Load average at start "
        f"{tuple(round(x, 2) for x in m['load_average_start'])}, at end "
        f"{tuple(round(x, 2) for x in result['load_average_end'])}.", "",
        f"Random actions; median of {result['repeats']} interleaved repeats. *x physics* divides by the "
        "physics-only rate of the same envs on the same number of cores; *µs/step/core* is the cost of "
        "one env step in core-time. Meta-World episodes: "
        f"{result['mw_horizon']} steps.", "",
        "| family | envs | contender | env steps/s | x stock loop | x physics (same cores) | µs/step/core |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in result["families"]:
        for row in r["rows"]:
            xp = f"{row['x_physics']:.2f}" if row["x_physics"] else ""
            lines.append(f"| {r['family']} | {r['envs']} | {row['contender']} | {row['steps_per_s']:,.0f} | "
                         f"{row['x_stock']:.2f} | {xp} | {row['us_per_step_per_core']:.1f} |")
    lines += ["", "## Targets", ""] + [f"- {t}" for t in targets(result["families"])] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="metarl bench sampling", allow_abbrev=False,
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--families", nargs="+", default=None, help="subset of: " + ", ".join(FULL))
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray backend")
    parser.add_argument("--mw-horizon", type=int, default=500,
                        help="Meta-World steps per episode (default: the benchmark's 500; a reset costs 50 steps of physics)")
    add_out_argument(parser, "bench_sampling")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    repeats = 1 if args.quick else args.repeats
    families = choose(parser, args.families, list(FULL), "families")
    torch.set_num_threads(1)
    info = machine()
    ray = None
    try:
        if not args.no_ray:  # one local cluster for all families (Ray start is the slow part)
            import ray as ray_module

            from metarl.sampling.ray_backend import init_local_ray

            if not ray_module.is_initialized():
                ray = ray_module  # ours to shut down
                init_local_ray(ray, num_cpus=available_cores(), include_dashboard=False, log_to_driver=False)
        results = []
        for spec in families:
            for n_tasks, eps in sizes[spec]:
                print(f"{spec}: {n_tasks} tasks x {eps} episodes", flush=True)
                r = bench_family(spec, n_tasks, eps, repeats, args.seed, args.mw_horizon, not args.no_ray)
                for row in r["rows"]:
                    xp = f"{row['x_physics']:5.2f}x physics" if row["x_physics"] else ""
                    print(f"  {row['contender']:>26}: {row['steps_per_s']:9,.0f} steps/s  "
                          f"{row['x_stock']:5.2f}x stock  {xp}", flush=True)
                results.append(r)
    finally:
        # Also on Ctrl-C (KeyboardInterrupt goes on to the CLI, exit 130): the cluster must go with the
        # samplers, or its processes outlive the bench.
        if ray is not None:
            ray.shutdown()
    result = {"machine": info, "load_average_end": os.getloadavg(), "repeats": repeats, "quick": args.quick,
              "mw_horizon": args.mw_horizon, "argv": list(argv if argv is not None else []), "families": results}
    return finish(args, "bench_sampling", to_markdown(result), result)


if __name__ == "__main__":
    raise SystemExit(main())
