"""Matplotlib figures: each function draws what it is given and returns a ``matplotlib.figure.Figure``.

:func:`png` turns one into PNG bytes (the report); :mod:`regionjax.plot` draws them from an Explanation.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from regionjax import subsets as subsets_lib  # noqa: E402


def to_rgb(image) -> np.ndarray:
  """[-1, 1] image → [0, 1] for display."""
  return np.clip((np.asarray(image, np.float32) + 1.0) / 2.0, 0.0, 1.0)


#: Resolution of the report's figures and the margin kept around their content (matplotlib's ``pad_inches``).
DPI = 100
PAD_INCHES = 0.1


def png(fig: Figure) -> bytes:
  """PNG bytes of a figure (closed afterwards), cropped to its content plus :data:`PAD_INCHES`.

  The figure is drawn once and the blank margin is cut from the pixels
  (``savefig(bbox_inches='tight')`` draws every figure twice: once to measure
  it). Content that reaches the canvas's edge falls back to that.
  """
  from PIL import Image

  try:
    fig.set_dpi(DPI)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    ink = np.any(rgba != rgba[0, 0], axis=-1)
    if not ink.any() or ink[0].any() or ink[-1].any() or ink[:, 0].any() or ink[:, -1].any():
      buf = io.BytesIO()
      fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=PAD_INCHES)
      return buf.getvalue()
    rows, cols = np.nonzero(ink.any(1))[0], np.nonzero(ink.any(0))[0]
    pad = int(round(PAD_INCHES * DPI))
    top, bottom = max(0, rows[0] - pad), min(ink.shape[0], rows[-1] + 1 + pad)
    left, right = max(0, cols[0] - pad), min(ink.shape[1], cols[-1] + 1 + pad)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba[top:bottom, left:right])).save(buf, "PNG", dpi=(DPI, DPI))
    return buf.getvalue()
  finally:
    plt.close(fig)


def data_uri(figure_or_png) -> str:
  """A ``data:image/png;base64,…`` URI of a figure (drawn and closed) or of PNG bytes."""
  data = figure_or_png if isinstance(figure_or_png, bytes) else png(figure_or_png)
  return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _outline(ax, mask, color, lw=2.0):
  ys, xs = np.nonzero(mask)
  if ys.size:
    ax.add_patch(
      plt.Rectangle(
        (xs.min() - 0.5, ys.min() - 0.5),
        xs.max() - xs.min() + 1,
        ys.max() - ys.min() + 1,
        fill=False,
        edgecolor=color,
        linewidth=lw,
      )
    )


def _number(ax, mask, i: int) -> None:
  """The player's number in the top-left corner of its patch."""
  ys, xs = np.nonzero(mask)
  if ys.size:
    ax.text(xs.min() + 0.5, ys.min() + 0.5, str(i), color="yellow", fontsize=7, va="top", ha="left",
            bbox=dict(facecolor="black", alpha=0.5, pad=0.3, lw=0))  # fmt: skip


def target_with_grid(image, cells, players, baseline_image=None) -> Figure:
  """The target with the grid and the numbered player patches; and g(f0)."""
  panels = 2 if baseline_image is not None else 1
  fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 3.4))
  axes = np.atleast_1d(axes)
  ax = axes[0]
  ax.imshow(to_rgb(image), interpolation="nearest")
  for m in cells:
    _outline(ax, m, "white", 0.5)
  for k, c in enumerate(players):
    _outline(ax, cells[c], "red", 2.0)
    _number(ax, cells[c], k)
  ax.set_title("target x = g(f), players in red")
  if baseline_image is not None:
    axes[1].imshow(to_rgb(baseline_image), interpolation="nearest")
    axes[1].set_title("baseline g(f0)")
  for a in axes:
    a.axis("off")
  return fig


def image_grid(images, titles=None, cols=8, size=1.4, suptitle=None) -> Figure:
  images = list(images)
  rows = max(1, int(np.ceil(len(images) / cols)))
  cols = min(cols, max(1, len(images)))
  fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + (0.3 if suptitle else 0)), squeeze=False)
  for k, ax in enumerate(axes.flat):
    ax.axis("off")
    if k < len(images):
      ax.imshow(to_rgb(images[k]), interpolation="nearest")
      if titles is not None:
        ax.set_title(titles[k], fontsize=8)
  if suptitle:
    fig.suptitle(suptitle, fontsize=9)
  return fig


def action_region_weights(fields, l1_norms, n: int) -> np.ndarray:
  """Per-patch weight of the action regions (v1 App. H): each component adds
  its L1 norm divided by the number of patches of its field to every patch of
  its field. Returns ``(n,)``."""
  w = np.zeros(n, np.float64)
  for s in fields:
    idx = subsets_lib.to_indices(int(s))
    w[idx] += float(l1_norms[int(s)]) / max(len(idx), 1)
  return w


