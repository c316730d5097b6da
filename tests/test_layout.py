"""The package's shape: imports run one way down the pipeline, physics knows nothing of learning, the model
knows nothing of MuJoCo, only the implicit step reaches into MJX's private modules, and only the robot's
constants module writes the state layout. Read from the source (module-level and lazy imports alike)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dynaflow"

#: Layers, lowest first: a module may import from its own layer or any lower one, never a higher one.
LAYERS = [
    ["robots", "runtime", "platform", "jsonio", "fileio", "version"],
    ["physics"],
    ["data.schema", "data.windows", "data"],
    ["model"],
    ["flow"],
    ["methods"],
    ["sampling", "config", "distributed"],
    ["checkpoint"],
    ["train", "policy"],
    ["data.sources"],
    ["generate", "render"],
    ["evaluate"],
    ["demo"],
    ["cli"],
    [""],  # dynaflow/__init__.py: the public API
]


def _module(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(module: str) -> int:
    """The layer of a module: its longest matching prefix in LAYERS."""
    best, best_len = None, -1
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".") or name == "") and len(name) > best_len:
                best, best_len = i, len(name)
    assert best is not None, module
    return best


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dynaflow"):
            base = node.module.removeprefix("dynaflow").lstrip(".")
            for alias in node.names:  # `from dynaflow import physics` imports the package physics
                sub = f"{base}.{alias.name}".lstrip(".")
                path_of = SRC / sub.replace(".", "/")
                if path_of.is_dir() or path_of.with_suffix(".py").is_file():
                    out.add(sub)
                else:
                    out.add(base)
        elif isinstance(node, ast.Import):
            out.update(
                a.name.removeprefix("dynaflow").lstrip(".")
                for a in node.names
                if a.name.startswith("dynaflow")
            )
    return out


def _all_imports(path: Path) -> set[str]:
    return {
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in (n.names if isinstance(n, ast.Import) else [n])
        if (n.module if isinstance(n, ast.ImportFrom) else a.name)
    }


FILES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_run_one_way(path):
    me = _module(path)
    for target in _imports(path):
        if target == "" and me != "":
            pytest.fail(f"{me} imports the top-level package (import the module instead)")
        if target and _layer(target) > _layer(me):
            pytest.fail(
                f"{me} (layer {_layer(me)}) imports {target} (layer {_layer(target)}): imports run one way"
            )


def test_physics_knows_nothing_of_learning_and_the_model_nothing_of_mujoco():
    for path in (SRC / "physics").rglob("*.py"):
        learned = {t for t in _imports(path) if not t.startswith(("physics", "robots"))}
        assert not learned, (path.name, learned)
        assert not {m for m in _all_imports(path) if m.split(".")[0] in ("flax", "optax")}, path.name
    model_imports = _all_imports(SRC / "model.py")
    assert not {m for m in model_imports if m.startswith(("mujoco", "dynaflow.physics"))}, model_imports


def test_only_the_implicit_step_reaches_into_mjx_internals():
    users = [
        p.relative_to(SRC).as_posix()
        for p in FILES
        if any(m.startswith("mujoco.mjx._src") for m in _all_imports(p))
    ]
    assert users == ["physics/implicit.py"]


def test_the_state_layout_is_written_once():
    """37, the leg names and the joint names are defined in robots/go2 only (prose may mention them)."""
    for path in FILES:
        if path.parts[-3:-1] == ("robots", "go2"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value == 37 and not isinstance(node.value, bool):
                pytest.fail(
                    f"{path.relative_to(SRC)}:{node.lineno}: the literal 37 (use robots.go2.STATE_DIM)"
                )
            if isinstance(node, ast.Tuple) and [getattr(e, "value", None) for e in node.elts] == [
                "FL",
                "FR",
                "RL",
                "RR",
            ]:
                pytest.fail(f"{path.relative_to(SRC)}:{node.lineno}: the leg names (use robots.go2.LEGS)")


def test_each_command_group_is_one_module():
    from dynaflow.cli import COMMANDS

    names = [m.__name__.rsplit(".", 1)[1] for m in COMMANDS]
    assert names == [
        "physics",
        "data",
        "teacher",
        "train",
        "sample",
        "evaluate",
        "render",
        "generate",
        "export",
        "demo",
    ]
    for m in COMMANDS:
        assert callable(m.add_parser), m.__name__
