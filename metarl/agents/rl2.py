"""RL² (Duan et al. 2016, "RL²: Fast Reinforcement Learning via Slow Reinforcement Learning"), optimized with PPO.

    require: p(T) over tasks, a sequence policy pi_theta (GRU, LSTM or SNAIL) with a value head
    while not done:
        sample a batch of tasks T_i ~ p(T)                                   # train split
        for every task, run trials of n episodes with pi_theta:              # all trials batched
            input at step t = [o_t, a_{t-1}, r_{t-1}, d_{t-1}]               # d: previous step ended an episode
            memory carried across the n episodes of a trial, reset at the next trial
        compute advantages with GAE over each whole trial,                   # the trial is ONE long episode:
            episode boundaries inside it are not value resets                #   the value of "what I know" carries on
        for a few epochs, over minibatches of whole trials:
            theta <- Adam step on PPO-clip loss + value loss - entropy bonus  # full or truncated BPTT

Meta-test: one trial of ``rounds + 1`` episodes per (task, parallel trial); round ``k``
is its ``k``-th episode, i.e. after ``k`` episodes of experience on the task.

Why GAE across the whole trial: RL² optimizes the *trial* return, so exploring
in episode 1 is rewarded by what it buys in episodes 2..n. Resetting the value at
each episode boundary would cut exactly that credit. The trial's end is a true
termination (memory is wiped), so it is never bootstrapped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from metarl.agents.base import CommonConfig, MetaAgent, episode_stats, load_optimizer_state, space_dims, to_cpu
from metarl.agents.rl2_actor import RL2Actor, RL2Net, Trials, pack_trials
from metarl.core import LinearFeatureBaseline, discounted_returns, entropy, gae, masked_mean, normalize_advantages, ppo_clip_loss
from metarl.envs import Task, TaskFamily
from metarl.nn import RecurrentPolicy, SnailPolicy
from metarl.nn.rl2_inputs import rl2_input_dim
from metarl.runs import ENV_STEPS_KEY, ConfigError, param
from metarl.sampling import Episodes
from metarl.sampling.episodes import trial_returns, trial_rounds


@dataclass(frozen=True)
class RL2Config(CommonConfig):
    policy: str = param("gru", choices=["gru", "lstm", "snail"], help="sequence model of the policy")
    meta_batch_size: int = param(32, min=1, help="tasks per iteration")
    trials_per_task: int = param(4, min=1, help="parallel trials per task per iteration")
    trial_episodes: int = param(0, min=0, help="episodes per trial (0: the family's default, e.g. bandit n)")
    hidden_size: int = param(256, min=1, help="GRU/LSTM hidden units")
    num_layers: int = param(1, min=1, help="GRU/LSTM layers")
    encoder_sizes: tuple[int, ...] = param((), min=1, help="tanh MLP widths applied to each step's inputs before the "
                                                  "GRU/LSTM, e.g. [256, 256] as the Meta-World+ reference RL² "
                                                  "(empty: the cell reads the inputs directly, as in the paper)")
    snail_embed: int = param(32, min=1, help="SNAIL input embedding width")
    snail_filters: int = param(32, min=1, help="SNAIL filters per dense block")
    snail_key_size: int = param(32, min=1, help="SNAIL attention key width")
    snail_value_size: int = param(32, min=1, help="SNAIL attention value width")
    transition_inputs: bool = param(False, help="also input the previous observation, so each step shows a whole "
                                                "transition (s, a, r, d, s'); off in the paper")
    torso: bool = param(False, help="a ReLU layer on [memory features, current observation] before the heads; "
                                    "lets per-state lookups in memory drive the action")
    transition_key: bool = param(False, help="also input vec(previous obs x previous action) and that times the "
                                             "previous reward: a one-hot (state, action) key on tabular tasks, so "
                                             "memory can file each reward under its pair; off in the paper")
    reward_input_scale: float = param(1.0, min=0.0, exclusive_min=True,
                                      help="the previous reward enters the memory times this (inputs only; returns "
                                           "are unscaled); 0.1 for Meta-World's 0-10 rewards, as its RL² wrapper does")
    init_std: float = param(1.0, min=0.0, exclusive_min=True, help="initial action std (Gaussian policies)")
    state_std: bool = param(False, help="Gaussian policies: the log-std is a layer on the memory's features, so the "
                                        "trial can explore while searching and narrow its noise once it knows the "
                                        "task (the Meta-World+ reference's head); off: one learned std per action")
    tanh_head: bool = param(False, help="with state_std: the mean and log-std pass through tanh (the Meta-World+ "
                                        "reference's activate_head): mean in [-1, 1], std in [1/e, e], so the "
                                        "noise cannot collapse")
    weight_init: str = param("torch", choices=["torch", "xavier"],
                             help="gru/lstm: PyTorch's default initialization, or the Meta-World+ reference's "
                                  "(Xavier-uniform kernels, orthogonal recurrent kernels per gate, zero biases)")
    lr: float = param(1e-3, min=0.0, exclusive_min=True, help="Adam learning rate")
    adam_eps: float = param(1e-8, min=0.0, exclusive_min=True,
                            help="Adam's epsilon (PyTorch's 1e-8; optax's, which the Meta-World+ reference uses, "
                                 "is 1e-5: with raw-advantage gradients it damps the steps of rarely-moved weights)")
    epochs: int = param(4, min=1, help="PPO epochs per iteration")
    minibatches: int = param(4, min=1, help="minibatches of whole trials per epoch")
    clip: float = param(0.2, min=0.0, exclusive_min=True, help="PPO clip range")
    vf_coef: float = param(0.5, min=0.0, help="value loss weight (baseline=value_head)")
    baseline: str = param("value_head", choices=["value_head", "linear"],
                          help="GAE's values: the network's value head, or a linear feature baseline fitted by least "
                               "squares on each trial's own returns (the Meta-World+ reference RL²'s; the value "
                               "head is then not trained)")
    baseline_inputs: str = param("obs", choices=["obs", "memory"],
                                 help="baseline=linear: regress each trial's returns on the observation alone, or "
                                      "on the memory's inputs (observation, previous action, scaled previous "
                                      "reward, done), as the Meta-World+ reference fits it; the previous reward "
                                      "tells which stage of a manipulation task the arm is in")
    ent_coef: float = param(0.01, min=0.0, help="entropy bonus weight")
    normalize_advantages: bool = param(True, help="standardize the advantages per trial (zero mean, unit std); false: "
                                                  "advantages in return units, as every Meta-World+ reference RL² "
                                                  "recipe (the entropy bonus then weighs against the reward scale)")
    max_grad_norm: float = param(1.0, min=0.0, exclusive_min=True, help="global gradient norm clip")
    discount: float = param(0.99, min=0.0, max=1.0, help="discount gamma over the whole trial")
    gae_lambda: float = param(0.95, min=0.0, max=1.0, help="GAE lambda over the whole trial")
    bptt: int = param(0, min=0, help="truncated BPTT length in steps (0: backprop through whole trials; GRU/LSTM)")
    bptt_stride: int = param(0, min=0, help="with bptt: segment starts this many steps apart (0: bptt, no overlap); "
                                          "less than bptt overlaps segments, so every step past the first "
                                          "bptt - stride is trained with at least that much memory before it "
                                          "(the Meta-World+ reference: 250-step chunks, stride 200)")
    step_per_segment: bool = param(False, help="with bptt: one Adam step per segment (the Meta-World+ reference's "
                                               "scheme) instead of one per minibatch of whole trials")
    value_warmup: int = param(0, min=0, help="first N iterations only refit the value head (least squares on "
                                           "frozen features), e.g. after init_from changed the return scale")
    value_norm: float = param(0.9, min=0.0, max=1.0, help="momentum of the PopArt return statistics the value "
                                                          "head is normalized by (1.0: off, raw returns)")
    init_from: str | None = param(None, help="warm-start the network from this rl2 run dir or checkpoint "
                                             "(a curriculum, e.g. n=10 -> n=100 trials); optimizer starts fresh")


def build_net(config: RL2Config, family: TaskFamily, trial_steps: int) -> RL2Net:
    obs_dim, _ = space_dims(family.observation_space)
    act_dim, discrete = space_dims(family.action_space)
    extra = RL2Net.extra_input_dim(obs_dim, act_dim, transition_inputs=config.transition_inputs,
                                   transition_key=config.transition_key)
    if config.policy == "snail":
        policy: RecurrentPolicy | SnailPolicy = SnailPolicy(
            obs_dim, act_dim, discrete=discrete, max_len=trial_steps, embed_size=config.snail_embed,
            filters=config.snail_filters, key_size=config.snail_key_size, value_size=config.snail_value_size,
            init_std=config.init_std, extra_inputs=extra, state_std=config.state_std,
            tanh_head=config.tanh_head)
    else:
        policy = RecurrentPolicy(obs_dim, act_dim, discrete=discrete, hidden_size=config.hidden_size,
                                 num_layers=config.num_layers, cell=config.policy,  # type: ignore[arg-type]
                                 init_std=config.init_std, extra_inputs=extra,
                                 encoder_sizes=config.encoder_sizes, state_std=config.state_std,
                                 tanh_head=config.tanh_head, weight_init=config.weight_init)  # type: ignore[arg-type]
    return RL2Net(policy, transition_inputs=config.transition_inputs, torso=config.torso,
                  transition_key=config.transition_key, reward_input_scale=config.reward_input_scale)


class RL2(MetaAgent):
    name = "rl2"
    summary = "RL² with policy=gru, lstm or snail"
    rounds_are_trial_episodes = True
    Config = RL2Config

    def __init__(self, config: RL2Config, family: str | TaskFamily, *, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(config, family, seed=seed, device=device)
        if config.step_per_segment and not config.bptt:
            raise ConfigError("step_per_segment=true needs segments: set bptt to a segment length in steps "
                              "(e.g. bptt=250), or step_per_segment=false")
        if config.bptt and config.policy == "snail":
            raise ConfigError("bptt: truncated BPTT needs a recurrent policy (gru/lstm); SNAIL attends to the "
                              "whole trial, set bptt=0")
        if config.encoder_sizes and config.policy == "snail":
            raise ConfigError(f"encoder_sizes {list(config.encoder_sizes)}: the input encoder is for gru/lstm; "
                              "SNAIL embeds its inputs itself (snail_embed), set encoder_sizes=[]")
        if config.weight_init != "torch" and config.policy == "snail":
            raise ConfigError(f"weight_init={config.weight_init} initializes a gru/lstm cell; SNAIL keeps "
                              "PyTorch's initialization, set weight_init=torch")
        if config.bptt_stride and not config.bptt:
            raise ConfigError(f"bptt_stride={config.bptt_stride} spaces truncated-BPTT segments; set bptt to a "
                              "segment length in steps as well (e.g. bptt=250 bptt_stride=200)")
        if config.bptt_stride > config.bptt:
            raise ConfigError(f"bptt_stride={config.bptt_stride} is longer than bptt={config.bptt}: segments "
                              "would skip steps; allowed: 1 to bptt (0: bptt)")
        if config.baseline_inputs != "obs" and config.baseline != "linear":
            raise ConfigError(f"baseline_inputs={config.baseline_inputs} picks the linear baseline's features; "
                              "set baseline=linear, or baseline_inputs=obs")
        if config.tanh_head and not config.state_std:
            raise ConfigError("tanh_head=true bounds the state-dependent std head; set state_std=true as well")
        if config.state_std and space_dims(self.family.action_space)[1]:
            raise ConfigError("state_std=true needs a continuous (Box) action space; "
                              f"{self.family.full_name}'s actions are discrete, set state_std=false")
        self.trial_episodes = config.trial_episodes or self.family.trial_episodes
        self.net = build_net(config, self.family, self.trial_episodes * self.family.horizon).to(self.device)
        if config.init_from:
            self.warm_start(config.init_from, self.net.load_compatible,
                            f"family {self.family.full_name}, policy {config.policy}, hidden_size {config.hidden_size}, "
                            f"encoder_sizes {list(config.encoder_sizes)}, state_std {config.state_std}, "
                            f"transition_inputs {config.transition_inputs}, torso {config.torso}, "
                            f"transition_key {config.transition_key}")
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr, eps=config.adam_eps)

    # -- the algorithm --------------------------------------------------------------------
    def collect(self, tasks: Sequence[Task], trials: int, episodes_per_trial: int, seed: int) -> Episodes:
        """``trials`` trials per task, each ``episodes_per_trial`` episodes with memory carried across them."""
        return self.sampler.sample(tasks, RL2Actor(self.net), trials * episodes_per_trial,
                                   episodes_per_trial=episodes_per_trial, seed=seed)

    def advantages(self, trials: Trials) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """GAE over each whole trial (one long episode, terminal at the trial's end).

        Also returns the value targets and old values, both in return units, after updating the
        return statistics with these targets (``value_norm``)."""
        if self.config.baseline == "linear":
            values = self.linear_baseline_values(trials)
        else:
            with torch.no_grad():
                features, _ = self.net.features(trials.inputs)
                values = self.net.denormalize(self.net.heads(features)[1])
        adv, returns = gae(trials.rewards, values, trials.mask, gamma=self.config.discount,
                           gae_lambda=self.config.gae_lambda)
        if self.config.value_norm < 1.0 and self.config.baseline == "value_head":
            self.net.update_return_stats(returns[trials.mask > 0], self.config.value_norm)
        if self.config.normalize_advantages:
            adv = normalize_advantages(adv, trials.mask)
        return adv, returns, values

    @torch.no_grad()
    def linear_baseline_values(self, trials: Trials) -> torch.Tensor:
        """``baseline=linear``: each trial's discounted returns regressed on ``[x, x², t, t², t³, 1]``.

        ``x`` is the observation, or with ``baseline_inputs=memory`` the memory's own inputs (observation,
        previous action, scaled previous reward, done). The trial is one episode (``t`` counts steps from
        its start, episode boundaries removed), as the reference fits it; the fit sees the trial's own
        returns, so it knows the task without any memory, which is what makes it a low-variance baseline
        for a policy that must still find the task."""
        returns = discounted_returns(trials.rewards, trials.mask, gamma=self.config.discount)
        policy = self.net.policy
        width = policy.obs_dim if self.config.baseline_inputs == "obs" else rl2_input_dim(policy.obs_dim,
                                                                                          policy.action_dim)
        obs = trials.inputs[..., :width]
        one_episode = (obs.unsqueeze(1), returns.unsqueeze(1), trials.mask.unsqueeze(1))  # [B, 1, L, ...]
        return LinearFeatureBaseline().fit_predict(*one_episode)[:, 0]

    def minibatch_step(self, trials: Trials, adv: torch.Tensor, returns: torch.Tensor) -> dict[str, float]:
        """One Adam step on PPO's loss over whole trials; with ``bptt`` the trials are cut into segments
        whose gradients stop at segment starts (the memory itself flows on), accumulated into one step,
        or with ``step_per_segment`` one step per segment (later segments then run on updated weights,
        from the memory the earlier weights left: the reference's scheme, more steps per pass)."""
        cfg = self.config
        length = trials.mask.shape[1]
        seg = cfg.bptt or length
        stride = cfg.bptt_stride or seg
        starts = range(0, length, stride)
        # overlapping segments count their shared steps in each, so the mean is over all segments' steps
        total = sum(trials.mask[:, s:s + seg].sum() for s in starts).clamp(min=1.0)
        per_segment = cfg.step_per_segment
        state: Any = None
        head = cfg.baseline == "value_head"  # with the linear baseline the value head is neither trained nor logged
        logged = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac", "grad_norm")
        sums = {key: 0.0 for key in logged if head or key != "value_loss"}
        self.optimizer.zero_grad(set_to_none=True)
        for start in starts:
            sl = slice(start, start + seg)
            mask = trials.mask[:, sl]
            weight = mask.sum() / total  # masked means per segment -> one mean over the minibatch
            features, state = self._segment_features(trials.inputs[:, sl], state, stride)
            dist, values = self.net.heads(features)
            log_probs = dist.log_prob(trials.actions[:, sl])
            pg = ppo_clip_loss(log_probs, trials.log_probs[:, sl], adv[:, sl], mask, clip=cfg.clip)
            ent = entropy(dist, mask)
            terms = [("policy_loss", pg), ("entropy", ent)]
            if head:
                vf = 0.5 * masked_mean((values - self.net.normalize(returns[:, sl])) ** 2, mask)
                loss = pg + cfg.vf_coef * vf - cfg.ent_coef * ent
                terms.append(("value_loss", vf))
            else:
                loss = pg - cfg.ent_coef * ent
            (loss if per_segment else loss * weight).backward()
            if per_segment and bool(mask.any()):  # an all-padding segment has no gradient, so no Adam step
                sums["grad_norm"] += float(self._clipped_step()) * float(weight)
            with torch.no_grad():
                log_ratio = log_probs - trials.log_probs[:, sl]
                kl = masked_mean(log_ratio.exp() - 1 - log_ratio, mask)
                clipped = masked_mean(((log_ratio.exp() - 1).abs() > cfg.clip).float(), mask)
            for key, val in (*terms, ("approx_kl", kl), ("clip_frac", clipped)):
                sums[key] += float(val.detach() * weight)
        if not per_segment:
            sums["grad_norm"] = float(self._clipped_step())
        return sums

    def _segment_features(self, inputs: torch.Tensor, state: Any, stride: int) -> tuple[torch.Tensor, Any]:
        """The memory's features over one segment, and the detached state the next segment starts from.

        Without overlap that is the state at the segment's end. With ``bptt_stride`` below the segment
        length the next segment starts ``stride`` steps in, so the cell runs the first ``stride`` steps,
        keeps that state, and runs on from it: one graph over the whole segment, the reference's carry.
        """
        if stride >= inputs.shape[1]:
            features, state = self.net.features(inputs, state)
            return features, _detach(state)
        head, mid = self.net.features(inputs[:, :stride], state)
        tail, _ = self.net.features(inputs[:, stride:], mid)
        return torch.cat([head, tail], dim=1), _detach(mid)

    def _clipped_step(self) -> torch.Tensor:
        """Clip the gradient's global norm, take the Adam step, clear the gradient; the norm before clipping."""
        norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    def train_iteration(self, it: int) -> dict[str, float]:
        cfg = self.config
        tasks = self.family.sample(cfg.meta_batch_size, self.rng, split="train")
        episodes = self.collect(tasks, cfg.trials_per_task, self.trial_episodes, seed=self.next_seed())
        metrics = self.update(episodes, value_only=it < cfg.value_warmup)
        e = self.trial_episodes
        totals = trial_returns(episodes)
        # train/return (shared by every agent) is per trial, the unit RL² optimizes and its paper reports;
        # trial_return is the same number under its name from before the shared vocabulary
        metrics.update(episode_stats(episodes, returns=totals, family=self.family))
        metrics.update({
            "trial_return": float(totals.mean()),
            "first_episode_return": float(episodes.returns[:, 0::e].mean()),
            "last_episode_return": float(episodes.returns[:, e - 1::e].mean()),
            ENV_STEPS_KEY: episodes.n_steps,
        })
        metrics.update(self.periodic_eval(it, cfg.eval))
        return metrics

    def update(self, episodes: Episodes, value_only: bool = False) -> dict[str, float]:
        """PPO epochs over minibatches of whole trials (drawn with the agent's generator, so resumes replay)."""
        cfg = self.config
        trials = pack_trials(self.net, episodes, self.device)
        adv, returns, values = self.advantages(trials)
        if value_only:
            return {"explained_variance": _explained_variance(values, returns, trials.mask),
                    "value_refit_loss": self.refit_value_head(trials, returns)}
        n = trials.mask.shape[0]
        logs: list[dict[str, float]] = []
        for _ in range(cfg.epochs):
            for idx in torch.from_numpy(self.rng.permutation(n)).to(self.device).tensor_split(min(cfg.minibatches, n)):
                logs.append(self.minibatch_step(Trials(*(x[idx] for x in trials)), adv[idx], returns[idx]))
        metrics = {key: sum(d[key] for d in logs) / len(logs) for key in logs[0]}
        metrics["explained_variance"] = _explained_variance(values, returns, trials.mask)
        return metrics

    @torch.no_grad()
    def refit_value_head(self, trials: Trials, returns: torch.Tensor) -> float:
        """Least-squares fit of the linear value head on the frozen features (``value_warmup``).

        After ``init_from`` the value head predicts returns of the old trial length (10x too small from
        n=10 to n=100); its errors would become systematic advantage errors that PPO follows. A closed-form
        refit fixes the scale at once, where Adam would move a bias by only ~lr per step.
        """
        features, _ = self.net.features(trials.inputs)
        real = trials.mask > 0
        x = torch.cat([features[real], torch.ones(int(real.sum()), 1, device=features.device)], dim=1).double()
        y = self.net.normalize(returns[real]).double().unsqueeze(1)
        coef = torch.linalg.solve(x.T @ x + 1e-3 * torch.eye(x.shape[1], dtype=x.dtype, device=x.device), x.T @ y)
        self.net.value.weight.copy_(coef[:-1, 0].to(self.net.value.weight.dtype).unsqueeze(0))
        self.net.value.bias.copy_(coef[-1].to(self.net.value.bias.dtype))
        return float(0.5 * ((x @ coef - y) ** 2).mean())

    # -- meta-test ------------------------------------------------------------------------
    def adaptation_session(self, n_tasks: int, seed: int = 0) -> _TrialSession:
        return _TrialSession(RL2Actor(self.net))

    def meta_test(self, tasks: Sequence[Task], rounds: int, episodes_per_round: int, seed: int) -> list[Episodes]:
        """``episodes_per_round`` parallel trials of ``rounds + 1`` episodes per task; round k = episode k."""
        return trial_rounds(self.collect(tasks, episodes_per_round, rounds + 1, seed=seed))

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"net": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                "optimizer": to_cpu(self.optimizer.state_dict()),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.net.load_compatible({k: v.to(self.device) for k, v in state["net"].items()})
        load_optimizer_state(self.optimizer, state["optimizer"])  # Adam moves its state to the params' device
        self.rng.bit_generator.state = state["rng"]


class _TrialSession:
    """RL²'s meta-test from outside: one trial per task; adapting is the memory the actor carries."""

    def __init__(self, actor: RL2Actor) -> None:
        self.actor = actor

    def adapt(self, episodes: Episodes) -> None:
        return None


def _detach(state: Any) -> Any:
    """Stop gradients at a truncated-BPTT segment boundary (GRU tensor or LSTM tuple)."""
    if state is None or isinstance(state, torch.Tensor):
        return None if state is None else state.detach()
    return tuple(s.detach() for s in state)


def _explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var[returns - values] / Var[returns] over real steps: how much the value head knows."""
    real = mask > 0
    y, v = returns[real], values[real]
    var = y.var()
    return float(1 - (y - v).var() / var) if var > 0 else float("nan")
