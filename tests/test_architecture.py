"""The tree is the architecture, and docs/architecture.md describes it: these keep both true.

- every module and package the page names exists, and every part of the package is on it;
- the state machine table on the page is ``payouts.states.MOVES``;
- the modules import each other without a cycle, counting imports made only for type
  checking and imports inside functions; the product imports nothing from ``tools``, and
  the SDK nothing from the rest of the package;
- only ``storage`` knows which database engine it runs on;
- no part is handed the composition root: only entry points import ``runtime``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from payout131.payouts.states import MOVES

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "payout131"
PAGE = ROOT / "docs" / "architecture.md"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _tree() -> str:
    text = PAGE.read_text(encoding="utf-8")
    return text[text.index("```\nsrc/payout131/") : text.index("```", text.index("src/payout131/"))]


def test_every_module_the_page_names_exists() -> None:
    text = PAGE.read_text(encoding="utf-8")
    named = {re.sub(r"\s+", "", n) for n in re.findall(r"`([a-z_]+/\s*[a-z_]+\.py)`", text)}
    named = {n for n in named if not n.startswith("tests/")}
    assert len(named) > 30
    missing = sorted(n for n in named if not (PACKAGE / n).is_file())
    assert missing == []


def test_the_tree_on_the_page_is_the_package() -> None:
    listed = set(re.findall(r"^  ([a-z_]+(?:/|\.py))", _tree(), re.MULTILINE))
    actual = {
        entry.name + ("/" if entry.is_dir() else "")
        for entry in PACKAGE.iterdir()
        if entry.name != "__pycache__" and entry.name != "__init__.py"
    }
    assert listed == actual


def _table() -> dict[str, tuple[str, str]]:
    text = PAGE.read_text(encoding="utf-8")
    start = text.index("| move | session | payout |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        name, session, payout = (cell.strip() for cell in line.strip("|").split("|"))
        rows[name] = (session, payout)
    return rows


def _side(side: object) -> str:
    if side is None:
        return ""
    sources = sorted(side.sources) or ["new"]  # type: ignore[attr-defined]
    order = ["new", "created", "in_progress", "pending", "error", "accepted", "succeeded"]
    sources.sort(key=lambda s: order.index(s) if s in order else len(order))
    return f"{', '.join(sources)} → {side.target}"  # type: ignore[attr-defined]


def test_the_state_machine_on_the_page_is_the_code() -> None:
    in_code = {name: (_side(m.session), _side(m.payout)) for name, m in MOVES.items()}
    assert _table() == in_code


def _imports(module: str, path: Path) -> set[str]:
    """Every module of the package ``module`` imports, wherever the import stands."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {_resolve(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else _resolve(base))
    return {name for name in found if name.startswith("payout131") and name != module}


def _resolve(name: str) -> str:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def test_no_import_cycles() -> None:
    cycles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_product_imports_nothing_from_the_tools_and_the_sdk_nothing_from_the_product() -> None:
    product = [m for m in GRAPH if not m.startswith("payout131.tools")]
    into_tools = sorted(
        (m, t) for m in product for t in GRAPH[m] if t.startswith("payout131.tools")
    )
    assert into_tools == []
    sdk = [m for m in GRAPH if m.startswith("payout131.client")]
    outside = sorted((m, t) for m in sdk for t in GRAPH[m] if not t.startswith("payout131.client"))
    assert outside == []


ENGINE = re.compile(r"\bis_sqlite\b|\bis_postgresql\b|dialect\.name|\"postgresql\"|'postgresql'")


@pytest.mark.parametrize(
    "module",
    sorted(
        m
        for m in MODULES
        if not m.startswith(("payout131.storage", "payout131.tools", "payout131.cli"))
    ),
)
def test_only_storage_knows_the_engine(module: str) -> None:
    source = MODULES[module].read_text(encoding="utf-8")
    assert not ENGINE.search(source), f"{module} branches on the database engine"


def test_no_part_is_handed_the_composition_root() -> None:
    importers = sorted(m for m, targets in GRAPH.items() if "payout131.runtime" in targets)
    assert importers == [
        "payout131.cli.clock_commands",  # an advance runs the clocks' worker in the command
        "payout131.cli.main",
        "payout131.cli.worker_commands",
    ]
