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

BENCHES = {"core": "metarl.bench.core", "sampling": "metarl.bench.sampling", "rl2": "metarl.bench.rl2",
           "reptile": "metarl.bench.reptile"}


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


def show_config(agent: str | None, env: str | None, config_file: str | None, overrides: list[str]) -> int:
    """Every settable key with its resolved value and help, so ``--set`` needs no source reading."""
    from metarl.agents import agent_class
    from metarl.api import defaults_file
    from metarl.runs import resolve_config, to_dict
    from metarl.runs.config import field_help

    if agent is None:
        print("metarl: error: --show-config needs AGENT (and optionally --env for its defaults)", file=sys.stderr)
        return EXIT_USAGE
    cls = agent_class(agent).Config
    cfg = resolve_config(cls, defaults_file=defaults_file(agent, env) if env else None, config_file=config_file,
                         overrides=overrides)

    def flat(d: dict, prefix: str = "") -> dict:
        out: dict = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    helps = field_help(cls)
    for key, value in flat(to_dict(cfg)).items():
        print(f"{key} = {json.dumps(value)}    # {helps.get(key, '')}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from metarl.api import train

    if args.resume is None and not args.show_config and (args.agent is None or args.env is None):
        print("metarl: error: train needs AGENT and --env (or --resume RUN_DIR)", file=sys.stderr)
        return EXIT_USAGE
    overrides = list(args.set or [])
    for flag, key in (("iterations", "trainer.iterations"), ("sampler", "sampling.backend"),
                      ("workers", "sampling.workers"), ("ray_address", "sampling.ray_address"),
                      ("eval_every", "eval.every"), ("checkpoint_every", "trainer.checkpoint_every")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.no_progress:
        overrides.append("trainer.progress=false")
    if args.show_config:
        return show_config(args.agent, args.env, args.config, overrides)
    env = args.env
    if env and args.env_kwargs:
        from metarl.envs.registry import with_params

        env = with_params(env, _env_kwargs(args.env_kwargs))
    outcome = train(args.agent, env, config_file=args.config, overrides=overrides, seed=args.seed,
                    device=args.device, run_dir=args.run_dir, resume=args.resume, threads=args.threads)
    print(f"run directory: {outcome.run_dir}")
    return outcome.result.exit_code


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from metarl.api import configure_threads, load_agent
    from metarl.evaluation.plots import plot_adaptation
    from metarl.evaluation.protocol import evaluate_agent
    from metarl.evaluation.report import format_report
    from metarl.runs import RunDir

    configure_threads(args.threads)
    run = RunDir(Path(args.run_dir))
    if not run.config_file.is_file():
        print(f"metarl: error: {run.path} is not a metarl run directory (no config.yaml)", file=sys.stderr)
        return EXIT_USAGE
    agent = load_agent(run.path, args.checkpoint, device=args.device)
    pretrained = load_agent(args.pretrained, device=args.device) if args.pretrained else None
    baselines = [b for b in (args.baselines or "").split(",") if b]
    out_dir = Path(args.out) if args.out else run.eval
    csv_path, json_path, rows = evaluate_agent(
        agent, run=run.path.name, out_dir=out_dir, split=args.split, n_tasks=args.tasks, rounds=args.rounds,
        episodes_per_round=args.episodes, seeds=[args.seed + i for i in range(args.seeds)], baselines=baselines,
        pretrained=pretrained, progress=not args.no_progress)
    png = out_dir / "adaptation.png"
    plot_adaptation(csv_path, png, out_dir / "adaptation.svg", x="env_steps" if "ppo-scratch" in baselines else "round")
    agent.close()
    print(format_report(rows, agent.name))
    print(f"curves: {csv_path}\n        {json_path}\nplot:   {png}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from metarl.evaluation.plots import plot_adaptation, plot_training

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [Path(r) for r in args.run_dirs]
    for r in runs:
        if not (r / "config.yaml").is_file():
            print(f"metarl: error: {r} is not a metarl run directory (no config.yaml)", file=sys.stderr)
            return EXIT_USAGE
    plot_training(runs, out / "training.png", out / "training.svg")
    print(f"training curves: {out / 'training.png'}")
    curves = [r / "eval" / "curves.csv" for r in runs if (r / "eval" / "curves.csv").is_file()]
    if curves:
        plot_adaptation(curves, out / "adaptation.png", out / "adaptation.svg", x=args.x, per_run=len(curves) > 1)
        print(f"adaptation curves: {out / 'adaptation.png'}")
    return 0


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

    p = sub.add_parser("train", help="train a meta-RL agent (or --resume a run)")
    p.add_argument("agent", nargs="?", help="maml-trpo")
    p.add_argument("--env", help="task family, e.g. point-nav, halfcheetah-vel, ml1-reach")
    p.add_argument("--env-kwargs", help="JSON object of family parameters")
    p.add_argument("--config", help="YAML file of hyperparameters (over the family defaults in experiments/configs)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config key (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--sampler", help="rollout backend: serial, process or ray")
    p.add_argument("--workers", type=int, help="sampler workers (process/ray)")
    p.add_argument("--ray-address", help="join an existing Ray cluster")
    p.add_argument("--iterations", type=int, help="total training iterations")
    p.add_argument("--checkpoint-every", type=int, help="checkpoint every N iterations")
    p.add_argument("--eval-every", type=int, help="meta-test on held-out tasks every N iterations")
    p.add_argument("--run-dir", help="where to write the run (default runs/<agent>-<env>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    p.add_argument("--threads", type=int, help="torch CPU threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--show-config", action="store_true",
                   help="print every config key with its resolved value and help, then exit")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="meta-test a trained run: adaptation curves with baselines")
    p.add_argument("run_dir")
    p.add_argument("--checkpoint", help="checkpoint directory (default: the latest)")
    p.add_argument("--split", default="test", help="train or test (default test)")
    p.add_argument("--tasks", type=int, default=10, help="tasks per seed")
    p.add_argument("--rounds", type=int, default=3, help="adaptation rounds after round 0")
    p.add_argument("--episodes", type=int, default=10, help="episodes per round and task")
    p.add_argument("--seed", type=int, default=0, help="first evaluation seed")
    p.add_argument("--seeds", type=int, default=1, help="number of evaluation seeds")
    p.add_argument("--baselines", help="comma list of: random, ppo-scratch, pretrained-finetune")
    p.add_argument("--pretrained", metavar="RUN_DIR", help="multi-task run for the pretrained-finetune baseline "
                   "(multitask-trpo, or reptile-ppo with meta_update=joint)")
    p.add_argument("--out", help="output folder (default RUN_DIR/eval)")
    p.add_argument("--device", help="override the run's device")
    p.add_argument("--threads", type=int)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("plot", help="training and adaptation curves of one or more runs in one figure")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--out", default="plots", help="output folder for PNG and SVG")
    p.add_argument("--x", default="round", choices=["round", "env_steps"], help="x axis of adaptation curves")
    p.set_defaults(func=cmd_plot)

    # add_help=False: `metarl bench sampling --help` must reach the bench's own parser.
    p = sub.add_parser("bench", add_help=False,
                       help="speed benchmarks (outside the test suite); `metarl bench NAME --help` for flags")
    p.add_argument("which", choices=sorted(BENCHES))
    p.set_defaults(func=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from metarl.envs.base import EnvSpecError
    from metarl.evaluation.curves import CurveSchemaError
    from metarl.runs import EXIT_FAILURE, CheckpointError, ConfigError, RunDirError
    from metarl.sampling.errors import SamplerConfigError

    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command == "bench":
            return cmd_bench(args, rest)
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return args.func(args)
    except (EnvSpecError, ConfigError, RunDirError, SamplerConfigError, CurveSchemaError) as exc:
        print(f"metarl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CheckpointError as exc:
        print(f"metarl: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
