"""Speed benchmarks run by `metarl bench <name>`, outside the test suite.

Every bench takes the same ``--out FOLDER`` and writes ``bench_<name>.md`` and ``.json`` there
(default: ``experiments/results`` under the current folder, where a checkout keeps the committed
figures; an installed metarl run elsewhere asks for ``--out`` instead of writing into its own
install). A ``--quick`` smoke run writes nothing unless ``--out`` is given, so trying a bench never
overwrites committed results.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from metarl.errors import UsageError

RESULTS = Path("experiments") / "results"


def add_out_argument(parser: argparse.ArgumentParser, name: str) -> None:
    """``--out FOLDER`` and ``--quick``, with the same meaning in every bench."""
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder for {name}.md/.json (default ./{RESULTS} when it exists; with --quick, "
                             "nothing is written unless --out is given)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke run")


def out_folder(args: argparse.Namespace) -> Path | None:
    """Where this run's report goes: ``--out``, else the committed results unless it is a smoke run."""
    if args.out is not None:
        return Path(args.out)
    if args.quick:
        return None
    if not RESULTS.is_dir():
        raise UsageError(f"no ./{RESULTS} folder here (run from a metarl checkout to update the committed "
                         "figures); allowed: --out FOLDER")
    return RESULTS


def choose(parser: argparse.ArgumentParser, given: list[str] | None, allowed: list[str], what: str) -> list[str]:
    """``given`` (a ``--families``/``--cases`` subset), or all of ``allowed``; an unknown name is a usage error."""
    chosen = given or list(allowed)
    unknown = [c for c in chosen if c not in allowed]
    if unknown:
        parser.error(f"unknown {what} {unknown}; allowed: {', '.join(allowed)}")
    return chosen


def finish(args: argparse.Namespace, name: str, markdown: str, payload: Any) -> int:
    """Print the report, write it where :func:`out_folder` says, and return the exit status."""
    print(markdown)
    write_report(out_folder(args), name, markdown, payload)
    return 0


def write_report(folder: Path | None, name: str, markdown: str, payload: Any) -> None:
    """Write ``<folder>/<name>.md`` and ``.json`` (nothing when ``folder`` is None) and say where."""
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.md").write_text(markdown if markdown.endswith("\n") else markdown + "\n")
    (folder / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")  # Paths as text
    print(f"wrote {folder / f'{name}.md'} and {folder / f'{name}.json'}")
