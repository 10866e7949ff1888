"""Named regions as players (JSON polygons or mask images) and rj.region_query."""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
from PIL import Image

import regionjax as rj
from regionjax import patches, testing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
E = 0.01  # polygons inset from the cell borders: PIL fills the pixels a polygon's edge touches


def cell_polygon(r, c, parts=3):
  a, b = r / parts + E, (r + 1) / parts - E
  x0, x1 = c / parts + E, (c + 1) / parts - E
  return [[x0, a], [x1, a], [x1, b], [x0, b]]


def write_regions(path, regions):
  path.write_text(json.dumps({"regions": regions}))
  return str(path)


def test_polygons_and_masks_give_the_planted_cells(tmp_path):
  Image.fromarray((patches.patch_masks(12, 12, 3, 3)[3] * 255).astype(np.uint8)).save(tmp_path / "m.png")
  path = write_regions(
    tmp_path / "r.json",
    [
      {"name": "top left", "polygon": cell_polygon(0, 0)},
      {"name": "top", "polygon": cell_polygon(0, 1)},
      {"name": "top right", "polygon": cell_polygon(0, 2)},
      {"name": "left", "mask": "m.png"},
    ],
  )
  names, masks = patches.load_regions(path, 12, 12)
  assert names == ["top left", "top", "top right", "left"]
  np.testing.assert_array_equal(masks, patches.patch_masks(12, 12, 3, 3)[:4])


@pytest.mark.parametrize(
  "regions, message",
  [
    ([{"name": "a", "polygon": cell_polygon(0, 0)}, {"name": "a", "polygon": cell_polygon(0, 1)}], "two regions"),
    (
      [{"name": "a", "polygon": [[0, 0], [0.9, 0.9], [0, 0.9]]}, {"name": "b", "polygon": cell_polygon(1, 0)}],
      "overlap",
    ),
    ([{"name": "a", "polygon": [[0, 0], [1, 1]]}], "at least 3"),
    ([{"polygon": cell_polygon(0, 0)}], "name"),
    ([{"name": "a"}], "polygon"),
    ([{"name": "a", "polygon": [[2, 2], [3, 2], [3, 3]]}], "covers no pixel"),
    ([{"name": "a", "mask": "missing.png"}], "cannot read"),
    ([], "expected"),
  ],
)
def test_bad_region_files(tmp_path, regions, message):
  with pytest.raises(ValueError, match=message):
    patches.load_regions(write_regions(tmp_path / "r.json", regions), 12, 12)


def test_region_file_not_json(tmp_path):
  (tmp_path / "r.json").write_text("{nope")
  with pytest.raises(ValueError, match="not a JSON"):
    patches.load_regions(str(tmp_path / "r.json"), 12, 12)
  with pytest.raises(ValueError, match="does not exist"):
    patches.load_regions(str(tmp_path / "none.json"), 12, 12)


def planted_result(names=None):
  """The planted generator's exact components as a result (no solve needed)."""
  p = testing.planted_generator()
  return types.SimpleNamespace(components=p.expected_components(), masks=p.masks, f=p.f, decode=p.decode, names=names)


def test_region_query_on_planted_components():
  res = planted_result(names=["a", "b", "c", "d"])
  # planted fields: {0}, {1}, {0,1}, {2,3}, {1,3}, {3}; region = the pixels of players 0 and 1
  out = rj.region_query(res, res.masks[0] | res.masks[1])
  assert sorted(o["field"] for o in out) == [0b01, 0b10, 0b11]
  norms = [o["norm"] for o in out]
  assert norms == sorted(norms, reverse=True) and min(norms) > 0
  assert all(o["inside_share"] == 1.0 for o in out)
  assert max(o["breach"] for o in out) < 1e-6  # planted blocks paint only their fields
  assert {tuple(o["names"]) for o in out} == {("a",), ("b",), ("a", "b")}
  out = rj.region_query(res, res.masks[1] | res.masks[3])
  assert sorted(o["field"] for o in out) == [0b0010, 0b1000, 0b1010]
  # half of player 0's cell: {0} is only half inside and paints the other half too
  half = np.zeros_like(res.masks[0])
  ys, xs = np.nonzero(res.masks[0])
  half[ys.min() : ys.max() + 1, xs.min() : xs.min() + 2] = True
  assert rj.region_query(res, half) == []
  part = rj.region_query(res, half, min_inside=0.5)
  assert [o["field"] for o in part] == [0b01]
  assert 0.2 < part[0]["breach"] < 0.8 and part[0]["inside_share"] == 0.5
  with pytest.raises(ValueError, match="empty"):
    rj.region_query(res, np.zeros_like(half))
  with pytest.raises(ValueError, match="region mask"):
    rj.region_query(res, np.ones((3, 3), bool))


@pytest.mark.slow
def test_named_region_run_end_to_end(tmp_path):
  """main.py with patches.method='regions': names in metrics.json, the saved explanation and report.html (~40 s)."""
  path = write_regions(
    tmp_path / "regions.json",
    [
      {"name": "top left", "polygon": cell_polygon(0, 0)},
      {"name": "top middle", "polygon": cell_polygon(0, 1)},
      {"name": "top right", "polygon": cell_polygon(0, 2)},
      {"name": "middle left", "polygon": cell_polygon(1, 0)},
    ],
  )
  work = tmp_path / "run"
  env = dict(os.environ, XLA_FLAGS="")
  args = [
    sys.executable,
    os.path.join(ROOT, "main.py"),
    f"--config={ROOT}/configs/planted.py",
    f"--config.workdir={work}",
    "--config.patches.method=regions",
    f"--config.patches.regions_path={path}",
  ]
  proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  metrics = json.loads((work / "metrics.json").read_text())
  names = ["top left", "top middle", "top right", "middle left"]
  assert metrics["summary"]["player_names"] == names
  assert metrics["solver"]["met_tau"] == 16
  top = {tuple(c["names"]) for c in metrics["top_components"][:6]}
  assert top == {
    ("top left",),
    ("top middle",),
    ("top left", "top middle"),
    ("top right", "middle left"),
    ("top middle", "middle left"),
    ("middle left",),
  }
  exp = rj.load(work)
  assert list(exp.players.names) == names and exp.players.grid is None
  html = (work / "report.html").read_text()
  assert "named regions" in html and "top middle" in html and '"names":["top left"' in html
  bad = subprocess.run(
    args + ["--config.patches.n=3", f"--config.workdir={tmp_path / 'bad'}"],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert bad.returncode == 2 and "names 4 regions but patches.n=3" in bad.stderr and "Traceback" not in bad.stderr
