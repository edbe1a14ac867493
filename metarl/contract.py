"""The agent contract: the one surface the trainer, the evaluator, the Python API and the CLI use.

Every agent is a :class:`~metarl.agents.base.MetaAgent`, the base class that implements this
contract's shared parts (the sampler, periodic evaluation, seeding) and leaves each paper's
algorithm to ``train_iteration`` and ``meta_test``. The contract itself lives here, below every
layer that uses it, as typing Protocols: the trainer (:mod:`metarl.runs`) needs only
:class:`Trainable` and so stays usable with any object that trains and checkpoints; the
evaluator, the API and the CLI need the whole :class:`MetaLearner`.

Adaptation has one signature for every agent, seen from outside: :class:`AdaptationSession`
(``session.actor`` acts; ``session.adapt(episodes)`` adapts to what it saw). An inner policy
gradient step (MAML), an inner PPO (Reptile) and a recurrent state carried across episodes (RL²)
all fit it, so Meta-World's evaluator and :meth:`MetaLearner.meta_test` drive every agent alike.

Example (any agent, through the contract only):
    >>> from metarl.agents import agent_class
    >>> cls = agent_class("maml-trpo")
    >>> agent = cls(cls.Config(meta_batch_size=2, episodes_per_task=2, hidden_sizes=(8,)), "point-nav", seed=0)
    >>> metrics = agent.train_iteration(0)  # one meta-iteration; the trainer logs these under train/
    >>> "return" in metrics
    True
    >>> tasks = agent.family.sample(2, rng=0, split="test")
    >>> session = agent.adaptation_session(len(tasks))
    >>> before = agent.sampler.sample(tasks, session.actor, 2, seed=0)
    >>> session.adapt(before)  # MAML's inner step; RL² would carry its memory instead
    >>> after = agent.sampler.sample(tasks, session.actor, 2, seed=1)
    >>> rounds = agent.meta_test(tasks, rounds=1, episodes_per_round=2, seed=0)  # the same, as one call
    >>> len(rounds), rounds[0].equal(before)
    (2, True)
    >>> agent.close()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: this module imports nothing at run time
    from metarl.envs import Task, TaskFamily
    from metarl.sampling import Episodes, Sampler
    from metarl.sampling.actor import Actor

__all__ = ["AdaptationSession", "MetaLearner", "Trainable"]


@runtime_checkable
class Trainable(Protocol):
    """What the trainer needs: one iteration at a time, and a state to checkpoint and restore.

    ``train_iteration`` returns scalar metrics; keys without a namespace are logged under
    ``train/``. ``state_dict`` must be ``weights_only``-safe (tensors and plain containers) and
    hold everything a bit-exact resume needs (generators, normalizers).
    """

    name: str

    def train_iteration(self, it: int) -> Mapping[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class AdaptationSession(Protocol):
    """One meta-test of ``n`` tasks driven from outside (Meta-World's evaluator drives it step by step).

    ``actor`` acts for the ``n`` tasks (one slot each) as the sampler's actors do; ``adapt`` takes
    the episodes gathered since the last call and performs the agent's own adaptation step (an
    inner policy-gradient step, an inner PPO update; nothing for RL², whose memory is the actor's
    state). Read ``actor`` again after ``adapt``.
    """

    @property
    def actor(self) -> Actor: ...

    def adapt(self, episodes: Episodes) -> None: ...


class MetaLearner(Trainable, Protocol):
    """A meta-RL agent as the evaluator, the API and the CLI see it."""

    config: Any
    family: TaskFamily
    sampler: Sampler
    #: What one meta-test round is. ``False``: one adaptation step consuming all of the round's
    #: episodes (MAML, Reptile). ``True``: one more episode of each of the round's independent,
    #: parallel trials (RL²), so the experience behind a scored episode is one trial's.
    rounds_are_trial_episodes: bool

    def meta_test(self, tasks: Sequence[Task], rounds: int, episodes_per_round: int, seed: int) -> list[Episodes]:
        """Episodes of rounds ``0..rounds`` on ``tasks``: round 0 before any adaptation."""
        ...

    def adaptation_session(self, n_tasks: int, seed: int = 0) -> AdaptationSession: ...

    def close(self) -> None: ...
