"""The interactive view of one image's explanation: an HTML fragment with its data inline.

``fragment(res)`` turns one :class:`regionjax.pipeline.ImageResult` into a
self-contained piece of HTML (plain JavaScript, no network, no server) that
``report.html`` and :func:`regionjax.show` embed:

* the target image with the players outlined; clicking players builds a
  target set ``Ŝ`` (a bitmask, as everywhere in regionjax);
* ``g(u(Ŝ))``, the image of the minimal feature of ``Ŝ`` — all ``2**n`` of
  them are decoded once and embedded as small PNG or JPEG data URIs;
* the components whose action field meets ``Ŝ``, ranked by ``‖Δf_S‖₂`` (the
  norms of ``components.component_norms``, the same numbers as metrics.json
  ``top_components``), and on hover the regional pattern
  ``p_S = g(f) − g(f − Δf_S)`` (v2 §3.2.1) of any listed component;
* Algorithm 2 (v1 App. E) with a slider: ``f0`` plus the strongest fraction
  ``p`` of the components meeting ``Ŝ`` (``round(p · |Ω_Ŝ|)`` of them, as the
  controllable-reconstruction metric, docs/method.md §Metrics), precomputed
  for a fixed set of fractions. ``p = 0`` is ``g(f0)`` and ``p = 1`` is
  ``g(f0 + Σ_{S∩Ŝ≠∅} Δf_S) = g(u(Ŝ))`` by OR matching (v1 eq. 11), so the
  two ends reuse the baseline and minimal-feature thumbnails.

Sizes: a 64×64 JPEG thumbnail is about 2–3 kB in base64, so the default face
run (``n = 9``) embeds ``512 + 3 · 511`` of them, a few MB; see
:func:`payload_size` and docs/layout.md §Outputs for the measured numbers.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from regionjax import components as components_lib
from regionjax import metrics as metrics_lib
from regionjax import subsets as subsets_lib

#: Fractions p of the Algorithm 2 slider that are decoded (0 and 1 reuse g(f0) and g(u(Ŝ))).
SLIDER_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: A component is salient for Algorithm 2's slider when its norm exceeds this fraction of the largest.
SALIENT_RELATIVE = 1e-6
#: Share of the strongest components whose regional pattern is embedded (the static report's top 10 %), at least
#: :data:`MIN_PATTERNS` of them.
PATTERN_FRACTION = 0.1
MIN_PATTERNS = 16
#: The longest list of components meeting Ŝ that the view shows.
LIST_MAX = 20


# ------------------------------------------------------------------ images
def to_uint8(images, block: int = 64) -> np.ndarray:
  """Images in ``[-1, 1]`` → uint8 ``[0, 255]`` (``round((x + 1) / 2 · 255)``, clipped; in float64, ``block``
  images at a time)."""
  x = np.asarray(images)

  def convert(a):
    return np.clip(np.round((a.astype(np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)

  if x.ndim < 4:
    return convert(x)
  out = np.empty(x.shape, np.uint8)
  for s in range(0, x.shape[0], block):
    out[s : s + block] = convert(x[s : s + block])
  return out


def thumb_shape(height: int, width: int, size: int) -> tuple[int, int]:
  """The thumbnail's (height, width): the image scaled down to fit ``size`` (never up)."""
  scale = min(1.0, size / max(height, width))
  return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def encode_image(pixels: np.ndarray, size: int, fmt: str = "jpeg", quality: int = 85) -> str:
  """One ``(H, W, 3)`` uint8 image as a data URI, scaled down to fit ``size`` pixels."""
  from PIL import Image

  im = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
  th, tw = thumb_shape(pixels.shape[0], pixels.shape[1], size)
  if (th, tw) != pixels.shape[:2]:
    im = im.resize((tw, th), Image.BILINEAR)
  buf = io.BytesIO()
  if fmt == "png":
    im.save(buf, "PNG", optimize=True)
    mime = "image/png"
  elif fmt == "jpeg":
    im.save(buf, "JPEG", quality=int(quality))
    mime = "image/jpeg"
  else:
    raise ValueError(f"thumbnail format must be 'png' or 'jpeg', got {fmt!r}")
  return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def pattern_pixels(pattern: np.ndarray, scale: float) -> np.ndarray:
  """A regional pattern ``(H, W, C)`` as a blue–white–red image (mean over channels; red: brighter)."""
  p = np.asarray(pattern, np.float64).mean(-1) / max(scale, 1e-12)
  p = np.clip(p, -1.0, 1.0)
  rgb = np.empty(p.shape + (3,))
  pos, neg = np.maximum(p, 0), np.maximum(-p, 0)
  rgb[..., 0] = 1.0 - neg
  rgb[..., 1] = 1.0 - pos - neg
  rgb[..., 2] = 1.0 - pos
  return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


