"""metarl: meta-reinforcement learning on a current PyTorch / gymnasium / Meta-World stack.

The package is organised along the data flow of a meta-RL run::

    TaskFamily (metarl.envs) -> Sampler (metarl.sampling) -> Agent (metarl.agents)
    -> Evaluator (metarl.evaluation); Run machinery in metarl.runs; CLI in metarl.cli.
"""

__version__ = "0.1.0"

#: Seeds feed numpy, torch and the sampler's hash alike, so they must fit all three: [0, 2**32).
SEED_LIMIT = 2**32
