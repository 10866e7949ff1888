"""Grid patches of an image and the choice of the ``n`` players (docs/method.md §Patches and players)."""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Sequence

import numpy as np


#: Rules that take the ``n`` best-scoring cells.
SCORED_METHODS = ("difference", "center", "mask", "saliency")
METHODS = ("indices", "random", "regions") + SCORED_METHODS


def _edges(length: int, parts: int) -> np.ndarray:
  """``parts + 1`` integer cut points of ``[0, length)``; uneven splits allowed."""
  return np.round(np.linspace(0, length, parts + 1)).astype(int)


def patch_masks(height: int, width: int, rows: int, cols: int) -> np.ndarray:
  """Boolean ``(rows*cols, height, width)``: one mask per grid cell, row-major.

  Cell ``r * cols + c`` covers rows ``[e_r, e_{r+1})`` and columns
  ``[e_c, e_{c+1})`` with cut points rounded from an even split, so sizes
  need not divide evenly (cells then differ by at most one pixel per side).
  The masks partition the image.
  """
  for name, value in (("height", height), ("width", width), ("rows", rows), ("cols", cols)):
    if int(value) != value or value < 1:
      raise ValueError(f"{name} must be a positive integer, got {value!r}")
  if rows > height:
    raise ValueError(f"rows={rows} is more than the image height {height}: some cells would be empty")
  if cols > width:
    raise ValueError(f"cols={cols} is more than the image width {width}: some cells would be empty")
  re, ce = _edges(height, rows), _edges(width, cols)
  masks = np.zeros((rows * cols, height, width), dtype=bool)
  for r in range(rows):
    for c in range(cols):
      masks[r * cols + c, re[r] : re[r + 1], ce[c] : ce[c + 1]] = True
  return masks


def cell_scores(masks: np.ndarray, target: np.ndarray, baseline: np.ndarray) -> np.ndarray:
  """Mean squared difference between ``target`` and ``baseline`` in each cell."""
  target, baseline = np.asarray(target, np.float64), np.asarray(baseline, np.float64)
  if target.shape != baseline.shape:
    raise ValueError(f"target shape {target.shape} differs from baseline shape {baseline.shape}")
  if target.shape[:2] != masks.shape[1:]:
    raise ValueError(f"masks cover {masks.shape[1:]} pixels but the image is {target.shape[:2]}")
  sq = ((target - baseline) ** 2).reshape(target.shape[0], target.shape[1], -1).mean(-1)
  return np.array([sq[m].mean() for m in masks])


def center_cells(rows: int, cols: int) -> np.ndarray:
  """Cell indices ordered by the distance of the cell centre to the image centre (ties: row-major)."""
  r, c = np.divmod(np.arange(rows * cols), cols)
  d = (r + 0.5 - rows / 2) ** 2 + (c + 0.5 - cols / 2) ** 2
  return np.argsort(d, kind="stable")


def mask_scores(masks: np.ndarray, mask_image: np.ndarray) -> np.ndarray:
  """Share of each cell covered by a boolean ``mask_image`` (H, W)."""
  mask_image = np.asarray(mask_image, bool)
  if mask_image.shape != masks.shape[1:]:
    raise ValueError(
      f"the mask image is {mask_image.shape[1]}×{mask_image.shape[0]} pixels but the generator's "
      f"images are {masks.shape[2]}×{masks.shape[1]}"
    )
  return np.array([mask_image[m].mean() for m in masks])


def load_mask_image(path: str) -> np.ndarray:
  """A PNG (or any image PIL reads) as a boolean mask: pixels brighter than half the range are on."""
  from PIL import UnidentifiedImageError

  try:
    with _open_image(path, "patches.mask_path") as im:
      gray = np.asarray(im.convert("L"), np.float32)
  except FileNotFoundError:
    raise ValueError(f"patches.mask_path {path!r} does not exist") from None
  except (UnidentifiedImageError, OSError) as e:
    raise ValueError(f"patches.mask_path {path!r} is not an image: {e}") from None
  mask = gray > 127.5
  if not mask.any():
    raise ValueError(f"patches.mask_path {path!r} has no white pixel: white marks the object whose cells are chosen")
  return mask


#: The most pixels a mask image may have (a 8192 × 8192 mask); larger files are refused before decoding
#: (Pillow's own bomb check starts at 89 MP and only warns below 179 MP).
MAX_MASK_PIXELS = 8192 * 8192