def pack_mask(mask: np.ndarray, shape: tuple[int, int]) -> str:
  """A boolean mask resampled (nearest) to ``shape`` and packed row-major, 8 pixels a byte (MSB first), base64."""
  mask = np.asarray(mask, bool)
  h, w = shape
  rows = np.minimum((np.arange(h) + 0.5) * mask.shape[0] / h, mask.shape[0] - 1).astype(int)
  cols = np.minimum((np.arange(w) + 0.5) * mask.shape[1] / w, mask.shape[1] - 1).astype(int)
  small = mask[np.ix_(rows, cols)]
  return base64.b64encode(np.packbits(small.reshape(-1)).tobytes()).decode("ascii")


# -------------------------------------------------------------------- data
def slider_weights(norms: np.ndarray, n: int, fractions: Sequence[float]) -> np.ndarray:
  """``(F, 2**n − 1, 2**n)`` Algorithm 2 weights: row ``(k, Ŝ − 1)`` keeps the strongest
  ``round(p_k · |Ω̂_Ŝ|)`` salient components whose field meets ``Ŝ`` (``Ω̂_Ŝ``; ties by bitmask).

  Algorithm 2 (v1 App. E) runs over the salient components ``Ω̂_N``: those whose norm exceeds
  :data:`SALIENT_RELATIVE` of the largest. With max composition most of the ``2**n`` components are
  exactly zero (48 of 512 on the face model), and a fraction of all of them kept every salient one at
  every ``p`` — the slider did nothing."""
  size = 1 << n
  norms = np.asarray(norms, np.float64)
  order = np.argsort(-norms[1:], kind="stable") + 1  # strongest first, as components.rank
  peak = float(norms[1:].max()) if size > 1 else 0.0
  order = order[norms[order] > SALIENT_RELATIVE * peak]
  out = np.zeros((len(fractions), size - 1, size), np.float32)
  for target in range(1, size):
    cover = order[(order & target) != 0]
    for k, p in enumerate(fractions):
      out[k, target - 1, cover[: int(round(p * cover.size))]] = 1.0
  return out


def build(
  res,
  *,
  thumb_size: int = 64,
  fmt: str = "jpeg",
  quality: int = 85,
  fractions: Sequence[float] = SLIDER_FRACTIONS,
  names: Sequence[str] | None = None,
  batch_size: int | None = 64,
  list_max: int = LIST_MAX,
) -> dict:
  """The data of the view: thumbnails, norms, fields, masks and slider images of one image.

  Args:
    res: a :class:`regionjax.pipeline.ImageResult` (``image``, ``baseline_image``, ``f``, ``masks``,
      ``components``, ``solution.u``, ``decode``).
    thumb_size: longest side of the thumbnails in pixels (images are scaled down, never up).
    fmt: ``'jpeg'`` (small) or ``'png'`` (lossless).
    quality: JPEG quality.
    fractions: the slider's fractions ``p``; must include 0 and 1.
    names: a name per player (default: the player index).
    batch_size: decodes per compiled batch (bounds memory).
    list_max: the longest list of components meeting Ŝ that the view shows; each of them gets its pattern.

  Returns:
    A JSON-able dict; :func:`fragment` renders it.
  """
  fractions = [float(p) for p in fractions]
  if not fractions or fractions[0] != 0.0 or fractions[-1] != 1.0 or sorted(set(fractions)) != fractions:
    raise ValueError(f"slider fractions must rise from 0 to 1, got {fractions}")
  comps = np.asarray(res.components)
  n = res.masks.shape[0]
  size = 1 << n
  norms = components_lib.component_norms(comps)
  names = [str(i) for i in range(n)] if names is None else [str(s) for s in names]
  img = lambda x: encode_image(x, thumb_size, fmt, quality)  # noqa: E731

  minimal = to_uint8(metrics_lib.decode_batch(res.decode, jnp.asarray(res.solution.u), batch_size))  # g(u(S)), all S
  thumbs = [img(x) for x in minimal]
  baseline = img(to_uint8(res.baseline_image))
  inner = [p for p in fractions if 0.0 < p < 1.0]
  slider = {}
  if inner and n > 0:
    w = slider_weights(norms, n, inner).reshape(-1, size)
    images = to_uint8(metrics_lib.decode_combinations(res.decode, comps, w, batch_size))
    images = images.reshape((len(inner), size - 1) + images.shape[1:])
    for k, p in enumerate(inner):
      slider[f"{p:g}"] = [None] + [img(x) for x in images[k]]

  ranked = components_lib.rank(comps)
  top = ranked[: min(ranked.size, max(MIN_PATTERNS, math.ceil(PATTERN_FRACTION * ranked.size)))]
  # every component the list can show (the list_max strongest meeting some Ŝ) gets its pattern too
  listed = {int(s) for target in range(1, size) for s in ranked[(ranked & target) != 0][:list_max]}
  top = np.asarray(sorted(set(top.tolist()) | listed, key=lambda s: -norms[s]), np.int64)
  patterns = {}
  if top.size:
    pats = components_lib.regional_patterns(res.decode, res.f, comps, top, batch_size=batch_size)
    scale = float(np.abs(pats.mean(-1)).max())
    patterns = {str(int(s)): img(pattern_pixels(p, scale)) for s, p in zip(top, pats)}
  th, tw = thumb_shape(res.image.shape[0], res.image.shape[1], thumb_size)
  return {
    "n": n,
    "names": names,
    "thumb_height": th,
    "thumb_width": tw,
    "image_height": int(res.image.shape[0]),
    "image_width": int(res.image.shape[1]),
    "masks": [pack_mask(m, (th, tw)) for m in res.masks],
    "players": [int(p) for p in np.asarray(res.players)] if getattr(res, "players", None) is not None else None,
    "target": img(to_uint8(res.image)),
    "baseline": baseline,
    "thumbs": thumbs,
    "norms": [float(v) for v in norms],
    "fields": [subsets_lib.format_subset(s) for s in range(size)],
    "fractions": fractions,
    "slider": slider,
    "patterns": patterns,
    "pattern_note": f"regional patterns p_S = g(f) − g(f − Δf_S) of {top.size} components (the strongest "
    f"10 % and every component the list can show; mean over channels, red: brighter)",
    "format": fmt,
    "list_max": int(list_max),
  }


