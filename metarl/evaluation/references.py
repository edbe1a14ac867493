"""Classical references for the RL² task families, computed by metarl on the very tasks the agents are scored on.

The RL² paper judges its bandit and MDP agents against hand-designed algorithms
(random, UCB1, Thompson sampling, ...). Quoting the paper's numbers would compare
against other task draws and other reward noise; here each reference is an
:class:`~metarl.sampling.actor.Actor` run through the same sampler, with the same
tasks, the same trial layout and the same seed as :meth:`RL2.meta_test`. The env
reset seeds then coincide, so bandit pulls see the same reward noise (common
random numbers): differences between methods are mostly the methods.

* ``random``: uniform actions (any Discrete or bounded Box family), the floor;
* ``ucb1`` (Auer et al. 2002): pull every arm once, then the arm maximising
  ``mean + sqrt(2 ln t / pulls)``; bandits only;
* ``thompson``: Thompson sampling with a Beta(1, 1) prior per arm; bandits only;
* ``gittins``: the arm of largest finite-horizon Gittins index (:mod:`metarl.evaluation.gittins`)
  for its Beta(1, 1) posterior and the pulls left in the trial, the RL² paper's strongest
  bandit baseline; bandits only;
* ``greedy`` (tabular MDPs): certainty equivalence, the paper's "Greedy": plan the rest of the
  episode in the posterior-mean MDP, re-planned after every step;
* ``psrl`` (tabular MDPs; Osband et al. 2013): posterior sampling, one MDP drawn from the
  posterior at each episode start and its plan followed for the episode.

The two MDP references use the family's own prior (Dirichlet(1) transitions, N(1, 1) mean
rewards with unit noise), so they are the Bayesian learners a meta-learner has to beat; they
also check that these tasks are as hard as the paper's (its Greedy scored 134.8, PSRL 138.1).

``python -m metarl.evaluation.references "bandit?k=5&n=10" --tasks 100`` prints the
mean total reward per trial of each reference (and writes curve rows with ``--out``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from metarl.envs import Task, TaskFamily, make_family
from metarl.envs.bandit import Bandit
from metarl.envs.tabular import TabularMDP
from metarl.evaluation.actors import UniformActor
from metarl.evaluation.curves import CurveRow, curve_meta, read_curves, write_curves
from metarl.evaluation.gittins import gittins_indices
from metarl.evaluation.protocol import rows_from_rounds
from metarl.evaluation.report import paired, trial_totals
from metarl.runs import read_run_config
from metarl.sampling import make_sampler
from metarl.sampling.actor import ActorOutput
from metarl.sampling.episodes import trial_returns, trial_rounds
from metarl.sampling.errors import DEFAULT_STEP_TIMEOUT

__all__ = ["REFERENCES", "GittinsActor", "ThompsonActor", "UCB1Actor", "UniformActor", "available", "compare_run",
           "reference_rows",
           "score", "total_per_trial"]


class _ArmCounts:
    """Per-slot pull and reward counts over one trial: the sufficient statistics of both bandit references."""

    def __init__(self, n_arms: int) -> None:
        self.n_arms = n_arms

    def initial_state(self, n_tasks: int, n_slots: int) -> dict[str, Any]:
        n = n_tasks * n_slots
        return {"pulls": np.zeros((n, self.n_arms)), "wins": np.zeros((n, self.n_arms)), "rng": None}

    def act(self, obs: Tensor, state: dict[str, Any], episode_start: Tensor, generator: torch.Generator) -> ActorOutput:
        t, s = obs.shape[:2]
        arms = self.choose(state, generator)
        return ActorOutput(torch.from_numpy(arms).view(t, s), torch.zeros(t, s), state, {})

    def observe(self, state: dict[str, Any], actions: Tensor, rewards: Tensor, dones: Tensor) -> dict[str, Any]:
        rows = np.arange(state["pulls"].shape[0])
        arms = actions.reshape(-1).numpy()
        state["pulls"][rows, arms] += 1.0
        state["wins"][rows, arms] += rewards.reshape(-1).numpy()
        return state

    def choose(self, state: dict[str, Any], generator: torch.Generator) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class UCB1Actor(_ArmCounts):
    """UCB1: optimism in the face of uncertainty; deterministic given the rewards seen."""

    def choose(self, state: dict[str, Any], generator: torch.Generator) -> np.ndarray:
        pulls, wins = state["pulls"], state["wins"]
        t = pulls.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            ucb = wins / pulls + np.sqrt(2.0 * np.log(np.maximum(t, 1.0)) / pulls)
        ucb[pulls == 0] = np.inf  # untried arms first, lowest index first
        return ucb.argmax(axis=1).astype(np.int64)


class ThompsonActor(_ArmCounts):
    """Thompson sampling with Beta(1, 1) priors: pull the arm whose posterior draw is largest.

    numpy draws the Betas (torch's Beta takes no generator); its generator is
    seeded once per trial batch from the sampler's, so a seed still fixes everything.
    """

    def choose(self, state: dict[str, Any], generator: torch.Generator) -> np.ndarray:
        if state["rng"] is None:
            state["rng"] = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))
        pulls, wins = state["pulls"], state["wins"]
        return state["rng"].beta(1.0 + wins, 1.0 + pulls - wins).argmax(axis=1).astype(np.int64)


class GittinsActor(_ArmCounts):
    """The largest Gittins index (:func:`~metarl.evaluation.gittins.gittins_indices`): undiscounted, the
    pulls left in the trial as the horizon, Beta(1, 1) priors. Deterministic given the rewards seen; ties go
    to the lowest arm. Indices are cached by (successes, failures, pulls left), since trials revisit them.
    """

    def __init__(self, n_arms: int, trial_pulls: int) -> None:
        super().__init__(n_arms)
        self.trial_pulls = trial_pulls
        self.cache: dict[tuple[int, int, int], float] = {}

    def choose(self, state: dict[str, Any], generator: torch.Generator) -> np.ndarray:
        pulls, wins = state["pulls"], state["wins"]
        left = self.trial_pulls - pulls.sum(axis=1, keepdims=True).astype(np.int64)
        keys = np.stack(np.broadcast_arrays(wins.astype(np.int64), (pulls - wins).astype(np.int64), left), -1)
        flat = keys.reshape(-1, 3)
        missing = {tuple(k) for k in np.unique(flat, axis=0).tolist()} - self.cache.keys()
        for m in {k[2] for k in missing}:
            todo = np.array([k for k in missing if k[2] == m])
            values = gittins_indices(1.0 + todo[:, 0], 1.0 + todo[:, 1], max(int(m), 1))
            self.cache.update(zip(map(tuple, todo.tolist()), values.tolist(), strict=True))
        index = np.array([self.cache[k] for k in map(tuple, flat.tolist())]).reshape(pulls.shape)
        return index.argmax(axis=1).astype(np.int64)


class _MDPPosterior:
    """Per-slot conjugate posterior over a tabular MDP, updated after every step of the trial.

    Prior as the family draws tasks: P(.|s,a) ~ Dirichlet(1), mean reward ~ N(1, 1) with
    unit-variance noise, so the reward posterior is N((1 + sum r) / (1 + n), 1 / (1 + n)).
    The state is read back from the one-hot observation; the step within the episode is
    counted from ``episode_start`` (the planner needs the steps left).
    """

    def __init__(self, family: TabularMDP) -> None:
        self.states, self.actions, self.horizon = family.states, family.actions, family.horizon

    def initial_state(self, n_tasks: int, n_slots: int) -> dict[str, Any]:
        n, s, a = n_tasks * n_slots, self.states, self.actions
        return {"visits": np.zeros((n, s, a)), "reward_sum": np.zeros((n, s, a)), "moves": np.zeros((n, s, a, s)),
                "state": np.zeros(n, np.int64), "action": np.full(n, -1), "step": np.zeros(n, np.int64),
                "plan": None, "rng": None}

    def act(self, obs: Tensor, state: dict[str, Any], episode_start: Tensor, generator: torch.Generator) -> ActorOutput:
        t, s = obs.shape[:2]
        if state["rng"] is None:
            state["rng"] = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))
        start = episode_start.reshape(-1).numpy().astype(bool)
        now = obs.reshape(t * s, -1).numpy().argmax(axis=1)
        # The successor of the previous step is only seen now; an episode's last move is never seen.
        moved = ~start & (state["action"] >= 0)
        state["moves"][moved, state["state"][moved], state["action"][moved], now[moved]] += 1.0
        state["step"][start] = 0
        state["state"] = now
        q = self.q_values(state, start)  # [N, A] for the current state and steps left
        return ActorOutput(torch.from_numpy(q.argmax(axis=1).astype(np.int64)).view(t, s), torch.zeros(t, s), state, {})

    def observe(self, state: dict[str, Any], actions: Tensor, rewards: Tensor, dones: Tensor) -> dict[str, Any]:
        rows, st, a = np.arange(state["state"].size), state["state"], actions.reshape(-1).numpy()
        state["visits"][rows, st, a] += 1.0
        state["reward_sum"][rows, st, a] += rewards.reshape(-1).numpy()
        state["action"], state["step"] = a.astype(np.int64), state["step"] + 1
        return state

    def posterior_mean(self, state: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        n = state["visits"]
        return (1.0 + state["reward_sum"]) / (1.0 + n), (1.0 + state["moves"]) / (self.states + n)[..., None]

    def plan(self, rewards: np.ndarray, transitions: np.ndarray, steps: int) -> np.ndarray:
        """Finite-horizon value iteration: Q-values ``[N, steps, S, A]``, index ``k`` with ``steps - k`` to go."""
        q = np.zeros((rewards.shape[0], steps, self.states, self.actions))
        v = np.zeros((rewards.shape[0], self.states))
        for k in range(steps - 1, -1, -1):
            q[:, k] = rewards + np.einsum("nsap,np->nsa", transitions, v)
            v = q[:, k].max(axis=2)
        return q

    def q_values(self, state: dict[str, Any], start: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class GreedyMDPActor(_MDPPosterior):
    """Certainty equivalence: act optimally for the rest of the episode in the posterior-mean MDP."""

    def q_values(self, state: dict[str, Any], start: np.ndarray) -> np.ndarray:
        rows = np.arange(state["state"].size)
        q = self.plan(*self.posterior_mean(state), self.horizon)
        return q[rows, state["step"], state["state"]]


class PSRLActor(_MDPPosterior):
    """Posterior sampling: one MDP drawn at each episode start, its optimal plan followed to the episode's end."""

    def q_values(self, state: dict[str, Any], start: np.ndarray) -> np.ndarray:
        rows, rng = np.arange(state["state"].size), state["rng"]
        if state["plan"] is None:
            state["plan"] = np.zeros((rows.size, self.horizon, self.states, self.actions))
        if start.any():
            mean, _ = self.posterior_mean(state)
            n = state["visits"][start]
            rewards = mean[start] + rng.standard_normal(n.shape) / np.sqrt(1.0 + n)
            transitions = rng.gamma(1.0 + state["moves"][start])
            transitions /= transitions.sum(axis=-1, keepdims=True)
            state["plan"][start] = self.plan(rewards, transitions, self.horizon)
        return state["plan"][rows, state["step"], state["state"]]


#: A reference's actor from the family and the episodes per trial it is scored on.
ActorFactory = Callable[[TaskFamily, int], Any]
REFERENCES: dict[str, ActorFactory] = {
    "random": lambda family, trial: UniformActor(family.action_space),
    "ucb1": lambda family, trial: UCB1Actor(family.k),
    "thompson": lambda family, trial: ThompsonActor(family.k),
    "gittins": lambda family, trial: GittinsActor(family.k, trial),
    "greedy": lambda family, trial: GreedyMDPActor(family),
    "psrl": lambda family, trial: PSRLActor(family),
}


def available(family: TaskFamily) -> list[str]:
    """References that make sense for ``family``: bandit algorithms on bandits, MDP learners on tabular MDPs."""
    if isinstance(family, Bandit):
        return ["random", "ucb1", "thompson", "gittins"]
    if isinstance(family, TabularMDP):
        return ["random", "greedy", "psrl"]
    return ["random"]


def reference_rows(family: TaskFamily, tasks: Sequence[Task], method: str, *, rounds: int, episodes_per_round: int,
                   seed: int, run: str | None = None, backend: str = "auto") -> tuple[float, list[CurveRow]]:
    """Mean total reward per trial of ``method`` and its curve rows (round k = episode k of the trial).

    Same layout and seed as ``RL2.meta_test(tasks, rounds, episodes_per_round, seed)``:
    ``episodes_per_round`` parallel trials of ``rounds + 1`` episodes per task. ``backend``: the
    sampler backend, which should be the agent's (``auto``, the agents' default, is the tensor path
    on bandits and tabular MDPs): the random numbers of the envs then coincide with the agent's.
    """
    if method not in available(family):
        raise ValueError(f"reference {method!r} does not apply to {family.name}; allowed: {', '.join(available(family))}")
    e = rounds + 1
    actor = REFERENCES[method](family, e)
    with make_sampler(family, backend, timeout=DEFAULT_STEP_TIMEOUT) as sampler:
        episodes = sampler.sample(tasks, actor, episodes_per_round * e, episodes_per_trial=e, seed=seed)
    rows = rows_from_rounds(method, run or f"{method}-seed{seed}", family.full_name, tasks[0].split, seed,
                            trial_rounds(episodes), parallel_trials=True)
    return float(trial_returns(episodes).mean()), rows


def score(spec: str, *, n_tasks: int = 100, trials: int = 4, seeds: Sequence[int] = (0,), split: str = "test",
          trial_episodes: int | None = None, methods: Sequence[str] | None = None, backend: str = "auto"
          ) -> tuple[dict[str, float], list[CurveRow]]:
    """Mean total trial reward of each reference on the tasks ``metarl evaluate`` draws (same seeds)."""
    family = make_family(spec)
    e = trial_episodes or family.trial_episodes
    totals: dict[str, list[float]] = {}
    rows: list[CurveRow] = []
    for seed in seeds:
        tasks = family.sample(n_tasks, rng=seed, split=split)
        for method in methods or available(family):
            total, r = reference_rows(family, tasks, method, rounds=e - 1, episodes_per_round=trials, seed=seed,
                                      backend=backend)
            totals.setdefault(method, []).append(total)
            rows += r
    return {m: float(np.mean(v)) for m, v in totals.items()}, rows


def total_per_trial(rows: Sequence[CurveRow], method: str) -> float:
    """Mean total reward per trial from curve rows: the mean over tasks of :func:`trial_totals`."""
    totals = trial_totals(rows, method)
    if not totals:
        raise ValueError(f"no rows of method {method!r}")
    return float(np.mean(list(totals.values())))


def paired_difference(rows_a: Sequence[CurveRow], a: str, rows_b: Sequence[CurveRow], b: str) -> dict[str, float]:
    """Mean and standard error over tasks of ``a - b`` per trial, on the tasks both were scored on.

    Why paired: the references run on the agent's very tasks, so the task-to-task spread (a bandit
    whose best arm pays 0.99 against one whose pays 0.4) cancels; the unpaired error bars overlap
    long after the difference itself is clear.
    """
    ta, tb = trial_totals(rows_a, a), trial_totals(rows_b, b)
    diffs = np.array([ta[k] - tb[k] for k in ta if k in tb])
    if diffs.size < 2:
        raise ValueError(f"{a!r} and {b!r} share {diffs.size} scored tasks; a paired comparison needs 2 or more")
    return paired(diffs)._asdict()


def _run_backend(run_dir: Path) -> str:
    """The sampler backend a run recorded (runs from before ``auto`` existed ran ``serial``)."""
    if not (run_dir / "config.yaml").is_file():
        return "serial"
    _, config = read_run_config(run_dir)
    return str((config.get("sampling") or {}).get("backend", "serial"))


def compare_run(run_dir: Path) -> dict[str, Any]:
    """References on exactly the tasks/seeds/trials of a run's ``eval/curves.json``, written beside it."""
    curves = read_curves(run_dir / "eval")
    meta = curves.meta
    missing = [k for k in ("family", "n_tasks", "episodes_per_round", "seeds", "rounds") if k not in meta]
    if missing:
        raise ValueError(f"{run_dir / 'eval'}: no curve metadata ({', '.join(missing)}; curves.json is missing or "
                         f"old); allowed: a run evaluated by `metarl evaluate {run_dir}` first")
    agent = meta.get("agent", "rl2")
    totals, rows = score(meta["family"], n_tasks=int(meta["n_tasks"]), trials=int(meta["episodes_per_round"]),
                         seeds=meta["seeds"], split=meta.get("split", "test"), trial_episodes=int(meta["rounds"]) + 1,
                         backend=_run_backend(run_dir))
    write_curves(rows, run_dir / "eval" / "references", curve_meta(meta["family"], references=list(totals),
                                                                   split=meta.get("split", "test")))
    return {"run": run_dir.name, "family": meta["family"], "tasks": meta["n_tasks"], "seeds": meta["seeds"],
            "trials_per_task": meta["episodes_per_round"], "episodes_per_trial": int(meta["rounds"]) + 1,
            "mean_total_reward_per_trial": {agent: total_per_trial(curves.rows, agent), **totals},
            f"paired_{agent}_minus": {m: paired_difference(curves.rows, agent, rows, m) for m in totals}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Mean total reward per trial of classical references.")
    parser.add_argument("env", nargs="?", help="family spec, e.g. 'bandit?k=5&n=100'")
    parser.add_argument("--run", help="instead of ENV: score references on the tasks of RUN/eval/curves.json "
                                      "(from metarl evaluate) and compare with the agent there")
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--trials", type=int, default=4, help="parallel trials per task (= --episodes of evaluate)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--out", help="write curves.csv/json of the references to this folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.run:
        try:
            report = compare_run(Path(args.run))
        except (ValueError, FileNotFoundError) as err:
            parser.exit(2, f"{parser.prog}: error: {err}\n")
        (Path(args.run) / "eval" / "references.json").write_text(json.dumps(report, indent=1) + "\n")
    else:
        if not args.env:
            parser.error("give ENV or --run RUN_DIR")
        seeds = [args.seed + i for i in range(args.seeds)]
        totals, rows = score(args.env, n_tasks=args.tasks, trials=args.trials, seeds=seeds)
        report = {"env": args.env, "tasks": args.tasks, "trials": args.trials, "seeds": seeds,
                  "mean_total_reward_per_trial": totals}
        if args.out:
            write_curves(rows, Path(args.out), curve_meta(args.env, references=list(totals), split="test"))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