@contextlib.contextmanager
def _open_image(path: str, what: str):
  """``PIL.Image.open(path)`` with its size checked before any pixel is decoded."""
  from PIL import Image

  with warnings.catch_warnings():
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    try:
      im = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
      raise ValueError(f"{what} {path!r} is too large to decode ({e})") from None
  with im:
    if im.width * im.height > MAX_MASK_PIXELS:
      raise ValueError(
        f"{what} {path!r} has {im.width}×{im.height} pixels, more than the {MAX_MASK_PIXELS} a mask may have; "
        f"scale it down to about the generator's image size"
      )
    yield im


def saliency_scores(masks: np.ndarray, image: np.ndarray, sigma: float = 0.35) -> np.ndarray:
  """Object saliency of each cell: local detail weighted by a centre prior.

  ``score(cell) = mean over its pixels of ‖∇x‖ · exp(−r² / (2σ²))`` where
  ``‖∇x‖`` is the colour gradient magnitude of the image (central
  differences, summed over channels) and ``r`` the pixel's distance from the
  image centre in units of the image side. Objects (faces, shapes) carry
  edges; flat or blurred backgrounds do not, and the prior breaks ties toward
  the middle of the frame where generators centre their subject. Unlike the
  difference from ``g(f0)``, it does not favour the border, where a face
  generator's mean image is darkest.
  """
  x = np.asarray(image, np.float64)
  gy = np.zeros_like(x)
  gx = np.zeros_like(x)
  gy[1:-1] = (x[2:] - x[:-2]) / 2
  gx[:, 1:-1] = (x[:, 2:] - x[:, :-2]) / 2
  grad = np.sqrt((gx**2 + gy**2).sum(-1))
  h, w = grad.shape
  yy, xx = np.mgrid[0:h, 0:w]
  r2 = ((yy + 0.5) / h - 0.5) ** 2 + ((xx + 0.5) / w - 0.5) ** 2
  weight = grad * np.exp(-r2 / (2 * sigma**2))
  return np.array([weight[m].mean() for m in masks])


def select_patches(
  method: str,
  n: int,
  num_cells: int,
  *,
  indices: Sequence[int] | None = None,
  scores: np.ndarray | None = None,
  foreground: Sequence[int] | np.ndarray | None = None,
  foreground_fraction: float = 0.5,
  seed: int = 0,
) -> np.ndarray:
  """Chooses the ``n`` player cells (indices into the grid, in player order).

  ``method``:
    * ``'indices'``: exactly ``indices``.
    * ``'difference'``: the ``n`` cells with the largest ``scores`` (e.g.
      :func:`cell_scores` of target vs baseline), in increasing cell order.
    * ``'random'``: ``n`` cells drawn with ``seed`` among the foreground: the
      cells in ``foreground`` if given, else the top ``foreground_fraction`` of
      cells by ``scores`` (at least ``n`` of them); as v1 §4 "randomly chose 9
      regions of the main part of the image".
    * ``'center'``, ``'mask'``, ``'saliency'``: the ``n`` cells with the
      largest ``scores`` like ``'difference'``; the caller passes the scores
      (:func:`center_cells` ranks, :func:`mask_scores`, :func:`saliency_scores`).
  """
  if n < 1:
    raise ValueError(f"the number of patches n must be at least 1, got {n}")
  if n > num_cells:
    raise ValueError(
      f"cannot choose n={n} patches from a grid of only {num_cells} cells; use a finer grid or a smaller n"
    )
  if method == "indices":
    if indices is None:
      raise ValueError("patch selection 'indices' needs the list of cell indices")
    idx = np.asarray(list(indices), dtype=int)
    if idx.size != n:
      raise ValueError(f"patch indices {idx.tolist()} name {idx.size} cells but n={n}")
    if np.any(idx < 0) or np.any(idx >= num_cells):
      raise ValueError(f"patch indices {idx.tolist()} must lie in [0, {num_cells - 1}] for a grid of {num_cells} cells")
    if len(set(idx.tolist())) != idx.size:
      raise ValueError(f"patch indices {idx.tolist()} repeat a cell; each player must be a different cell")
    return idx
  if scores is None and (method == "difference" or foreground is None):
    raise ValueError(f"patch selection {method!r} needs per-cell scores (target vs baseline difference)")
  if method in SCORED_METHODS:
    order = np.argsort(-np.asarray(scores), kind="stable")
    return np.sort(order[:n])
  if method == "random":
    if foreground is None:
      k = max(n, int(np.ceil(foreground_fraction * num_cells)))
      foreground = np.argsort(-np.asarray(scores), kind="stable")[:k]
    fg = np.asarray(list(foreground), dtype=int)
    if fg.size < n:
      raise ValueError(f"only {fg.size} foreground cells to choose n={n} from")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(fg, size=n, replace=False))
  raise ValueError(f"unknown patch selection method {method!r}; use one of {METHODS}")