def payload_size(data: dict) -> dict:
  """Bytes of the embedded images, by kind, and of the whole JSON payload."""
  count = lambda uris: sum(len(u) for u in uris if u)  # noqa: E731
  return {
    "thumbs": count(data["thumbs"]),
    "slider": sum(count(v) for v in data["slider"].values()),
    "patterns": count(data["patterns"].values()),
    "total": len(_json(data)),
  }


def _json(data: dict) -> str:
  """JSON for a ``<script type="application/json">`` element: ``<``, ``>`` and ``&`` as ``\\u003c`` …, so no
  ``</script>`` or ``<!--`` can appear in it and ``JSON.parse`` reads back exactly ``data`` (``<\\!--`` is not
  valid JSON)."""
  text = json.dumps(data, separators=(",", ":"))
  return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# -------------------------------------------------------------------- HTML
_STYLE = """
.rjx { display: flex; flex-wrap: wrap; gap: 18px; font-size: 0.9em; }
.rjx figure { margin: 0; } .rjx figcaption { font-size: 0.85em; color: #444; max-width: 260px; }
.rjx .rjx-stack { position: relative; width: 256px; height: 256px; cursor: pointer; }
.rjx .rjx-stack img, .rjx .rjx-stack canvas { position: absolute; left: 0; top: 0; width: 256px; height: 256px;
  image-rendering: pixelated; }
.rjx img.rjx-px { width: 256px; height: 256px; image-rendering: pixelated; }
.rjx .rjx-small { width: 128px; height: 128px; image-rendering: pixelated; }
.rjx ol { max-height: 300px; overflow-y: auto; margin: 0; padding-left: 2.2em; min-width: 220px; }
.rjx li { cursor: default; } .rjx li:hover { background: #eef; }
.rjx li.rjx-nopat { color: #777; }
.rjx button { margin-right: 6px; }
"""

