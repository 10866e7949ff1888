"""configs/nvae.py end to end on a converted random-weight NVAE checkpoint (64×64, the released tower layout)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_nvae_config_runs_end_to_end_on_converted_checkpoint(tmp_path):
  pytest.importorskip("torch")
  from regionjax.ports.nvae import NVAEConfig, testing

  # the released CelebA 64 tower (groups 20/10/5: 105 dec_tower modules, so the paper's layer44 exists),
  # with few channels
  cfg = NVAEConfig(num_channels_dec=4, num_latent_per_group=4)
  assert len(cfg.tower()) == 105
  ckpt_file = tmp_path / "checkpoint.pt"
  testing.write_random_checkpoint(ckpt_file, cfg, seed=0)
  env = dict(os.environ, XLA_FLAGS="", PYTHONPATH=ROOT)
  ckpt = tmp_path / "ckpt"
  conv = subprocess.run(
    [sys.executable, "-m", "regionjax.ports.nvae.convert", "--checkpoint", str(ckpt_file), "--out", str(ckpt)],
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
    "--config.model.readjust_bn=True",
    "--config.model.readjust_bn_iters=2",
    "--config.model.readjust_bn_samples=4",
  ]
  run = subprocess.run(
    [
      sys.executable,
      "main.py",
      "--config=configs/nvae.py",
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
  assert metrics["summary"]["layer"] == "layer44"
  assert (workdir / "report.html").exists()
