"""configs/biggan.py end to end on a converted random-weight biggan-deep-128 checkpoint."""

import json

import pytest

import harness


@pytest.mark.slow
def test_biggan_config_runs_on_converted_checkpoint(tmp_path):
  torch = pytest.importorskip("torch", reason="the converter reads a torch state dict")
  from regionjax.ports.biggan import RELEASED_CONFIGS
  from regionjax.ports.biggan.testing import randomized_reference

  model = randomized_reference(RELEASED_CONFIGS["biggan-deep-128"], seed=0)
  weights, config, ckpt = tmp_path / "pytorch_model.bin", tmp_path / "config.json", tmp_path / "ckpt"
  torch.save(model.state_dict(), weights)
  config.write_text(json.dumps(RELEASED_CONFIGS["biggan-deep-128"].to_dict()))
  harness.run("--weights", weights, "--config", config, "--out", ckpt, module="regionjax.ports.biggan.convert")
  got = harness.run_converted("configs/biggan.py", ckpt, tmp_path / "run", *harness.SMALL, "--config.target.class_id=7")
  assert got["f"].shape == (32, 32, 512) and got["u"].shape == (4, 32, 32, 512)
  assert got["image"].shape == (128, 128, 3)
  assert got["metrics"]["summary"]["layer"] == "layer6" and got["metrics"]["summary"]["class_id"] == 7
