"""End to end through main.py on the planted generator: outputs, resume, bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLANTED = [f"--config={os.path.join(ROOT, 'configs', 'planted.py')}"]


def main(*args, timeout=240):
  env = dict(os.environ, XLA_FLAGS="")  # one CPU device, like a laptop
  return subprocess.run(
    [sys.executable, os.path.join(ROOT, "main.py"), *PLANTED, *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )


WALL = {}  # seconds of the finished run, measured around the process


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  """The cache (cache.dir) of the finished run: compiled programs and its baseline."""
  return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cache_dir):
  workdir = str(tmp_path_factory.mktemp("planted"))
  t0 = time.time()
  proc = main(f"--config.workdir={workdir}", f"--config.cache.dir={cache_dir}")
  WALL["finished"] = time.time() - t0
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir, proc


def test_stage_timings(finished):
  """metrics.json ``timings``: every stage present, ≥ 0, not overlapping (their sum ≤ the process's wall time);
  the last lines print the table."""
  workdir, proc = finished
  with open(os.path.join(workdir, "metrics.json")) as fh:
    t = json.load(fh)["timings"]
  stages = ("startup", "baseline", "compile", "solve", "metrics", "report", "other")
  assert set(stages) | {"total"} == set(t)
  assert all(t[k] >= 0 for k in stages), t
  for k in ("startup", "compile", "solve", "metrics", "report"):  # each did work in this run
    assert t[k] > 0, (k, t)
  assert sum(t[k] for k in stages) == pytest.approx(t["total"], abs=0.01)
  assert t["total"] <= WALL["finished"], (t, WALL)
  tail = proc.stdout.strip().splitlines()[-4:]
  assert "start-up" in tail[1] and "total" in tail[1], tail
  assert float(tail[2].split()[-1]) == pytest.approx(t["total"], abs=0.06)


def test_outputs(finished):
  workdir, proc = finished
  for name in ("report.html", "metrics.json", "explanation.json", "explanation.npz", "config.json"):
    assert os.path.exists(os.path.join(workdir, name)), name
  assert not os.path.exists(os.path.join(workdir, "components.npz"))  # dense arrays only when asked for
  import regionjax as rj

  exp = rj.load(workdir)
  assert len(exp) == 1 and exp.minimal_features().shape == (1, 16, 23) and exp.components().shape == (1, 16, 23)
  assert exp.players.cells == (0, 1, 2, 3) and exp.info.layer == "feature"
  assert exp.info.composition == "independent" and exp.alpha.shape == (1, 15, 23)  # every non-empty subset solved
  metrics = json.load(open(os.path.join(workdir, "metrics.json")))
  assert metrics["solver"]["met_tau"] == 16
  # metrics.json is exactly the typed metrics' serialisation (every key known, none missing; written with sorted keys)
  from regionjax import results as results_lib

  typed = results_lib.ImageMetrics.from_json_dict(metrics)
  assert typed.solver.met_tau == 16 and typed.summary.n == 4
  assert typed.to_json_dict() == metrics
  html = open(os.path.join(workdir, "report.html")).read()
  assert "data:image/png;base64," in html and "Action fields" in html
  assert "report:" in proc.stdout and "Done." in proc.stdout


def test_planted_fields_are_the_strongest(finished):
  workdir, _ = finished
  metrics = json.load(open(os.path.join(workdir, "metrics.json")))
  top = {c["field"] for c in metrics["top_components"][:6]}
  # planted fields of regionjax.testing.planted_generator(): {0},{1},{0,1},{2,3},{1,3},{3}
  assert top == {"{0}", "{1}", "{0,1}", "{2,3}", "{1,3}", "{3}"}


def test_rerun_reprints_without_recomputing(finished):
  workdir, _ = finished
  before = os.path.getmtime(os.path.join(workdir, "explanation.npz"))
  proc = main(f"--config.workdir={workdir}")
  assert proc.returncode == 0
  assert "Finished earlier; nothing recomputed." in proc.stdout
  assert os.path.getmtime(os.path.join(workdir, "explanation.npz")) == before


def test_other_config_is_refused(finished):
  workdir, _ = finished
  before = open(os.path.join(workdir, "metrics.json")).read()
  proc = main(f"--config.workdir={workdir}", "--config.solver.steps=50")
  assert proc.returncode != 0
  assert "different config" in proc.stderr and "solver.steps" in proc.stderr
  assert open(os.path.join(workdir, "metrics.json")).read() == before


@pytest.mark.parametrize(
  "args,message",
  [
    (["--config.solver.stepz=5"], "unknown config key"),
    (["--config.patches.n=10"], "only 9 cells"),
    (["--config.patches.indices=(0,1,2,9)"], "out of range"),
    (["--config.solver.lam=0"], "solver.lam must be > 0"),
    (["--config.solver.lam=-3"], "solver.lam must be > 0"),
    (["--config.solver.steps=0"], "solver.steps must be a positive integer"),
    (["--config.model.name=biggan", "--config.model.checkpoint=NOTADIR", "--config.model.layer=layer6"], "NOTADIR"),
    (["--config.target.class_id=3"], "out of range"),
    (["--config.model.layer=layer9"], "unknown layer"),
    (["--config.metrics.top_k=-3"], "metrics.top_k must be"),
    (["--config.solver.schedule=linear"], "solver.schedule must be one of 'constant', 'cosine'"),
    (["--config.denoise.tau_q_relative=-1"], "denoise.tau_q_relative must be"),
    (["--config.solver.learning_rate=inf"], "solver.learning_rate must be > 0 and at most 1000"),
    (["--config.solver.tau=-1"], "solver.tau must be > 0"),
  ],
)
def test_bad_input_is_one_clear_line(tmp_path, args, message):
  workdir = tmp_path / "run"
  proc = main(f"--config.workdir={workdir}", *args)
  assert proc.returncode == 2
  lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
  assert lines[-1].startswith("error:") and message in lines[-1], proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  assert not (workdir / "report.html").exists() and not (workdir / "metrics.json").exists()
  assert not (workdir / "config.json").exists()  # a corrected rerun in the same workdir is not refused


def _cache_files(cache_dir) -> dict:
  out = {}
  for sub in ("jax", "baselines"):
    d = os.path.join(cache_dir, sub)
    out[sub] = sorted(os.listdir(d)) if os.path.isdir(d) else []
  return out


def _same_components(a_dir, b_dir):
  import regionjax as rj

  np.testing.assert_allclose(rj.load(a_dir).components(), rj.load(b_dir).components(), rtol=1e-5, atol=1e-6)


def test_run_fills_the_cache(finished, cache_dir):
  files = _cache_files(cache_dir)
  assert len(files["baselines"]) == 1 and files["baselines"][0].endswith(".npz")
  assert len([f for f in files["jax"] if not f.startswith(".")]) >= 3  # compiled programs


@pytest.mark.slow  # a second full run; over 20 s on the 2-core CPU
def test_another_seed_reads_every_program_from_the_cache(finished, cache_dir, tmp_path):
  """Another target seed, another workdir: no program is compiled anew (no new cache entry) and f0 is read back."""
  before = _cache_files(cache_dir)
  proc = main(f"--config.workdir={tmp_path / 'w'}", f"--config.cache.dir={cache_dir}", "--config.target.seed=5")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert _cache_files(cache_dir) == before
  assert "baseline f0" not in proc.stderr  # no progress bar: f0 came from the cache


@pytest.mark.slow  # a full main.py run, 13-19 s on the 2-core CPU: the fast suite stays under 10 minutes
def test_damaged_cache_warns_and_the_run_goes_on(finished, cache_dir, tmp_path):
  """Every cache entry overwritten with garbage (compiled programs and the baseline): warnings, the same result."""
  import shutil

  damaged = str(tmp_path / "cache")
  shutil.copytree(cache_dir, damaged)
  for sub in ("jax", "baselines"):
    for name in os.listdir(os.path.join(damaged, sub)):
      with open(os.path.join(damaged, sub, name), "wb") as fh:
        fh.write(b"\x00garbage" * 7)
  with open(os.path.join(damaged, "jax", "stray-file"), "wb") as fh:
    fh.write(os.urandom(100))
  workdir = str(tmp_path / "w")
  proc = main(f"--config.workdir={workdir}", f"--config.cache.dir={damaged}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "warning: cached baseline" in proc.stderr
  assert "persistent compilation cache" in proc.stderr.lower() or "cache" in proc.stderr.lower()
  _same_components(workdir, finished[0])


@pytest.mark.slow  # a full main.py run, 13-19 s on the 2-core CPU: the fast suite stays under 10 minutes
def test_unusable_cache_warns_and_the_run_goes_on(tmp_path):
  (tmp_path / "file").write_text("x")  # a directory under a file: not usable, even for root
  workdir = str(tmp_path / "w")
  proc = main(f"--config.workdir={workdir}", f"--config.cache.dir={tmp_path / 'file' / 'cache'}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "warning: cache directory" in proc.stderr and "not usable" in proc.stderr
  assert os.path.exists(os.path.join(workdir, "report.html"))


def test_unwritable_workdir(tmp_path):
  ro = tmp_path / "ro"
  ro.mkdir()
  ro.chmod(0o500)
  target = ro / "sub"
  if os.access(ro, os.W_OK):  # root ignores permissions: use a path under a file instead
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "sub"
  proc = main(f"--config.workdir={target}")
  assert proc.returncode != 0 and "not writable" in proc.stderr


@pytest.mark.slow  # over 20 s on the 2-core CPU; CI runs it with -m slow
def test_kill_corrupt_refill_ends_with_the_same_components(tmp_path, finished):
  """SIGKILL in the middle of the solve (the lock is left behind), one saved chunk damaged on disk and a
  truncated baseline, rerun: the stale lock is taken over, the damaged chunk set aside and solved again, and
  the components equal those of an uninterrupted run."""
  slow = ["--config.solver.chunk_size=1", "--config.solver.steps=2000"]
  ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
  env = dict(os.environ, XLA_FLAGS="")
  cmd = [sys.executable, os.path.join(ROOT, "main.py"), *PLANTED, f"--config.workdir={run_dir}", *slow]
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  ckpt = run_dir / "checkpoints" / "image_000"
  deadline = time.time() + 180
  while time.time() < deadline:
    done = [p for p in ckpt.glob("chunk_*") if p.name[6:].isdigit()] if ckpt.exists() else []
    if len(done) >= 3:
      break
    assert proc.poll() is None, "the run ended before it could be killed"
    time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_with = len([p for p in ckpt.glob("chunk_*") if p.name[6:].isdigit()])
  assert 3 <= killed_with < 15, killed_with
  assert not (run_dir / "report.html").exists()
  assert (run_dir / ".lock").exists()  # a killed run cannot release its lock
  data = max((ckpt / "chunk_00001" / "d").iterdir(), key=lambda p: p.stat().st_size)
  data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])  # corrupt: one data file cut short
  base = run_dir / "baseline.npz"
  base.write_bytes(base.read_bytes()[:40])
  resumed = main(f"--config.workdir={run_dir}", *slow)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "Traceback" not in resumed.stderr
  assert "took over the lock of a run that is gone" in resumed.stderr
  assert "chunk_00001 does not restore" in resumed.stderr and "baseline.npz is damaged" in resumed.stderr
  assert len(list((ckpt / "corrupt").iterdir())) == 1 and not (run_dir / ".lock").exists()
  ref = main(f"--config.workdir={ref_dir}", *slow)
  assert ref.returncode == 0
  import regionjax as rj

  a, b = rj.load(run_dir), rj.load(ref_dir)
  assert np.isfinite(np.asarray(a.components())).all()
  np.testing.assert_allclose(a.components(), b.components(), rtol=0, atol=1e-6)
  np.testing.assert_allclose(a.minimal_features(), b.minimal_features(), rtol=0, atol=1e-6)
  np.testing.assert_allclose(a.f0, b.f0, rtol=0, atol=1e-6)


@pytest.mark.slow  # over 20 s on the 2-core CPU; CI runs it with -m slow
def test_batch_mode(tmp_path):
  """Several images: per-image reports, an index, mean ± std and transferability."""
  workdir = tmp_path / "batch"
  proc = main(f"--config.workdir={workdir}", "--config.target.num_images=3", "--config.denoise.enabled=False")
  assert proc.returncode == 0, proc.stderr[-2000:]
  metrics = json.load(open(workdir / "metrics.json"))
  assert metrics["summary"]["num_images"] == 3
  for i in range(3):
    assert (workdir / "images" / f"{i:03d}" / "report.html").exists()
  index = (workdir / "report.html").read_text()
  assert "images/002/report.html" in index
  assert "One action field across the images" in index and index.count('href="images/') >= 6
  # the planted structure lives in the decoder, so every image has the same top fields
  t = metrics["transferability"]
  assert len(t["pairs"]) == 3 and t["mean"] == 1.0
  agg = metrics["aggregate"]
  assert agg["boundedness_top10pct.mean"]["count"] == 3 and agg["boundedness_top10pct.mean"]["mean"] > 0.999
  import regionjax as rj

  exp = rj.load(workdir)  # the batch: every images/NNN/ concatenated
  assert len(exp) == 3 and exp.minimal_features().shape == (3, 16, 23) and exp.info.indices == (0, 1, 2)
