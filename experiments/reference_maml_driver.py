"""Train the reference MAML-TRPO implementation (tristandeleu/pytorch-maml-rl) on 2D navigation, in one process.

Issue 17 compares metarl with that implementation, which no longer runs as published on this
stack: it needs ``gym`` (not gymnasium), ``torch.lstsq`` (removed from torch) and a multiprocess
sampler. This driver imports the reference's own learner code from a checkout given by
``--reference`` (its policy, linear feature baseline, ``BatchEpisodes``, ``reinforce_loss`` and
``MAMLTRPO.step``), nothing of it is copied here. What it supplies instead:

* a minimal ``gym`` module mapped onto gymnasium's spaces and seeding (for the reference's
  ``Navigation2DEnv``, used as is);
* ``torch.lstsq`` as ``torch.linalg.lstsq`` (the same normal equations);
* the sampling loop, in one process, with the semantics of the reference's ``SyncVectorEnv``
  under a 100-step time limit: an env that is done stops stepping, and each step records the
  observations, unclipped actions and rewards of the envs that stepped;
* the configuration of ``configs/maml/2d-navigation.yaml``: 20 tasks x 20 episodes, one inner
  step of 0.1, 64x64 tanh, max KL 0.01, CG 10 x damping 1e-5, line search 15 x 0.8, gamma 0.99,
  GAE lambda 1.

It writes one JSON line per iteration (training returns before and after the inner step, the
policy's mean log-std, whether the line search accepted) and the policy's weights every 50
iterations; ``--metarl-run`` then copies a metarl MAML-TRPO run's checkpoint with those weights
in it, so ``metarl evaluate`` meta-tests the reference's policy with metarl's protocol:

    git clone https://github.com/tristandeleu/pytorch-maml-rl /tmp/pytorch-maml-rl
    python experiments/reference_maml_driver.py --reference /tmp/pytorch-maml-rl --seed 1 --iterations 150 \
        --out /tmp/reference-run
    python experiments/reference_maml_driver.py --to-metarl /tmp/reference-run/policy_0150.th \
        --like experiments/results/maml-reference/point-nav-loglik-seed1 --env "point-nav?goal_test=box" \
        --metarl-run experiments/results/maml-reference/reference-impl-box-seed1
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
import yaml

#: the reference's parameter names -> metarl's Gaussian MLP policy's
NAMES = {"layer1.weight": "body.0.weight", "layer1.bias": "body.0.bias", "layer2.weight": "body.2.weight",
         "layer2.bias": "body.2.bias", "mu.weight": "head.mean.weight", "mu.bias": "head.mean.bias",
         "sigma": "head.log_std"}


def import_reference(root: Path) -> types.SimpleNamespace:
    import gymnasium

    gym = types.ModuleType("gym")
    gym.Env, gym.spaces = gymnasium.Env, gymnasium.spaces  # type: ignore[attr-defined]
    utils = types.ModuleType("gym.utils")
    utils.seeding = gymnasium.utils.seeding  # type: ignore[attr-defined]
    gym.utils = utils  # type: ignore[attr-defined]
    samplers = types.ModuleType("maml_rl.samplers")  # its multiprocess sampler is replaced below
    samplers.MultiTaskSampler = object  # type: ignore[attr-defined]
    sys.modules.update({"gym": gym, "gym.spaces": gymnasium.spaces, "gym.utils": utils,
                        "gym.utils.seeding": gymnasium.utils.seeding, "maml_rl.samplers": samplers})
    torch.lstsq = lambda b, a: (torch.linalg.lstsq(a, b).solution, None)  # type: ignore[attr-defined]
    sys.path.insert(0, str(root))
    spec = importlib.util.spec_from_file_location("reference_navigation", root / "maml_rl/envs/navigation.py")
    assert spec is not None and spec.loader is not None
    nav = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nav)
    from maml_rl.baseline import LinearFeatureBaseline
    from maml_rl.episode import BatchEpisodes
    from maml_rl.metalearners.maml_trpo import MAMLTRPO
    from maml_rl.policies.normal_mlp import NormalMLPPolicy
    from maml_rl.utils.reinforcement_learning import get_returns, reinforce_loss
    return types.SimpleNamespace(nav=nav, LinearFeatureBaseline=LinearFeatureBaseline, BatchEpisodes=BatchEpisodes,
                                 MAMLTRPO=MAMLTRPO, NormalMLPPolicy=NormalMLPPolicy, get_returns=get_returns,
                                 reinforce_loss=reinforce_loss)


def train(ref: types.SimpleNamespace, seed: int, iterations: int, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    policy = ref.NormalMLPPolicy(2, 2, hidden_sizes=(64, 64), nonlinearity=torch.tanh)
    baseline = ref.LinearFeatureBaseline(2)
    task_env = ref.nav.Navigation2DEnv(low=-0.5, high=0.5)
    task_env.seed(seed)
    envs = [ref.nav.Navigation2DEnv(low=-0.5, high=0.5) for _ in range(20)]
    learner = ref.MAMLTRPO(policy, fast_lr=0.1, first_order=False)
    loop = learner._event_loop

    def episodes_of(params):
        episodes = ref.BatchEpisodes(batch_size=len(envs), gamma=0.99)
        obs = np.stack([e.reset() for e in envs])
        done, steps, active = np.zeros(len(envs), bool), np.zeros(len(envs), int), list(range(len(envs)))
        with torch.no_grad():
            while active:
                actions = policy(torch.from_numpy(obs), params=params).sample().numpy()
                rewards, kept = np.zeros(len(active)), []
                for j, i in enumerate(active):
                    o, r, d, _ = envs[i].step(actions[j])
                    steps[i] += 1
                    rewards[j], done[i] = r, d or steps[i] >= 100
                    if not done[i]:
                        kept.append(o)
                episodes.append(obs, actions, rewards, list(active))
                active = [i for i in active if not done[i]]
                obs = np.stack(kept) if kept else None
        baseline.fit(episodes)
        episodes.compute_advantages(baseline, gae_lambda=1.0, normalize=True)
        return episodes

    def ready(x):
        future = loop.create_future()
        future.set_result(x)
        return future

    with open(out / "log.jsonl", "w") as log:
        for it in range(iterations):
            start = time.time()
            train_eps, valid_eps = [], []
            for task in task_env.sample_tasks(20):
                for e in envs:
                    e.reset_task(task)
                before = episodes_of(None)
                params = policy.update_params(ref.reinforce_loss(policy, before), step_size=0.1, first_order=True)
                train_eps.append(before)
                valid_eps.append(episodes_of(params))
            logs = learner.step([[ready(e) for e in train_eps]], [ready(e) for e in valid_eps], max_kl=1e-2,
                                cg_iters=10, cg_damping=1e-5, ls_max_steps=15, ls_backtrack_ratio=0.8)
            row = {"iteration": it, "train_return": float(ref.get_returns(train_eps).mean()),
                   "valid_return": float(ref.get_returns(valid_eps).mean()),
                   "log_std": float(policy.sigma.detach().mean()), "accepted": "loss_after" in logs,
                   "seconds": time.time() - start}
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(json.dumps(row), flush=True)
            if (it + 1) % 50 == 0 or it + 1 == iterations:
                torch.save(policy.state_dict(), out / f"policy_{it + 1:04d}.th")


def to_metarl(weights: Path, like: Path, env: str, dst: Path, iteration: int) -> None:
    """A copy of metarl run ``like``'s checkpoint at ``iteration`` holding the reference's weights."""
    shutil.rmtree(dst, ignore_errors=True)
    (dst / "checkpoints").mkdir(parents=True)
    cfg = yaml.safe_load((like / "config.yaml").read_text())
    cfg["run"]["env"] = env
    (dst / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    ckpt = dst / "checkpoints" / f"iter_{iteration:06d}"
    shutil.copytree(like / "checkpoints" / f"iter_{iteration:06d}", ckpt)
    state = torch.load(ckpt / "state.pt", weights_only=False)
    policy = state["agent"]["policy"]
    reference = torch.load(weights)
    if set(NAMES) != set(reference) or set(NAMES.values()) != set(policy):
        raise SystemExit(f"unexpected parameters: {sorted(reference)} / {sorted(policy)}")
    for name, value in reference.items():
        if policy[NAMES[name]].shape != value.shape:
            raise SystemExit(f"{name}: shape {tuple(value.shape)} against {tuple(policy[NAMES[name]].shape)}")
        policy[NAMES[name]] = value.detach().clone()
    torch.save(state, ckpt / "state.pt")
    meta = json.loads((ckpt / "meta.json").read_text())
    meta["sha256"] = hashlib.sha256((ckpt / "state.pt").read_bytes()).hexdigest()
    (ckpt / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    (dst / "checkpoints" / "latest").write_text(ckpt.name + "\n")
    print(f"wrote {dst} (env {env}) with the weights of {weights}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=Path, help="a checkout of tristandeleu/pytorch-maml-rl")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--to-metarl", type=Path, help="reference policy weights (policy_NNNN.th) to convert")
    parser.add_argument("--like", type=Path, help="the metarl MAML-TRPO run whose checkpoint is copied")
    parser.add_argument("--env", default="point-nav")
    parser.add_argument("--metarl-run", type=Path)
    parser.add_argument("--iteration", type=int, default=150, help="checkpoint iteration of --like to copy")
    args = parser.parse_args()
    if args.to_metarl is not None:
        if args.like is None or args.metarl_run is None:
            parser.error("--to-metarl needs --like and --metarl-run")
        to_metarl(args.to_metarl, args.like, args.env, args.metarl_run, args.iteration)
        return
    if args.reference is None or args.out is None:
        parser.error("training needs --reference and --out")
    torch.set_num_threads(1)
    train(import_reference(args.reference), args.seed, args.iterations, args.out)


if __name__ == "__main__":
    main()
