"""The ``metarl`` command. It only wires the packages together; no logic lives here.

Exit codes: 0 success; 1 a failure at run time, reported on one line (the traceback only with
``--debug`` or ``METARL_DEBUG=1``); 2 bad usage: any :class:`~metarl.errors.UsageError`, or a place
the user named that cannot be written (the message names the bad value); 130 interrupted by
Ctrl-C or SIGTERM after a clean shutdown.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from metarl import SEED_LIMIT, __version__

#: The same values as metarl.runs.interrupt, spelled here so ``metarl envs`` starts without importing torch.
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEBUG_ENV = "METARL_DEBUG"

BENCHES = {"core": "metarl.bench.core", "sampling": "metarl.bench.sampling", "rl2": "metarl.bench.rl2",
           "reptile": "metarl.bench.reptile", "metaworld": "metarl.bench.metaworld",
           "maml": "metarl.bench.maml", "device": "metarl.bench.device", "pearl": "metarl.bench.pearl"}

#: OS errors that mean "the place you told me to write cannot be written": the user's to fix (exit 2).
_PLACE_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EPERM,
                 errno.EDQUOT, errno.ENAMETOOLONG, errno.ENOENT}


def _env_kwargs(text: str | None) -> dict:
    from metarl.errors import UsageError

    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--env-kwargs {text!r} is not JSON ({exc.msg}); allowed: a JSON object, "
                         "e.g. '{\"k\": 5}'") from None
    if not isinstance(value, dict):
        raise UsageError(f"--env-kwargs {text!r} is a JSON {type(value).__name__}; allowed: a JSON object, "
                         "e.g. '{\"k\": 5}'")
    return value


def _out_folder(text: str, flag: str = "--out") -> Path:
    """An output folder that exists or can be created, checked before any work is done."""
    from metarl.errors import UsageError

    out = Path(text)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {text}: exists and is not a folder; allowed: a folder (new or existing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{flag} {text}: cannot create this folder: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK):
        raise UsageError(f"{flag} {text}: the folder is not writable")
    return out


def _int_at_least(low: int, name: str):
    """An argparse type: an integer >= ``low``, else exit 2 with the value and the bound."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer; allowed: an integer >= {low}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is out of range; allowed: an integer >= {low}")
        return value

    parse.__name__ = name  # argparse names the type in its messages
    return parse


_SEED_MAX = SEED_LIMIT - 1


def _seed(text: str) -> int:
    value = _int_at_least(0, "seed")(text)
    if value > _SEED_MAX:
        raise argparse.ArgumentTypeError(f"{value} is out of range; allowed: an integer in [0, {_SEED_MAX}]")
    return value


def cmd_envs(args: argparse.Namespace) -> int:
    from metarl.envs.registry import iter_listing, make_family

    extra = _env_kwargs(args.env_kwargs)
    names = [args.env] if args.env else list(iter_listing())
    rows = []
    for name in names:
        family = make_family(name, **extra)
        rows.append(family.describe())
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
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
    return EXIT_OK


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
    return EXIT_OK


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
    from metarl.api import configure_threads, load_agent
    from metarl.evaluation.manifest import check_comparable
    from metarl.evaluation.plots import plot_adaptation
    from metarl.evaluation.protocol import evaluate_agent
    from metarl.evaluation.report import format_report
    from metarl.runs import RunDir

    configure_threads(args.threads)
    run = RunDir(Path(args.run_dir))
    if not run.config_file.is_file():
        print(f"metarl: error: {run.path} is not a metarl run directory (no config.yaml)", file=sys.stderr)
        return EXIT_USAGE
    out_dir = _out_folder(args.out) if args.out else run.eval
    if args.pretrained:
        check_comparable([run.path, Path(args.pretrained)], args.allow_mixed)
    if args.protocol == "metaworld":
        return _evaluate_metaworld(args, run, out_dir)
    baselines = [b for b in (args.baselines or "").split(",") if b]
    agent = load_agent(run.path, args.checkpoint, device=args.device)
    pretrained = None
    try:
        pretrained = load_agent(args.pretrained, device=args.device) if args.pretrained else None
        csv_path, json_path, rows = evaluate_agent(
            agent, run=run.path.name, out_dir=out_dir, split=args.split, n_tasks=args.tasks, rounds=args.rounds,
            episodes_per_round=args.episodes, seeds=[args.seed + i for i in range(args.seeds)], baselines=baselines,
            pretrained=pretrained, progress=not args.no_progress)
    finally:  # an interrupt or a failure must not leave sampler workers behind
        agent.close()
        if pretrained is not None:
            pretrained.close()
    png = out_dir / "adaptation.png"
    plot_adaptation(csv_path, png, out_dir / "adaptation.svg", x="env_steps" if "ppo-scratch" in baselines else "round")
    print(format_report(rows, agent.name, per_trial=agent.rounds_are_trial_episodes))
    print(f"curves: {csv_path}\n        {json_path}\nplot:   {png}")
    return EXIT_OK


