"""The package's import graph: layers point one way, no cycles, pure modules stay pure.

Imports are read from the source with `ast` (every import, also those inside functions and
under TYPE_CHECKING), so the rules hold for what the code says, not for what one run
happens to import. A new module of the package must be placed in `LAYERS` (the simulator's
and the report's modules are placed by their package).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "orchestrator"

# From the bottom up; a module may import modules of its own layer or of a layer below.
LAYERS: list[tuple[str, set[str]]] = [
    ("pure leaves", {"__init__", "errors", "durations", "extras", "spec", "wire", "abbrev"}),
    (
        "pure",
        {
            "connection",
            "lifecycle",
            "failures",
            "reconcile",
            "jobs",
            "backoff",
            "tally",
            "views",
            "summary_text",
            "envelope",
            "nextstep",
            "forecast",
        },
    ),
    (
        "seams, files, state, manifest",
        {
            "clock",
            "logs",
            "catalog",
            "files",
            "paths",
            "state_files",
            "state_schema",
            "state",
            "state_merge",
            "ledger",
            "timings",
            "songfiles",
            "state_rebuild",
            "state_guard",
            "manifest_yaml",
            "manifest_fields",
            "manifest",
        },
    ),
    ("the simulator", {"simulator"}),
    ("http", {"download", "storage", "pacing", "transport", "api"}),
    (
        "a run",
        {
            "looplag",
            "reads",
            "scheduling",
            "outcomes",
            "recovery",
            "delivery",
            "budget",
            "song_plan",
            "songs",
            "separation",
            "engine",
            "runner",
        },
    ),
    ("the report", {"report"}),
    ("the command line", {"progress", "output", "commands", "cli", "__main__"}),
]

# Pure modules (decisions, parsing, maths): no I/O, so they may import only pure modules of
# the package and these parts of the standard library.
PURE = LAYERS[0][1] | LAYERS[1][1]
PURE_STDLIB = {
    "__future__",
    "collections",
    "dataclasses",
    "datetime",
    "email",
    "enum",
    "hashlib",
    "json",
    "math",
    "pathlib",  # paths as values: a pure module never reads or writes through them
    "random",
    "re",
    "types",
    "typing",
}
# The simulator imports nothing of the client; the durations' grammar is shared.
SIMULATOR_MAY_IMPORT = {"durations"}
# Who may import the simulator: the commands (which start it for a run, or serve it) and
# the report's sample tree.
IMPORT_THE_SIMULATOR = {"commands", "report"}


def group(module: str) -> str:
    """`simulator.server` -> `simulator`; a top-level module is its own group."""
    return module.split(".", 1)[0]


def modules() -> list[str]:
    """Every module of the package, dotted below it (`api`, `simulator.server`...)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found.append(".".join(parts))
    return found


def imports(module: str) -> Iterator[tuple[str, int]]:
    """(imported name, line) for every import in `module`: package modules as dotted names
    below the package (the package itself is `__init__`), others by their top-level name."""
    path = PACKAGE.joinpath(*module.split(".")).with_suffix(".py")
    package = module.rsplit(".", 1)[0] if "." in module else ""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _dotted(alias.name), node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package
                base = ".".join(filter(None, ["orchestrator", package, base]))
            if base == "orchestrator" or base.startswith("orchestrator."):
                below = base.removeprefix("orchestrator").lstrip(".")
                for alias in node.names:
                    name = f"{below}.{alias.name}" if below else alias.name
                    yield (name if name in MODULES else below or "__init__"), node.lineno
            else:
                yield base.split(".")[0], node.lineno


def _dotted(name: str) -> str:
    if name == "orchestrator":
        return "__init__"
    if name.startswith("orchestrator."):
        return name.removeprefix("orchestrator.")
    return name.split(".")[0]


MODULES = set(modules())
RANK = {name: rank for rank, (_, names) in enumerate(LAYERS) for name in names}


def internal(module: str) -> Iterator[tuple[str, int]]:
    """The package modules `module` imports (a subpackage counts as its `__init__`)."""
    for name, line in imports(module):
        if name in MODULES:
            yield name, line
        elif f"{name}.__init__" in MODULES:
            yield f"{name}.__init__", line


def test_every_module_has_a_layer() -> None:
    """A new module is placed in a layer, so the rules below cover it."""
    assert sorted(m for m in MODULES if group(m) not in RANK) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_import(module: str) -> None:
    """A module imports only modules of its own layer or of the layers below it."""
    upward = [
        f"line {line}: {name}"
        for name, line in internal(module)
        if RANK[group(name)] > RANK[group(module)]
    ]
    assert upward == []


def test_no_import_cycle() -> None:
    """The graph of imports between the package's modules has no cycle."""
    edges = {m: {name for name, _ in internal(m) if name != m} for m in MODULES}
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> None:
        if module in path:
            cycle = path[path.index(module) :] + [module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        path.append(module)
        for name in sorted(edges[module]):
            visit(name)
        path.pop()
        done.add(module)

    for module in sorted(MODULES):
        visit(module)


@pytest.mark.parametrize("module", sorted(PURE))
def test_pure_modules_do_no_io(module: str) -> None:
    """Pure modules import only pure modules and side-effect-free parts of the stdlib."""
    found = [
        f"line {line}: {name}"
        for name, line in imports(module)
        if not (name in PURE or name in PURE_STDLIB)
    ]
    assert found == []


def test_the_simulator_imports_nothing_of_the_client() -> None:
    """The simulator's modules import each other and the shared durations only."""
    found = [
        f"{module} line {line}: {name}"
        for module in sorted(MODULES)
        if group(module) == "simulator"
        for name, line in internal(module)
        if group(name) != "simulator" and name not in SIMULATOR_MAY_IMPORT
    ]
    assert found == []


def test_only_the_command_line_starts_the_simulator() -> None:
    """The runner and everything it uses reach the simulator only through `local_api`."""
    found = [
        f"{module} line {line}: {name}"
        for module in sorted(MODULES)
        if group(module) not in IMPORT_THE_SIMULATOR | {"simulator"}
        for name, line in internal(module)
        if group(name) == "simulator"
    ]
    assert found == []


def test_the_rules_see_imports() -> None:
    """The reader finds lazy and TYPE_CHECKING imports too (the commands import the
    simulator so)."""
    assert "simulator.server" in {n for n, _ in internal("commands.tools")}
    assert "state" in {n for n, _ in internal("scheduling")}  # under TYPE_CHECKING



@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_long_module_says_why(module: str) -> None:
    """A module of the package longer than about 400 lines says in its first lines (a
    comment or its docstring's opening paragraphs) why it is not split."""
    path = PACKAGE.joinpath(*module.split(".")).with_suffix(".py")
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) <= 400:
        return
    head = "\n".join(lines[:40]).lower()
    assert "400 lines" in head or "500 lines" in head, (
        f"{module} is {len(lines)} lines: split it, or say at its top why it is one module"
    )
