"""The package's floors: a module imports only from its own floor or below, never upward, and
no set of modules imports itself round (lazy imports inside functions count too).

Floors, bottom to top (the `FLOORS` table is the one place they are declared):

0  errors, atomic, faults, lock, names, layout,  no torch; what every floor may use
   config/, cache_keys, config_docs, cpu_threads
1  data, models                                   the images and the networks
2  engine                                         the training loop and the step protocol
3  methods                                        one file per method, registered by config
4  evaluation                                     probes, kNN, fine-tuning
5  representations, report                        a study's runs; the report reads files only
6  plan, study, executors                         the whole study (in-process or as jobs)
7  cli                                            the command line
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ssl_robustness

PACKAGE = "ssl_robustness"
ROOT = Path(ssl_robustness.__file__).parent

# first dotted part below the package -> floor
FLOORS = {
    "__init__": 0,
    "errors": 0,
    "atomic": 0,
    "faults": 0,
    "lock": 0,
    "layout": 0,
    "names": 0,
    "config": 0,
    "cache_keys": 0,
    "config_docs": 0,
    "cpu_threads": 0,
    "data": 1,
    "models": 1,
    "engine": 2,
    "methods": 3,
    "evaluation": 4,
    "representations": 5,
    "report": 5,
    "registration": 5,
    "plan": 6,
    "study": 6,
    "executors": 6,
    "cli": 7,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join([PACKAGE, *parts])


def floor(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    assert top in FLOORS, f"{module}: no floor declared for '{top}' in FLOORS"
    return FLOORS[top]


def imports_of(path: Path, annotations: bool = False) -> set[str]:
    """Every first-party module `path` imports, at the top or inside a function; with
    `annotations`, also those made for type annotations only (`if TYPE_CHECKING:`)."""
    me = module_name(path)
    is_pkg = path.name == "__init__.py"
    package = me if is_pkg else me.rsplit(".", 1)[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    for block in [n for n in ast.walk(tree) if _type_checking_only(n) and not annotations]:
        block.body = []  # imports for annotations only never run: they make no edge
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from . import x` may name a submodule: keep it when one exists
            names = [prefix]
            for a in node.names:
                candidate = f"{prefix}.{a.name}"
                if _exists(candidate):
                    names.append(candidate)
        else:
            continue
        found.update(n for n in names if n == PACKAGE or n.startswith(PACKAGE + "."))
    found.discard(me)
    return {n for n in found if _exists(n)}


def _type_checking_only(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`)."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:]) if "." in module else Path()
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def graph(annotations: bool = False) -> dict[str, set[str]]:
    return {module_name(p): imports_of(p, annotations) for p in sorted(ROOT.rglob("*.py"))}


def test_every_module_has_a_floor():
    for module in graph():
        floor(module)


def test_imports_only_run_downward():
    upward = [
        f"{m} (floor {floor(m)}) imports {d} (floor {floor(d)})"
        for m, deps in graph().items()
        for d in sorted(deps)
        if floor(d) > floor(m) and d != PACKAGE
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


@pytest.mark.parametrize("annotations", [False, True], ids=["run-time", "with-annotations"])
def test_no_import_cycles(annotations):
    """No cycle among the imports that run, nor among those a reader follows: an import made
    for annotations only (`if TYPE_CHECKING:`) is still a dependency of the module's meaning."""
    g = graph(annotations)
    # a package's __init__ is imported by its own submodules implicitly: count explicit edges only
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(g.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_lazy_and_relative_imports():
    """The walker reads imports inside functions and resolves `..` against the package, and
    leaves out those made for annotations only (`if TYPE_CHECKING:`)."""
    deps = imports_of(ROOT / "cli.py")
    assert f"{PACKAGE}.study" in deps  # imported inside a command function
    assert f"{PACKAGE}.config" in deps
    assert f"{PACKAGE}.config" not in imports_of(ROOT / "cache_keys.py")


def test_the_ground_floor_imports_torch_at_most_lazily():
    """Floor 0 (the config among it) loads without torch, so a config validates in a blink."""
    for path in sorted(ROOT.glob("*.py")):
        if floor(module_name(path)) != 0:
            continue
        tree = ast.parse(path.read_text(), str(path))
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in top if isinstance(n, ast.ImportFrom)}
        assert not {n for n in names if n.split(".")[0] in ("torch", "torchvision")}, path.name
