"""The interactive report in a real browser: Debian's headless Chromium clicks two players.

A planted-generator run (main.py) writes report.html; the test copies it with
a small script appended that clicks two players on the overlay (mouse events
at the players' centres, through the page's own click handler), moves the
Algorithm 2 slider, hovers the strongest listed component, and writes what the
page then shows into the DOM. ``chromium --headless --dump-dom`` returns that
DOM; the test checks it against numbers computed here, independently of the
page's own data:

* the shown g(u(Ŝ)) is the planted decoder applied to ``u[Ŝ]`` of
  the saved explanation (PNG thumbnails: exact up to the uint8 rounding);
* the listed components are metrics.json ``top_components`` that meet Ŝ, in
  the same order and with the same norms;
* the slider's image at p = 0.5 is f0 plus the strongest half of the salient ones, decoded.

A screenshot of the clicked page is saved under pytest's tmp dir (and copied
to ``$RJ_TEST_ARTIFACTS`` when that is set). Without a ``chromium`` binary the
test is skipped with the reason (``.ci/run`` installs it with apt).
"""

import base64
import html as html_lib
import io
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import harness

from regionjax import interactive
from regionjax import testing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLICKED = (0, 3)  # players clicked, in this order: Ŝ = {0, 3}


def _chromium() -> str | None:
  for name in ("chromium", "chromium-browser", "google-chrome"):
    path = shutil.which(name)
    if path:
      return path
  return None


CHROMIUM = _chromium()
pytestmark = [
  pytest.mark.slow,
  pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary on PATH (Debian: apt-get install -y chromium; .ci/run does it when apt is available)",
  ),
]

# Clicks the players at the given fractions of the overlay, then records the state of the view.
PROBE = """
<script>
window.addEventListener('load', function () {
  var root = document.getElementById('rjx');
  var out = {ready: root && root.getAttribute('data-ready')};
  var canvas = root.querySelector('.rjx-overlay');
  CLICKS.forEach(function (c) {
    var r = canvas.getBoundingClientRect();
    canvas.dispatchEvent(new MouseEvent('click', {bubbles: true, clientX: r.left + c[1] * r.width,
                                                  clientY: r.top + c[0] * r.height}));
  });
  var q = function (c) { return root.querySelector('.' + c); };
  out.set = q('rjx-set').getAttribute('data-set');
  out.set_text = q('rjx-set').textContent;
  out.minimal = q('rjx-minimal').src;
  out.list = Array.prototype.map.call(root.querySelectorAll('.rjx-list li'), function (li) {
    return {field: parseInt(li.getAttribute('data-field'), 10), norm: parseFloat(li.getAttribute('data-norm')),
            text: li.textContent};
  });
  var range = q('rjx-range');
  range.value = String(SLIDER_INDEX);
  range.dispatchEvent(new Event('input', {bubbles: true}));
  out.alg2 = q('rjx-alg2').src;
  out.alg2_p = q('rjx-alg2').getAttribute('data-p');
  var first = root.querySelector('.rjx-list li');
  first.dispatchEvent(new MouseEvent('mouseenter'));
  out.pattern_field = q('rjx-pattern').getAttribute('data-field');
  out.pattern_visible = q('rjx-pattern').style.visibility;
  var pre = document.createElement('pre');
  pre.id = 'rjtest';
  pre.textContent = JSON.stringify(out);
  document.body.insertBefore(pre, document.body.firstChild);
});
</script>
"""


def _png_pixels(uri: str) -> np.ndarray:
  from PIL import Image

  head, data = uri.split(",", 1)
  assert head == "data:image/png;base64", head
  return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def _chrome(*args, timeout=120):
  cmd = [
    CHROMIUM,
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--allow-file-access-from-files",
    "--virtual-time-budget=5000",
    *args,
  ]
  return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("planted_browser")
  harness.run("--config=configs/planted.py", f"--config.workdir={workdir}", timeout=300)
  return workdir


