"""Dataset-scale jobs: two processes through main.py, per-image streaming and resume, images × problems batched."""

import os
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