_SCRIPT = r"""
(function () {
  var root = document.getElementById(ROOT_ID);
  var D = JSON.parse(root.querySelector('script.rjx-data').textContent);
  var q = function (c) { return root.querySelector('.' + c); };
  var n = D.n, H = D.thumb_height, W = D.thumb_width, sel = 0, frac = D.fractions.length - 1;
  var masks = D.masks.map(function (b64) {
    var s = atob(b64), m = new Uint8Array(H * W);
    for (var i = 0; i < H * W; i++) m[i] = (s.charCodeAt(i >> 3) >> (7 - (i & 7))) & 1;
    return m;
  });
  function fieldName(s) {
    var out = [];
    for (var i = 0; i < n; i++) if (s & (1 << i)) out.push(D.names[i]);
    return '{' + out.join(',') + '}';
  }
  function playerAt(x, y) {
    var k = y * W + x;
    for (var i = 0; i < n; i++) if (masks[i][k]) return i;
    return -1;
  }
  var canvas = q('rjx-overlay');
  canvas.width = W; canvas.height = H;
  function draw() {
    var ctx = canvas.getContext('2d'), im = ctx.createImageData(W, H);
    for (var k = 0; k < H * W; k++) {
      var a = 0, r = 0, g = 0, b = 0;
      for (var i = 0; i < n; i++) {
        if (!masks[i][k]) continue;
        var x = k % W, y = (k / W) | 0;
        var edge = x == 0 || y == 0 || x == W - 1 || y == H - 1 || !masks[i][k - 1] || !masks[i][k + 1] ||
                   !masks[i][k - W] || !masks[i][k + W];
        if (sel & (1 << i)) { r = 255; g = 200; b = 0; a = edge ? 255 : 70; }
        else if (edge && a == 0) { r = 255; g = 255; b = 255; a = 150; }
      }
      im.data[4 * k] = r; im.data[4 * k + 1] = g; im.data[4 * k + 2] = b; im.data[4 * k + 3] = a;
    }
    ctx.putImageData(im, 0, 0);
  }
  function covering() {
    var out = [];
    for (var s = 1; s < (1 << n); s++) if (s & sel) out.push(s);
    out.sort(function (a, b) { return D.norms[b] - D.norms[a] || a - b; });
    return out;
  }
  function sliderImage() {
    var p = D.fractions[frac];
    if (sel == 0 || p == 0) return D.baseline;
    if (p == 1) return D.thumbs[sel];
    return D.slider[String(p)][sel];
  }
  function update() {
    draw();
    var cover = covering();
    q('rjx-set').textContent = sel ? fieldName(sel) : '∅ (click the players)';
    q('rjx-set').setAttribute('data-set', String(sel));
    q('rjx-minimal').src = D.thumbs[sel];
    q('rjx-minimal').setAttribute('data-set', String(sel));
    var p = D.fractions[frac];
    q('rjx-p').textContent = p.toFixed(2) + ' (' + Math.round(p * cover.length) + ' of ' + cover.length + ' components)';
    q('rjx-alg2').src = sliderImage();
    q('rjx-alg2').setAttribute('data-set', String(sel));
    q('rjx-alg2').setAttribute('data-p', String(p));
    var list = q('rjx-list');
    list.textContent = '';
    q('rjx-count').textContent = cover.length ? (cover.length + ' components meet Ŝ' +
        (cover.length > LIST_MAX ? ', the strongest ' + LIST_MAX + ' shown' : '')) : '';
    cover.slice(0, LIST_MAX).forEach(function (s) {
      var li = document.createElement('li');
      li.setAttribute('data-field', String(s));
      li.setAttribute('data-norm', String(D.norms[s]));
      li.textContent = fieldName(s) + '  ' + D.norms[s].toPrecision(4);
      if (!D.patterns[String(s)]) li.className = 'rjx-nopat';
      li.addEventListener('mouseenter', function () { showPattern(s); });
      list.appendChild(li);
    });
  }
  function showPattern(s) {
    var uri = D.patterns[String(s)];
    var img = q('rjx-pattern');
    img.style.visibility = uri ? 'visible' : 'hidden';
    if (uri) img.src = uri;
    img.setAttribute('data-field', String(s));
    q('rjx-pattern-caption').textContent = 'p_S of S = ' + fieldName(s) + (uri ? '' : ': not embedded');
  }
  q('rjx-stack').addEventListener('click', function (ev) {
    var rect = canvas.getBoundingClientRect();
    var x = Math.floor((ev.clientX - rect.left) / rect.width * W);
    var y = Math.floor((ev.clientY - rect.top) / rect.height * H);
    if (x < 0 || y < 0 || x >= W || y >= H) return;
    var i = playerAt(x, y);
    if (i >= 0) { sel ^= (1 << i); update(); }
  });
  var range = q('rjx-range');
  range.max = String(D.fractions.length - 1); range.value = String(frac);
  range.addEventListener('input', function () { frac = parseInt(range.value, 10); update(); });
  q('rjx-all').addEventListener('click', function () { sel = (1 << n) - 1; update(); });
  q('rjx-none').addEventListener('click', function () { sel = 0; update(); });
  update();
  root.setAttribute('data-ready', '1');
})();
"""


