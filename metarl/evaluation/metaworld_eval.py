"""Meta-test any metarl agent with Meta-World's own evaluator.

``metaworld.evaluation.metalearning_evaluation`` drives an agent through the benchmark's protocol:
for each of ``num_evals`` rounds it points every env of a vector env at its next test goal, runs
``adaptation_episodes`` episodes with ``adapt_action``/``step``, calls ``adapt`` once per
adaptation step, then scores ``evaluation_episodes`` episodes per env with ``eval_action``, each
ending at the first success step (success = the episode succeeded at some step). Numbers reported
this way compare with the literature that uses the same evaluator (Meta-World+, arXiv 2505.11289).

:class:`MetaWorldAdapter` implements its ``MetaLearningAgent`` protocol from the agent's own
adaptation (:meth:`MetaAgent.adaptation_session <metarl.agents.base.MetaAgent.adaptation_session>`):
an inner policy-gradient step after the adaptation episodes for MAML-TRPO and multi-task TRPO, the
inner PPO update for Reptile-PPO, and for RL² nothing but the trial's memory, carried from the first
adaptation episode through the evaluation episodes (the trial metarl's RL² is trained on; the
Meta-World+ reference code instead restarts every evaluation episode from the memory it had at the
end of adaptation). Evaluation episodes act with the policy's mean (``deterministic_eval``), as the
reference code does; adaptation episodes sample. The adaptation episodes become an
:class:`~metarl.sampling.Episodes` batch, the same structure the agent adapts on in training.

Entry points (and the traps they avoid): the envs come from ``metaworld.make_ml_envs_test`` on the
benchmark object the family itself uses (``metaworld.ML1(name, seed)`` / ``ML10`` / ``ML45``), whose
``test_tasks`` are the held-out goals; Meta-World's gymnasium id ``Meta-World/ML1-train`` is not used
(it serves the test goals as train goals), and nothing relies on ``reset(seed=)`` (Meta-World ignores
it; the goals come from the benchmark and the order of goals from the wrapper's own generator,
seeded with the family's seed). :func:`eval_goals` lists the goals an evaluation will visit, which
``tests/test_eval_metaworld.py`` compares with ``metaworld.ML1(...).test_tasks``.

Why a vector wrapper (:class:`StepRecorder`): the evaluator hands the agent no rewards during the
evaluation episodes and replaces each finished episode's last observation by the next reset's, but
RL²'s memory needs the reward and the episode boundary of every step, and Reptile's value bootstrap
needs the final observations. The wrapper records them as they pass, changing nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from metarl.envs import EnvSpecError, Task
from metarl.sampling import Episodes

if TYPE_CHECKING:
    from metarl.contract import AdaptationSession, MetaLearner
    from metarl.envs.metaworld_family import MetaWorldFamily


@dataclass(frozen=True)
class MetaWorldProtocol:
    """The evaluator's numbers; the defaults are Meta-World+'s (and its reference code's)."""

    meta_batch_size: int = 20  #: envs evaluated in parallel (a multiple of the number of test classes)
    goals_per_class: int = 40  #: test goals per test class (``total_tasks_per_cls``)
    adaptation_steps: int = 1
    adaptation_episodes: int = 10
    evaluation_episodes: int = 3
    num_evals: int | None = None  #: rounds of ``meta_batch_size`` goals; None: every goal once
    max_episode_steps: int | None = None  #: None: the benchmark's 500
    seed: int = 0  #: seeds the agent's action noise (the goals come from the benchmark)
    deterministic_eval: bool = True  #: evaluation episodes act with the policy's mean, as the reference code
    #: memory agents (RL²): every evaluation episode starts from the memory at the end of adaptation, as the
    #: reference RL² does, so scored episodes do not adapt on each other; False: the trial carries on
    restart_from_adapted: bool = True

    def rounds(self, n_classes: int) -> int:
        """Rounds so that each of the ``goals_per_class`` goals of every class is visited once."""
        if self.num_evals is not None:
            return self.num_evals
        per_env = self.goals_per_class // (self.meta_batch_size // n_classes)
        return max(1, per_env)


def benchmark_name(family: MetaWorldFamily) -> str:
    """What ``metaworld.make_ml_envs_test`` calls the family's benchmark."""
    return f"{family.task}-v3" if family.benchmark == "ml1" else family.benchmark.upper()


def _check(family: Any, protocol: MetaWorldProtocol) -> tuple[int, int]:
    from metarl.envs.metaworld_family import MetaWorldFamily

    if not isinstance(family, MetaWorldFamily):
        raise EnvSpecError(f"--protocol metaworld needs a Meta-World family (ml1-<task>, ml10, ml45); this run's "
                           f"family is {family.full_name!r}; allowed: --protocol metarl")
    n_classes = len(family._benchmark.test_classes)
    if protocol.meta_batch_size % n_classes:
        raise EnvSpecError(f"meta_batch_size={protocol.meta_batch_size} must be a multiple of the {n_classes} "
                           f"test classes of {family.full_name}")
    per_env = protocol.meta_batch_size // n_classes
    if protocol.goals_per_class % per_env:
        raise EnvSpecError(f"goals_per_class={protocol.goals_per_class} must be a multiple of the "
                           f"{per_env} envs per test class (meta_batch_size={protocol.meta_batch_size})")
    return n_classes, per_env


def make_eval_envs(family: MetaWorldFamily, protocol: MetaWorldProtocol) -> StepRecorder:
    """Meta-World's test vector env for the family's benchmark and seed, wrapped to record each step."""
    import metaworld

    _check(family, protocol)
    kwargs: dict[str, Any] = {"reward_function_version": family.reward_version}
    if protocol.max_episode_steps is not None:
        kwargs["max_episode_steps"] = protocol.max_episode_steps
    envs = metaworld.make_ml_envs_test(benchmark_name(family), seed=family.seed,
                                       meta_batch_size=protocol.meta_batch_size,
                                       total_tasks_per_cls=protocol.goals_per_class, vector_strategy="sync", **kwargs)
    return StepRecorder(envs)


def eval_goals(envs: gym.vector.VectorEnv) -> list[list[Any]]:
    """The goals (Meta-World ``Task`` blobs) each env of an evaluation vector env cycles through."""
    return [list(tasks) for tasks in envs.get_attr("tasks")]


class StepRecorder(gym.vector.VectorWrapper):
    """Passes every call through; remembers the last step's rewards, dones, successes and final observations."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        n = env.num_envs
        self.rewards = np.zeros(n)
        self.dones = np.zeros(n, bool)
        self.success = np.zeros(n, bool)
        self.final_obs: np.ndarray | None = None

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:  # the evaluator toggles wrappers through these
        return self.env.call(name, *args, **kwargs)

    def get_attr(self, name: str) -> Any:
        return self.env.get_attr(name)

    def set_attr(self, name: str, values: Any) -> None:
        self.env.set_attr(name, values)

    def step(self, actions):  # noqa: ANN001, ANN201 - the gymnasium signature
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        self.rewards = np.asarray(rewards, dtype=np.float64)
        self.dones = np.logical_or(terminations, truncations)
        self.success = np.asarray(infos.get("success", np.zeros(len(rewards))), dtype=float) != 0
        self.final_obs = np.array(obs, dtype=np.float64)
        if self.dones.any():
            finals = infos["final_obs"]
            for i in np.flatnonzero(self.dones):
                self.final_obs[i] = finals[i]
        return obs, rewards, terminations, truncations, infos


class MetaWorldAdapter:
    """Meta-World's ``MetaLearningAgent`` protocol over a metarl agent's adaptation session."""

    def __init__(self, agent: MetaLearner, envs: StepRecorder, protocol: MetaWorldProtocol) -> None:
        self.agent, self.envs, self.protocol = agent, envs, protocol
        self.n = envs.num_envs
        self.horizon = int(protocol.max_episode_steps or agent.family.horizon)
        self.obs_shape = agent.family.observation_space.shape
        space = agent.family.action_space
        self.low, self.high = space.low.astype(np.float32), space.high.astype(np.float32)
        self.round = -1
        self.session: AdaptationSession | None = None
        self.restarts = False  #: whether evaluation episodes restart from the adapted memory (see reset)

    # -- the protocol ----------------------------------------------------------------------
    def init(self) -> None:
        """A new round: fresh adaptation state, empty buffers."""
        self.round += 1
        self.session = self.agent.adaptation_session(self.n, seed=self.protocol.seed * 1_000_003 + self.round)
        self.actor = self.session.actor
        self.state = self.actor.initial_state(self.n, 1)
        self.generator = torch.Generator().manual_seed(self.protocol.seed * 7919 + self.round)
        self.start = torch.ones(self.n, 1, dtype=torch.bool)
        self._new_buffers()
        self._pending: torch.Tensor | None = None
        self._adapted: Any = None

    def adapt_action(self, observations: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        actions, log_probs = self._act(observations)
        self._last = (np.asarray(observations, dtype=np.float32), actions.numpy(), log_probs.numpy())
        return self._clip(actions), {"log_probs": log_probs.numpy()}

    def step(self, timestep: Any) -> None:
        """Record one adaptation step (the evaluator calls it after every ``env.step``)."""
        obs, actions, log_probs = self._last
        rewards, dones = self.envs.rewards, self.envs.dones
        t = self._t
        self._buf_obs[:, self._ep, t] = obs
        self._buf_act[:, self._ep, t] = actions
        self._buf_logp[:, self._ep, t] = log_probs
        self._buf_rew[:, self._ep, t] = rewards
        self._buf_term[:, self._ep, t] = np.asarray(timestep.terminated, bool)
        self._buf_trunc[:, self._ep, t] = np.asarray(timestep.truncated, bool) | (t + 1 >= self.horizon)
        self._buf_succ[:, self._ep] |= self.envs.success
        self._observe(actions, rewards, dones)
        self._advance(dones)

    def adapt(self) -> None:
        """One adaptation step of the agent on the adaptation episodes recorded since the last one."""
        assert self.session is not None
        self.session.adapt(self._episodes())
        self.actor = self.session.actor
        self._new_buffers()
        self.restarts = self.protocol.restart_from_adapted and bool(getattr(self.actor, "can_restart", False))
        self._adapted = self.state if self.restarts else None  # the memory after the last adaptation step

    def eval_action(self, observations: np.ndarray) -> np.ndarray:
        actions, _ = self._act(observations, deterministic=self.protocol.deterministic_eval)
        self._pending = actions
        return self._clip(actions)

    def reset(self, env_mask: np.ndarray) -> None:
        """Called before the evaluation episodes (all true) and after each evaluation step (its dones).

        Episode boundaries go into the RL² memory through the recorded step, as in training. With
        ``restart_from_adapted`` a memory agent's envs that start a new evaluation episode go back to
        the memory at the end of adaptation (Meta-World+'s reference RL² does the same), so every
        scored episode sees exactly the adaptation episodes and nothing of the scored ones before it.
        """
        if self._pending is not None:
            self._observe(self._pending.numpy(), self.envs.rewards, self.envs.dones)
            self._pending = None
        mask = np.asarray(env_mask, bool)
        if self._adapted is not None and mask.any():
            self.state = self.actor.restart(self.state, self._adapted, torch.as_tensor(mask))
        self.start = torch.as_tensor(mask).view(self.n, 1)

    # -- internals ---------------------------------------------------------------------------
    def _act(self, observations: np.ndarray, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        obs = torch.as_tensor(np.asarray(observations, dtype=np.float32)).view(self.n, 1, *self.obs_shape)
        self.actor.deterministic = deterministic  # both actor kinds sample or take the mean by this flag
        with torch.no_grad():
            out = self.actor.act(obs, self.state, self.start, self.generator)
        actions, log_probs, self.state = out[0], out[1], out[2]
        self.start = torch.zeros(self.n, 1, dtype=torch.bool)
        return actions.view(self.n, -1), log_probs.view(self.n)

    def _observe(self, actions: np.ndarray, rewards: np.ndarray, dones: np.ndarray) -> None:
        with torch.no_grad():
            self.state = self.actor.observe(self.state, torch.as_tensor(actions).view(self.n, 1, -1),
                                            torch.as_tensor(rewards, dtype=torch.float32).view(self.n, 1),
                                            torch.as_tensor(dones).view(self.n, 1))
        self.start = torch.as_tensor(dones).view(self.n, 1).clone()

    def _clip(self, actions: torch.Tensor) -> np.ndarray:
        return np.clip(actions.numpy(), self.low, self.high).astype(np.float64)

    def _new_buffers(self) -> None:
        n, e, h = self.n, self.protocol.adaptation_episodes, self.horizon
        self._buf_obs = np.zeros((n, e, h, *self.obs_shape), np.float32)
        self._buf_act = np.zeros((n, e, h, *self.agent.family.action_space.shape), np.float32)
        self._buf_logp = np.zeros((n, e, h), np.float32)
        self._buf_rew = np.zeros((n, e, h), np.float32)
        self._buf_term = np.zeros((n, e, h), bool)
        self._buf_trunc = np.zeros((n, e, h), bool)
        self._buf_succ = np.zeros((n, e), bool)
        self._buf_last_obs = np.zeros((n, e, *self.obs_shape), np.float32)
        self._buf_lengths = np.zeros((n, e), np.int64)
        self._ep, self._t = 0, 0

    def _advance(self, dones: np.ndarray) -> None:
        """Adaptation episodes run in lockstep (no early termination while adapting); a mixed end is an error."""
        self._t += 1
        if dones.any() or self._t >= self.horizon:
            if not dones.all():
                raise RuntimeError("adaptation episodes ended at different steps; the adapter needs them in lockstep "
                                   "(Meta-World turns terminate-on-success off while adapting)")
            self._buf_last_obs[:, self._ep] = self.envs.final_obs
            self._buf_lengths[:, self._ep] = self._t
            self._ep, self._t = self._ep + 1, 0
            if self._ep >= self.protocol.adaptation_episodes:  # the evaluator steps until every env has enough
                self._ep = self.protocol.adaptation_episodes - 1

    def _episodes(self) -> Episodes:
        lengths = torch.from_numpy(self._buf_lengths.copy())
        mask = (torch.arange(self.horizon)[None, None, :] < lengths[..., None]).float()
        rew = torch.from_numpy(self._buf_rew.copy())
        tasks = tuple(Task(self.agent.family.name, "test", i, {}) for i in range(self.n))
        return Episodes(observations=torch.from_numpy(self._buf_obs.copy()), actions=torch.from_numpy(self._buf_act.copy()),
                        rewards=rew, log_probs=torch.from_numpy(self._buf_logp.copy()),
                        terminated=torch.from_numpy(self._buf_term.copy()), truncated=torch.from_numpy(self._buf_trunc.copy()),
                        mask=mask, last_observations=torch.from_numpy(self._buf_last_obs.copy()), lengths=lengths,
                        returns=(rew * mask).sum(-1), success=torch.from_numpy(self._buf_succ.copy()), tasks=tasks,
                        reports_success=True)


def evaluate_metaworld(agent: MetaLearner, protocol: MetaWorldProtocol = MetaWorldProtocol(),
                       out_dir: Path | None = None, run: str = "") -> dict[str, Any]:
    """Run Meta-World's ``metalearning_evaluation`` on ``agent``; returns (and writes) the result dict."""
    from metaworld.evaluation import metalearning_evaluation

    from metarl.evaluation.manifest import manifest

    n_classes, per_env = _check(agent.family, protocol)
    rounds = protocol.rounds(n_classes)
    envs = make_eval_envs(agent.family, protocol)
    try:
        adapter = MetaWorldAdapter(agent, envs, protocol)
        success, mean_return, per_class = metalearning_evaluation(
            adapter, envs, num_evals=rounds, adaptation_steps=protocol.adaptation_steps,
            adaptation_episodes=protocol.adaptation_episodes, evaluation_episodes=protocol.evaluation_episodes)
    finally:
        envs.close()
    result = {"run": run, "agent": agent.name, "family": agent.family.full_name,
              "evaluator": "metaworld.evaluation.metalearning_evaluation",
              "protocol": {**asdict(protocol), "num_evals": rounds, "envs_per_class": per_env,
                           "goals_evaluated_per_class": rounds * per_env,
                           # what the agent's memory did over the scored episodes (stateless agents: none)
                           "evaluation_memory": "restarted from adaptation" if adapter.restarts else (
                               "carried over the trial" if adapter.state is not None else "none")},
              "mean_success": float(success), "mean_return": float(mean_return),
              "success_per_class": {k: float(v) for k, v in sorted(per_class.items())},
              "manifest": manifest(agent.family)}
    if per_env > 1:
        result["note"] = pooling_note(n_classes)
    if not all(math.isfinite(v) for v in (result["mean_success"], result["mean_return"])):
        raise RuntimeError(f"Meta-World's evaluator returned non-finite results: {result}")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        name = "metaworld_protocol.json" if protocol.deterministic_eval else "metaworld_protocol_sampled.json"
        (out_dir / name).write_text(json.dumps(result, indent=2) + "\n")
    return result


def pooling_note(n_classes: int) -> str:
    """Why several envs per test class bias Meta-World's success rate, and the setting that does not."""
    return ("Meta-World's evaluation() scores, per test class, the first evaluation_episodes episodes to finish "
            "across all of that class's envs, and episodes end at their first success, so with several envs per "
            "class the successful ones are counted first and the rate is biased upward (ml1-push, one MAML-TRPO "
            "checkpoint, sampled actions: 1.000 with 20 envs, 0.242 with 1). --mw-meta-batch-size "
            f"{n_classes} (one env per test class) scores every goal's own episodes.")


def format_metaworld(result: dict[str, Any]) -> str:
    """The printed report: mean success and return, then success per test class."""
    p = result["protocol"]
    acting = "mean actions" if p["deterministic_eval"] else "sampled actions"
    lines = [f"Meta-World evaluator ({result['evaluator']}), {result['family']}: {p['adaptation_steps']} adaptation "
             f"step(s) x {p['adaptation_episodes']} episodes, {p['evaluation_episodes']} evaluation episodes "
             f"({acting}), {p['goals_evaluated_per_class']} goals per test class",
             f"  mean success {result['mean_success']:.3f}   mean return {result['mean_return']:.1f}"]
    lines += [f"  {name:28s} success {rate:.3f}" for name, rate in result["success_per_class"].items()]
    if "note" in result:
        lines.append(f"  note: {result['note']}")
    return "\n".join(lines)


__all__: Sequence[str] = ["MetaWorldAdapter", "MetaWorldProtocol", "StepRecorder", "eval_goals", "evaluate_metaworld",
                          "format_metaworld", "make_eval_envs"]
