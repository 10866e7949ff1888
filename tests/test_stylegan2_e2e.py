"""configs/stylegan2.py end to end on a converted tiny random-weight StyleGAN2 checkpoint (64×64)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_stylegan2_config_runs_end_to_end_on_converted_checkpoint(tmp_path):
  from regionjax.ports.stylegan2 import StyleGAN2Config, testing

  # 64×64 (five blocks, so that the paper's layer3 = b32 exists), few channels, a clamp, the released layout
  cfg = StyleGAN2Config(
    z_dim=16, w_dim=16, img_resolution=64, channel_base=256, channel_max=16, num_fp16_res=2, conv_clamp=256
  )
  pkl = tmp_path / "afhqcat.pkl"
  testing.write_random_pickle(pkl, cfg, seed=0)
  env = dict(os.environ, XLA_FLAGS="", PYTHONPATH=ROOT)
  ckpt = tmp_path / "ckpt"
  conv = subprocess.run(
    [sys.executable, "-m", "regionjax.ports.stylegan2.convert", "--pickle", str(pkl), "--out", str(ckpt)],
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
    "--config.model.truncation=0.7",
    "--config.model.truncation_cutoff=4",
  ]
  run = subprocess.run(
    [
      sys.executable,
      "main.py",
      "--config=configs/stylegan2.py",
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
  assert metrics["summary"]["layer"] == "layer3"
  assert (workdir / "report.html").exists()
  # without a checkpoint: one error line naming the release and the convert command
  bad = subprocess.run(
    [sys.executable, "main.py", "--config=configs/stylegan2.py", f"--config.workdir={tmp_path / 'run2'}"],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
  )
  err = bad.stderr.strip().splitlines()
  assert bad.returncode == 2 and err[-1].startswith("error: ") and "afhqcat.pkl" in err[-1]
  assert "python -m regionjax.ports.stylegan2.convert" in err[-1]
