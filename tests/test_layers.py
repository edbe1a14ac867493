"""The layer rule, read from the source: which metarl package may import which at run time.

The data flow runs one way (``TaskFamily`` -> ``Sampler`` -> agent -> evaluator, with the run
machinery beside it and the CLI / API / demo / benchmarks on top), and so do the imports:

* ``metarl.core`` is pure tensor math: it imports no other metarl package;
* ``metarl.envs`` is the bottom of the data flow: nothing above it (and torch-free, except the
  tensor envs, imported only when one is built);
* ``metarl.nn`` (policies) knows nothing of sampling, agents, evaluation or runs;
* ``metarl.sampling`` and ``metarl.runs`` know nothing of agents or evaluation;
* agents and evaluation do not import each other, and no agent module imports another,
  except a variant its parent;
* no library package imports a front end (CLI, API, demo, benchmarks).

Every import executed at run time counts, including the deliberate lazy ones inside functions;
imports under ``if TYPE_CHECKING:`` do not (they only name types for annotations). The few
legitimate exceptions are listed below, each with its reason; a listed exception that the code
no longer needs fails too, so the list cannot go stale. Imports through ``importlib`` (the agent
registry's discovery) are not seen here.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import metarl

PACKAGE = Path(metarl.__file__).parent

#: Front ends: they may import anything; the library imports none of them.
FRONT_ENDS = frozenset({"metarl.__main__", "metarl.cli", "metarl.api", "metarl.demo", "metarl.bench"})
#: Packages the library is made of (every other layer of metarl that is not a front end).
LIBRARY = frozenset({"metarl", "metarl.core", "metarl.nn", "metarl.envs", "metarl.sampling", "metarl.runs",
                     "metarl.agents", "metarl.evaluation", "metarl.contract", "metarl.errors", "metarl.fileio"})

#: What ``metarl.core`` may import besides itself: nothing today. (A dependency-free leaf such
#: as ``metarl.errors`` would be acceptable if core ever needed it; anything with state or
#: torch modules above tensors would not.)
CORE_MAY_IMPORT: frozenset[str] = frozenset()
#: Leaves: import nothing of metarl.
LEAVES = ("metarl.errors", "metarl.fileio")

#: Layer -> the layers it must not import at run time (besides the front ends, forbidden to all).
FORBIDDEN = {
    "metarl.nn": {"metarl.sampling", "metarl.agents", "metarl.evaluation", "metarl.runs", "metarl.contract"},
    "metarl.envs": {"metarl.core", "metarl.nn", "metarl.sampling", "metarl.agents", "metarl.evaluation",
                    "metarl.runs", "metarl.contract"},
    "metarl.sampling": {"metarl.agents", "metarl.evaluation"},
    "metarl.runs": {"metarl.agents", "metarl.evaluation"},
    "metarl.contract": {"metarl.agents", "metarl.evaluation", "metarl.runs"},
    "metarl.agents": {"metarl.evaluation"},
    "metarl.evaluation": {"metarl.agents"},
}

#: (importer, imported) pairs allowed across a forbidden edge, only as lazy imports inside a function.
LAZY_EXCEPTIONS = {
    # Periodic evaluation during training (``eval.protocol: metaworld``): the evaluator runs the
    # agent, so it sits above it; the import happens only on an evaluating iteration.
    ("metarl.agents.base", "metarl.evaluation.metaworld_eval"),
    # The report asks the agent registry whether a named agent's rounds are trial episodes (RL²);
    # the registry (metarl.agents, not an agent module) is looked up only when a report is built.
    ("metarl.evaluation.report", "metarl.agents"),
}

#: Agent modules may import the registry and the shared base; beyond that, only these pairs.
AGENTS_SHARED = frozenset({"metarl.agents", "metarl.agents.base"})
AGENT_PAIRS = {
    ("metarl.agents.meta_sgd", "metarl.agents.maml_trpo"),  # a variant subclasses its parent
    ("metarl.agents.rl2", "metarl.agents.rl2_actor"),  # RL²'s network and sampler actor, in their own file
}


@dataclass(frozen=True)
class Edge:
    importer: str
    target: str
    path: str
    line: int
    lazy: bool  # inside a function (a deliberate deferred import)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} -> {self.target}{' (lazy)' if self.lazy else ''}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(source: str, module: str, is_package: bool, known: set[str]) -> list[tuple[str, int, bool]]:
    """``(target module, line, lazy)`` of every metarl import that runs (``TYPE_CHECKING`` blocks skipped).

    ``from a import b`` targets ``a.b`` when that is a module in ``known``, else ``a``; relative
    imports are resolved against ``module``.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:  # the else branch does run
                    visit_stmt(stmt, lazy)
                continue
            visit_stmt(child, lazy)

    def visit_stmt(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno, lazy) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                source_module = f"{base}.{node.module}" if node.module else base
            else:
                source_module = node.module or ""
            for alias in node.names:
                sub = f"{source_module}.{alias.name}"
                found.append((sub if sub in known else source_module, node.lineno, lazy))
        else:
            visit(node, lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(ast.parse(source), lazy=False)
    return [(t, line, lazy) for t, line, lazy in found if t == "metarl" or t.startswith("metarl.")]


def _graph() -> list[Edge]:
    files = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(p, PACKAGE) for p in files}
    edges = []
    for path in files:
        mod = module_name(path, PACKAGE)
        rel = str(path.relative_to(PACKAGE.parent))
        for target, line, lazy in runtime_imports(path.read_text(encoding="utf-8"), mod, path.name == "__init__.py",
                                                  known):
            edges.append(Edge(mod, target, rel, line, lazy))
    return list(dict.fromkeys(edges))  # `from a import b, c` is one edge