def action_fields(image, masks, fields, norms, max_panels=16, l1_norms=None) -> Figure:
  """Heat map of the action regions of the top components, and each top
  component's action field over the image (v1 Fig. 3–4).

  With ``l1_norms`` (``‖Δf_S‖₁`` by bitmask) the heat map is v1 App. H's: each
  component weighs ``‖Δf_S‖₁ / |S|`` on each patch of its field, shown as
  ``exp`` of the weights normalised to [0, 1] ("an exponential operation …
  to enhance the contrast"); without, it counts covering components.
  """
  fields = list(fields)[:max_panels]
  n = masks.shape[0]
  if l1_norms is not None:
    w = action_region_weights(fields, l1_norms, n)
    w = np.exp(w / max(w.max(), 1e-30))
  else:
    w = np.zeros(n)
    for s in fields:
      w[subsets_lib.to_indices(s)] += 1
  count = np.zeros(masks.shape[1:], np.float32)
  for i in range(n):
    if w[i] > 0:
      count += masks[i] * np.float32(w[i])
  cols = min(8, len(fields) + 1)
  rows = int(np.ceil((len(fields) + 1) / cols))
  fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.1 * rows), squeeze=False, layout="constrained")
  for ax in axes.flat:
    ax.axis("off")
  ax = axes.flat[0]
  ax.imshow(to_rgb(image) * 0.5)
  im = ax.imshow(np.ma.masked_where(count == 0, count), cmap="inferno", alpha=0.75)
  ax.set_title(f"action regions of top {len(fields)}" + ("\n(L1/|S|, exp)" if l1_norms is not None else ""), fontsize=8)
  fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
  for k, s in enumerate(fields):
    ax = axes.flat[k + 1]
    field = np.any(masks[subsets_lib.to_indices(s)], axis=0)
    shown = to_rgb(image) * 0.35
    shown[field] = to_rgb(image)[field]
    ax.imshow(shown, interpolation="nearest")
    for i in subsets_lib.to_indices(s):
      _outline(ax, masks[i], "red", 1.0)
      _number(ax, masks[i], i)
    ax.set_title(f"S={subsets_lib.format_subset(s)}\n‖Δf_S‖={norms[s]:.3g}", fontsize=8)
  del n
  return fig


def patterns(pattern_images, fields, masks, max_panels=24) -> Figure:
  """Regional patterns p_S = g(f) − g(f − Δf_S) (v2 Fig. 2): channel-mean
  signed change, fields outlined."""
  k = min(len(fields), max_panels)
  cols = min(8, max(k, 1))
  rows = max(1, int(np.ceil(k / cols)))
  fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.0 * rows), squeeze=False, layout="constrained")
  vmax = max(float(np.abs(np.asarray(pattern_images[:k]).mean(-1)).max()) if k else 1.0, 1e-6)
  for j, ax in enumerate(axes.flat):
    ax.axis("off")
    if j >= k:
      continue
    ax.imshow(np.asarray(pattern_images[j]).mean(-1), cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    for i in subsets_lib.to_indices(fields[j]):
      _outline(ax, masks[i], "black", 0.8)
      _number(ax, masks[i], i)
    ax.set_title(f"S={subsets_lib.format_subset(fields[j])}", fontsize=8)
  return fig


def curve(xs, ys_list, labels, xlabel, ylabel, title, logy=False, refs=None) -> Figure:
  fig, ax = plt.subplots(figsize=(4.2, 3.0))
  for ys, lab in zip(ys_list, labels):
    ax.plot(xs, ys, label=lab)
  for value, lab in refs or []:
    ax.axhline(value, ls="--", color="gray", lw=0.8)
    ax.text(ax.get_xlim()[0], value, lab, fontsize=6, va="bottom", color="gray")
  if logy:
    ax.set_yscale("log")
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=9)
  if len(labels) > 1:
    ax.legend(fontsize=6)
  ax.grid(alpha=0.3)
  return fig


def loss_curves(history, error, tau) -> Figure:
  """Objective against step (median and range over subsets), and the final
  errors against τ."""
  history = np.asarray(history)[1:]
  fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.0))
  steps = np.arange(history.shape[1])
  rel = history / np.maximum(history[:, :1], 1e-12)
  axes[0].fill_between(steps, np.quantile(rel, 0.05, 0), np.quantile(rel, 0.95, 0), alpha=0.3, label="5–95%")
  axes[0].plot(steps, np.median(rel, 0), label="median")
  axes[0].set_yscale("log")
  axes[0].set_xlabel("step")
  axes[0].set_ylabel("objective / initial")
  axes[0].set_title("solver objective over all subsets", fontsize=9)
  axes[0].legend(fontsize=6)
  err = np.asarray(error)[1:]
  axes[1].hist(err, bins=40)
  if np.isfinite(tau):
    axes[1].axvline(tau, color="red", ls="--", label=f"τ = {tau:g}")
    axes[1].legend(fontsize=6)
  axes[1].set_xlabel("RMSE of u(S) on the pixels of S")
  axes[1].set_title("reconstruction error per subset", fontsize=9)
  return fig


def curves_panel(panels) -> Figure:
  """Several small line plots side by side: ``panels`` is a list of dicts with
  ``x``, ``ys`` (list), ``labels``, ``xlabel``, ``ylabel``, ``title``."""
  fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.0), squeeze=False)
  for ax, p in zip(axes.flat, panels):
    for y, lab in zip(p["ys"], p["labels"]):
      ax.plot(p["x"], y, marker=".", label=lab)
    if p.get("logy"):
      ax.set_yscale("log")
    ax.set_xlabel(p["xlabel"])
    ax.set_ylabel(p["ylabel"])
    ax.set_title(p["title"], fontsize=9)
    if len(p["labels"]) > 1:
      ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
  fig.tight_layout()
  return fig


def histogram(values, xlabel, title, bins=30) -> Figure:
  fig, ax = plt.subplots(figsize=(4.0, 3.0))
  ax.hist(np.asarray(values), bins=bins)
  ax.set_xlabel(xlabel)
  ax.set_title(title, fontsize=9)
  return fig