def subset_masks(player_masks: np.ndarray) -> np.ndarray:
  """Boolean ``(2**n, H, W)``: the union of the player masks of each subset."""
  player_masks = np.asarray(player_masks, dtype=bool)
  n = player_masks.shape[0]
  out = np.zeros((1 << n,) + player_masks.shape[1:], dtype=bool)
  for i in range(n):
    block = 1 << i
    out[block : 2 * block] = out[:block] | player_masks[i]
  return out


def load_regions(path: str, height: int, width: int) -> tuple[list[str], np.ndarray]:
  """Named players from a JSON file: ``(names, masks)`` with masks ``(n, height, width)`` bool.

  The file holds ``{"regions": [REGION, ...]}`` (or the list alone); each
  region has a ``"name"`` and either a ``"polygon"``, a list of ``[x, y]``
  vertices as fractions of the image width and height (``[0, 0]`` the top
  left corner, ``[1, 1]`` the bottom right), or a ``"mask"``, the path of a
  boolean mask image (white = in the region; relative to the JSON file's
  folder; scaled to the image with nearest neighbours). Regions must be
  non-empty, distinct in name and disjoint (the players of the method
  partition part of the image, v1 §4).
  """
  import json
  import os

  from PIL import Image, ImageDraw

  try:
    with open(path, encoding="utf-8") as fh:
      doc = json.load(fh)
  except FileNotFoundError:
    raise ValueError(f"patches.regions_path {path!r} does not exist") from None
  except (OSError, ValueError) as e:
    raise ValueError(f"patches.regions_path {path!r} is not a JSON file: {e}") from None
  regions = doc.get("regions") if isinstance(doc, dict) else doc
  if not isinstance(regions, list) or not regions:
    raise ValueError(f"{path}: expected {{\"regions\": [{{\"name\": …, \"polygon\": [[x, y], …]}}, …]}}")
  names, masks = [], []
  for k, r in enumerate(regions):
    if not isinstance(r, dict) or not isinstance(r.get("name"), str) or not r["name"].strip():
      raise ValueError(f"{path}: region {k} needs a non-empty \"name\"")
    name = r["name"]
    if name in names:
      raise ValueError(f"{path}: two regions are named {name!r}")
    if "polygon" in r:
      pts = r["polygon"]
      ok = (
        isinstance(pts, list)
        and len(pts) >= 3
        and all(
          isinstance(p, (list, tuple))
          and len(p) == 2
          and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in p)
          for p in pts
        )
      )
      if not ok:
        raise ValueError(f"{path}: region {name!r}: \"polygon\" must be at least 3 [x, y] pairs (fractions)")
      if not all(math.isfinite(c) and abs(c) <= 100 for p in pts for c in p):
        raise ValueError(
          f"{path}: region {name!r}: every polygon vertex must be finite, a fraction of the image size "
          f"(0 … 1; at most 100 in size), got {[list(p) for p in pts][:4]}"
        )
      im = Image.new("L", (width, height), 0)
      ImageDraw.Draw(im).polygon([(float(x) * width, float(y) * height) for x, y in pts], fill=255)
      mask = np.asarray(im) > 0
    elif "mask" in r:
      mpath = os.path.join(os.path.dirname(os.path.abspath(path)), str(r["mask"]))
      try:
        with _open_image(mpath, f"{path}: region {name!r}: the mask") as im:
          mask = np.asarray(im.convert("L").resize((width, height), Image.NEAREST)) > 127
      except (OSError, ValueError) as e:
        raise ValueError(f"{path}: region {name!r}: cannot read the mask {mpath!r}: {e}") from None
    else:
      raise ValueError(f"{path}: region {name!r} needs a \"polygon\" or a \"mask\"")
    if not mask.any():
      raise ValueError(f"{path}: region {name!r} covers no pixel of the {width}×{height} image")
    names.append(name)
    masks.append(mask)
  masks = np.stack(masks)
  counts = masks.sum(0)
  if (counts > 1).any():
    a, b = [i for i in range(len(names)) if (masks[i] & (counts > 1)).any()][:2]
    raise ValueError(f"{path}: regions {names[a]!r} and {names[b]!r} overlap; players must be disjoint")
  return names, masks
