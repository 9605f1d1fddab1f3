"""Our own plugins use only the public author surface of vfp-core, as a third party must.

vfp-il-components and vfp-configs are plugins like any other: every ``vfp`` module their sources import
(``TYPE_CHECKING`` imports included) is one of the public modules documented in docs/plugins.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The documented public modules for plugin authors (docs/plugins.md, "What a plugin imports"; vfp.envs in
# docs/environments.md). Their submodules are internal: import from the package.
PUBLIC_MODULES = {"vfp", "vfp.protocols", "vfp.engine", "vfp.envs"}
PLUGIN_SOURCES = [
    ROOT / "packages" / "vfp-il-components" / "src" / "vfp_il_components",
    ROOT / "packages" / "vfp-configs" / "src" / "vfp_configs",
]


def vfp_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every absolute import of ``vfp`` or a submodule of it in a source file."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            # `from vfp import engine` imports the module vfp.engine
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names if node.module == "vfp"]
    return sorted((line, module) for line, module in found if module == "vfp" or module.startswith("vfp."))


def test_the_scan_sees_imports_of_every_form(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nimport vfp._plugins\nfrom vfp.config import x\n"
        "if TYPE_CHECKING:\n    from vfp.engine.loop import Engine\n"
        "from vfp import engine, hookimpl\nimport vfp_il_components\n"
    )
    assert vfp_imports(source) == [
        (2, "vfp._plugins"),
        (3, "vfp.config"),
        (5, "vfp.engine.loop"),
        (6, "vfp"),
        (6, "vfp.engine"),
        (6, "vfp.hookimpl"),
    ]


@pytest.mark.parametrize("package", PLUGIN_SOURCES, ids=lambda p: p.name)
def test_plugins_import_only_public_vfp_modules(package: Path) -> None:
    private = []
    for path in sorted(package.rglob("*.py")):
        for line, module in vfp_imports(path):
            # `from vfp import NAME` is public whatever NAME is; a module below vfp must be a public one
            if module not in PUBLIC_MODULES and not (module.count(".") == 1 and _is_name_in_vfp(module)):
                private.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert private == [], f"non-public vfp modules imported (use {', '.join(sorted(PUBLIC_MODULES))}):\n" + "\n".join(
        private
    )


def _is_name_in_vfp(dotted: str) -> bool:
    """``vfp.X`` where X is an attribute exported by ``vfp`` (a class or function, not a private module)."""
    import vfp

    name = dotted.split(".", 1)[1]
    return name in getattr(vfp, "__all__", ()) and not name.startswith("_")
