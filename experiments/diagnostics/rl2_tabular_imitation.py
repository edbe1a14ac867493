"""Can the RL² network *represent* the tabular-MDP skill? Imitate the myopic Bayesian rule, then score it.

RL² on tabular MDPs plateaus near 117 per trial while a myopic Bayesian rule scores 158
(``tabular_myopic_greedy.py``). This separates the two possible causes: if the same network,
trained by supervised imitation of that rule (cross-entropy on its actions, over whole trials
with the usual RL² inputs), then plays far above 117 on test tasks, the network can hold the
skill and the bottleneck is the RL signal; if it cannot, the network is the bottleneck.
Not an RL² result: imitation uses an expert RL² never sees.

    python experiments/diagnostics/rl2_tabular_imitation.py [--steps 300] [--policy gru]
        [--transition-inputs] [--torso] [--transition-key]
"""

from __future__ import annotations

import argparse
import time

import torch
from tabular_myopic_greedy import MyopicGreedy  # a sibling script: run from experiments/diagnostics

from metarl.agents.rl2 import RL2Config, build_net
from metarl.agents.rl2_actor import RL2Actor, pack_trials
from metarl.envs import make_family
from metarl.sampling import make_sampler
from metarl.sampling.episodes import trial_returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="batches of fresh expert trials")
    parser.add_argument("--trials", type=int, default=128, help="expert trials per step")
    parser.add_argument("--transition-inputs", action="store_true")
    parser.add_argument("--torso", action="store_true")
    parser.add_argument("--transition-key", action="store_true")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--policy", default="gru", choices=["gru", "lstm", "snail"])
    parser.add_argument("--updates", type=int, default=8, help="Adam steps on each batch of expert trials")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    family = make_family("tabular-mdp")
    e = family.trial_episodes
    cfg = RL2Config(policy=args.policy, transition_inputs=args.transition_inputs, torso=args.torso,
                    transition_key=args.transition_key)
    net = build_net(cfg, family, e * family.horizon)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    expert = MyopicGreedy(family)
    test_tasks = family.sample(100, rng=0, split="test")
    start = time.time()
    with make_sampler(family, "serial") as sampler:
        def play(seed: int) -> float:
            with torch.no_grad():
                eps = sampler.sample(test_tasks, RL2Actor(net, deterministic=True), 2 * e, episodes_per_trial=e,
                                     seed=seed)
            return float(trial_returns(eps).mean())

        print(f"before imitation: {play(0):.1f} per trial (argmax actions, 100 test tasks x 2 trials)")
        for step in range(1, args.steps + 1):
            tasks = family.sample(args.trials // 4, rng=step, split="train")
            eps = sampler.sample(tasks, expert, 4 * e, episodes_per_trial=e, seed=step)
            trials = pack_trials(net, eps, torch.device("cpu"))
            real = trials.mask > 0
            for _ in range(args.updates):
                dist, _ = net.heads(net.features(trials.inputs)[0])
                loss = -dist.log_prob(trials.actions)[real].mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            if step % 50 == 0 or step == args.steps:
                acc = float((dist.probs.argmax(-1) == trials.actions)[real].float().mean())
                print(f"step {step:4d}  loss {float(loss.detach()):.3f}  expert-action accuracy {acc:.3f}  "
                      f"test return {play(0):.1f}  ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
