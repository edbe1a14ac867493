"""``metarl bench maml``: MAML-TRPO end to end, seconds per meta-iteration split into sampling and update.

Two configurations (64x64 tanh policy, one inner step, the shipped MAML-TRPO defaults otherwise):

* ``halfcheetah-vel?horizon=100``, 40 tasks x 20 episodes (160,000 env steps per iteration:
  the pre- and the post-adaptation batch), measured **before** (the gymnasium envs stepped one by
  one on one core, ``batched=false``: the path every run took before the batched MuJoCo path)
  and **after** (the batched path on every core and the structured update, the defaults), side by side;
* ``point-nav``, 20 tasks x 20 episodes: the update's two ways on the gymnasium envs, and the
  structured update on the device path (``sampling.backend: tensor``, :mod:`metarl.sampling.tensor`),
  whose ratio to the gymnasium path with the same update is the tensor-env issue's target (>= 3x).

The update is timed both ways: the Fisher-vector products by double backward through the whole
second-order graph (``fisher: autograd``, the path before) and from the inner loop's structure
(``fisher: structured``, :mod:`metarl.core.maml_curvature`, the default); the middle
halfcheetah row (batched envs, old update) shows what each change contributes.

*sampling* is the time inside ``Sampler.sample`` (policy forwards included); *update* is the
rest of the iteration (the inner adaptation step, the meta-gradient, conjugate gradient and the
line search). Contenders alternate iteration by iteration after an untimed warm-up iteration,
and the median is reported. Writes ``bench_maml.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch

from metarl.bench import add_out_argument, choose, finish
from metarl.runs import ENV_STEPS_KEY
from metarl.sampling.backend import available_cores

#: label -> (spec, tasks, episodes per task, [(contender, spec suffix, env_threads, fisher, backend)])
CASES: dict[str, tuple[str, int, int, list[tuple[str, str, int | None, str, str]]]] = {
    "halfcheetah-vel": ("halfcheetah-vel?horizon=100", 40, 20,
                        [("before: gymnasium envs one by one on 1 core, double-backward FVP", "&batched=false", 1,
                          "autograd", "serial"),
                         ("batched MuJoCo on all cores, double-backward FVP", "", None, "autograd", "serial"),
                         ("after: batched MuJoCo on all cores, structured FVP", "", None, "structured", "serial")]),
    "point-nav": ("point-nav", 20, 20, [("before: gymnasium envs, double-backward FVP", "", None, "autograd", "serial"),
                                        ("gymnasium envs, structured FVP", "", None, "structured", "serial"),
                                        ("after: tensor env, structured FVP", "", None, "structured", "tensor")]),
}
QUICK = {"halfcheetah-vel": (2, 2), "point-nav": (2, 2)}


class TimedIteration:
    """One MAML-TRPO agent whose sampler calls are timed."""

    def __init__(self, spec: str, tasks: int, episodes: int, env_threads: int | None, fisher: str, seed: int,
                 backend: str = "serial", device: str = "cpu") -> None:
        from metarl.agents.base import SamplingConfig
        from metarl.agents.maml_trpo import MAMLTRPO, MAMLTRPOConfig

        config = MAMLTRPOConfig(meta_batch_size=tasks, episodes_per_task=episodes, hidden_sizes=(64, 64),
                                inner_steps=1, sampling=SamplingConfig(env_threads=env_threads, backend=backend),
                                fisher=fisher)  # type: ignore[arg-type]
        self.agent = MAMLTRPO(config, spec, seed=seed, device=device)
        self.device = torch.device(device)
        self.sampling_s = 0.0
        sample = self.agent.sampler.sample

        def timed(*args: Any, **kwargs: Any):
            t0 = time.perf_counter()
            try:
                return sample(*args, **kwargs)
            finally:
                self.sampling_s += time.perf_counter() - t0

        self.agent.sampler.sample = timed  # type: ignore[method-assign]
        self.it = 0

    def run(self) -> dict[str, float]:
        self.sampling_s = 0.0
        t0 = time.perf_counter()
        metrics = self.agent.train_iteration(self.it)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        total = time.perf_counter() - t0
        self.it += 1
        steps = float(metrics[ENV_STEPS_KEY])
        return {"seconds": total, "sampling_s": self.sampling_s, "update_s": total - self.sampling_s,
                "env_steps": steps}

    def close(self) -> None:
        self.agent.close()


def bench_case(label: str, repeats: int, quick: bool, seed: int) -> dict[str, Any]:
    spec, tasks, episodes, contenders = CASES[label]
    if quick:
        tasks, episodes = QUICK[label]
    agents = {name: TimedIteration(spec + (suffix if "?" in spec else suffix.replace("&", "?", 1)), tasks, episodes,
                                   threads, fisher, seed, backend)
              for name, suffix, threads, fisher, backend in contenders}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in agents}
    try:
        for name, agent in agents.items():
            agent.run()  # warm-up: builds the envs
            print(f"  {name}: warmed up", flush=True)
        for r in range(repeats):
            for name, agent in agents.items():
                runs[name].append(agent.run())
                last = runs[name][-1]
                print(f"  {name}: {last['seconds']:.2f} s (sampling {last['sampling_s']:.2f} s, "
                      f"update {last['update_s']:.2f} s)", flush=True)
    finally:
        for agent in agents.values():
            agent.close()
    rows = []
    for name, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("seconds", "sampling_s", "update_s")}
        steps = rs[0]["env_steps"]
        rows.append({"contender": name, **med, "env_steps": steps, "steps_per_s": steps / med["seconds"],
                     "sampling_steps_per_s": steps / med["sampling_s"], "all_runs": rs})
    return {"case": label, "spec": spec, "tasks": tasks, "episodes_per_task": episodes, "rows": rows}


def to_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = ["# MAML-TRPO end to end (`metarl bench maml`)", "",
             f"Command: `metarl bench maml {' '.join(result['argv'])}`", "",
             f"Machine: {m['platform']}, {m['cpus']} CPUs, Python {m['python']}, torch {m['torch']} "
             f"({m['torch_threads']} threads), MuJoCo {m['mujoco']}. Load average at start "
             f"{tuple(round(x, 2) for x in m['load_average_start'])}, at end "
             f"{tuple(round(x, 2) for x in result['load_average_end'])}.", "",
             f"64x64 tanh policy, one inner step; median of {result['repeats']} iterations per contender, "
             "contenders alternating.", "",
             "| config | contender | s / iteration | sampling s | update s | env steps / iteration | "
             "env steps/s (iteration) | env steps/s (sampling) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for case in result["cases"]:
        cfg = f"{case['spec']}, {case['tasks']} tasks x {case['episodes_per_task']} episodes"
        for r in case["rows"]:
            lines.append(f"| {cfg} | {r['contender']} | {r['seconds']:.2f} | {r['sampling_s']:.2f} | "
                         f"{r['update_s']:.2f} | {r['env_steps']:,.0f} | {r['steps_per_s']:,.0f} | "
                         f"{r['sampling_steps_per_s']:,.0f} |")
    for case in result["cases"]:
        by = {r["contender"]: r for r in case["rows"]}
        gym_row, tensor_row = by.get("gymnasium envs, structured FVP"), by.get("after: tensor env, structured FVP")
        if gym_row and tensor_row:
            speedup = gym_row["seconds"] / tensor_row["seconds"]
            lines += ["", f"{case['case']}: the tensor env path is {speedup:.2f}x faster per iteration than the gymnasium "
                      f"path with the same update (target >= 3x: {'met' if speedup >= 3 else 'NOT met'}); sampling "
                      f"{gym_row['sampling_s'] / tensor_row['sampling_s']:.1f}x faster."]
        if len(case["rows"]) >= 2:
            before, after = case["rows"][0], case["rows"][-1]
            ratio = after["seconds"] / before["seconds"]
            lines += ["", f"{case['case']}: after / before = {ratio:.2f} of the time per iteration (target <= 0.5: "
                      f"{'met' if ratio <= 0.5 else 'NOT met'}); sampling {before['sampling_s'] / after['sampling_s']:.2f}x "
                      f"faster, update {before['update_s'] / after['update_s']:.2f}x."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="metarl bench maml", allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=None, help="subset of: " + ", ".join(CASES))
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: all cores, as a training run uses them)")
    parser.add_argument("--seed", type=int, default=0)
    add_out_argument(parser, "bench_maml")
    args = parser.parse_args(argv)
    cases = choose(parser, args.cases, list(CASES), "cases")
    torch.set_num_threads(args.threads or available_cores())
    from metarl.bench.sampling import machine

    info = machine()
    repeats = 1 if args.quick else args.repeats
    results = []
    for label in cases:
        print(f"{label}:", flush=True)
        results.append(bench_case(label, repeats, args.quick, args.seed))
    result = {"machine": info, "load_average_end": os.getloadavg(), "repeats": repeats, "quick": args.quick,
              "argv": list(argv if argv is not None else []), "cases": results}
    return finish(args, "bench_maml", to_markdown(result), result)


if __name__ == "__main__":
    raise SystemExit(main())
