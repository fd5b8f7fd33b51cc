"""The dependency directions of docs/architecture.md, read from the imports (ast) of every module of the
package, lazy imports inside functions included; a failure names each offending import."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "vidmp3"

WORKFLOW = "vidmp3.workflow"
IO_LAYERS = ("vidmp3.errors", "vidmp3.atomic", "vidmp3.store", "vidmp3.video_io")
"""The I/O modules, lowest first: each may import only those before it."""
MODEL = ("vidmp3.model", "vidmp3.finetune", "vidmp3.editing", "vidmp3.motionguide", "vidmp3.guide_effect")
EVALUATION = ("vidmp3.metrics", "vidmp3.tables")
EDITING = ("vidmp3.editing", "vidmp3.finetune", "vidmp3.strips")
OUTSIDE = ("workflow_scripts", "benchmarks", "tests", "scripts")
"""Folders of Python files that are not the package: the package imports none of their modules."""


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def imports() -> dict[str, list[tuple[str, int]]]:
    """Module -> every (imported name, line); `from a import b` gives `a` and `a.b`, a relative import
    keeps its leading dots."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rows = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                rows += [(alias.name, node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = "." * node.level + (node.module or "")
                rows += [(base, node.lineno)] + [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
        found[module_name(path)] = rows
    return found


def within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def home(name: str) -> str | None:
    """The package module an imported name lives in (`vidmp3.store.read_array` -> `vidmp3.store`)."""
    while name and name not in imports():
        name = name.rpartition(".")[0]
    return name or None


def offending(importer, forbidden) -> list[str]:
    """`module:line imports name` for each import by a module where `importer(module)` and `forbidden(name)`."""
    return sorted(
        {
            f"{module}:{line} imports {name}"
            for module, found in imports().items()
            if importer(module)
            for name, line in found
            if forbidden(name)
        }
    )


def relative_imports() -> list[str]:
    return offending(lambda module: True, lambda name: name.startswith("."))


def method_imports_of_the_workflow() -> list[str]:
    """The package outside vidmp3.workflow importing Snakemake, vidmp3.workflow or a script's module."""
    outside = {path.stem for folder in OUTSIDE for path in (REPO / folder).rglob("*.py")}
    return offending(
        lambda module: not within(module, WORKFLOW),
        lambda name: within(name, ("snakemake", WORKFLOW)) or name.split(".")[0] in outside,
    )


def priors_imports_of_the_model() -> list[str]:
    return offending(lambda module: within(module, "vidmp3.priors"), lambda name: within(name, MODEL))


def io_imports_from_above() -> list[str]:
    rows = []
    for index, layer in enumerate(IO_LAYERS):
        allowed = (*IO_LAYERS[:index], layer)
        rows += offending(
            lambda module, layer=layer: module == layer,
            lambda name, allowed=allowed: home(name) is not None and not within(home(name), allowed),
        )
    return rows


def editing_chains_to_evaluation() -> list[str]:
    """Chains of imports from editing, fine-tuning or the strips to the metrics or the tables."""
    chains = []
    for start in EDITING:
        seen, queue = {start: [start]}, [start]
        while queue:
            module = queue.pop()
            for name, _ in imports()[module]:
                reached = home(name)
                if reached is not None and reached not in seen:
                    seen[reached] = seen[module] + [reached]
                    queue.append(reached)
        chains += [" -> ".join(chain) for module, chain in seen.items() if within(module, EVALUATION)]
    return chains


def import_cycles() -> list[str]:
    """Cycles among the package's modules (a package importing its own modules is how it is built, not one)."""
    graph = {module: {home(name) for name, _ in found} - {None, module} for module, found in imports().items()}
    graph = {module: {dep for dep in deps if not within(dep, module)} for module, deps in graph.items()}
    cycles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(path[path.index(dep) :] + [module, dep]))
            elif dep not in state:
                visit(dep, path + [module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    return cycles


def test_imports_are_absolute():
    """The checks below compare absolute module names."""
    assert relative_imports() == []


def test_the_method_never_imports_snakemake_the_workflow_or_its_scripts():
    assert method_imports_of_the_workflow() == []


def test_priors_never_import_the_model():
    assert priors_imports_of_the_model() == []


def test_io_imports_nothing_above_it():
    assert io_imports_from_above() == []


def test_editing_never_reaches_evaluation():
    assert editing_chains_to_evaluation() == []


def test_no_import_cycles():
    assert import_cycles() == []


def test_each_check_reports_a_planted_import(monkeypatch):
    planted = {
        "vidmp3.windows": [("snakemake.io", 1001), ("vidmp3.workflow.paths", 1002), ("vidmp3_checkout", 1003)],
        "vidmp3.priors.flow": [("vidmp3.model.presets", 1004)],
        "vidmp3.store": [("vidmp3.video_io.read_frames", 1005)],
        "vidmp3.strips": [("vidmp3.tables", 1006)],
        "vidmp3.errors": [(".atomic", 1007)],
    }
    real = imports()
    monkeypatch.setitem(globals(), "imports", lambda: {module: real[module] + planted.get(module, []) for module in real})
    assert method_imports_of_the_workflow() == [
        "vidmp3.windows:1001 imports snakemake.io",
        "vidmp3.windows:1002 imports vidmp3.workflow.paths",
        "vidmp3.windows:1003 imports vidmp3_checkout",
    ]
    assert priors_imports_of_the_model() == ["vidmp3.priors.flow:1004 imports vidmp3.model.presets"]
    assert io_imports_from_above() == ["vidmp3.store:1005 imports vidmp3.video_io.read_frames"]
    assert "vidmp3.editing -> vidmp3.strips -> vidmp3.tables" in editing_chains_to_evaluation()
    assert relative_imports() == ["vidmp3.errors:1007 imports .atomic"]
    assert "vidmp3.store -> vidmp3.video_io -> vidmp3.store" in import_cycles()
