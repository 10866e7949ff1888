"""Dataset-scale jobs: two processes through main.py, per-image streaming and resume, images × problems batched."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = [
  "--config=configs/planted.py",
  "--config.solver.steps=40",
  "--config.baseline.num_codes=50",
  "--config.metrics.consistency_contexts=2",
  "--config.report.interactive=False",
]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(devices: int = 1) -> dict:
  return dict(
    os.environ,
    XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
    JAX_PLATFORMS="cpu",
    PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
  )


def _main(workdir, *extra) -> list[str]:
  return [sys.executable, os.path.join(ROOT, "main.py"), *SMALL, f"--config.workdir={workdir}", *extra]


@pytest.mark.slow
def test_two_processes_through_main_finish_with_checkpoints(tmp_path):
  """README's Scale section, as a user runs it: two local processes of main.py with chunk checkpoints on.
  Before the fix process 0 waited forever in orbax's save barrier that process 1 never entered."""
  workdir = tmp_path / "run"
  port = _free_port()
  dist = [f"--config.distributed.coordinator_address=127.0.0.1:{port}", "--config.distributed.num_processes=2"]
  procs = [
    subprocess.Popen(
      _main(workdir, "--config.target.num_images=2", *dist, f"--config.distributed.process_id={pid}"),
      cwd=ROOT,
      env=_env(),
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for pid in range(2)
  ]
  deadline = time.time() + 400
  outs = []
  try:
    for p in procs:
      out, _ = p.communicate(timeout=max(1, deadline - time.time()))
      outs.append(out)
  except subprocess.TimeoutExpired:
    for p in procs:
      p.kill()
    pytest.fail("the two processes did not finish in 400 s (deadlock)")
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  import regionjax as rj

  for i in range(2):
    exp = rj.load(str(workdir / "images" / f"{i:03d}"))
    assert np.isfinite(np.asarray(exp.alpha)).all()
    assert (workdir / "images" / f"{i:03d}" / "metrics.json").exists()
  assert (workdir / "metrics.json").exists()
  ckpt = workdir / "checkpoints"
  assert any(p.name.startswith("chunk_") for p in ckpt.rglob("chunk_*")), "checkpoints were on"
  # the same per-image results as one process
  one = tmp_path / "one"
  done = subprocess.run(
    _main(one, "--config.target.num_images=2"), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=400
  )
  assert done.returncode == 0, done.stderr[-3000:]
  for i in range(2):
    a, b = (rj.load(str(w / "images" / f"{i:03d}")) for w in (workdir, one))
    np.testing.assert_allclose(np.asarray(a.alpha), np.asarray(b.alpha), rtol=0, atol=1e-5)
    assert a.info.fingerprints == b.info.fingerprints


@pytest.mark.slow
def test_killed_job_reruns_only_unfinished_images(tmp_path):
  """SIGTERM after the first image is written; the rerun keeps image 0 (files untouched), solves 1 and 2, and
  every image equals an uninterrupted run's."""
  import regionjax as rj

  workdir = tmp_path / "run"
  proc = subprocess.Popen(
    _main(workdir, "--config.target.num_images=3"),
    cwd=ROOT,
    env=_env(),
    stdout=subprocess.PIPE,
    stderr=subprocess.DEVNULL,
    text=True,
  )
  lines = []
  try:
    for line in proc.stdout:
      lines.append(line)
      if line.startswith("image 000 written"):
        proc.send_signal(signal.SIGTERM)
        break
    proc.wait(timeout=300)
  finally:
    proc.kill()
  assert any(line.startswith("image 000 written") for line in lines), "".join(lines)[-2000:]
  assert proc.returncode == 128 + signal.SIGTERM, proc.returncode
  assert not (workdir / "dataset.json").exists() and not (workdir / "images" / "002").exists()
  first = {p: p.stat().st_mtime_ns for p in (workdir / "images" / "000").iterdir()}
  rerun = subprocess.run(
    _main(workdir, "--config.target.num_images=3"), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=400
  )
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert "1 of 3 images finished earlier (verified), kept: solving 2" in rerun.stdout, rerun.stdout
  assert "image 000 written" not in rerun.stdout and "image 002 written" in rerun.stdout
  assert {p: p.stat().st_mtime_ns for p in (workdir / "images" / "000").iterdir()} == first
  summary = json.loads((workdir / "dataset.json").read_text())
  assert summary["num_images"] == 3 and [im["image"] for im in summary["images"]] == [0, 1, 2]
  assert len(summary["transferability"]["pairs"]) == 3  # the ring: O(M) pairs
  whole = tmp_path / "whole"
  done = subprocess.run(
    _main(whole, "--config.target.num_images=3"), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=400
  )
  assert done.returncode == 0, done.stderr[-3000:]
  for i in range(3):
    a, b = (rj.load(str(w / "images" / f"{i:03d}")) for w in (workdir, whole))
    assert np.isfinite(np.asarray(a.alpha)).all()
    np.testing.assert_allclose(np.asarray(a.alpha), np.asarray(b.alpha), rtol=0, atol=1e-5)
  for name in ("rho_image_top10", "additivity_top30"):
    got = [im[name] for im in summary["images"]]
    want = [im[name] for im in json.loads((whole / "dataset.json").read_text())["images"]]
    np.testing.assert_allclose(got, want, rtol=1e-4)


def _planted_targets(num: int):
  """``num`` images of the planted generator, each with its own code (feature f0 + z)."""
  import jax

  from regionjax import explainer, testing

  gen = testing.PlantedGenerator()
  codes = gen.sample_codes(jax.random.PRNGKey(3), num)
  f0 = np.asarray(gen.planted.f0)
  targets = [explainer.prepare_target(gen, codes, i, "feature", f0) for i in range(num)]
  return gen, f0, targets


@pytest.mark.parametrize("devices", [pytest.param(1, marks=pytest.mark.slow), 8])
def test_images_batched_equal_one_by_one(devices):
  """Images × problems in one compiled program (the image axis sharded over 8 devices) give each image's
  own solve: the same α, errors and histories, finite."""
  import jax

  import regionjax as rj
  from regionjax import batched

  if jax.device_count() < devices:
    pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=8")
  gen, f0, targets = _planted_targets(3)  # 3 images on 8 devices: padded, the padding dropped
  masks = gen.planted.masks
  options = rj.SolverOptions(lam=200.0, learning_rate=0.02, steps=20, chunk_size=8, tau=0.05)
  mesh = batched.image_mesh(jax.devices()[:devices]) if devices > 1 else None
  got = batched.solve_images([(t.decode, t.f, t.image) for t in targets], f0, masks, options, mesh=mesh)
  assert len(got) == 3
  for t, g in zip(targets, got):
    want = rj.solve_minimal_features(t.decode, t.f, f0, t.image, masks, options)
    assert np.isfinite(np.asarray(g.alpha)).all() and np.isfinite(np.asarray(g.error)).all()
    np.testing.assert_allclose(np.asarray(g.alpha), np.asarray(want.alpha), rtol=0, atol=2e-5)
    np.testing.assert_allclose(np.asarray(g.error), np.asarray(want.error), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(g.history), np.asarray(want.history), rtol=1e-4, atol=1e-4)
  # the images differ, so equality per image is not one answer copied three times
  assert not np.allclose(np.asarray(got[0].alpha), np.asarray(got[1].alpha), atol=1e-3)


def test_images_per_step_is_planned_from_the_budget_not_the_images():
  import regionjax as rj
  from regionjax import batched

  base = dict(lam=1.0, learning_rate=0.01, steps=10)
  o = rj.SolverOptions(**base, memory_budget=10 * 2**20)
  assert batched.images_per_step(o, 2 * 2**20, devices=4) == 4 * 5
  assert batched.images_per_step(rj.SolverOptions(**base), 2 * 2**20, devices=4) == 4
  assert batched.images_per_step(o, 2 * 2**20, devices=4, requested=6) == 8


def test_codes_file_round_trip_and_clear_errors(tmp_path):
  import jax

  from regionjax import dataset, testing

  gen = testing.PlantedGenerator(num_classes=3)
  codes = gen.sample_codes(jax.random.PRNGKey(5), 4, classes=np.array([0, 2, 1, 2]))
  path = str(tmp_path / "codes.npz")
  dataset.save_codes(path, codes)
  assert sorted(np.load(path).files) == ["label", "z"]
  got = dataset.load_codes(path, gen, 3)
  np.testing.assert_array_equal(np.asarray(got["z"]), np.asarray(codes["z"])[:3])
  np.testing.assert_array_equal(np.asarray(got["label"]), [0, 2, 1])
  with pytest.raises(ValueError, match="holds 4 codes but target.num_images=5"):
    dataset.load_codes(path, gen, 5)
  np.savez(path, z=np.asarray(codes["z"]))
  with pytest.raises(ValueError, match="has no array 'label'"):
    dataset.load_codes(path, gen, 2)
  np.savez(path, z=np.zeros((4, 7), np.float32), label=np.zeros(4, np.int32))
  with pytest.raises(ValueError, match="'z' has shape"):
    dataset.load_codes(path, gen, 2)


def test_ring_pairs_are_linear_in_the_images():
  from regionjax import dataset

  assert list(dataset.ring_pairs([])) == [] and list(dataset.ring_pairs([7])) == []
  assert list(dataset.ring_pairs([0, 1])) == [(0, 1)]
  pairs = list(dataset.ring_pairs(range(6)))
  assert pairs == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0)]


