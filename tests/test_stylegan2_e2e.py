"""configs/stylegan2.py end to end on a converted tiny random-weight StyleGAN2 checkpoint (64×64)."""

import numpy as np
import pytest

import harness


@pytest.mark.slow
def test_stylegan2_config_runs_end_to_end_on_converted_checkpoint(tmp_path):
  from regionjax.ports.stylegan2 import StyleGAN2Config, testing

  # 64×64 (five blocks, so that the paper's layer3 = b32 exists), few channels, a clamp, the released layout
  cfg = StyleGAN2Config(
    z_dim=16, w_dim=16, img_resolution=64, channel_base=256, channel_max=16, num_fp16_res=2, conv_clamp=256
  )
  pkl, ckpt = tmp_path / "afhqcat.pkl", tmp_path / "ckpt"
  testing.write_random_pickle(pkl, cfg, seed=0)
  harness.run("--pickle", pkl, "--out", ckpt, module="regionjax.ports.stylegan2.convert")
  truncation = ("--config.model.truncation=0.7", "--config.model.truncation_cutoff=4")
  got = harness.run_converted(
    "configs/stylegan2.py", ckpt, tmp_path / "run", *harness.SMALL, *harness.SMALL_METRICS, *truncation
  )
  assert got["f"].shape == (32, 32, 8) and got["u"].shape == (4, 32, 32, 8)
  assert got["image"].shape == (64, 64, 3) and np.isfinite(got["image"]).all()
  assert got["metrics"]["summary"]["layer"] == "layer3"
  # without a checkpoint: one error line naming the release and the convert command
  bad = harness.run("--config=configs/stylegan2.py", f"--config.workdir={tmp_path / 'run2'}", ok=False)
  line = harness.error_line(bad)
  assert "afhqcat.pkl" in line and "python -m regionjax.ports.stylegan2.convert" in line
