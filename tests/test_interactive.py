"""regionjax.interactive without a browser: the embedded data against the maths it stands for."""

import base64
import io
import json
import re
import types

import numpy as np
import pytest
from PIL import Image

import regionjax as rj
from regionjax import interactive, testing


@pytest.fixture(scope="module")
def planted():
  p = testing.planted_generator()
  comps = p.expected_components()
  res = types.SimpleNamespace(
    components=comps,
    masks=p.masks,
    f=p.f,
    decode=p.decode,
    image=p.image,
    baseline_image=np.asarray(p.decode(p.f0)),
    solution=types.SimpleNamespace(u=p.expected_u()),
    players=np.arange(4),
    names=None,
    index=0,
  )
  return p, res


def pixels(uri):
  return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


def test_slider_weights_are_algorithm_2():
  rng = np.random.default_rng(0)
  n = 4
  norms = np.concatenate([[0.0], rng.uniform(size=15)])
  w = interactive.slider_weights(norms, n, [0.0, 0.5, 1.0])
  for target in range(1, 16):
    cover = [s for s in range(1, 16) if s & target]
    np.testing.assert_array_equal(w[2, target - 1], rj.components.covering_weights(n, target))  # p = 1
    assert w[0, target - 1].sum() == 0
    half = sorted(cover, key=lambda s: -norms[s])[: int(round(0.5 * len(cover)))]
    assert set(np.nonzero(w[1, target - 1])[0]) == set(half)


def test_slider_fractions_count_salient_components_only():
  """Max composition leaves most components at zero: p runs over the salient ones, so p = 0.25, 0.5, 0.75
  keep different sets (before, a fraction of all 2**n kept every salient one at every p)."""
  n = 4
  norms = np.zeros(16)
  norms[[1, 2, 4, 8, 3, 15]] = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
  w = interactive.slider_weights(norms, n, [0.25, 0.5, 0.75, 1.0])
  kept = [set(np.nonzero(w[k, 15 - 1])[0]) for k in range(4)]  # Ŝ = N: all six salient components meet it
  assert [len(k) for k in kept] == [2, 3, 4, 6]  # round(p · 6), half to even
  assert kept[0] == {1, 2} and kept[1] == {1, 2, 4} and kept[3] == {1, 2, 4, 8, 3, 15}
  assert w[:, 1 - 1].sum(-1).tolist() == [1.0, 2.0, 2.0, 3.0]  # Ŝ = {0}: salient 1, 3, 15 meet it


def test_pack_mask_round_trip():
  m = rj.patch_masks(12, 12, 3, 3)[4]
  bits = np.unpackbits(np.frombuffer(base64.b64decode(interactive.pack_mask(m, (12, 12))), np.uint8))[:144]
  np.testing.assert_array_equal(bits.reshape(12, 12).astype(bool), m)
  small = np.unpackbits(np.frombuffer(base64.b64decode(interactive.pack_mask(m, (6, 6))), np.uint8))[:36]
  assert small.reshape(6, 6).sum() == 4


def test_build_embeds_every_minimal_feature_and_the_slider(planted):
  p, res = planted
  data = interactive.build(res, fmt="png")
  assert len(data["thumbs"]) == 16 and data["thumb_height"] == 12
  for s in (1, 6, 15):
    expected = interactive.to_uint8(p.decode(res.solution.u[s]))
    assert np.abs(pixels(data["thumbs"][s]).astype(int) - expected.astype(int)).max() <= 1
  # slider at p = 0.5 for Ŝ = {1}: f0 + the strongest half of the salient components meeting it
  norms = rj.component_norms(res.components)
  salient = norms > interactive.SALIENT_RELATIVE * norms[1:].max()
  cover = sorted((s for s in range(1, 16) if s & 2 and salient[s]), key=lambda s: -norms[s])
  assert len(cover) >= 2  # p = 0.5 keeps a strict subset of what p = 1 keeps
  feat = res.components[0] + res.components[cover[: int(round(0.5 * len(cover)))]].sum(0)
  got = pixels(data["slider"]["0.5"][2])
  assert np.abs(got.astype(int) - interactive.to_uint8(p.decode(feat)).astype(int)).max() <= 1
  assert data["norms"][1:] == pytest.approx(list(norms[1:]))
  assert set(data["patterns"]) == {str(s) for s in range(1, 16)}  # n = 4: fewer than 16 components, all embedded
  # a zero component paints nothing: its pattern is white; a planted one is not
  assert (pixels(data["patterns"]["4"]) == 255).all() and not (pixels(data["patterns"]["1"]) == 255).all()
  sizes = interactive.payload_size(data)
  assert 0 < sizes["thumbs"] < sizes["total"]


def test_fragment_is_self_contained(planted):
  _, res = planted
  frag = interactive.fragment(res, element_id="view1")
  assert frag.startswith('<div class="rjx" id="view1">') and 'getElementById("view1")' in frag
  assert "<script src" not in frag and "http" not in frag
  payload = re.search(r'<script type="application/json" class="rjx-data">(.*?)</script>', frag, re.S).group(1)
  assert json.loads(payload)["n"] == 4


def test_comparison_across_images(planted):
  p, res = planted
  other = types.SimpleNamespace(**{**vars(res), "index": 1})
  data = interactive.build_comparison([res, other], ["images/000/report.html", "images/001/report.html"], top=3)
  assert len(data["images"]) == 2 and data["images"][0]["ranks"][0] == 1
  assert len(data["fields"]) == 3 and data["images"][1]["norms"] == data["images"][0]["norms"]
  html = interactive.render_comparison(data)
  assert "<select>" in html and "images/001/report.html" in html
  moved = types.SimpleNamespace(**{**vars(res), "players": np.array([0, 1, 2, 5])})
  assert interactive.build_comparison([res, moved], ["a", "b"]) is None


def test_show_returns_html(planted):
  _, res = planted
  out = rj.show(res, fmt="png")
  text = out if isinstance(out, str) else out.data
  assert 'class="rjx"' in text and "rjx-data" in text


def test_show_reuses_a_finished_report(planted, tmp_path):
  _, res = planted
  (tmp_path / "report.html").write_text(
    "<html><body><h1>x</h1>" + interactive.fragment(res, fmt="png") + "<p>after</p></body></html>"
  )
  out = rj.show(str(tmp_path))
  text = out if isinstance(out, str) else out.data
  new_id = re.match(r'<div class="rjx" id="(rjx-[0-9a-f]+)">', text).group(1)
  assert f'getElementById("{new_id}")' in text and "<p>after</p>" not in text and text.endswith("</div>")
  (tmp_path / "report.html").write_text("<html><body>static</body></html>")
  with pytest.raises(ValueError, match="no interactive view"):
    rj.show(str(tmp_path))
  with pytest.raises(ValueError, match="cannot read"):
    rj.show(str(tmp_path / "missing"))
