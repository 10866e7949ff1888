"""The built wheel installs into an environment that already has JAX without changing it (slow: builds a wheel,
makes a venv and downloads jax/jaxlib 0.10.0 from PyPI)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OLDER = {"jax": "0.10.0", "jaxlib": "0.10.0"}  # the lower bound of pyproject.toml's range, not CI's 0.10.2


def _run(args, **kw):
  proc = subprocess.run(args, capture_output=True, text=True, timeout=1500, **kw)
  assert proc.returncode == 0, f"{args}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
  return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  out = tmp_path_factory.mktemp("wheel")
  _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), ROOT])
  (path,) = [os.path.join(out, f) for f in os.listdir(out) if f.endswith(".whl")]
  return path


@pytest.mark.slow
def test_wheel_installs_next_to_another_jax_without_changing_it(wheel, tmp_path):
  venv = tmp_path / "venv"
  _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)])
  py = str(venv / "bin" / "python")
  try:
    _run([py, "-m", "pip", "install", "-q", *(f"{k}=={v}" for k, v in OLDER.items())])
  except AssertionError as e:  # no package registry (CI has one)
    if "Could not find a version" in str(e) or "No matching distribution" in str(e) or "connection" in str(e).lower():
      pytest.skip(f"jax {OLDER['jax']} could not be downloaded: {str(e)[-300:]}")
    raise
  probe = "import json, importlib.metadata as m; print(json.dumps({p: m.version(p) for p in ('jax', 'jaxlib', 'flax', 'optax')}))"
  before = json.loads(_run([py, "-c", probe]).stdout)
  assert before["jax"] == OLDER["jax"] and before["jaxlib"] == OLDER["jaxlib"]
  _run([py, "-m", "pip", "install", "-q", wheel], cwd=str(tmp_path))
  after = json.loads(_run([py, "-c", probe]).stdout)
  assert after == before  # pip kept the environment's versions
  check = (
    "import jax, regionjax as rj; from regionjax import testing; "
    "g = testing.PlantedGenerator(); "
    "e = rj.explain(g, g.sample_codes(jax.random.PRNGKey(0), 1), layer='feature', "
    "players=rj.Players.grid_cells(3, 3, [0, 1]), options=rj.SolverOptions(lam=200., learning_rate=0.02, steps=5), "
    "baseline_codes=20, show_progress=False); "
    "print(jax.__version__, rj.__file__, e.components().shape)"
  )
  out = _run([py, "-c", check], cwd=str(tmp_path), env=dict(os.environ, XLA_FLAGS="")).stdout
  assert out.startswith(OLDER["jax"] + " ") and str(venv) in out and "(1, 4, 23)" in out


def test_wheel_installs_one_top_level_name_and_the_default_weights(wheel):
  """Only ``regionjax`` is importable from the wheel (no ``ports`` or ``configs`` to shadow a user's own), and
  the face model's converted weights come with it, so ``rj`` explains real images with no download."""
  import zipfile

  names = zipfile.ZipFile(wheel).namelist()
  tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
  assert tops == {"regionjax"}, tops
  assert any(n.startswith("regionjax/ports/dcgan/") and n.endswith(".msgpack") for n in names)
  assert "regionjax/ports/registry.py" in names and "regionjax/ports/dcgan/LICENSE" in names
