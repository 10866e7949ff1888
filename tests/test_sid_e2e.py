"""configs/sid.py end to end on a converted tiny random-weight SiD checkpoint (64×64)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_sid_config_runs_end_to_end_on_converted_checkpoint(tmp_path):
  from regionjax.ports.sid import SiDConfig, testing

  # 64×64 with three levels, so that the paper's tap dec/32x32_up exists; few channels
  cfg = SiDConfig(img_resolution=64, model_channels=8, channel_mult=(1, 1, 1), num_blocks=1, attn_resolutions=(16,))
  pkl = tmp_path / "network-snapshot.pkl"
  testing.write_random_pickle(pkl, cfg, seed=0)
  env = dict(os.environ, XLA_FLAGS="", PYTHONPATH=ROOT)
  ckpt = tmp_path / "ckpt"
  conv = subprocess.run(
    [sys.executable, "-m", "regionjax.ports.sid.convert", "--pickle", str(pkl), "--out", str(ckpt)],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
  )
  assert conv.returncode == 0, conv.stderr[-2000:]
  workdir = tmp_path / "run"
  small = [
    "--config.patches.n=2",
    "--config.solver.steps=2",
    "--config.baseline.num_codes=4",
    "--config.baseline.batch_size=4",
    "--config.metrics.decode_batch=8",
    "--config.denoise.steps=2",
    "--config.metrics.consistency_contexts=2",
  ]
  run = subprocess.run(
    [
      sys.executable,
      "main.py",
      "--config=configs/sid.py",
      f"--config.workdir={workdir}",
      f"--config.model.checkpoint={ckpt}",
      *small,
    ],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=1500,
  )
  assert run.returncode == 0, run.stderr[-3000:]
  import regionjax as rj

  exp = rj.load(workdir)
  data = {"f": np.asarray(exp.f)[0], "u": np.asarray(exp.minimal_features())[0], "image": np.asarray(exp.image)[0]}
  assert data["f"].shape == (32, 32, 8) and data["u"].shape == (4, 32, 32, 8)
  assert data["image"].shape == (64, 64, 3) and np.isfinite(data["image"]).all()
  metrics = json.load(open(workdir / "metrics.json"))
  assert metrics["summary"]["layer"] == "dec/32x32_up"
  assert (workdir / "report.html").exists()
