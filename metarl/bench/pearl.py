"""``metarl bench pearl``: PEARL gradient steps per second, task-batched against a loop over tasks.

Both contenders compute the same losses and gradients (``tests/test_agents_pearl.py`` shows the
batched step equals the per-task loop to 1e-5). The batched one sends ``[tasks * batch]`` rows
through each network once. The loop calls the same loss function once per task of the meta-batch
and averages the losses before one backward pass, which is how a per-task implementation would
write it. Sizes are the paper's HalfCheetah settings: meta-batch 16, 256 transitions and 100
context transitions per task, 3 x 300 networks, a 3 x 200 encoder. The contenders alternate
after a warm-up, and the median of the repeats is reported. Writes ``bench_pearl.md`` and ``.json``.
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

from metarl.bench import add_out_argument, finish

FAMILY = "halfcheetah-vel"


def _agent(quick: bool) -> Any:
    from metarl.agents.pearl import PEARL, PEARLConfig

    cfg = PEARLConfig(train_tasks=16, meta_batch_size=4 if quick else 16, batch_size=32 if quick else 256,
                      context_size=16 if quick else 100, hidden_sizes=(32,) if quick else (300, 300, 300),
                      encoder_hidden_sizes=(32,) if quick else (200, 200, 200))
    return PEARL(cfg, FAMILY, seed=0)


def _fake_batch(agent: Any, g: torch.Generator) -> tuple[torch.Tensor, Any, dict[str, torch.Tensor]]:
    """A fixed batch of the right shapes (the speed of a step does not depend on the values)."""
    from metarl.sampling.replay import Transitions

    cfg = agent.config
    T, B, N, D, A = cfg.meta_batch_size, cfg.batch_size, cfg.context_size, agent.obs_dim, agent.act_dim
    context = torch.randn(T, N, D + A + 1, generator=g)
    batch = Transitions(torch.randn(T, B, D, generator=g), torch.rand(T, B, A, generator=g) * 2 - 1,
                        torch.randn(T, B, generator=g), torch.randn(T, B, D, generator=g),
                        torch.zeros(T, B, dtype=torch.bool))
    noise = {"z": torch.randn(T, cfg.latent_dim, generator=g), "next_action": torch.randn(T, B, A, generator=g),
             "action": torch.randn(T, B, A, generator=g)}
    return context, batch, noise


def _step(agent: Any, context: torch.Tensor, batch: Any, noise: dict[str, torch.Tensor], batched: bool) -> None:
    from metarl.sampling.replay import Transitions

    T = context.shape[0]
    if batched:
        out = agent.losses(context, batch, noise)
        critic, actor = out["encoder_loss"], out["actor_loss"]
    else:
        parts = [agent.losses(context[i:i + 1], Transitions(*(x[i:i + 1] for x in batch)),
                              {k: v[i:i + 1] for k, v in noise.items()}) for i in range(T)]
        critic = torch.stack([p["encoder_loss"] for p in parts]).mean()
        actor = torch.stack([p["actor_loss"] for p in parts]).mean()
    agent.critic_optimizer.zero_grad(set_to_none=True)
    agent.actor_optimizer.zero_grad(set_to_none=True)
    critic.backward(inputs=[*agent.encoder.parameters(), *agent.q1.parameters(), *agent.q2.parameters()])
    actor.backward(inputs=list(agent.actor.parameters()))
    agent.critic_optimizer.step()
    agent.actor_optimizer.step()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="metarl bench pearl", allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="gradient steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=3)
    add_out_argument(parser, "bench_pearl")
    args = parser.parse_args(argv)
    steps, repeats = (2, 1) if args.quick else (args.steps, args.repeats)
    agent = _agent(args.quick)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    context, batch, noise = _fake_batch(agent, g)
    rates: dict[str, list[float]] = {"task-batched": [], "loop over tasks": []}
    try:
        for name in rates:  # warm-up
            _step(agent, context, batch, noise, name == "task-batched")
        for _ in range(repeats):
            for name in rates:
                t0 = time.perf_counter()
                for _ in range(steps):
                    _step(agent, context, batch, noise, name == "task-batched")
                rates[name].append(steps / (time.perf_counter() - t0))
    finally:
        agent.close()
    median = {k: statistics.median(v) for k, v in rates.items()}
    cfg = agent.config
    info = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": 1, "load_average_start": os.getloadavg()}
    md = ["# PEARL gradient steps per second (`metarl bench pearl`)", "",
          f"Command: `metarl bench pearl {' '.join(argv or [])}`", "",
          f"Machine: {info['platform']}, {info['cpus']} CPUs, Python {info['python']}, torch {info['torch']} "
          f"(1 thread). Load average {tuple(round(x, 2) for x in info['load_average_start'])}.", "",
          f"{FAMILY} shapes; meta-batch {cfg.meta_batch_size} x {cfg.batch_size} transitions, context "
          f"{cfg.context_size}, networks {list(cfg.hidden_sizes)}, encoder {list(cfg.encoder_hidden_sizes)}; "
          f"median of {repeats} repeats of {steps} steps, contenders alternating.", "",
          "| contender | gradient steps/s |", "|---|---:|"]
    md += [f"| {name} | {rate:.2f} |" for name, rate in median.items()]
    md += ["", f"task-batched / loop = **{median['task-batched'] / median['loop over tasks']:.2f}x**"]
    return finish(args, "bench_pearl", "\n".join(md) + "\n", {"machine": info, "rates": rates, "median": median})
