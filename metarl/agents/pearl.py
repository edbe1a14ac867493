"""PEARL (Rakelly et al. 2019, "Efficient Off-Policy Meta-Reinforcement Learning via Probabilistic Context
Variables"): a context encoder infers the task, and soft actor-critic acts on its belief.

Algorithm 1 (meta-training), as below; the data-collection schedule is the authors' code's:

    require: training tasks {T_i} ~ p(T), replay buffers B_i and encoder buffers E_i per task
    collect `initial_episodes` per training task with z ~ prior                  # before iteration 0
    while not done:
        for `tasks_per_iteration` training tasks T_i:                            # data collection
            E_i <- {}
            collect `prior_episodes` with z ~ r(z) = N(0, I); add to B_i and E_i
            collect `posterior_episodes` with z ~ q(z | c ~ E_i); add to B_i and E_i
            collect `extra_posterior_episodes` with z ~ q(z | c ~ E_i); add to B_i only
        repeat `gradient_steps` times, on a meta-batch of training tasks:        # one batched computation
            context c_i ~ E_i (`context_episodes: k`: its first j ~ U{1..k} whole episodes)
            transitions b_i ~ B_i, z_i ~ q(z | c_i)  (reparameterized)
            phi, Q   <- grad of  sum_i L_critic(b_i, z_i) + kl_weight * KL(q(z | c_i) || r(z))
            pi       <- grad of  sum_i L_actor(b_i, stop_gradient(z_i))
            alpha    <- grad of the temperature loss (``alpha: auto``), targets <- Polyak average

Algorithm 2 (meta-test) is posterior sampling. Round 0 acts with z drawn from the prior. After each
round, every transition gathered on the task so far joins its context, and the next round acts
with z drawn from the updated posterior (:class:`_PosteriorSession`). The same session drives
metarl's evaluator and Meta-World's.

The pieces are shared: the encoder and its product of Gaussians (:mod:`metarl.nn.context_encoder`),
the SAC networks (:mod:`metarl.nn.sac`), the SAC losses (:mod:`metarl.core.sac`), and the per-task
replay buffers (:mod:`metarl.sampling.replay`). Each gradient step handles all the meta-batch's tasks
at once: every network sees ``[tasks * batch]`` rows, and each task's latent is repeated along its
batch (``tests/test_agents_pearl.py`` checks that this equals the per-task loop).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metarl.agents.base import CommonConfig, MetaAgent, episode_stats, load_optimizer_state, space_dims, to_cpu
from metarl.core.sac import actor_loss, critic_loss, polyak_update_, soft_target, temperature_loss
from metarl.envs import TaskFamily
from metarl.nn.context_encoder import ContextEncoder, kl_to_standard_normal, sample_latent
from metarl.nn.sac import QNetwork, TanhGaussianActor
from metarl.runs import ENV_STEPS_KEY, ConfigError, param
from metarl.sampling import Episodes
from metarl.sampling.actor import ActorOutput
from metarl.sampling.replay import TaskReplay, Transitions, episode_transitions
from metarl.sampling.sampler import concat_episodes


@dataclass(frozen=True)
class PEARLConfig(CommonConfig):
    train_tasks: int = param(100, min=1, help="fixed training tasks drawn once from the train split (the paper's 100)")
    initial_episodes: int = param(10, min=0, help="prior-sampled episodes per training task before training")
    tasks_per_iteration: int = param(5, min=1, help="training tasks collected on per iteration")
    prior_episodes: int = param(2, min=0, help="per collected task: episodes with z from the prior (both buffers)")
    posterior_episodes: int = param(0, min=0, help="per collected task: episodes with z from the posterior "
                                    "(both buffers)")
    extra_posterior_episodes: int = param(3, min=0, help="per collected task: episodes with z from the posterior "
                                          "(replay buffer only)")
    gradient_steps: int = param(2000, min=1, help="gradient steps per iteration")
    meta_batch_size: int = param(16, min=1, help="training tasks per gradient step")
    batch_size: int = param(256, min=1, help="RL transitions per task per gradient step")
    context_size: int = param(64, min=1, help="context transitions per task per gradient step (the authors' 64)")
    latent_dim: int = param(5, min=1, help="size of the latent task variable z")
    hidden_sizes: tuple[int, ...] = param((300, 300, 300), min=1, help="actor and critic hidden layers")
    encoder_hidden_sizes: tuple[int, ...] = param((200, 200, 200), min=1, help="context encoder hidden layers")
    lr: float = param(3e-4, min=0.0, exclusive_min=True, help="Adam step size of every network")
    discount: float = param(0.99, min=0.0, max=1.0, help="discount gamma")
    reward_scale: float = param(5.0, min=0.0, exclusive_min=True, help="rewards are multiplied by this in the "
                                "critic's target (the paper's, with alpha = 1)")
    alpha: float = param(1.0, min=0.0, help="entropy temperature, fixed as the paper configures (see auto_alpha)")
    auto_alpha: bool = param(False, help="learn the temperature towards an entropy of -action_dim (in "
                                                       "actions rescaled to [-1, 1]) instead")
    kl_weight: float = param(0.1, min=0.0, help="weight of KL(q(z|c) || N(0, I)), summed over the meta-batch's "
                             "tasks as in the authors' code, in the encoder's loss")
    tau: float = param(0.005, min=0.0, max=1.0, exclusive_min=True, help="Polyak rate of the target critics")
    replay_capacity: int = param(1_000_000, min=1, help="transitions kept per training task")
    eval_deterministic: bool = param(True, help="meta-test acts with the actor's mean action")
    normalized_actions: bool = param(False, help="the actor, critics and encoder see actions rescaled to [-1, 1] "
                                     "(the authors' NormalizedBoxEnv); false: in the env's units")
    use_next_obs_in_context: bool = param(False, help="context transitions are (s, a, r, s') instead of the "
                                          "paper's (s, a, r) (the authors' use_next_obs_in_context)")
    latent_per_episode: str = param("call", choices=("call", "episode"), help="when collection draws a new z: "
                                    "once per batch of episodes per task ('call'), or before every episode "
                                    "with a fresh context sample ('episode', the authors' schedule)")
    context_episodes: int = param(0, min=0, help="0: a context is context_size transitions sampled from the "
                                  "encoder buffer (the paper's); k >= 1: it is every transition of the buffer's "
                                  "first j episodes, j uniform in 1..k per task and step, and posterior "
                                  "collection conditions on all episodes so far (the meta-test's contexts "
                                  "after rounds 1..k)")


class PEARL(MetaAgent):
    name = "pearl"
    summary = "PEARL: a probabilistic context encoder with SAC, learning off policy"
    Config = PEARLConfig

    def __init__(self, config: PEARLConfig, family: str | TaskFamily, *, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(config, family, seed=seed, device=device)
        act = self.family.action_space
        if not isinstance(act, gym.spaces.Box) or not np.all(np.isfinite(act.low)) or not np.all(np.isfinite(act.high)):
            raise ConfigError(f"pearl: family {self.family.name!r} has action space {act}; allowed: a bounded Box "
                              "(SAC squashes its actions into the bounds)")
        if config.meta_batch_size > config.train_tasks:
            raise ConfigError(f"meta_batch_size={config.meta_batch_size} is more than train_tasks="
                              f"{config.train_tasks}; allowed: meta_batch_size <= train_tasks")
        if config.context_episodes > config.prior_episodes + config.posterior_episodes:
            raise ConfigError(f"context_episodes={config.context_episodes} is more than the "
                              f"prior_episodes + posterior_episodes={config.prior_episodes + config.posterior_episodes} "
                              "that reach the encoder buffer; allowed: context_episodes <= prior_episodes + "
                              "posterior_episodes (or 0)")
        obs_dim, _ = space_dims(self.family.observation_space)
        act_dim, _ = space_dims(act)
        self.obs_dim, self.act_dim, L = obs_dim, act_dim, config.latent_dim
        context_dim = obs_dim + act_dim + 1 + (obs_dim if config.use_next_obs_in_context else 0)
        self.encoder = ContextEncoder(context_dim, L, config.encoder_hidden_sizes).to(self.device)
        # With normalized_actions the networks live in [-1, 1]^A and only the env sees its own units, as
        # in the authors' code (to_env maps them); otherwise the actor squashes into the box itself, and
        # nothing is mapped, so that path stays bit-identical to the one the committed runs used.
        low, high = act.low.astype(np.float64), act.high.astype(np.float64)
        unit = config.normalized_actions
        self.actor = TanhGaussianActor(obs_dim + L, [-1.0] * act_dim if unit else low.tolist(),
                                       [1.0] * act_dim if unit else high.tolist(), config.hidden_sizes).to(self.device)
        self.to_env = (torch.as_tensor((high + low) / 2, dtype=torch.float32),
                       torch.as_tensor((high - low) / 2, dtype=torch.float32)) if unit else None
        self.q1 = QNetwork(obs_dim + L, act_dim, config.hidden_sizes).to(self.device)
        self.q2 = QNetwork(obs_dim + L, act_dim, config.hidden_sizes).to(self.device)
        self.q1_target, self.q2_target = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        self.log_alpha = torch.tensor(math.log(config.alpha) if config.alpha > 0 else -20.0, device=self.device,
                                      requires_grad=config.auto_alpha)
        self.critic_optimizer = torch.optim.Adam([*self.encoder.parameters(), *self.q1.parameters(),
                                                  *self.q2.parameters()], lr=config.lr)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.lr)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=config.lr)
        # SAC's target entropy, -action_dim, is meant for actions in [-1, 1]; without normalized_actions
        # the actor's log-density is in the env's units (it includes the rescaling's log-Jacobian), so
        # the target moves by the same sum(log half_range) (0 with normalized_actions). Without that
        # shift a small box (point-nav's [-0.1, 0.1]^2, whose largest possible entropy is
        # log(0.04) = -3.2) could never reach -2, and alpha would grow without bound.
        self.target_entropy = -float(act_dim) + float(self.actor.half_range.log().sum())
        self.train_task_list = self.family.sample(config.train_tasks, self.rng, split="train")
        self.replay = TaskReplay(config.train_tasks, config.replay_capacity)
        self.context = TaskReplay(config.train_tasks, config.replay_capacity)
        # per task: where each episode in the encoder buffer ends (it is cleared before each collection,
        # so its episodes sit in order from index 0); used by ``context_episodes``
        self.context_ends: list[list[int]] = [[] for _ in range(config.train_tasks)]
        self.generator = torch.Generator().manual_seed(seed)  # batches and latent draws of the updates

    # -- acting -------------------------------------------------------------------------
    def context_of(self, t: Transitions) -> Tensor:
        """The encoder's input per transition: ``(s, a, r)`` (the paper's default), or ``(s, a, r, s')``
        with ``use_next_obs_in_context``: where the reward depends on where a step lands (point-nav's
        distance to the goal after the step), ``s'`` is what locates the evidence."""
        actions = self.net_actions(t.actions.reshape(*t.obs.shape[:-1], -1))
        parts = [t.obs, actions, t.rewards.unsqueeze(-1)]
        if self.config.use_next_obs_in_context:
            parts.append(t.next_obs)
        return torch.cat(parts, dim=-1)

    def net_actions(self, env_actions: Tensor) -> Tensor:
        """Env-unit actions (as the buffers hold them) in the networks' units."""
        if self.to_env is None:
            return env_actions
        center, half = (x.to(env_actions.device) for x in self.to_env)
        return (env_actions - center) / half

    def posterior(self, context: Tensor | None, n_tasks: int) -> tuple[Tensor, Tensor]:
        """``q(z | context)`` per task (``context`` ``[T, N, C]``), or the prior where there is none."""
        if context is None:
            zeros = torch.zeros(n_tasks, self.config.latent_dim, device=self.device)
            return zeros, torch.ones_like(zeros)
        return self.encoder.posterior(context.to(self.device))

    def latent_actor(self, z: Tensor, *, deterministic: bool = False) -> LatentActor:
        return LatentActor(self.actor, z, deterministic=deterministic, to_env=self.to_env)

    def _gather(self, ids: Sequence[int], episodes: int, prior: bool, to_context: bool) -> tuple[int, Episodes | None]:
        """``episodes`` per training task ``ids`` with z from the prior or from q(z | c ~ encoder buffer),
        into the replay (and the encoder buffers if ``to_context``); returns the steps and the episodes.

        With ``latent_per_episode: episode`` each episode draws its own z (and its own context sample),
        as the authors' sampler does; a later episode's context then includes the earlier ones' when
        they go to the encoder buffer."""
        if episodes == 0:
            return 0, None
        per_call = self.config.latent_per_episode == "call"
        steps, batches = 0, []
        for _ in range(1 if per_call else episodes):
            if prior or any(self.context.size[i] == 0 for i in ids):
                mu, var = self.posterior(None, len(ids))
            elif self.config.context_episodes:
                context, mask = self.episode_context(ids, draw=False)
                mu, var = self.encoder.posterior(context.to(self.device), mask.to(self.device))
            else:
                c = self.context.sample(ids, self.config.context_size, self.generator)
                mu, var = self.posterior(self.context_of(c), len(ids))
            with torch.no_grad():
                z = sample_latent(mu, var, self.generator)
                batch = self.sampler.sample([self.train_task_list[i] for i in ids], self.latent_actor(z),
                                            episodes if per_call else 1, seed=self.next_seed())
            self.replay.add_episodes(ids, batch)
            if to_context:
                self.context.add_episodes(ids, batch)
                for row, i in enumerate(ids):
                    end = self.context_ends[i][-1] if self.context_ends[i] else 0
                    for n in batch.lengths[row].tolist():
                        end += int(n)
                        self.context_ends[i].append(end)
            steps += int(batch.lengths.sum())
            batches.append(batch)
        return steps, batches[0] if per_call else concat_episodes(batches)

    # -- Algorithm 1 ----------------------------------------------------------------------
    def train_iteration(self, it: int) -> dict[str, float]:
        cfg = self.config
        steps = 0
        if it == 0 and cfg.initial_episodes and len(self.replay) == 0:
            for start in range(0, cfg.train_tasks, cfg.tasks_per_iteration):
                ids = list(range(start, min(start + cfg.tasks_per_iteration, cfg.train_tasks)))
                n, _ = self._gather(ids, cfg.initial_episodes, prior=True, to_context=True)
                steps += n
        ids = sorted(self.rng.choice(cfg.train_tasks, size=min(cfg.tasks_per_iteration, cfg.train_tasks),
                                     replace=False).tolist())
        for i in ids:
            self.context.clear(i)
            self.context_ends[i] = []
        metrics: dict[str, float] = {}
        n, prior_eps = self._gather(ids, cfg.prior_episodes, prior=True, to_context=True)
        steps += n
        n, post_eps = self._gather(ids, cfg.posterior_episodes, prior=False, to_context=True)
        steps += n
        n, extra_eps = self._gather(ids, cfg.extra_posterior_episodes, prior=False, to_context=False)
        steps += n
        for prefix, eps in (("prior_", prior_eps), ("posterior_", extra_eps or post_eps)):
            if eps is not None:
                metrics.update(episode_stats(eps, prefix))
        shown = extra_eps or post_eps or prior_eps
        if shown is not None:
            metrics.update(episode_stats(shown, family=self.family))
        losses = [self.gradient_step() for _ in range(cfg.gradient_steps)]
        for key in losses[0]:
            metrics[key] = float(np.mean([loss[key] for loss in losses]))
        metrics[ENV_STEPS_KEY] = steps
        metrics["replay_mb"] = self.replay_bytes() / 2**20
        metrics.update(self.periodic_eval(it, cfg.eval))
        return metrics

    def episode_context(self, ids: Sequence[int], *, draw: bool) -> tuple[Tensor, Tensor]:
        """Whole episodes of the encoder buffers as context, padded: ``[T, N, C]`` and its mask ``[T, N]``.

        ``draw``: each task's first ``j`` episodes, ``j`` uniform in ``1..min(context_episodes, held)``
        (a gradient step's context); otherwise all it holds (the posterior collection's). Whole episodes,
        not a fixed-size sample, because the meta-test's posterior after ``j`` rounds is the product of
        all ``j`` episodes' factors: training on the same contexts calibrates it for every round.
        """
        ends = []
        for i in ids:
            held = self.context_ends[i]
            if not held or held[-1] != self.context.size[i]:
                raise RuntimeError(f"encoder buffer of task {i} holds {self.context.size[i]} transitions, its "
                                   f"episodes end at {held[-1:]}: context_episodes needs whole episodes "
                                   "(is replay_capacity below an iteration's episodes?)")
            if draw:
                j = int(torch.randint(1, min(self.config.context_episodes, len(held)) + 1, (1,),
                                      generator=self.generator))
                ends.append(held[j - 1])
            else:
                ends.append(held[-1])
        rows = []
        for i, n in zip(ids, ends, strict=True):
            stored = self.context.data[i]
            assert stored is not None
            rows.append(self.context_of(Transitions(*(x[:n] for x in stored))))
        return pad_contexts(rows)

    def sample_batch(self, ids: Sequence[int]) -> tuple[Tensor, Transitions, Tensor | None]:
        """Context ``[T, N, C]`` from the encoder buffers, RL transitions ``[T, B, ...]`` from the replay,
        and the context's mask ``[T, N]`` (``None``: every row is real)."""
        cfg = self.config
        mask = None
        if cfg.context_episodes:
            context, mask = self.episode_context(ids, draw=True)
            mask = mask.to(self.device)
        else:
            context = self.context_of(self.context.sample(ids, cfg.context_size, self.generator))
        batch = self.replay.sample(ids, cfg.batch_size, self.generator)
        batch = batch._replace(actions=self.net_actions(batch.actions))
        return context.to(self.device), Transitions(*(x.to(self.device) for x in batch)), mask

    def losses(self, context: Tensor, batch: Transitions, noise: Mapping[str, Tensor],
               mask: Tensor | None = None) -> dict[str, Tensor]:
        """Every loss of one gradient step, for all tasks at once.

        Shapes: ``context [T, N, C]``; ``batch`` fields ``[T, B, ...]``; ``noise`` the step's standard
        normal draws: ``"z" [T, L]`` for the latent, ``"next_action"`` and ``"action"`` ``[T, B, A]``
        for the actor's samples; ``mask [T, N]`` marks the context's real rows (padding is no evidence).
        Each task's ``z`` is repeated over its ``B`` transitions, and the
        networks see ``[T * B]`` rows; with the draws given, any slice of tasks gives that slice's losses
        (the critic's and actor's as means over the slice's tasks, the KL as a sum).
        """
        cfg = self.config
        mu, var = self.encoder.posterior(context, mask)
        z = mu + var.sqrt() * noise["z"]  # reparameterized: the critic's gradient reaches the encoder
        T, B = batch.rewards.shape
        zb = z[:, None, :].expand(T, B, -1)
        x = torch.cat([batch.obs, zb], dim=-1)
        x_detached = torch.cat([batch.obs, zb.detach()], dim=-1)
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            x_next = torch.cat([batch.next_obs, zb.detach()], dim=-1)
            next_action, next_logp = self.actor.sample(x_next, noise=noise["next_action"])
            target = soft_target(batch.rewards, batch.terminated, self.q1_target(x_next, next_action),
                                 self.q2_target(x_next, next_action), next_logp, alpha=alpha,
                                 discount=cfg.discount, reward_scale=cfg.reward_scale)
        # The authors' code sums the KL over the meta-batch's tasks but averages the critic's loss over
        # tasks and transitions, so each task's bottleneck weighs as much as the whole critic term.
        kl = kl_to_standard_normal(mu, var).sum()
        critic = critic_loss(self.q1(x, batch.actions), self.q2(x, batch.actions), target)
        action, logp = self.actor.sample(x_detached, noise=noise["action"])
        actor = actor_loss(self.q1(x_detached, action), self.q2(x_detached, action), logp, alpha)
        out = {"critic_loss": critic, "kl": kl, "encoder_loss": critic + cfg.kl_weight * kl, "actor_loss": actor,
               "log_prob": logp.mean()}
        if cfg.auto_alpha:
            out["alpha_loss"] = temperature_loss(self.log_alpha, logp, self.target_entropy)
        return out

    def gradient_step(self) -> dict[str, float]:
        cfg = self.config
        ids = sorted(torch.randperm(cfg.train_tasks, generator=self.generator)[: cfg.meta_batch_size].tolist())
        context, batch, mask = self.sample_batch(ids)
        T, B, A = len(ids), cfg.batch_size, self.act_dim
        noise = {"z": torch.randn(T, cfg.latent_dim, generator=self.generator),
                 "next_action": torch.randn(T, B, A, generator=self.generator),
                 "action": torch.randn(T, B, A, generator=self.generator)}
        out = self.losses(context, batch, {k: v.to(self.device) for k, v in noise.items()}, mask)
        self.critic_optimizer.zero_grad(set_to_none=True)
        self.actor_optimizer.zero_grad(set_to_none=True)
        out["encoder_loss"].backward(inputs=[*self.encoder.parameters(), *self.q1.parameters(), *self.q2.parameters()])
        out["actor_loss"].backward(inputs=list(self.actor.parameters()))
        self.critic_optimizer.step()
        self.actor_optimizer.step()
        if cfg.auto_alpha:
            self.alpha_optimizer.zero_grad(set_to_none=True)
            out["alpha_loss"].backward(inputs=[self.log_alpha])
            self.alpha_optimizer.step()
        polyak_update_(self.q1_target.parameters(), self.q1.parameters(), cfg.tau)
        polyak_update_(self.q2_target.parameters(), self.q2.parameters(), cfg.tau)
        metrics = {k: float(v.detach()) for k, v in out.items()}
        metrics["alpha"] = float(self.log_alpha.exp())
        return metrics

    def replay_bytes(self) -> int:
        return sum(x.numel() * x.element_size() for buf in (self.replay, self.context) for d in buf.data
                   if d is not None for x in d)

    # -- Algorithm 2 ----------------------------------------------------------------------
    def adaptation_session(self, n_tasks: int, seed: int = 0) -> _PosteriorSession:
        return _PosteriorSession(self, n_tasks, seed)

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        nets = {name: {k: v.detach().cpu() for k, v in getattr(self, name).state_dict().items()}
                for name in ("encoder", "actor", "q1", "q2", "q1_target", "q2_target")}
        return {"nets": nets, "log_alpha": self.log_alpha.detach().cpu(),
                "optimizers": {name: to_cpu(getattr(self, name).state_dict())
                               for name in ("critic_optimizer", "actor_optimizer", "alpha_optimizer")},
                "replay": self.replay.state_dict(), "context": self.context.state_dict(),
                "context_ends": [torch.tensor(e, dtype=torch.int64) for e in self.context_ends],
                "generator": self.generator.get_state(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, weights in state["nets"].items():
            getattr(self, name).load_state_dict({k: v.to(self.device) for k, v in weights.items()})
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"].to(self.device))
        for name, opt_state in state["optimizers"].items():
            load_optimizer_state(getattr(self, name), opt_state)
        self.replay.load_state_dict(state["replay"])
        self.context.load_state_dict(state["context"])
        # checkpoints from before context_episodes have no episode ends (and never needed them)
        ends = state.get("context_ends")
        self.context_ends = ([[int(x) for x in e.tolist()] for e in ends] if ends is not None
                             else [[] for _ in range(self.config.train_tasks)])
        self.generator.set_state(state["generator"])
        self.rng.bit_generator.state = state["rng"]


def pad_contexts(rows: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Per-task contexts of different lengths (``[n_k, C]`` each) as one zero-padded ``[T, N, C]`` batch
    and its mask ``[T, N]`` (1 for a real transition): the encoder's product ignores the padding."""
    longest = max(int(r.shape[0]) for r in rows)
    context = torch.zeros(len(rows), longest, rows[0].shape[-1])
    mask = torch.zeros(len(rows), longest)
    for k, r in enumerate(rows):
        context[k, : r.shape[0]], mask[k, : r.shape[0]] = r, 1.0
    return context, mask


class LatentActor:
    """The sampler's view of PEARL's actor: ``pi(a | s, z)`` with one fixed ``z`` per task row.

    ``to_env = (center, half_range)``: ``center + half_range * a`` takes the network's action to the
    env's units (and its log-density by the map's log-Jacobian); ``None`` where the network already
    acts in them.
    """

    def __init__(self, actor: TanhGaussianActor, z: Tensor, *, deterministic: bool = False,
                 to_env: tuple[Tensor, Tensor] | None = None) -> None:
        self.net, self.z, self.deterministic = actor, z, deterministic
        self.device = z.device
        self.to_env = None if to_env is None else tuple(x.to(self.device) for x in to_env)

    def initial_state(self, n_tasks: int, n_slots: int) -> None:
        return None

    def act(self, obs: Tensor, state: Any, episode_start: Tensor, generator: torch.Generator) -> ActorOutput:
        home = obs.device
        T, S = obs.shape[:2]
        x = torch.cat([obs.to(self.device), self.z[:, None, :].expand(T, S, -1)], dim=-1)
        # the noise comes from the sampler's generator on its own device, so a seed fixes the actions anywhere
        noise = torch.randn(T, S, self.net.act_dim, generator=generator, device=generator.device).to(self.device)
        action, logp = self.net.sample(x, deterministic=self.deterministic, noise=noise)
        if self.to_env is not None:
            center, half = self.to_env
            action, logp = center + half * action, logp - half.log().sum()
        return ActorOutput(action.to(home), logp.to(home), state, {})

    def observe(self, state: Any, actions: Tensor, rewards: Tensor, dones: Tensor) -> Any:
        return state


class _PosteriorSession:
    """Algorithm 2 from outside: act with z from the posterior over all context gathered so far.

    Each task keeps every transition of its rounds (episodes that end early leave tasks with
    different counts, so contexts are padded and masked, and padding is no evidence).
    """

    def __init__(self, agent: PEARL, n_tasks: int, seed: int) -> None:
        self.agent, self.n_tasks = agent, n_tasks
        self.generator = torch.Generator().manual_seed(seed)
        self.contexts: list[list[Tensor]] = [[] for _ in range(n_tasks)]  # per task: [n_k, C] per adapt call
        self._resample()

    def posterior_moments(self) -> tuple[Tensor, Tensor]:
        """Mean and variance of ``q(z | all context so far)`` per task (the prior before any)."""
        if not self.contexts[0]:
            return self.agent.posterior(None, self.n_tasks)
        context, mask = pad_contexts([torch.cat(c) for c in self.contexts])
        with torch.no_grad():
            return self.agent.encoder.posterior(context.to(self.agent.device), mask.to(self.agent.device))

    def _resample(self) -> None:
        mu, var = self.posterior_moments()
        self.z = sample_latent(mu, var, self.generator)

    @property
    def actor(self) -> LatentActor:
        return self.agent.latent_actor(self.z, deterministic=self.agent.config.eval_deterministic)

    def adapt(self, episodes: Episodes) -> None:
        cpu = episodes.to("cpu")
        for i in range(episodes.n_tasks):
            self.contexts[i].append(self.agent.context_of(episode_transitions(cpu, i)))
        self._resample()