def _evaluate_metaworld(args: argparse.Namespace, run: Any, out_dir: Path) -> int:
    """``--protocol metaworld``: Meta-World's own evaluator on the benchmark's test goals."""
    from metarl.api import load_agent
    from metarl.evaluation.metaworld_eval import MetaWorldProtocol, evaluate_metaworld, format_metaworld

    protocol = MetaWorldProtocol(meta_batch_size=args.mw_meta_batch_size, goals_per_class=args.mw_goals_per_class,
                                 adaptation_steps=args.mw_adaptation_steps,
                                 adaptation_episodes=args.mw_adaptation_episodes,
                                 evaluation_episodes=args.mw_evaluation_episodes, num_evals=args.mw_num_evals,
                                 max_episode_steps=args.mw_max_episode_steps, seed=args.seed,
                                 deterministic_eval=not args.mw_sampled_eval,
                                 restart_from_adapted=not args.mw_carry_memory)
    agent = load_agent(run.path, args.checkpoint, device=args.device)
    try:
        result = evaluate_metaworld(agent, protocol, out_dir=out_dir, run=run.path.name)
    finally:
        agent.close()
    print(format_metaworld(result))
    name = "metaworld_protocol.json" if protocol.deterministic_eval else "metaworld_protocol_sampled.json"
    print(f"results: {out_dir / name}")
    return EXIT_OK


def cmd_plot(args: argparse.Namespace) -> int:
    from metarl.evaluation.curves import curve_file
    from metarl.evaluation.manifest import check_comparable
    from metarl.evaluation.plots import plot_adaptation, plot_training

    runs = [Path(r) for r in args.run_dirs]
    for r in runs:
        if not (r / "config.yaml").is_file():
            print(f"metarl: error: {r} is not a metarl run directory (no config.yaml)", file=sys.stderr)
            return EXIT_USAGE
    check_comparable(runs, args.allow_mixed)
    out = _out_folder(args.out)
    plot_training(runs, out / "training.png", out / "training.svg")
    print(f"training curves: {out / 'training.png'}")
    curves = [found for r in runs if (found := curve_file(r / "eval")) is not None]
    if curves:
        plot_adaptation(curves, out / "adaptation.png", out / "adaptation.svg", x=args.x, per_run=len(curves) > 1)
        print(f"adaptation curves: {out / 'adaptation.png'}")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace, rest: list[str]) -> int:
    module = importlib.import_module(BENCHES[args.which])
    return int(module.main(rest) or 0)


