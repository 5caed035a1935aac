"""Who may write: the recorder is the run directory's one writer, analysis returns rows and never opens a
file for writing, models hold models (no run directory at all). Checked on the source (AST) and on
what a fresh interpreter loads."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "grok_tui"

#: Calls that write, move or delete files, by their dotted name (the module as imported here).
WRITING_CALLS = {
    "os.replace", "os.rename", "os.renames", "os.remove", "os.unlink", "os.mkdir", "os.makedirs",
    "os.rmdir", "os.removedirs", "os.symlink", "os.link", "os.truncate", "os.open", "os.write",
    "np.save", "np.savez", "np.savez_compressed", "np.savetxt", "numpy.save", "numpy.savez",
    "torch.save", "json.dump", "pickle.dump", "tempfile.mkstemp", "tempfile.NamedTemporaryFile",
}  # fmt: skip
#: Methods that only write (Path, ndarray): any receiver.
WRITING_METHODS = {
    "write_text", "write_bytes", "unlink", "mkdir", "rmdir", "touch", "rename", "symlink_to",
    "hardlink_to", "tofile", "savez",
}  # fmt: skip
WRITING_MODULES = {"shutil", "tempfile"}


def dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (base := dotted(node.value)):
        return f"{base}.{node.attr}"
    return None


def writes_in(path: Path) -> list[str]:
    """Every call or import in ``path`` that can write a file, as 'line: what'."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{node.lineno}: import {n}" for n in names if n.split(".")[0] in WRITING_MODULES]
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func) or ""
        method = node.func.attr if isinstance(node.func, ast.Attribute) else ""
        if name in WRITING_CALLS or method in WRITING_METHODS:
            found.append(f"{node.lineno}: {name or method}()")
        if name in ("open", "io.open") or (method == "open" and name != "os.open"):
            index = 1 if name in ("open", "io.open") else 0  # open(path, mode), Path.open(mode)
            given = node.args[index] if len(node.args) > index else None
            mode = next((k.value for k in node.keywords if k.arg == "mode"), given)
            text = "r" if mode is None else mode.value if isinstance(mode, ast.Constant) else "?"
            if not isinstance(text, str) or set(text) & set("wax+?"):
                found.append(f"{node.lineno}: {name}(mode={text!r})")
    return found


def test_the_scan_finds_each_kind_of_write(tmp_path: Path) -> None:
    """The scanner itself: each way of writing a file is caught, reading is not."""
    bad = {
        'open(p, "w")': 1, 'open(p, mode="a")': 1, 'p.open("wb")': 1, "open(p, m)": 1, "os.replace(a, b)": 1,
        "p.write_text('x')": 1, "np.savez(p, a=x)": 1, "torch.save(s, p)": 1, "p.unlink()": 1,
        "json.dump(o, f)": 1, "import shutil": 1, "from tempfile import mkstemp": 1,
        'open(p)': 0, 'open(p, "rb")': 0, 'p.open()': 0, "np.load(p)": 0, "p.read_text()": 0,
        "json.dumps(o)": 0, "s.replace('a', 'b')": 0,
    }  # fmt: skip
    for code, n in bad.items():
        f = tmp_path / "m.py"
        f.write_text(code + "\n")
        assert len(writes_in(f)) == n, code


@pytest.mark.parametrize("module", sorted(p.name for p in (PKG / "analysis").glob("*.py")))
def test_analysis_never_writes_a_file(module: str) -> None:
    assert writes_in(PKG / "analysis" / module) == []


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the grok_tui modules ``path`` imports (relative imports resolved)."""
    package = ["grok_tui", *path.relative_to(PKG).parent.parts]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join([*base, *([node.module] if node.module else [])])
            out |= {mod} | {f"{mod}.{a.name}" for a in node.names}
    return {m for m in out if m.startswith("grok_tui")}


@pytest.mark.parametrize("module", sorted(p.name for p in (PKG / "models").glob("*.py")))
def test_models_import_neither_runs_nor_recorder(module: str) -> None:
    assert imported_modules(PKG / "models" / module) & {"grok_tui.runs", "grok_tui.recorder"} == set()


def loaded_by(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.slow  # a fresh interpreter or a long generated input
def test_what_each_side_loads() -> None:
    models = loaded_by("import grok_tui.models.rfm, grok_tui.models.transformer, grok_tui.models.mlp")
    assert not {"grok_tui.runs", "grok_tui.recorder"} & models
    assert "grok_tui.recorder" not in loaded_by("import grok_tui.runs")  # readers never load the writer
    # the scheduler and the CLI write status.json through the recorder: no numpy, no torch for that
    assert not {"numpy", "torch"} & loaded_by("import grok_tui.recorder, grok_tui.launch.scheduler")
    assert imported_modules(PKG / "runs.py") & {"grok_tui.recorder"} == set()
