"""docs/architecture.md's rules: every module of regionjax/ has a layer, imports go down (or sideways), no circle,
no ml_collections below the run layer, no private name imported from another module."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "regionjax"

LAYERS = {
  "core": ["transforms", "subsets", "patches", "components", "generator", "progress", "decoding", "timings"],
  "solve": ["solver", "truncated", "batched"],
  "explain": ["explainer", "explanation", "io", "cache", "wrap", "torch_bridge", "testing"],
  "evaluate": ["evaluation", "results", "metrics", "baselines", "denoise", "query"],
  "render": ["report", "figures", "interactive", "plot", "truncated_report"],
  "run": ["cli", "pipeline", "runsteps", "dataset", "check", "config_check", "config_help", "distributed"],
}
RANK = {m: i for i, (_, mods) in enumerate(LAYERS.items()) for m in mods}
ALLOWED_UP = {("explainer", "distributed")}  # the mesh helpers (docs/architecture.md)


def _modules():
  return sorted(p.stem for p in PKG.glob("*.py") if p.stem != "__init__")


def _imports(path: pathlib.Path):
  """(module, name) pairs of ``from regionjax[.module] import name`` / ``import regionjax.module``."""
  out = []
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module == "regionjax":
      out += [(a.name, None) for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("regionjax."):
      out += [(node.module.split(".")[1], a.name) for a in node.names]
    elif isinstance(node, ast.Import):
      out += [(a.name.split(".")[1], None) for a in node.names if a.name.startswith("regionjax.")]
  return out


def test_every_module_has_a_layer():
  assert set(_modules()) - set(RANK) == set(), "add the new module to LAYERS and docs/architecture.md"
  assert set(RANK) - set(_modules()) == set(), "a module in LAYERS no longer exists"


@pytest.mark.parametrize("module", _modules())
def test_imports_go_down(module):
  for dep, _ in _imports(PKG / f"{module}.py"):
    if dep in RANK and dep != module:
      assert RANK[dep] <= RANK[module] or (module, dep) in ALLOWED_UP, f"{module} ({RANK[module]}) imports {dep}"


@pytest.mark.parametrize("module", _modules())
def test_no_private_name_crosses_a_module(module):
  private = [(dep, name) for dep, name in _imports(PKG / f"{module}.py") if name and name.startswith("_")]
  assert not private
  text = (PKG / f"{module}.py").read_text()
  for dep in _modules():
    for alias in (f"{dep}_lib", dep):
      assert f" {alias}._" not in text.replace(f" {alias}.__", ""), f"{module} uses a private name of {dep}"


def test_no_config_below_the_run_layer():
  for module in _modules():
    if RANK[module] < RANK["cli"]:
      assert "ml_collections" not in (PKG / f"{module}.py").read_text(), module


def test_no_import_circle():
  graph = {m: {d for d, _ in _imports(PKG / f"{m}.py") if d in RANK and d != m} for m in _modules()}
  state = {}

  def visit(m, path):
    state[m] = "open"
    for d in graph[m]:
      assert state.get(d) != "open", f"import circle: {' → '.join(path + [m, d])}"
      if d not in state:
        visit(d, path + [m])
    state[m] = "done"

  for m in graph:
    if m not in state:
      visit(m, [])
