"""configs/sid.py end to end on a converted tiny random-weight SiD checkpoint (64×64)."""

import numpy as np
import pytest

import harness


@pytest.mark.slow
def test_sid_config_runs_end_to_end_on_converted_checkpoint(tmp_path):
  from regionjax.ports.sid import SiDConfig, testing

  # 64×64 with three levels, so that the paper's tap dec/32x32_up exists; few channels
  cfg = SiDConfig(img_resolution=64, model_channels=8, channel_mult=(1, 1, 1), num_blocks=1, attn_resolutions=(16,))
  pkl, ckpt = tmp_path / "network-snapshot.pkl", tmp_path / "ckpt"
  testing.write_random_pickle(pkl, cfg, seed=0)
  harness.run("--pickle", pkl, "--out", ckpt, module="regionjax.ports.sid.convert")
  got = harness.run_converted("configs/sid.py", ckpt, tmp_path / "run", *harness.SMALL, *harness.SMALL_METRICS)
  assert got["f"].shape == (32, 32, 8) and got["u"].shape == (4, 32, 32, 8)
  assert got["image"].shape == (64, 64, 3) and np.isfinite(got["image"]).all()
  assert got["metrics"]["summary"]["layer"] == "dec/32x32_up"
