"""The ML10 results page (issue 20): metarl's runs beside the literature, from the runs' own logs.

Reads each run directory's ``progress.csv`` (Meta-World's evaluator logged as ``eval/metaworld/*``
every 1M env steps) and ``config.yaml`` (manifest and protocol), and writes

* ``experiments/results/ml10.md``: the table of the issue with metarl's rows (train and test success
  at 5M, 10M and 20M env steps, or the latest step reached), test success per class at the latest
  evaluation, cost (wall time, env steps/s, sampling vs update), the manifest and the commands;
* ``experiments/results/ml10.png``: meta-test success of every run against env steps (train success
  dashed) on one plot;
* ``<run>/eval/metaworld_curve.json``: every evaluation of the run as JSON (step, success, return,
  success per class), the curve the plot draws.

Evaluations run after training on a kept checkpoint count too:
``metarl evaluate RUN --protocol metaworld --checkpoint RUN/checkpoints/iter_N --out RUN/eval/checkpoints/iter_N``
writes ``metaworld_protocol.json`` there. With the training's protocol it joins the curve (marked as run
from the checkpoint); with one env per class (``--mw-meta-batch-size 5``, saved as
``metaworld_protocol_one_env_per_class.json``) it goes into its own table, the unbiased number.

    python experiments/ml10_report.py [--runs RUN ...]

Runs that do not exist yet are listed as not started; nothing is invented for them. Each run is a column
of the table, the literature's MAML-TRPO or RL² figure beside it by the run's name.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: The issue's budget per run. A piece may stop short of it (``--set trainer.total_steps=...`` on a resume
#: sets where that piece ends), so the page states the budget, not the run's current config.
BUDGET = 20_000_000
RESULTS = ROOT / "experiments" / "results"
DEFAULT_RUNS = {"MAML-TRPO": RESULTS / "maml-trpo-ml10", "RL² (GRU), first recipe": RESULTS / "rl2-gru-ml10",
                "RL² (GRU), reference recipe": RESULTS / "rl2-gru-ml10-reference"}
LITERATURE = [
    ("Meta-World paper, Table 1 (arXiv 1910.10897; 10 seeds, average of the max)", "31.6%", "35.8%"),
    ("Meta-World+ (arXiv 2505.11289), reference JAX code, 20M steps, IQM of 10 seeds, V2 rewards "
     "(read off its figures)", "about 35%", "about 35%"),
]
MILESTONES = (5_000_000, 10_000_000, 20_000_000)
PREFIX = "eval/metaworld/success/"


NOTES = RESULTS / "ml10_notes.md"


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def read_run(path: Path) -> dict[str, Any] | None:
    progress = path / "progress.csv"
    if not progress.is_file():
        return None
    with progress.open(newline="") as f:
        rows = list(csv.DictReader(f))
    config = yaml.safe_load((path / "config.yaml").read_text())
    evals = []
    for r in rows:
        if r.get("eval/metaworld/success") not in (None, ""):
            evals.append({"env_steps": int(float(r["time/total_env_steps"])), "iteration": int(float(r["time/iteration"])),
                          "success": _float(r["eval/metaworld/success"]), "return": _float(r["eval/metaworld/return"]),
                          "success_per_class": {k[len(PREFIX):]: _float(v) for k, v in r.items()
                                                if k.startswith(PREFIX) and v not in (None, "")}})
    other = []  # from checkpoints with another number of envs per class than the periodic evaluations
    for e in checkpoint_evals(path, rows, config):
        if e.pop("periodic"):
            evals.append({k: v for k, v in e.items() if k not in ("envs_per_class", "goals_per_class")})
        else:
            other.append(e)
    evals.sort(key=lambda e: e["env_steps"])
    train = [(int(float(r["time/total_env_steps"])), _float(r.get("train/success"))) for r in rows]
    timed = [r for r in rows if r.get("time/sampling_s") not in (None, "")]
    eval_iters = {e["iteration"] for e in evals}
    # an evaluation iteration's update_s holds the evaluation: leave those out of the cost split
    plain = [r for r in timed if int(float(r["time/iteration"])) not in eval_iters]
    return {"path": path, "rows": rows, "config": config, "evals": evals, "other": other, "train": train,
            "elapsed_s": _float(rows[-1].get("time/elapsed_s")), "env_steps": train[-1][0] if train else 0,
            "sampling_s": sum(_float(r["time/sampling_s"]) for r in plain),
            "update_s": sum(_float(r["time/update_s"]) for r in plain),
            "iteration_s": [_float(r["time/iteration_s"]) for r in plain]}


def checkpoint_evals(path: Path, rows: list[dict[str, str]], config: dict[str, Any]) -> list[dict[str, Any]]:
    """Meta-World evaluations of kept checkpoints (``<run>/eval/checkpoints/iter_N/metaworld_protocol*.json``).

    A checkpoint's env steps are those logged up to its iteration; where that iteration's own row is
    missing, the steps of the iterations in between are the run's per-iteration steps.
    """
    done = [(int(float(r["time/iteration"])), int(float(r["time/total_env_steps"])), int(float(r["time/env_steps"])))
            for r in rows]
    periodic = (config["config"].get("eval") or {}).get("mw_meta_batch_size")
    out = []
    for f in sorted((path / "eval" / "checkpoints").glob("iter_*/metaworld_protocol*.json")):
        if f.stem not in ("metaworld_protocol", "metaworld_protocol_one_env_per_class"):
            continue  # e.g. metaworld_protocol_sampled.json: a diagnostic, not the benchmark's protocol
        iteration = int(f.parent.name.split("_")[1])
        before = [d for d in done if d[0] <= iteration]
        if not before:
            continue
        last_it, total, per_iteration = before[-1]
        result = json.loads(f.read_text())
        protocol = result["protocol"]
        if protocol.get("deterministic_eval") is False:
            continue  # sampled actions: not the benchmark's protocol
        out.append({"env_steps": total + (iteration - last_it) * per_iteration, "iteration": iteration,
                    "success": float(result["mean_success"]), "return": float(result["mean_return"]),
                    "success_per_class": result["success_per_class"], "source": "checkpoint",
                    "periodic": protocol.get("meta_batch_size") == periodic,
                    "envs_per_class": int(protocol.get("envs_per_class") or protocol["meta_batch_size"] // 5),
                    "goals_per_class": int(protocol.get("goals_evaluated_per_class") or protocol["goals_per_class"])})
    return out


def train_success_at(run: dict[str, Any], step: int, window: int = 5) -> float:
    """Mean train success over the ``window`` iterations ending at ``step`` (one iteration is noisy)."""
    before = [s for t, s in run["train"] if t <= step and math.isfinite(s)][-window:]
    return sum(before) / len(before) if before else math.nan


def eval_at(run: dict[str, Any], step: int) -> dict[str, Any] | None:
    return next((e for e in run["evals"] if e["env_steps"] == step), None)


def last_iteration(run: dict[str, Any]) -> int:
    return int(float(run["rows"][-1]["time/iteration"])) if run["rows"] else 0


def missing_rows(run: dict[str, Any]) -> str:
    """Iterations without a progress row (a row lost while the run went on), named so nobody looks for them."""
    logged = {int(float(r["time/iteration"])) for r in run["rows"]}
    gaps = [i for i in range(1, last_iteration(run) + 1) if i not in logged]
    if not gaps:
        return ""
    return "; no progress row for iteration " + ", ".join(map(str, gaps)) + ", see the run's README"


def pct(x: float) -> str:
    return "" if not math.isfinite(x) else f"{100 * x:.1f}%"


def write_curve_json(run: dict[str, Any]) -> Path:
    out = run["path"] / "eval" / "metaworld_curve.json"
    out.parent.mkdir(exist_ok=True)
    protocol = {k: v for k, v in (run["config"]["config"].get("eval") or {}).items() if k.startswith(("mw_", "protocol"))}
    out.write_text(json.dumps({"evaluator": "metaworld.evaluation.metalearning_evaluation", "protocol": protocol,
                               "evaluations": run["evals"]}, indent=1) + "\n")
    return out


def envs_words(per_class: int, short: bool = False) -> str:
    """What an evaluation's envs per class mean for its number (docs/metaworld.md, the pooling bias)."""
    if per_class == 1:
        return "one env per class (unbiased)"
    if short:
        return f"{per_class} envs per class (the reference's protocol)"
    return f"{per_class} envs per class (the evaluator's default and the reference's protocol; pooling can bias it up)"