class _Parser(argparse.ArgumentParser):
    """argparse with an optional ``describe``: a description computed only when help is shown.

    ``metarl train --help`` lists the registered agents, and looking them up imports every agent
    module; computing it on demand keeps ``metarl envs`` (and every other command) from paying that.
    """

    def __init__(self, *args: Any, describe: Callable[[], str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._describe = describe

    def format_help(self) -> str:
        if self._describe is not None:
            self.description = self._describe()
        return super().format_help()


def _train_description() -> str:
    from metarl.agents import agent_help

    return f"Train a meta-RL agent. AGENT is one of: {agent_help()}."


EVALUATE_EPILOG = """\
what a round is:
  MAML-TRPO, multi-task TRPO, Reptile-PPO, joint PPO: round 0 scores the policy before adaptation; round k
    scores it after k adaptation steps, each step taking the --episodes episodes of the round before it.
  RL² (rl2): each task runs --episodes independent trials of rounds+1 episodes; round k scores the k-th
    episode of every trial (round 0 is the first episode, with an empty memory). The report adds the
    return per trial (the sum over a trial's episodes), the number RL² tables report.
"""


def _common(debug_only: bool = False) -> argparse.ArgumentParser:
    """Flags every subcommand accepts, so ``metarl evaluate RUN --debug`` works where users type it."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=f"show the full traceback of a failure (also: {DEBUG_ENV}=1)")
    if not debug_only:
        parent.add_argument("--plugin", action="append", metavar="MODULE", default=argparse.SUPPRESS,
                            help="vouch for a plug-in module: import it (its register() calls run) and allow run "
                                 "directories that name it (repeatable; also METARL_PLUGINS=mod1,mod2)")
    return parent


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="metarl", description="Meta-reinforcement learning: train, evaluate, plot.",
                                     parents=[_common()],
                                     epilog="exit codes: 0 success, 1 failure at run time, 2 bad usage, 130 interrupted")
    parser.add_argument("--version", action="version", version=f"metarl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = [_common()]

    p = sub.add_parser("envs", help="list task families with spaces, horizon and split sizes", parents=common,
                       formatter_class=fmt)
    p.add_argument("--env", help="describe one family (any spec, e.g. 'bandit?k=10&n=100')")
    p.add_argument("--env-kwargs", help="JSON object of family parameters, merged over the spec's")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_envs)

    p = sub.add_parser("demo", help="the built-in default job", parents=common, formatter_class=fmt)
    p.add_argument("--seed", type=_seed, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train a meta-RL agent (or --resume a run)", parents=common, formatter_class=fmt,
                       describe=_train_description)
    p.add_argument("agent", nargs="?", metavar="AGENT", help="an agent name (listed above), e.g. maml-trpo or rl2")
    p.add_argument("--env", help="task family, e.g. point-nav, halfcheetah-vel, ml1-reach, 'bandit?k=5&n=10'")
    p.add_argument("--env-kwargs", help="JSON object of family parameters")
    p.add_argument("--config", help="YAML file of hyperparameters (over the family defaults shipped in metarl/defaults)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config key (repeatable)")
    p.add_argument("--seed", type=_seed, default=0, help="seeds the weights, tasks and rollouts")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--sampler", help="rollout backend: auto, serial, process, ray or tensor (key sampling.backend)")
    p.add_argument("--workers", type=_int_at_least(1, "workers"), help="sampler workers (process/ray)")
    p.add_argument("--ray-address", help="join an existing Ray cluster")
    p.add_argument("--iterations", type=_int_at_least(1, "iterations"), help="total training iterations")
    p.add_argument("--checkpoint-every", type=_int_at_least(1, "checkpoint_every"), help="checkpoint every N iterations")
    p.add_argument("--eval-every", type=_int_at_least(0, "eval_every"),
                   help="meta-test on held-out tasks every N iterations (0: never)")
    p.add_argument("--run-dir", help="where to write the run (default runs/<agent>-<env>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    p.add_argument("--threads", type=_int_at_least(1, "threads"), help="torch CPU threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--show-config", action="store_true",
                   help="print every config key with its resolved value and help, then exit")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="meta-test a trained run: adaptation curves with baselines", parents=common,
                       formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(prog, width=110),
                       epilog=EVALUATE_EPILOG)
    p.add_argument("run_dir", help="a run directory (runs/<agent>-<env>-<time>)")
    p.add_argument("--checkpoint", help="checkpoint directory (default: the latest)")
    p.add_argument("--split", default="test", choices=["train", "test"], help="task split (default: test)")
    p.add_argument("--tasks", type=_int_at_least(1, "tasks"), default=10, help="tasks per seed (default: 10)")
    p.add_argument("--rounds", type=_int_at_least(0, "rounds"), default=3,
                   help="adaptation rounds after round 0: gradient steps, or for RL² further trial episodes "
                        "(default: 3)")
    p.add_argument("--episodes", type=_int_at_least(1, "episodes"), default=10,
                   help="episodes per round and task; for RL² the number of parallel trials per task (default: 10)")
    p.add_argument("--seed", type=_seed, default=0, help="first evaluation seed (default: 0)")
    p.add_argument("--seeds", type=_int_at_least(1, "seeds"), default=1,
                   help="number of evaluation seeds, each with its own tasks (default: 1)")
    p.add_argument("--baselines", help="comma list of: random, ppo-scratch, pretrained-finetune (default: none)")
    p.add_argument("--pretrained", metavar="RUN_DIR", help="multi-task run for the pretrained-finetune baseline "
                   "(multitask-trpo or joint-ppo)")
    p.add_argument("--out", help="output folder (default: RUN_DIR/eval)")
    p.add_argument("--device", help="override the run's device: cpu, cuda, cuda:N or auto (default: the run's)")
    p.add_argument("--threads", type=_int_at_least(1, "threads"), help="torch CPU threads (default: 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--allow-mixed", action="store_true",
                   help="compare with a --pretrained run whose manifest differs (benchmark or reward version)")
    p.add_argument("--protocol", default="metarl", choices=["metarl", "metaworld"],
                   help="metarl: adaptation curves (default); metaworld: Meta-World's own evaluator "
                        "(metaworld.evaluation.metalearning_evaluation) on the benchmark's test goals")
    mw = p.add_argument_group("--protocol metaworld (defaults: Meta-World+'s)")
    mw.add_argument("--mw-meta-batch-size", type=_int_at_least(1, "mw-meta-batch-size"), default=20,
                    help="envs evaluated in parallel, a multiple of the test classes (default: 20)")
    mw.add_argument("--mw-goals-per-class", type=_int_at_least(1, "mw-goals-per-class"), default=40,
                    help="test goals per test class (default: 40)")
    mw.add_argument("--mw-adaptation-steps", type=_int_at_least(1, "mw-adaptation-steps"), default=1,
                    help="adaptation steps (default: 1)")
    mw.add_argument("--mw-adaptation-episodes", type=_int_at_least(1, "mw-adaptation-episodes"), default=10,
                    help="episodes per adaptation step (default: 10)")
    mw.add_argument("--mw-evaluation-episodes", type=_int_at_least(1, "mw-evaluation-episodes"), default=3,
                    help="scored episodes per goal after adapting (default: 3)")
    mw.add_argument("--mw-num-evals", type=_int_at_least(1, "mw-num-evals"), default=None,
                    help="rounds of goals (default: every test goal once)")
    mw.add_argument("--mw-max-episode-steps", type=_int_at_least(1, "mw-max-episode-steps"), default=None,
                    help="truncate episodes (default: the benchmark's 500)")
    mw.add_argument("--mw-sampled-eval", action="store_true",
                    help="evaluation episodes sample actions (default: the policy's mean, as the reference code)")
    mw.add_argument("--mw-carry-memory", action="store_true",
                    help="RL²: the trial carries on through the evaluation episodes (default: each starts from the "
                         "memory at the end of adaptation, as the reference RL²)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("plot", help="training and adaptation curves of one or more runs in one figure", parents=common,
                       formatter_class=fmt)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", default="plots", help="output folder for PNG and SVG")
    p.add_argument("--x", default="round", choices=["round", "env_steps"], help="x axis of adaptation curves")
    p.add_argument("--allow-mixed", action="store_true",
                   help="plot runs together whose manifests differ (benchmark or reward version)")
    p.set_defaults(func=cmd_plot)

    # add_help=False: `metarl bench sampling --help` must reach the bench's own parser.
    p = sub.add_parser("bench", add_help=False, parents=[_common(debug_only=True)],
                       help="speed benchmarks (outside the test suite); `metarl bench NAME --help` for flags")
    p.add_argument("which", choices=sorted(BENCHES))
    p.set_defaults(func=None)
    return parser


def _one_line(exc: BaseException) -> str:
    """The sentence that matters: a worker's traceback is kept for ``--debug``, not printed by default."""
    text = str(exc).split("\n--- traceback from", 1)[0].strip()
    return text or type(exc).__name__


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a scheduler, ``kill``) unwinds like Ctrl-C, so ``finally`` blocks stop sampler workers.

    ``metarl train`` installs its own handler while it trains, so there the first SIGTERM still
    means "finish the iteration, checkpoint and stop".
    """
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every outcome is one of the documented exit codes (see the module docstring)."""
    from metarl.errors import UsageError

    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    _interrupt_on_sigterm()
    try:
        if getattr(args, "plugin", None):
            from metarl.envs.plugins import import_plugins, vouch

            import_plugins(vouch(args.plugin))
        if args.command == "bench":
            return cmd_bench(args, rest)
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("metarl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit:
        raise
    except BaseException as exc:
        if debug:
            traceback.print_exc()
        if isinstance(exc, UsageError):
            code = EXIT_USAGE
        elif isinstance(exc, OSError) and exc.errno in _PLACE_ERRNOS and exc.filename:
            code, exc = EXIT_USAGE, UsageError(f"cannot use {exc.filename}: {exc.strerror}")
        else:
            code = EXIT_FAILURE
        message = _one_line(exc)
        if code == EXIT_FAILURE and not isinstance(exc, RuntimeError):
            message = f"{type(exc).__name__}: {message}"
        hint = "" if debug else f" (the full traceback: --debug or {DEBUG_ENV}=1)"
        print(f"metarl: error: {message}{hint if code == EXIT_FAILURE else ''}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