@pytest.mark.slow
def test_batched_job_from_a_codes_file_equals_the_one_by_one_job(tmp_path):
  """main.py with target.codes_file and target.images_per_step=0 (2 images per step on 2 devices) writes
  the same per-image explanations as the one-by-one job on the same codes drawn from target.seed."""
  import jax

  import regionjax as rj
  from regionjax import dataset, testing

  gen = testing.PlantedGenerator()
  path = str(tmp_path / "codes.npz")
  dataset.save_codes(path, gen.sample_codes(jax.random.PRNGKey(0), 3))  # planted.py's target.seed = 0
  runs = {
    "one": ["--config.target.images_per_step=1"],
    "batched": ["--config.target.images_per_step=0", f"--config.target.codes_file={path}"],
  }
  for name, extra in runs.items():
    done = subprocess.run(
      _main(tmp_path / name, "--config.target.num_images=3", *extra),
      cwd=ROOT,
      env=_env(devices=2),
      capture_output=True,
      text=True,
      timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
  assert "2 images per compiled step on 2 device(s), 3 to solve" in done.stdout
  for i in range(3):
    a, b = (rj.load(str(tmp_path / w / "images" / f"{i:03d}")) for w in runs)
    assert a.info.fingerprints == b.info.fingerprints  # the same images, players and options
    assert np.isfinite(np.asarray(b.alpha)).all()
    np.testing.assert_allclose(np.asarray(a.alpha), np.asarray(b.alpha), rtol=0, atol=1e-5)


def test_dataset_knobs_are_checked_before_any_work(tmp_path):
  import sys as _sys

  from regionjax import config_check

  _sys.path.insert(0, ROOT)
  from configs import planted

  c = planted.get_config()
  c.target.codes_file = str(tmp_path / "missing.npz")
  with pytest.raises(ValueError, match="target.codes_file .* is not a file"):
    config_check.validate(c)
  c = planted.get_config()
  c.target.images_per_step = 0
  c.solver.stop_tol = 1e-3
  with pytest.raises(ValueError, match="early stopping"):
    config_check.validate(c)
  c.target.images_per_step = -1
  c.solver.stop_tol = None
  with pytest.raises(ValueError, match="target.images_per_step"):
    config_check.validate(c)


@pytest.mark.slow
def test_dataset_benchmark_prints_images_per_hour_and_a_ratio(capsys):
  import re

  from benchmarks import dataset as bench

  tiny = ["solver.steps=20", "baseline.num_codes=50", "metrics.consistency_contexts=2", "report.interactive=False"]
  bench.main(
    ["--config", "configs/planted.py", "--images", "2", "--repeats", "1", "--per-step", "2"]
    + [a for s in tiny for a in ("--set", s)]
  )
  out = capsys.readouterr().out
  assert "one by one (images_per_step=1)" in out and "batched (images_per_step=2)" in out, out
  m = re.search(r"batched / one by one = ratio of medians ([0-9.]+)×", out)
  assert m and float(m.group(1)) > 0, out


def _peak_rss_kib(cmd) -> int:
  """Peak resident memory of ``cmd`` run in its own child (getrusage of the children of a fresh python)."""
  probe = (
    "import resource, subprocess, sys; "
    f"r = subprocess.run({cmd!r}, cwd={ROOT!r}, capture_output=True, text=True); "
    "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.stderr.write(r.stderr[-2000:])"
  )
  done = subprocess.run([sys.executable, "-c", probe], env=_env(), capture_output=True, text=True, timeout=900)
  code, kib = done.stdout.split()
  assert code == "0", done.stderr
  return int(kib)


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_images(tmp_path):
  """Measured on the 2-core CPU: 613 MiB for 3 images, 632 MiB for 9 (1.03×). Images are written and dropped."""
  small = _peak_rss_kib(_main(tmp_path / "a", "--config.target.num_images=2"))
  large = _peak_rss_kib(_main(tmp_path / "b", "--config.target.num_images=6"))
  assert large <= 1.3 * small, (small, large)
  assert len(list((tmp_path / "b" / "images").iterdir())) == 6
