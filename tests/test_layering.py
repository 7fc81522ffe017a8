"""Imports point one way, downwards (docs/architecture.md): a package may import its own modules and
packages of lower layers, never a higher or a sideways one. Every import counts, including those inside
functions (a lazy import is still a dependency), except ``if TYPE_CHECKING:`` blocks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "invertkit"

# low to high; a package may import packages of earlier rows (and its own)
LAYERS: list[tuple[str, ...]] = [
    ("errors", "version"),
    ("threads", "allocator"),
    ("progress",),
    ("untrusted",),
    ("registry", "optiontext", "optionfields", "seeds", "store", "io", "morphometry"),
    ("align",),
    ("generators",),
    ("features", "diffusion"),
    ("objectives", "metrics", "degradations"),
    ("results",),
    ("runs",),
    ("encoders",),
    ("methods", "editing"),
    ("bench", "demo", "datasets"),
    ("cli",),
]
RANK = {pkg: rank for rank, row in enumerate(LAYERS) for pkg in row}


def _package(module: str) -> str:
    """``invertkit.generators.stylegan2.spaces`` -> ``generators``; the root package -> ``<root>``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports() -> list[tuple[str, int, str, str]]:
    """``(file, line, importing package, imported package)`` for every invertkit-internal import."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        module = ".".join(parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_lines(tree)
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = parts if is_pkg else parts[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                # "from .. import metrics" imports the sub-package invertkit.metrics, not the root
                targets = [f"{stem}.{a.name}" for a in node.names] if node.module is None else [stem]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                if target == "invertkit" or target.startswith("invertkit."):
                    out.append((str(path.relative_to(SRC)), node.lineno, _package(module), _package(target)))
    return out


def test_every_package_has_a_layer():
    packages = {p.name for p in SRC.iterdir() if (p.is_dir() and (p / "__init__.py").is_file())}
    packages |= {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    assert packages - set(RANK) == set(), "add the new package to LAYERS (and docs/architecture.md)"


def test_imports_point_downwards():
    wrong = [f"{file}:{line}: {src} imports {dst}" for file, line, src, dst in imports()
             if src != "<root>" and src != dst and (dst == "<root>" or RANK[dst] >= RANK[src])]
    assert wrong == []


@pytest.mark.parametrize("low", ["generators", "store", "io", "errors"])
def test_the_bottom_knows_nothing_above_it(low):
    """The issue's rule, spelled out: generators never import diffusion, methods, editing or the CLI."""
    above = {pkg for pkg, rank in RANK.items() if rank > RANK[low]}
    assert not [(f, n, d) for f, n, s, d in imports() if s == low and d in above | {"<root>"}]


def test_the_check_sees_lazy_imports():
    found = {(s, d) for _, _, s, d in imports()}
    assert ("generators", "store") in found and ("cli", "runs") in found  # cli imports runs only inside functions