def render_fragment(data: dict, *, element_id: str = "rjx") -> str:
  """The HTML of the view for :func:`build`'s data: markup, style, data and script, nothing external."""
  eid = html.escape(element_id, quote=True)
  fr = data["fractions"]
  script = _SCRIPT.replace("ROOT_ID", json.dumps(element_id)).replace("LIST_MAX", str(int(data["list_max"])))
  return f"""<div class="rjx" id="{eid}">
<style>{_STYLE}</style>
<script type="application/json" class="rjx-data">{_json(data)}</script>
<figure><div class="rjx-stack"><img class="rjx-px rjx-target" src="{data['target']}" alt="target image">
<canvas class="rjx-overlay"></canvas></div>
<figcaption>target x with the {data['n']} players; click players to build Ŝ = <b class="rjx-set"></b><br>
<button type="button" class="rjx-all">all</button><button type="button" class="rjx-none">none</button></figcaption></figure>
<figure><img class="rjx-px rjx-minimal" alt="g(u(S))"><figcaption>g(u(Ŝ)): the image of the minimal feature
of Ŝ (the solver's answer; ∅ gives g(f0))</figcaption></figure>
<figure><img class="rjx-px rjx-alg2" alt="Algorithm 2"><figcaption>Algorithm 2: f0 + the strongest fraction p of the
components whose field meets Ŝ<br><input type="range" class="rjx-range" min="0" step="1"> p = <span class="rjx-p"></span>
<br><span class="note">precomputed for p ∈ {{{', '.join(f'{p:g}' for p in fr)}}}; p = 1 equals g(u(Ŝ)) by OR matching</span>
</figcaption></figure>
<figure><figcaption>components meeting Ŝ, by ‖Δf_S‖₂ (hover for the pattern)<br><span class="rjx-count"></span>
</figcaption><ol class="rjx-list"></ol></figure>
<figure><img class="rjx-small rjx-pattern" alt="regional pattern" style="visibility:hidden">
<figcaption class="rjx-pattern-caption">{html.escape(data['pattern_note'])}</figcaption></figure>
<script>{script}</script>
</div>"""


def fragment(res, *, element_id: str = "rjx", **options) -> str:
  """``render_fragment(build(res, **options))``: the view of one image's result as HTML."""
  return render_fragment(build(res, **options), element_id=element_id)


# ---------------------------------------------------------------- notebooks
def _from_report(path: str) -> str:
  """The interactive fragment of a finished run's ``report.html`` (a workdir or the file itself)."""
  import os
  import re

  if os.path.isdir(path):
    path = os.path.join(path, "report.html")
  try:
    with open(path, encoding="utf-8") as fh:
      text = fh.read()
  except OSError as e:
    raise ValueError(f"cannot read {path!r}: {e}") from None
  m = re.search(r'<div class="rjx" id="[^"]*">.*?</script>\n</div>', text, re.S)
  if not m:
    raise ValueError(
      f"{path} has no interactive view (a run with report.interactive = False, or a batch index: "
      f"pass images/NNN/ of a batch run)"
    )
  return m.group(0)


def show(result, generator=None, *, image: int = 0, **options):
  """The interactive view inline in Jupyter or Colab (plain HTML with its script; no server, no widget).

  Args:
    result: a :class:`regionjax.Explanation` (image ``image`` of it, decoded here with ``generator``), one image
      bound to its decoder (``regionjax.explainer.ImageResult``), or a finished run's workdir or ``report.html``
      path (its embedded view is reused).
    generator: the generator an Explanation explains.
    image: which image of an Explanation.
    **options: for :func:`build` (``thumb_size``, ``fmt``, ``quality``, ``names``, ...).

  Returns:
    An ``IPython.display.HTML`` object when IPython is installed (a notebook shows it when it is the cell's
    value), else the HTML string.
  """
  import os
  import uuid

  from regionjax import explainer
  from regionjax import explanation as explanation_lib

  element_id = "rjx-" + uuid.uuid4().hex[:10]  # several views in one notebook page
  if isinstance(result, explanation_lib.Explanation):
    result = explainer.bind(result, image, generator)
    options.setdefault("names", result.names)
  if isinstance(result, (str, os.PathLike)):
    frag = _from_report(os.fspath(result)).replace('id="rjx"', f'id="{element_id}"', 1)
    frag = frag.replace('getElementById("rjx")', f'getElementById("{element_id}")', 1)
  else:
    frag = fragment(result, element_id=element_id, **options)
  try:
    from IPython.display import HTML
  except ImportError:
    return frag
  return HTML(frag)


