"""The ``metarl`` command. It only wires the packages together; no logic lives here.

Exit codes: 0 success, 2 bad usage or configuration (the message names the bad
value), 130 interrupted by Ctrl-C after a clean shutdown.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from metarl import __version__

EXIT_USAGE = 2

BENCHES = {"core": "metarl.bench.core", "sampling": "metarl.bench.sampling"}


def _env_kwargs(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"metarl: --env-kwargs must be a JSON object, e.g. '{{\"k\": 5}}': {exc}") from None
    if not isinstance(value, dict):
        raise SystemExit(f"metarl: --env-kwargs must be a JSON object, got {type(value).__name__}")
    return value


def cmd_envs(args: argparse.Namespace) -> int:
    from metarl.envs.registry import iter_listing, make_family

    names = [args.env] if args.env else list(iter_listing())
    rows = []
    for name in names:
        family = make_family(name, **_env_kwargs(args.env_kwargs))
        rows.append(family.describe())
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']}\n    {row['description']}")
        print(f"    obs {row['observation_space']}   action {row['action_space']}")
        print(f"    horizon {row['horizon']}   trial episodes {row['trial_episodes']}   "
              f"train tasks {row['train_tasks']}   test tasks {row['test_tasks']}")
    if not args.env:
        from metarl.envs.metaworld_family import task_names

        print(f"\nml1-<task> works for each of the 50 Meta-World v3 tasks: {', '.join(task_names())}")
        print("Any gymnasium env: gym:<id>?<kwarg>=lo..hi (e.g. gym:Pendulum-v1?g=8..12); "
              "plug-ins: my_pkg.module:factory or a 'metarl.envs' entry point.")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from metarl.demo import run_demo

    return run_demo(seed=args.seed)


def cmd_bench(args: argparse.Namespace, rest: list[str]) -> int:
    module = importlib.import_module(BENCHES[args.which])
    return int(module.main(rest) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metarl", description="Meta-reinforcement learning: train, evaluate, plot.")
    parser.add_argument("--version", action="version", version=f"metarl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("envs", help="list task families with spaces, horizon and split sizes")
    p.add_argument("--env", help="describe one family (any spec, e.g. 'bandit?k=10&n=100')")
    p.add_argument("--env-kwargs", help="JSON object of family parameters, merged over the spec's")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_envs)

    p = sub.add_parser("demo", help="the built-in default job")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="speed benchmarks (outside the test suite); extra flags go to the bench")
    p.add_argument("which", choices=sorted(BENCHES))
    p.set_defaults(func=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from metarl.envs.base import EnvSpecError

    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command == "bench":
            return cmd_bench(args, rest)
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return args.func(args)
    except EnvSpecError as exc:
        print(f"metarl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