EDGES = _graph()


def layer(module: str) -> str:
    """``metarl.sampling.episodes`` -> ``metarl.sampling``; ``metarl`` -> ``metarl``."""
    return ".".join(module.split(".")[:2])


def in_layer(module: str, name: str) -> bool:
    return module == name or module.startswith(name + ".")


def _excepted(edge: Edge) -> bool:
    return edge.lazy and (edge.importer, edge.target) in LAZY_EXCEPTIONS


def test_the_scanner_sees_every_kind_of_import() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import metarl.core\n"
        "from metarl.sampling import episodes, Episodes\n"
        "from . import sibling\n"
        "from ..nn import policy\n"
        "if TYPE_CHECKING:\n    from metarl.agents import base\nelse:\n    import metarl.errors\n"
        "def f():\n    from metarl.evaluation import report\n"
        "class C:\n    def m(self):\n        import metarl.runs\n"
        "import numpy\n"
    )
    known = {"metarl.sampling.episodes", "metarl.envs.sibling", "metarl.nn.policy", "metarl.evaluation.report"}
    got = runtime_imports(source, "metarl.envs.here", False, known)
    assert got == [("metarl.core", 2, False), ("metarl.sampling.episodes", 3, False), ("metarl.sampling", 3, False),
                   ("metarl.envs.sibling", 4, False), ("metarl.nn.policy", 5, False), ("metarl.errors", 9, False),
                   ("metarl.evaluation.report", 11, True), ("metarl.runs", 14, True)]
    assert {layer(e.importer) for e in EDGES} >= {"metarl.core", "metarl.nn", "metarl.envs", "metarl.sampling",
                                                 "metarl.runs", "metarl.agents", "metarl.evaluation"}


def test_core_imports_nothing_above_it() -> None:
    bad = [str(e) for e in EDGES if in_layer(e.importer, "metarl.core")
           and not in_layer(e.target, "metarl.core") and layer(e.target) not in CORE_MAY_IMPORT]
    assert not bad, "core is pure tensor math; annotations go under `if TYPE_CHECKING:`\n" + "\n".join(bad)


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaves_import_nothing_of_metarl(leaf: str) -> None:
    bad = [str(e) for e in EDGES if in_layer(e.importer, leaf)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("importer", sorted(FORBIDDEN))
def test_no_layer_imports_one_above_it(importer: str) -> None:
    forbidden = FORBIDDEN[importer]
    bad = [str(e) for e in EDGES if in_layer(e.importer, importer) and layer(e.target) in forbidden
           and not _excepted(e)]
    assert not bad, "\n".join(bad)


def test_the_library_imports_no_front_end() -> None:
    bad = [str(e) for e in EDGES if layer(e.importer) in LIBRARY and layer(e.target) in FRONT_ENDS]
    assert not bad, "\n".join(bad)
    assert {layer(e.importer) for e in EDGES} <= LIBRARY | FRONT_ENDS, "a new top-level module: give it a layer"


def test_no_agent_module_imports_another() -> None:
    bad = [str(e) for e in EDGES if e.importer.startswith("metarl.agents.") and in_layer(e.target, "metarl.agents")
           and e.target not in AGENTS_SHARED and (e.importer, e.target) not in AGENT_PAIRS]
    assert not bad, "share code through metarl.agents.base, or subclass the parent as a variant\n" + "\n".join(bad)


def test_every_listed_exception_is_still_needed_and_lazy() -> None:
    seen = {(e.importer, e.target): e for e in EDGES}
    for pair in sorted(LAZY_EXCEPTIONS | AGENT_PAIRS):
        assert pair in seen, f"{pair} is allowed but no longer imported: drop it from the list"
    for pair in sorted(LAZY_EXCEPTIONS):
        eager = [str(e) for e in EDGES if (e.importer, e.target) == pair and not e.lazy]
        assert not eager, "allowed only inside a function (a deferred import)\n" + "\n".join(eager)
