"""`python main.py` with no config flag: the shipped face DCGAN, explained end to end (slow: ~3 min)."""

import json
import os

import numpy as np
import pytest

import harness


@pytest.mark.slow
def test_default_config_batch_of_two_faces(tmp_path):
  workdir = str(tmp_path / "run")
  proc = harness.run(f"--config.workdir={workdir}", "--config.target.num_images=2", timeout=1200)
  assert "model dcgan at layer3" in proc.stdout and "boundedness ρ over the whole image" in proc.stdout
  metrics = json.load(open(os.path.join(workdir, "metrics.json")))
  assert metrics["solver"]["met_tau"] == metrics["solver"]["subsets"] == 1024
  t = metrics["transferability"]
  assert 0 <= t["mean"] <= 1 and t["chance_uniform"] == pytest.approx(30 / 511)
  for i in (0, 1):
    d = os.path.join(workdir, "images", f"{i:03d}")
    import regionjax as rj

    exp = rj.load(d)
    comps = np.asarray(exp.components())[0]
    assert comps.shape == (512, 32, 32, 64) and exp.image.shape == (1, 64, 64, 3) and exp.masks.shape == (9, 64, 64)
    assert np.isfinite(comps).all()
    size = sum(os.path.getsize(os.path.join(d, name)) for name in ("explanation.json", "explanation.npz"))
    assert size <= 7 * 2**20, size  # the compact explanation (issue: ≤ 7 MB)
    m = json.load(open(os.path.join(d, "metrics.json")))
    f = m["faithfulness"]
    assert 0 < f["rho_image_top10"]["value"] <= 1 and f["additivity_top30"]["value"] >= 0
    assert m["solver"]["composition"] == "max" and m["solver"]["problems_solved"] == 10  # n + 1: N and the 9 singletons
    html = open(os.path.join(d, "report.html")).read()
    assert "Faithfulness at a glance" in html
  assert "Transferability" in open(os.path.join(workdir, "report.html")).read()