def periodic_protocol(run: dict[str, Any]) -> str:
    """How the run's periodic evaluations were taken, in words (the runs differ: RL²'s cost forced fewer goals)."""
    ev = run["config"]["config"].get("eval") or {}
    per_class = ev.get("mw_meta_batch_size", 20) // 5
    goals = ev.get("mw_goals_per_class", 40)
    envs = "one env per class, unbiased" if per_class == 1 else f"{per_class} envs per class, the evaluator's default"
    return f"{envs}, {goals} goals per class"


def plot(runs: dict[str, dict[str, Any]], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 5.4))
    for i, (label, run) in enumerate(runs.items()):
        color = f"C{i}"
        xs = [e["env_steps"] / 1e6 for e in run["evals"]]
        ax.plot(xs, [100 * e["success"] for e in run["evals"]], "o-", color=color,
                label=f"{label}: meta-test, every 1M steps ({periodic_protocol(run)})")
        for per_class in sorted({e["envs_per_class"] for e in run["other"]}):
            points = [e for e in run["other"] if e["envs_per_class"] == per_class]
            ax.plot([e["env_steps"] / 1e6 for e in points], [100 * e["success"] for e in points],
                    "D" if per_class == 1 else "s", color=color, mfc="white", ms=7,
                    label=f"{label}: meta-test from checkpoints, {envs_words(per_class, short=True)}, 40 goals")
        steps = [t / 1e6 for t, _ in run["train"]]
        smooth = [100 * train_success_at(run, t) for t, _ in run["train"]]
        ax.plot(steps, smooth, "--", color=color, alpha=0.6, label=f"{label}: train (10 classes, 5-iteration mean)")
    for y, text in ((31.6, "MAML-TRPO, Meta-World paper"), (35.8, "RL², Meta-World paper")):
        ax.axhline(y, color="grey", lw=0.8, ls=":")
        ax.text(0.99, y + 0.6, text, fontsize=7, color="grey", ha="right", transform=ax.get_yaxis_transform())
    ax.set_xlabel("env steps (millions)")
    ax.set_ylabel("success rate (%)")
    ax.set_title("Meta-World ML10 (Meta-World's own evaluator)")
    ax.grid(alpha=0.3)
    top = max([100 * e["success"] for run in runs.values() for e in run["evals"]] + [55.0])
    ax.set_ylim(0, 10 * math.ceil(top / 10 + 0.05))
    # the legend goes below the axes, where it never covers a curve
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1, frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", type=Path, help="run directories (default: the two issue-20 runs)")
    parser.add_argument("--out", type=Path, default=RESULTS / "ml10.md")
    args = parser.parse_args(argv)
    wanted = ({p.name: p for p in args.runs} if args.runs else DEFAULT_RUNS)
    runs = {label: run for label, path in wanted.items() if (run := read_run(path)) is not None}
    missing = [label for label, path in wanted.items() if label not in runs]

    lines = ["# Meta-World ML10: metarl beside the literature (issue 20)", "",
             "Meta-test success on the 5 held-out ML10 classes, measured with Meta-World's own evaluator",
             "(`metaworld.evaluation.metalearning_evaluation`) during training, every 1M env steps (each run's",
             "protocol is stated below the table). One seed per",
             "agent. Generated by `python experiments/ml10_report.py` from the runs' `progress.csv` and `config.yaml`.", "",
             "| source | " + " | ".join(wanted) + " |", "|---|" + "---:|" * len(wanted)]
    agents = list(wanted)
    lines += [f"| {src} | " + " | ".join(m if "MAML" in label.upper() else r for label in agents) + " |"
              for src, m, r in LITERATURE]

    def cell(label: str, step: int | None) -> str:
        run = runs.get(label)
        if run is None:
            return "not started"
        e = (run["evals"][-1] if run["evals"] else None) if step is None else eval_at(run, step)
        if e is None:
            return "not reached"
        at = "" if step is not None else f" at {e['env_steps'] / 1e6:.0f}M"
        return f"**{pct(e['success'])}**{at} (train {pct(train_success_at(run, e['env_steps']))})"

    for step in MILESTONES:
        lines.append(f"| metarl, {step // 1_000_000}M env steps, seed 0: test (train) | "
                     + " | ".join(cell(label, step) for label in agents) + " |")
    lines.append("| metarl, latest evaluation | " + " | ".join(cell(label, None) for label in agents) + " |")
    lines += [""] + [f"metarl's rows for {label} are its periodic evaluations: {periodic_protocol(run)}." for label, run
                     in runs.items()]
    lines += ["", "## Per run", ""]
    for label, run in runs.items():
        cfg = run["config"]
        man = cfg["run"].get("manifest", {})
        ev = cfg["config"].get("eval", {})
        its = [x for x in run["iteration_s"] if math.isfinite(x)]
        share = run["sampling_s"] / max(run["sampling_s"] + run["update_s"], 1e-9)
        lines += [f"### {label} (`{run['path'].relative_to(ROOT)}`)", "",
                  f"- Env steps so far: {run['env_steps']:,} of the issue's {BUDGET:,}"
                  f" ({last_iteration(run)} iterations{missing_rows(run)}),"
                  f" wall time {run['elapsed_s'] / 3600:.2f} h including evaluations,"
                  f" {run['env_steps'] / max(run['elapsed_s'], 1e-9):,.0f} env steps/s overall.",
                  f"- Training iterations (evaluations excluded): median {sorted(its)[len(its) // 2]:.0f} s; sampling "
                  f"{100 * share:.0f}% and update {100 * (1 - share):.0f}% of their time." if its else "- no timing yet",
                  f"- Manifest: metaworld {man.get('metaworld')}, mujoco {man.get('mujoco')}, gymnasium "
                  f"{man.get('gymnasium')}, torch {man.get('torch')}, numpy {man.get('numpy')}, reward version "
                  f"{man.get('reward_version')}, benchmark {man.get('benchmark')} (seed {man.get('benchmark_seed')}).",
                  f"- Protocol: {ev.get('mw_goals_per_class')} test goals per class, {ev.get('mw_adaptation_episodes')} "
                  f"adaptation episodes, 1 adaptation step, {ev.get('mw_evaluation_episodes')} evaluation episodes, "
                  f"{ev.get('mw_meta_batch_size')} envs in parallel (so {ev.get('mw_meta_batch_size', 20) // 5} per class"
                  + ("; Meta-World pools the first-finished episodes of a class, which favours success when a class has"
                     " more than one env: docs/metaworld.md)." if ev.get("mw_meta_batch_size", 20) > 5 else
                     ", so every goal's episodes count)."),
                  f"- Command: `{cfg['run'].get('command', '')}`; continue with `metarl train --resume "
                  f"{run['path'].relative_to(ROOT)} --threads 2`.", ""]
        if run["evals"]:
            latest = run["evals"][-1]
            lines += [f"Test success per class at {latest['env_steps'] / 1e6:.0f}M env steps:", "",
                      "| class | success |", "|---|---:|"]
            lines += [f"| {k} | {pct(v)} |" for k, v in sorted(latest["success_per_class"].items())]
            lines += ["", "| env steps | test success | test return | train success (5-it. mean) |", "|---:|---:|---:|---:|"]
            lines += [f"| {e['env_steps']:,}{' (from the checkpoint, after training)' if e.get('source') else ''} | "
                      f"{pct(e['success'])} | {e['return']:.0f} | {pct(train_success_at(run, e['env_steps']))} |"
                      for e in run["evals"]]
            lines.append("")
        if run["other"]:
            lines += ["Evaluated from kept checkpoints with another number of envs per class than the periodic",
                      "evaluations (`--mw-meta-batch-size 5`: one env per class, every goal's episodes count; 20: four",
                      "per class, Meta-World's default, which scores the first episodes to finish):", "",
                      "| env steps | envs per class | goals per class | test success | test return | per class |",
                      "|---:|---|---:|---:|---:|---|"]
            lines += [f"| {e['env_steps']:,} | {envs_words(e['envs_per_class'])} | {e['goals_per_class']} | "
                      f"{pct(e['success'])} | {e['return']:.0f} | "
                      + ", ".join(f"{k} {pct(v)}" for k, v in sorted(e["success_per_class"].items())) + " |"
                      for e in run["other"]]
            lines.append("")
        write_curve_json(run)
    for label in missing:
        lines += [f"### {label}", "", f"Not started yet (`{wanted[label].relative_to(ROOT)}`).", ""]
    lines += ["![ML10 success against env steps](ml10.png)", ""]
    if NOTES.exists():  # what the numbers mean, written by hand (the tables above are regenerated)
        lines += [NOTES.read_text().rstrip(), ""]
    if runs:
        plot(runs, args.out.with_suffix(".png"))
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