# ------------------------------------------------------- batch: one field across images
def build_comparison(
  results,
  reports: Sequence[str],
  *,
  top: int = 8,
  thumb_size: int = 64,
  fmt: str = "jpeg",
  quality: int = 85,
  batch_size: int | None = 64,
) -> dict | None:
  """One action field across the images of a batch: its norm, rank and regional pattern in each image.

  The fields offered are the union of every image's ``top`` strongest; the
  players must be the same in every image (``patches.shared``), else the
  fields do not compare and None is returned.
  """
  if not results or any(not np.array_equal(r.players, results[0].players) for r in results):
    return None
  n = results[0].masks.shape[0]
  ranks, norms_all = [], []
  for r in results:
    order = components_lib.rank(r.components)
    rank_of = np.zeros(1 << n, np.int64)
    rank_of[order] = np.arange(1, order.size + 1)
    ranks.append(rank_of)
    norms_all.append(components_lib.component_norms(r.components))
  fields = sorted(
    {int(s) for r in results for s in components_lib.rank(r.components)[:top]},
    key=lambda s: -float(np.mean([nm[s] for nm in norms_all])),
  )
  images = []
  for r, rank_of, norms, report in zip(results, ranks, norms_all, reports):
    pats = components_lib.regional_patterns(r.decode, r.f, r.components, fields, batch_size=batch_size)
    scale = float(np.abs(pats.mean(-1)).max())
    images.append(
      {
        "report": report,
        "target": encode_image(to_uint8(r.image), thumb_size, fmt, quality),
        "norms": [float(norms[s]) for s in fields],
        "ranks": [int(rank_of[s]) for s in fields],
        "patterns": [encode_image(pattern_pixels(p, scale), thumb_size, fmt, quality) for p in pats],
      }
    )
  names = getattr(results[0], "names", None)
  return {
    "fields": fields,
    "labels": [subsets_lib.format_subset(s, names) for s in fields],
    "images": images,
    "num_components": (1 << n) - 1,
    "top": int(top),
  }


def render_comparison(data: dict, element_id: str = "rjx-compare") -> str:
  """HTML of :func:`build_comparison`: a field selector and, per image, its pattern, norm and rank."""
  eid = html.escape(element_id, quote=True)
  options = "".join(f'<option value="{k}">{html.escape(lab)}</option>' for k, lab in enumerate(data["labels"]))
  script = r"""
(function () {
  var root = document.getElementById(ROOT_ID);
  var D = JSON.parse(root.querySelector('script.rjx-data').textContent);
  var sel = root.querySelector('select'), row = root.querySelector('.rjx-row');
  function update() {
    var k = parseInt(sel.value, 10);
    row.textContent = '';
    D.images.forEach(function (im, i) {
      var fig = document.createElement('figure');
      fig.innerHTML = '<a><img class="rjx-t"></a><img class="rjx-p"><figcaption></figcaption>';
      fig.querySelector('a').href = im.report;
      fig.querySelector('.rjx-t').src = im.target;
      fig.querySelector('.rjx-p').src = im.patterns[k];
      fig.querySelector('figcaption').textContent = 'image ' + i + ': ‖Δf_S‖ = ' + im.norms[k].toPrecision(4) +
          ', rank ' + im.ranks[k] + ' of ' + D.num_components;
      fig.setAttribute('data-rank', String(im.ranks[k]));
      row.appendChild(fig);
    });
  }
  sel.addEventListener('change', update);
  update();
})();
""".replace("ROOT_ID", json.dumps(element_id))
  return f"""<div id="{eid}" class="rjx-compare">
<style>#{eid} .rjx-row {{ display: flex; flex-wrap: wrap; gap: 12px; }} #{eid} figure {{ margin: 0; font-size: 0.85em; }}
#{eid} img {{ width: 112px; height: 112px; image-rendering: pixelated; margin-right: 2px; }}</style>
<script type="application/json" class="rjx-data">{_json(data)}</script>
<p>action field S: <select>{options}</select> <span class="note">({len(data['fields'])} fields: the union of every
image's {data['top']} strongest; left: the image, linked to its report; right: the regional pattern
p_S = g(f) − g(f − Δf_S), red: brighter)</span></p>
<div class="rjx-row"></div>
<script>{script}</script>
</div>"""
