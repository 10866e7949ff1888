"""configs/biggan.py end to end on a converted random-weight biggan-deep-128 checkpoint."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_biggan_config_runs_on_converted_checkpoint(tmp_path):
  torch = pytest.importorskip("torch", reason="the converter reads a torch state dict")
  from regionjax.ports.biggan import RELEASED_CONFIGS
  from regionjax.ports.biggan.testing import randomized_reference

  model = randomized_reference(RELEASED_CONFIGS["biggan-deep-128"], seed=0)
  weights, config = tmp_path / "pytorch_model.bin", tmp_path / "config.json"
  torch.save(model.state_dict(), weights)
  config.write_text(json.dumps(RELEASED_CONFIGS["biggan-deep-128"].to_dict()))
  ckpt = tmp_path / "ckpt"
  env = dict(os.environ, XLA_FLAGS="")
  conv = subprocess.run(
    [
      sys.executable,
      "-m",
      "regionjax.ports.biggan.convert",
      "--weights",
      str(weights),
      "--config",
      str(config),
      "--out",
      str(ckpt),
    ],
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
    "--config.target.class_id=7",
  ]
  run = subprocess.run(
    [
      sys.executable,
      "main.py",
      "--config=configs/biggan.py",
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
  assert data["f"].shape == (32, 32, 512) and data["u"].shape == (4, 32, 32, 512)
  assert data["image"].shape == (128, 128, 3)
  metrics = json.load(open(workdir / "metrics.json"))
  assert metrics["summary"]["layer"] == "layer6" and metrics["summary"]["class_id"] == 7
  assert (workdir / "report.html").exists()