def test_report_in_chromium_two_clicks(run, tmp_path):
  metrics = json.loads((run / "metrics.json").read_text())
  import regionjax as rj

  exp = rj.load(run)
  masks, u, comps = np.asarray(exp.masks), np.asarray(exp.minimal_features())[0], np.asarray(exp.components())[0]
  n = masks.shape[0]
  clicks = []
  for i in CLICKED:
    ys, xs = np.nonzero(masks[i])
    clicks.append([(ys.mean() + 0.5) / masks.shape[1], (xs.mean() + 0.5) / masks.shape[2]])
  fractions = list(interactive.SLIDER_FRACTIONS)
  probe = PROBE.replace("CLICKS", json.dumps(clicks)).replace("SLIDER_INDEX", str(fractions.index(0.5)))
  html = (run / "report.html").read_text()
  assert "<script src" not in html and 'src="http' not in html  # self-contained: nothing from the network
  page = tmp_path / "clicked.html"
  page.write_text(html.replace("</body>", probe + "</body>"))

  proc = _chrome("--dump-dom", page.as_uri())
  match = re.search(r'<pre id="rjtest">(.*?)</pre>', proc.stdout, re.S)
  assert match, f"the probe did not run; chromium said: {proc.stderr[-2000:]}"
  got = json.loads(html_lib.unescape(match.group(1)))
  target = sum(1 << i for i in CLICKED)
  assert got["ready"] == "1"
  assert int(got["set"]) == target and got["set_text"] == "{0,3}"

  # the shown minimal-feature image is g(u(Ŝ)), decoded here from the saved explanation
  planted = testing.planted_generator()
  expected = interactive.to_uint8(planted.decode(u[target]))
  shown = _png_pixels(got["minimal"])
  assert shown.shape == expected.shape
  assert np.abs(shown.astype(int) - expected.astype(int)).max() <= 1
  other = interactive.to_uint8(planted.decode(u[1]))  # a different subset's image is told apart
  assert np.abs(shown.astype(int) - other.astype(int)).max() > 10

  # the component list is metrics.json's ranking restricted to fields meeting Ŝ
  ranked = [c for c in metrics["top_components"] if set(c["players"]) & set(CLICKED)]
  assert len(ranked) == sum(1 for s in range(1, 1 << n) if s & target) == len(got["list"])
  assert [sum(1 << i for i in c["players"]) for c in ranked] == [c["field"] for c in got["list"]]
  np.testing.assert_allclose([c["norm"] for c in got["list"]], [c["norm"] for c in ranked], rtol=1e-6)
  assert [c["text"].split()[0] for c in got["list"]] == [c["field"] for c in ranked]

  # Algorithm 2 at p = 0.5: f0 + the strongest half of the salient covering components
  assert float(got["alg2_p"]) == 0.5
  peak = max(c["norm"] for c in metrics["top_components"])
  salient = [sum(1 << i for i in c["players"]) for c in ranked if c["norm"] > interactive.SALIENT_RELATIVE * peak]
  keep = salient[: int(round(0.5 * len(salient)))]
  feature = comps[0] + comps[keep].sum(0)
  alg2 = _png_pixels(got["alg2"])
  assert np.abs(alg2.astype(int) - interactive.to_uint8(planted.decode(feature)).astype(int)).max() <= 1
  assert got["pattern_field"] == str(got["list"][0]["field"]) and got["pattern_visible"] == "visible"

  shot = tmp_path / "report_clicked.png"
  proc = _chrome("--window-size=1200,1000", f"--screenshot={shot}", page.as_uri())
  assert shot.exists() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
  if os.environ.get("RJ_TEST_ARTIFACTS"):
    os.makedirs(os.environ["RJ_TEST_ARTIFACTS"], exist_ok=True)
    shutil.copy(shot, os.environ["RJ_TEST_ARTIFACTS"])
  print(f"screenshot: {shot}")
