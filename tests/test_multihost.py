"""Two local processes (jax.distributed on 127.0.0.1) give the one-process answer.

The test starts this file twice as a worker (``python tests/test_multihost.py
worker PID PORT OUT``); each worker has 2 CPU devices, solves its share of the
chunks on a local mesh, and process 0 writes the gathered result once.
"""

import os
import socket
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = dict(lam=200.0, learning_rate=0.02, steps=60, schedule="cosine", chunk_size=3)


def _problem():
  from regionjax import testing

  p = testing.planted_generator()
  return p, (p.decode, p.f, p.f0, p.image, p.masks)


def _worker(pid: int, port: int, out: str) -> None:
  from regionjax import distributed

  multi = distributed.initialize(
    {"coordinator_address": f"127.0.0.1:{port}", "num_processes": 2, "process_id": pid, "initialization_timeout": 60}
  )
  import jax

  assert multi and jax.process_count() == 2 and jax.local_device_count() == 2, (jax.process_count(), jax.devices())
  _, args = _problem()
  seen = []
  res = distributed.solve_minimal_features(
    *args, mesh=distributed.local_mesh(), on_chunk=lambda i, k, c: seen.append(i), **SETTINGS
  )
  if distributed.is_writer():  # written once, by process 0
    np.savez(
      out,
      u=np.asarray(res.u),
      alpha=np.asarray(res.alpha),
      error=np.asarray(res.error),
      history=np.asarray(res.history),
    )
  np.save(f"{out}.chunks{pid}.npy", np.asarray(seen))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
  import regionjax as rj
  from regionjax import distributed

  out = str(tmp_path / "result.npz")
  port = _free_port()
  env = dict(
    os.environ,
    XLA_FLAGS="--xla_force_host_platform_device_count=2",
    JAX_PLATFORMS="cpu",
    PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
  )
  procs = [
    subprocess.Popen(
      [sys.executable, __file__, "worker", str(i), str(port), out],
      cwd=ROOT,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(2)
  ]
  t0 = time.time()
  logs = []
  for p in procs:
    try:
      logs.append(p.communicate(timeout=150)[0])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
  assert all(p.returncode == 0 for p in procs), "\n----\n".join(l[-3000:] for l in logs)
  assert os.path.exists(out) and time.time() - t0 < 150

  planted, args = _problem()
  one = rj.solve_minimal_features(*args, **SETTINGS)
  got = np.load(out)
  np.testing.assert_allclose(got["u"], np.asarray(one.u), atol=1e-5)
  np.testing.assert_allclose(got["error"], np.asarray(one.error), atol=1e-5)
  np.testing.assert_allclose(got["history"], np.asarray(one.history), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(rj.or_interactions(got["u"])), np.asarray(rj.or_interactions(one.u)), atol=1e-4)
  # each process solved its own share: chunk 0 on process 0, then (i - 1) mod 2
  num_chunks = len(rj.chunk_plan(planted.n, 4))  # width 3 rounded up to 2 devices -> 4
  c0, c1 = (np.load(f"{out}.chunks{i}.npy").tolist() for i in range(2))
  assert c0 == [0] + distributed.process_chunks(num_chunks, 0, 2)
  assert c1 == distributed.process_chunks(num_chunks, 1, 2)
  assert sorted(c0 + c1) == list(range(num_chunks))


def test_initialize_single_process_is_noop():
  from regionjax import distributed

  assert distributed.initialize(None) is False
  assert distributed.initialize({"auto": False}) is False


def test_initialize_rejects_bad_config():
  import pytest
  from regionjax import distributed

  with pytest.raises(ValueError, match="unknown distributed config"):
    distributed.initialize({"coordinator": "x"})
  with pytest.raises(ValueError, match="coordinator_address"):
    distributed.initialize({"num_processes": 2})


def test_detect_cluster():
  from regionjax import distributed

  assert distributed.detect_cluster({}) is None
  assert distributed.detect_cluster({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "1"}) is None
  assert distributed.detect_cluster({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "4"}) == "slurm"
  assert distributed.detect_cluster({"TPU_WORKER_HOSTNAMES": "a,b"}) == "tpu"
  assert distributed.detect_cluster({"JAX_COORDINATOR_ADDRESS": "h:1"}) == "env"


def test_process_chunks_partition():
  from regionjax import distributed

  shares = [distributed.process_chunks(11, p, 3) for p in range(3)]
  assert shares == [[1, 4, 7, 10], [2, 5, 8], [3, 6, 9]]


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "worker":
  _worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
