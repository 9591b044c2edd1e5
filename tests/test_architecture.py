"""The layering rule, read from the source with `ast`, so it holds without anyone remembering it.

- No import cycles among ragtune's modules (lazy imports inside functions count too).
- The shared seams (`example`, `text`, `prompt/`, `generation/`, `embed`) and the shared
  infrastructure (config, runtime, models, runs, html, ...) never import a stage.
- Stages import seams, infrastructure and only the earlier stages listed in `STAGE_DEPS`;
  `rag/`, `serve/` and `synth/` are held to the same table when they arrive.
- Nothing imports `cli` but the command's entry, `ragtune.__main__` (it first picks the
  allocator, `ragtune.allocator`, then runs the CLI).
- `import ragtune.cli` loads no torch (so `ragtune --help` stays fast).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
STAGES = {"data", "train", "eval", "export", "demo", "rag", "serve", "synth"}
SEAMS = {"example", "text", "prompt", "generation", "embed"}
# stage -> the other stages it may import (anything not listed is forbidden)
STAGE_DEPS = {
    "data": set(),
    "train": {"data", "eval"},  # eval.calibrate picks the refusal threshold after training
    "eval": {"data", "rag"},  # eval --index and eval-retrieval score the RAG pipeline
    "export": {"data", "eval"},
    "demo": {"data", "train", "eval"},
    "rag": set(),
    "serve": {"rag"},
    "synth": {"rag", "data"},  # what synth writes passes the data checks (data.normalize)
}


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str], src: Path = SRC) -> set[str]:
    """ragtune modules `path` imports, anywhere in the file; `from pkg import mod` counts as
    importing pkg.mod when that is a module, else pkg."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("ragtune"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package, `level` steps up
                pkg = module_name(path, src).split(".")
                pkg = pkg if path.name == "__init__.py" else pkg[:-1]
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            if not base.startswith("ragtune"):
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if sub in modules else base)
    return found & modules


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    files = {module_name(p, src): p for p in (src / "ragtune").rglob("*.py")}
    modules = set(files)
    return {m: imports_of(p, modules, src) - {m} for m, p in files.items()}


def area(module: str) -> str:
    """The top-level part of ragtune a module belongs to: "train", "prompt", "runtime", ..."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "ragtune"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def forbidden(graph: dict[str, set[str]]) -> list[str]:
    """Every import edge that breaks the layering rule, as "a -> b (why)"."""
    bad = []
    for mod, deps in sorted(graph.items()):
        src = area(mod)
        for dep in sorted(deps):
            dst = area(dep)
            if dst == "cli" and src != "__main__":
                bad.append(f"{mod} -> {dep} (nothing imports cli)")
            elif src == dst or dst not in STAGES or src == "cli":
                continue
            elif src not in STAGES:
                kind = "seam" if src in SEAMS else "shared module"
                bad.append(f"{mod} -> {dep} (a {kind} never imports a stage)")
            elif dst not in STAGE_DEPS[src]:
                bad.append(f"{mod} -> {dep} ({src}/ may import only {sorted(STAGE_DEPS[src])})")
    return bad


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_layering() -> None:
    assert forbidden(import_graph()) == []


def test_every_stage_area_is_known() -> None:
    graph = import_graph()
    areas = {area(m) for m in graph}
    assert areas >= SEAMS and {"data", "train", "eval", "export", "demo"} <= areas
    packages = {
        p.name for p in (SRC / "ragtune").iterdir() if p.is_dir() and p.name != "__pycache__"
    }
    assert packages <= STAGES | SEAMS, "a new package: add it to STAGES or SEAMS"


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "ragtune" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_checker_catches_a_cycle_and_a_forbidden_edge(tmp_path: Path) -> None:
    """The rule itself is tested: a seam importing a stage (lazily, inside a function) and a
    two-module cycle are both reported."""
    src = _write(
        tmp_path,
        {
            "__init__.py": "",
            "text.py": "def f():\n    from ragtune.train import stage\n",
            "train/__init__.py": "",
            "train/stage.py": "from ragtune import text\n",
            "eval/__init__.py": "",
            "eval/a.py": "import ragtune.eval.b\n",
            "eval/b.py": "from ragtune.eval import a\n",
            "data/__init__.py": "",
            "data/x.py": "from ragtune.cli import main\n",
            "prompt/__init__.py": "",
            "prompt/y.py": "from ..eval import a\n",  # relative imports count too
            "cli.py": "",
            "__main__.py": "from ragtune.cli import main\n",  # the entry may
        },
    )
    graph = import_graph(src)
    assert cycles(graph) == [
        ["ragtune.eval.a", "ragtune.eval.b"],
        ["ragtune.text", "ragtune.train.stage"],
    ]
    assert forbidden(graph) == [
        "ragtune.data.x -> ragtune.cli (nothing imports cli)",
        "ragtune.prompt.y -> ragtune.eval.a (a seam never imports a stage)",
        "ragtune.text -> ragtune.train.stage (a seam never imports a stage)",
    ]


@pytest.mark.parametrize(
    "module",
    ["ragtune.cli", "ragtune.allocator", "ragtune.generation.base", "ragtune.prompt.grounded"],
)
def test_light_modules_load_no_torch(module: str) -> None:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
