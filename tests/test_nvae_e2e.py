"""configs/nvae.py end to end on a converted random-weight NVAE checkpoint (64×64, the released tower layout)."""

import numpy as np
import pytest

import harness


@pytest.mark.slow
def test_nvae_config_runs_end_to_end_on_converted_checkpoint(tmp_path):
  pytest.importorskip("torch")
  from regionjax.ports.nvae import NVAEConfig, testing

  # the released CelebA 64 tower (groups 20/10/5: 105 dec_tower modules, so the paper's layer44 exists),
  # with few channels
  cfg = NVAEConfig(num_channels_dec=4, num_latent_per_group=4)
  assert len(cfg.tower()) == 105
  ckpt_file, ckpt = tmp_path / "checkpoint.pt", tmp_path / "ckpt"
  testing.write_random_checkpoint(ckpt_file, cfg, seed=0)
  harness.run("--checkpoint", ckpt_file, "--out", ckpt, module="regionjax.ports.nvae.convert")
  bn = ("--config.model.readjust_bn=True", "--config.model.readjust_bn_iters=2", "--config.model.readjust_bn_samples=4")
  got = harness.run_converted("configs/nvae.py", ckpt, tmp_path / "run", *harness.SMALL, *harness.SMALL_METRICS, *bn)
  assert got["f"].shape == (32, 32, 8) and got["u"].shape == (4, 32, 32, 8)
  assert got["image"].shape == (64, 64, 3) and np.isfinite(got["image"]).all()
  assert got["metrics"]["summary"]["layer"] == "layer44"
