"""The result type: an :class:`Explanation` of one image or a batch, and its compact saved form.

An explanation holds what determines the result — the feature ``f`` of each
image, the baseline ``f0``, the target images, the solved ``α``'s, the players
and the solver options — and computes the rest on demand with the paper's maths
(docs/method.md §Minimal features, §OR components):

    u(S)  = f0 + α_S ⊙ (f − f0)                        (v2 eq. 5)
    Δf_S  = − Σ_{T⊆S} (−1)^{|S|−|T|} u(N \\ T)          (v2 eq. 6, OR interaction)

With ``composition='max'`` only ``α_N`` and the ``n`` singletons are stored:
``α_S = max_{i∈S} α_{i}`` and the components have a closed form
(:func:`regionjax.components.max_components`). With ``'independent'`` the
``α`` of every subset is stored.

Arrays carry a leading image axis (``B`` images; one image is a batch of one);
``exp[i]`` is the explanation of image ``i`` alone. ``save(path)`` writes a
directory with ``explanation.json`` (a small manifest: schema version,
fingerprints, layer, options, players, array shapes, versions) and
``explanation.npz`` (the arrays, read back with ``allow_pickle=False``: loading
never runs code from the file). :func:`load` reads it back, or a finished
``main.py`` workdir (docs/layout.md §Outputs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import time
import zipfile
from typing import Any, Mapping, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

from regionjax import components as components_lib
from regionjax import patches as patches_lib
from regionjax import solver as solver_lib
from regionjax import subsets as subsets_lib
from regionjax import transforms

FORMAT = "regionjax.explanation"
SCHEMA = 1  # bump on any change to the manifest or the arrays; load refuses newer schemas
MANIFEST = "explanation.json"
ARRAYS = "explanation.npz"
DENSE = "components.npz"  # dense u and components, written only when asked for


class LoadError(ValueError):
  """A saved explanation that cannot be read: one line saying which file and why."""


# ------------------------------------------------------------------ players
@dataclasses.dataclass(frozen=True)
class Players:
  """The players: ``n`` disjoint pixel masks, in player order.

  Made from grid cells (:meth:`grid`, :meth:`center`) or from masks
  (:meth:`from_masks`; named regions). A grid's masks are built once the
  image size is known (:meth:`resolve`).

  Attributes:
    masks: boolean ``(n, H, W)``, or ``None`` until resolved.
    grid: ``(rows, cols)`` of a grid, or ``None``.
    cells: the grid cells that are players (row-major index), or ``None``.
    names: a name per player, or ``None``.
  """

  masks: np.ndarray | None = None
  grid: tuple[int, int] | None = None
  cells: tuple[int, ...] | None = None
  names: tuple[str, ...] | None = None

  @classmethod
  def grid_cells(cls, rows: int, cols: int, cells: Sequence[int]) -> "Players":
    """The ``cells`` (row-major indices) of a ``rows × cols`` grid, in the order given."""
    cells = tuple(int(c) for c in cells)
    bad = [c for c in cells if not 0 <= c < rows * cols]
    if bad:
      raise ValueError(f"cells {bad} are outside the {rows}×{cols} grid (0 … {rows * cols - 1})")
    if len(set(cells)) != len(cells):
      raise ValueError(f"cells {list(cells)} repeat a cell")
    return cls(grid=(int(rows), int(cols)), cells=cells)

  @classmethod
  def center(cls, rows: int = 6, cols: int = 6, n: int = 9) -> "Players":
    """The ``n`` cells nearest the centre of a ``rows × cols`` grid (the face default: 9 of 6×6)."""
    if not 1 <= n <= rows * cols:
      raise ValueError(f"n={n} must be between 1 and the {rows * cols} cells of the grid")
    return cls.grid_cells(rows, cols, sorted(patches_lib.center_cells(rows, cols)[:n].tolist()))

  @classmethod
  def from_masks(cls, masks, names: Sequence[str] | None = None) -> "Players":
    """Players from boolean ``(n, H, W)`` masks (named regions: ``names``)."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
      raise ValueError(f"player masks must be (n, H, W), got shape {masks.shape}")
    if masks.dtype != bool:
      raise ValueError(f"player masks must be boolean, got dtype {masks.dtype}")
    if names is not None and len(names) != masks.shape[0]:
      raise ValueError(f"{len(names)} names for {masks.shape[0]} player masks")
    return cls(masks=masks, names=None if names is None else tuple(str(s) for s in names))

  @property
  def n(self) -> int:
    return len(self.cells) if self.cells is not None else int(self.masks.shape[0])

  def resolve(self, height: int, width: int) -> "Players":
    """These players with masks for an ``height × width`` image."""
    if self.masks is not None:
      if tuple(self.masks.shape[1:]) != (height, width):
        raise ValueError(f"player masks are {tuple(self.masks.shape[1:])} but the images are {(height, width)}")
      return self
    rows, cols = self.grid
    if rows > height or cols > width:
      raise ValueError(f"a {rows}×{cols} grid does not fit the {height}×{width} image; use fewer rows/cols")
    cells = patches_lib.patch_masks(height, width, rows, cols)
    return dataclasses.replace(self, masks=np.asarray(cells[list(self.cells)], bool))

  def to_json(self) -> dict:
    return {
      "n": self.n,
      "grid": list(self.grid) if self.grid else None,
      "cells": list(self.cells) if self.cells is not None else None,
      "names": list(self.names) if self.names else None,
    }


def as_players(players) -> Players:
  """``players`` as :class:`Players`: a Players, boolean ``(n, H, W)`` masks, or a dict of
  :meth:`Players.grid_cells` arguments (``rows``, ``cols``, ``cells``)."""
  if isinstance(players, Players):
    return players
  if isinstance(players, Mapping):
    return Players.grid_cells(players["rows"], players["cols"], players["cells"])
  if isinstance(players, (np.ndarray, jax.Array)):
    return Players.from_masks(np.asarray(players))
  raise TypeError(
    f"players must be a regionjax.Players, boolean (n, H, W) masks or {{'rows', 'cols', 'cells'}}, "
    f"got {type(players).__name__}"
  )


# ------------------------------------------------------------------ options
_DTYPE_NAMES = {**{k: k for k in solver_lib.DTYPES}, **{k: k for k in solver_lib.DECODE_DTYPES}}
#: Solver settings that change the result (the rest — chunking, calls, memory, remat — only change how it runs).
RESULT_OPTIONS = (
  "lam",
  "learning_rate",
  "steps",
  "tau",
  "dtype",
  "schedule",
  "optimizer",
  "composition",
  "allow_overlap",
  "decode_dtype",
  "lam_max",
  "lam_growth",
  "refine_steps",
  "stop_tol",
)
#: Result-changing options added later: in the fingerprint only when they differ from these defaults (the paper's
#: objective), so checkpoints and saved explanations made before them keep their fingerprint.
RESULT_OPTIONS_IF_SET = {"l1_distance_weight": 0.0, "keep_outside": False}


def _dtype_name(d) -> str | None:
  return None if d is None else jnp.dtype(d).name


def options_to_json(o: solver_lib.SolverOptions) -> dict:
  """Every field of ``o`` as JSON (dtypes by name; a remat policy callable by its name)."""
  out = {}
  for f in dataclasses.fields(o):
    v = getattr(o, f.name)
    if f.name in ("dtype", "decode_dtype"):
      v = _dtype_name(v)
    elif f.name == "remat" and not isinstance(v, (bool, str)):
      v = getattr(v, "__name__", str(v))
    elif isinstance(v, float) and not math.isfinite(v):
      v = str(v)  # inf τ
    out[f.name] = v
  return out


def options_from_json(d: Mapping) -> solver_lib.SolverOptions:
  """The inverse of :func:`options_to_json` (an unknown remat policy name falls back to True)."""
  d = dict(d)
  d["dtype"] = solver_lib.DTYPES[d.get("dtype") or "float32"]
  dd = d.get("decode_dtype")
  d["decode_dtype"] = None if dd is None else solver_lib.DECODE_DTYPES[dd]
  if isinstance(d.get("remat"), str) and d["remat"] not in solver_lib.REMAT_POLICIES:
    d["remat"] = True
  if isinstance(d.get("tau"), str):
    d["tau"] = float(d["tau"])
  names = {f.name for f in dataclasses.fields(solver_lib.SolverOptions)}
  return solver_lib.SolverOptions(**{k: v for k, v in d.items() if k in names})


# -------------------------------------------------------------- fingerprints
def _update(h, value) -> None:
  if isinstance(value, (np.ndarray, jax.Array, np.generic)):
    a = np.ascontiguousarray(np.asarray(value))
    h.update(f"array:{a.dtype.str}:{a.shape}:".encode())
    h.update(a.tobytes())
  else:
    h.update(json.dumps(value, sort_keys=True, default=str).encode())
  h.update(b"|")


def digest(*parts) -> str:
  """SHA-256 (hex) of arrays (dtype, shape and bytes) and JSON-able values, in order."""
  h = hashlib.sha256()
  for p in parts:
    _update(h, p)
  return h.hexdigest()


def solve_fingerprint(*, layer: str, f, f0, image, masks, options: solver_lib.SolverOptions, model: str = "") -> str:
  """What one image's minimal features depend on: the layer, ``f``, ``f0``, the target image
  (which the decoder's weights determine), the player masks and the result-changing solver options.

  Chunk checkpoints, baselines and saved explanations carry it; anything whose
  fingerprint differs from this run's is recomputed or refused.
  """
  o = options_to_json(options)
  used = {k: o[k] for k in RESULT_OPTIONS}
  used.update({k: o[k] for k, default in RESULT_OPTIONS_IF_SET.items() if o[k] != default})
  return digest("solve", model, layer, used, f, f0, image, np.asarray(masks, bool))


def generator_fingerprint(generator, layer: str) -> str:
  """A digest of the generator at ``layer``: its own ``fingerprint`` attribute where it has one, else
  the feature and image of a fixed probe code (so other weights give another digest)."""
  own = getattr(generator, "fingerprint", None)
  if isinstance(own, str) and own:
    return digest("generator", own, layer)
  codes = generator.sample_codes(jax.random.PRNGKey(20410044), 1, **_first_class(generator))
  return digest(
    "generator",
    type(generator).__name__,
    layer,
    np.asarray(generator.encode(codes, layer), np.float32),
    np.asarray(generator.generate(codes), np.float32),
  )


def _first_class(generator) -> dict:
  return {"classes": np.zeros(1, np.int32)} if getattr(generator, "num_classes", None) else {}


def versions() -> dict:
  """Versions of regionjax and of the libraries that compute a result."""
  import flax as flax_mod
  import jaxlib

  import regionjax

  return {
    "regionjax": regionjax.__version__,
    "jax": jax.__version__,
    "jaxlib": jaxlib.__version__,
    "flax": flax_mod.__version__,
    "numpy": np.__version__,
  }


# ------------------------------------------------------------- the result type
@dataclasses.dataclass(frozen=True)
class Info:
  """What describes an explanation without being an array (static in its pytree).

  Attributes:
    layer: the generator's tap.
    model: a name for the generator (``config.model.name`` or the class name).
    composition: 'max' or 'independent' (:class:`regionjax.SolverOptions`).
    alpha_subsets: the bitmasks whose ``α`` are stored, in the order of ``Explanation.alpha``'s axis 1.
    options: the solver options (:func:`options_to_json`).
    players: :meth:`Players.to_json` (grid, cells, names).
    indices: each image's index (its dataset or batch position).
    class_ids: each image's class (``None`` for an unconditional model).
    fingerprints: each image's :func:`solve_fingerprint`.
    generator: :func:`generator_fingerprint`, or ``""`` when unknown.
    seconds: each image's solve time in seconds.
    versions: :func:`versions` of the run that computed it.
  """

  layer: str
  model: str
  composition: str
  alpha_subsets: tuple[int, ...]
  options: tuple  # sorted (key, value) pairs: hashable
  players: tuple
  indices: tuple[int, ...]
  class_ids: tuple
  fingerprints: tuple[str, ...]
  generator: str = ""
  seconds: tuple[float, ...] = ()
  versions: tuple = ()

  @property
  def options_dict(self) -> dict:
    return dict(self.options)

  @property
  def players_dict(self) -> dict:
    return dict(self.players)


def frozen(d: Mapping) -> tuple:
  return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items()))


def _thawed(t: tuple) -> dict:
  return {k: list(v) if isinstance(v, tuple) else v for k, v in t}


@flax.struct.dataclass
class Explanation:
  """The explanation of ``B`` images by OR components (a frozen pytree; ``B = len(exp)``).

  Arrays (leaves; ``F`` is the feature shape, ``m`` the number of stored ``α``):

  * ``f``: ``(B, *F)`` the feature of each image at the layer; ``f0``: ``(*F)`` the baseline.
  * ``image``: ``(B, H, W, C)`` the target images ``x = g(f)``; ``baseline_image``: ``g(f0)`` with each
    image's codes.
  * ``alpha``: ``(B, m, *F)`` the solved ``α_S`` for ``S`` in ``info.alpha_subsets``.
  * ``error``: ``(B, 2**n)`` RMSE of ``g(u(S))`` on the pixels of ``S`` for every subset (composed ones decoded).
  * ``history``: ``(B, m, steps)`` objective before each step; ``lam``: ``(B, m)`` the final λ of each.
  * ``masks``: ``(n, H, W)`` the players' pixel masks.
  * ``codes``: the generator's codes with a leading image axis (what :func:`regionjax.evaluate` decodes with).

  Everything else (``u``, the components, the ranking, action fields) is
  computed on demand by the methods below.
  """

  f: jax.Array
  f0: jax.Array
  image: jax.Array
  baseline_image: jax.Array
  alpha: jax.Array
  error: jax.Array
  history: jax.Array
  lam: jax.Array
  masks: jax.Array
  codes: Any
  info: Info = flax.struct.field(pytree_node=False)

  # ---------------------------------------------------------------- shape
  def __len__(self) -> int:
    return int(np.shape(self.f)[0])

  @property
  def n(self) -> int:
    """Number of players."""
    return int(np.shape(self.masks)[0])

  @property
  def feature_shape(self) -> tuple[int, ...]:
    return tuple(np.shape(self.f0))

  @property
  def tau(self) -> float:
    return float(self.info.options_dict.get("tau", math.inf))

  @property
  def players(self) -> Players:
    p = self.info.players_dict
    return Players(
      masks=np.asarray(self.masks, bool),
      grid=tuple(p["grid"]) if p.get("grid") else None,
      cells=tuple(p["cells"]) if p.get("cells") is not None else None,
      names=tuple(p["names"]) if p.get("names") else None,
    )

  @property
  def options(self) -> solver_lib.SolverOptions:
    return options_from_json(self.info.options_dict)

  def __getitem__(self, i) -> "Explanation":
    """The explanation of image ``i`` (an int) or of several (a slice or index array), as a batch."""
    idx = np.arange(len(self))[i]
    idx = np.atleast_1d(idx)

    def take(a):
      if isinstance(a, (np.ndarray, jax.Array)) and np.ndim(a) > 0 and np.shape(a)[0] == len(self):
        return np.asarray(a)[idx]
      return a  # a scalar code leaf (a truncation, a temperature) is shared

    info = dataclasses.replace(
      self.info,
      indices=tuple(self.info.indices[j] for j in idx),
      class_ids=tuple(self.info.class_ids[j] for j in idx),
      fingerprints=tuple(self.info.fingerprints[j] for j in idx),
      seconds=tuple(self.info.seconds[j] for j in idx) if self.info.seconds else (),
    )
    return self.replace(
      f=take(self.f),
      image=take(self.image),
      baseline_image=take(self.baseline_image),
      alpha=take(self.alpha),
      error=take(self.error),
      history=take(self.history),
      lam=take(self.lam),
      codes=jax.tree.map(take, self.codes),
      info=info,
    )

  # ------------------------------------------------------------ the maths
  def alphas(self) -> jax.Array:
    """``(B, 2**n, *F)``: ``α_S`` of every subset (``α_∅ = 0``), composed as the run composed them."""
    n, size = self.n, 1 << self.n
    stored = np.asarray(self.info.alpha_subsets, np.int64)
    alpha = jnp.asarray(self.alpha)
    if self.info.composition == "max" and n > 1:
      singles = [int(np.nonzero(stored == (1 << i))[0][0]) for i in range(n)]
      return jax.vmap(solver_lib.compose_max)(alpha[:, singles])
    if stored.size != size - 1 or set(stored.tolist()) != set(range(1, size)):
      raise ValueError(f"this explanation stores α of {stored.size} subsets, not all {size - 1} non-empty ones")
    out = jnp.zeros((len(self), size) + self.feature_shape, alpha.dtype)
    return out.at[:, stored].set(alpha)

  def minimal_feature(self, subsets) -> jax.Array:
    """``u(S) = f0 + α_S ⊙ (f − f0)`` (v2 eq. 5; ``u(∅) = f0``): ``(B, *F)`` for one bitmask ``S``,
    ``(B, k, *F)`` for ``k`` of them."""
    s = np.asarray(subsets, np.int64)
    a = self.alphas()[:, s]
    f, f0 = jnp.asarray(self.f), jnp.asarray(self.f0)
    delta = f - f0
    if s.ndim:
      return f0 + a * delta[:, None]
    return f0 + a * delta

  def minimal_features(self) -> jax.Array:
    """``(B, 2**n, *F)``: ``u(S)`` for every subset, in bitmask order."""
    return self.minimal_feature(np.arange(1 << self.n))

  def components(self, max_order: int | None = None) -> jax.Array:
    """``(B, 2**n, *F)`` OR components ``Δf_S`` (v2 eq. 6); index 0 holds ``f0``.

    With ``composition='max'`` in closed form (:func:`regionjax.components.max_components`), else the
    ``O(n·2**n)`` butterfly of the minimal features. ``max_order = k`` zeroes the components of more
    than ``k`` players (``|S| > k``).
    """
    f, f0 = jnp.asarray(self.f), jnp.asarray(self.f0)
    if self.info.composition == "max" and self.n > 1:
      stored = np.asarray(self.info.alpha_subsets, np.int64)
      singles = [int(np.nonzero(stored == (1 << i))[0][0]) for i in range(self.n)]
      alpha = jnp.asarray(self.alpha)[:, singles]
      out = jax.vmap(lambda fi, a: components_lib.max_components(f0, fi - f0, a))(f, alpha)
    else:
      out = jax.vmap(transforms.or_interactions)(self.minimal_features())
    if max_order is not None:
      orders = np.array([subsets_lib.size(s) for s in range(1 << self.n)])
      keep = jnp.asarray((orders <= max_order) | (orders == 0))
      out = jnp.where(keep.reshape((1, -1) + (1,) * len(self.feature_shape)), out, 0.0)
    return out

  def norms(self) -> np.ndarray:
    """``(B, 2**n)``: ``‖Δf_S‖₂`` of every component (0 for ``∅``)."""
    comps = self.components()
    return np.stack([components_lib.component_norms(c) for c in comps])

  def top(self, k: int) -> np.ndarray:
    """``(B, k)``: the ``k`` strongest action fields (bitmasks) of each image, by ``‖Δf_S‖₂``."""
    if k < 0:
      raise ValueError(f"k must be non-negative, got {k}")
    norms = self.norms()
    return np.stack([np.argsort(-nm[1:], kind="stable")[:k] + 1 for nm in norms]).astype(np.int64)

  def field(self, s: int) -> np.ndarray:
    """``(H, W)`` boolean: the pixels of the action field ``S`` (the union of its players' masks)."""
    s = int(s)
    if not 0 <= s < 1 << self.n:
      raise ValueError(f"subset {s} is not a bitmask of {self.n} players")
    masks = np.asarray(self.masks, bool)
    members = [i for i in range(self.n) if s >> i & 1]
    return masks[members].any(0) if members else np.zeros(masks.shape[1:], bool)

  @property
  def unmet(self) -> np.ndarray:
    """``(B, 2**n)`` boolean: subsets whose ``g(u(S))`` missed ``τ`` on the pixels of ``S``."""
    return np.asarray(self.error) > self.tau

  def solved(self) -> np.ndarray:
    """``(2**n,)`` boolean: subsets that were optimised (the rest composed)."""
    out = np.zeros(1 << self.n, bool)
    out[np.asarray(self.info.alpha_subsets, np.int64)] = True
    if self.info.composition == "max" and self.n > 1:
      out[(1 << self.n) - 1] = False  # α_N was the singletons' warm start; u(N) is composed
    return out

  def solver_result(self, i: int = 0) -> solver_lib.SolverResult:
    """Image ``i`` as a :class:`regionjax.SolverResult` (``α`` and ``u`` of every subset)."""
    e = self[i]
    alpha = e.alphas()[0]
    u = e.minimal_features()[0]
    size = 1 << self.n
    history = np.zeros((size, np.shape(e.history)[-1]), np.float32)
    lam = np.full(size, np.nan)
    stored = np.asarray(self.info.alpha_subsets, np.int64)
    history[stored] = np.asarray(e.history)[0]
    lam[stored] = np.asarray(e.lam)[0]
    solved = self.solved()
    lam = np.where(solved, lam, np.nan)
    return solver_lib.SolverResult(
      alpha=alpha,
      u=u,
      error=jnp.asarray(np.asarray(e.error)[0]),
      history=jnp.asarray(history),
      tau=self.tau,
      solved=solved,
      lam=lam,
    )

  # ------------------------------------------------------------ save / load
  def save(self, path: str, *, dense: bool = False) -> str:
    """Writes this explanation to the directory ``path`` (created); returns ``path``.

    ``explanation.npz`` is written first and ``explanation.json`` last, each
    atomically, so a directory with a manifest holds a complete explanation.
    ``dense=True`` also writes ``components.npz`` (``u`` and the components of
    every subset: large, ``2**n`` feature-sized arrays per image).
    """
    return save(self, path, dense=dense)

  def summary(self) -> str:
    """A few lines: images, layer, players, how many subsets met τ, the strongest fields."""
    tops = self.top(5)
    lines = [
      f"Explanation of {len(self)} image(s) at {self.info.layer!r} of {self.info.model}: n = {self.n} players, "
      f"feature {self.feature_shape}, composition {self.info.composition}"
    ]
    for j in range(len(self)):
      met = int((~self.unmet[j]).sum())
      fields = ", ".join(subsets_lib.format_subset(int(s)) for s in tops[j])
      lines.append(f"  image {self.info.indices[j]}: {met}/{1 << self.n} subsets meet τ; strongest fields {fields}")
    return "\n".join(lines)


# ---------------------------------------------------------------- codes
def _codes_structure(codes, leaves: list) -> Any:
  """A JSON description of a codes pytree of dicts, lists, tuples, None and arrays/scalars; leaves appended."""
  if isinstance(codes, Mapping):
    if not all(isinstance(k, str) for k in codes):
      raise TypeError("code dicts must have string keys to be saved")
    return {"dict": {k: _codes_structure(codes[k], leaves) for k in sorted(codes)}}
  if isinstance(codes, (list, tuple)):
    return {"list" if isinstance(codes, list) else "tuple": [_codes_structure(c, leaves) for c in codes]}
  if codes is None:
    return {"none": True}
  if isinstance(codes, (bool, int, float)):
    leaves.append(np.asarray(codes))
    return {"leaf": len(leaves) - 1, "python": type(codes).__name__}
  a = np.asarray(codes)
  if a.dtype == object:
    raise TypeError(f"a code leaf of type {type(codes).__name__} cannot be saved")
  leaves.append(a)
  return {"leaf": len(leaves) - 1}


def _codes_rebuild(desc: Any, leaves: Mapping[int, np.ndarray]) -> Any:
  if not isinstance(desc, dict) or len(desc) not in (1, 2):
    raise LoadError(f"bad codes structure {str(desc)[:80]!r}")
  if "dict" in desc:
    return {k: _codes_rebuild(v, leaves) for k, v in desc["dict"].items()}
  if "list" in desc:
    return [_codes_rebuild(v, leaves) for v in desc["list"]]
  if "tuple" in desc:
    return tuple(_codes_rebuild(v, leaves) for v in desc["tuple"])
  if "none" in desc:
    return None
  if "leaf" in desc:
    a = leaves[int(desc["leaf"])]
    kind = desc.get("python")
    return {"bool": bool, "int": int, "float": float}[kind](a.item()) if kind else a
  raise LoadError(f"bad codes structure {str(desc)[:80]!r}")


# ---------------------------------------------------------------- save
_ARRAY_FIELDS = ("f", "f0", "image", "baseline_image", "alpha", "error", "history", "lam", "masks")


def manifest(exp: Explanation, arrays: Mapping[str, np.ndarray], codes_desc: Any) -> dict:
  """The JSON manifest of a saved explanation (also what ``rj.load`` checks)."""
  info = exp.info
  return {
    "format": FORMAT,
    "schema": SCHEMA,
    "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    "fingerprint": digest("explanation", list(info.fingerprints), info.generator),
    "generator": {"model": info.model, "fingerprint": info.generator},
    "layer": info.layer,
    "composition": info.composition,
    "alpha_subsets": list(info.alpha_subsets),
    "options": info.options_dict,
    "players": _thawed(info.players),
    "images": [
      {"index": int(i), "class_id": c, "fingerprint": fp, "seconds": s}
      for i, c, fp, s in zip(info.indices, info.class_ids, info.fingerprints, info.seconds or [None] * len(exp))
    ],
    "versions": dict(info.versions),
    "codes": codes_desc,
    "arrays": {k: {"shape": list(a.shape), "dtype": a.dtype.str} for k, a in sorted(arrays.items())},
  }


def save(exp: Explanation, path: str, *, dense: bool = False) -> str:
  """:meth:`Explanation.save`."""
  from regionjax import io as io_lib

  path = os.path.expanduser(os.fspath(path))
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise io_lib.write_error(path, e) from None
  arrays = {k: np.asarray(getattr(exp, k)) for k in _ARRAY_FIELDS}
  leaves: list = []
  codes_desc = _codes_structure(exp.codes, leaves)
  arrays.update({f"codes_{i}": a for i, a in enumerate(leaves)})
  buf = io.BytesIO()
  np.savez_compressed(buf, **arrays)
  data = buf.getvalue()
  m = manifest(exp, arrays, codes_desc)
  m["sha256"] = hashlib.sha256(data).hexdigest()
  if dense:
    io_lib.atomic_savez(
      os.path.join(path, DENSE), u=np.asarray(exp.minimal_features()), components=np.asarray(exp.components())
    )
  io_lib.atomic_write_bytes(os.path.join(path, ARRAYS), data)
  io_lib.write_json(os.path.join(path, MANIFEST), m)
  return path


# ---------------------------------------------------------------- load
def _read_manifest(path: str) -> dict:
  try:
    with open(path, encoding="utf-8") as fh:
      m = json.load(fh)
  except (OSError, ValueError) as e:
    raise LoadError(f"cannot read {path}: {e}") from None
  if not isinstance(m, dict) or m.get("format") != FORMAT:
    raise LoadError(f"{path} is not a regionjax explanation manifest")
  schema = m.get("schema")
  if not isinstance(schema, int) or schema > SCHEMA:
    raise LoadError(
      f"{path} has schema {schema!r}, newer than this regionjax reads ({SCHEMA}); upgrade regionjax to load it"
    )
  return m


def _load_dir(path: str) -> Explanation:
  m = _read_manifest(os.path.join(path, MANIFEST))
  npz = os.path.join(path, ARRAYS)
  try:
    with open(npz, "rb") as fh:
      data = fh.read()
  except OSError as e:
    raise LoadError(f"cannot read {npz}: {e.strerror or e}") from None
  if m.get("sha256") and hashlib.sha256(data).hexdigest() != m["sha256"]:
    raise LoadError(f"{npz} does not match the digest in its manifest: the file is damaged or from another save")
  try:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files}
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise LoadError(f"cannot read {npz}: {e}") from None
  for k, spec in m.get("arrays", {}).items():
    a = arrays.get(k)
    if a is None or list(a.shape) != spec["shape"] or a.dtype.str != spec["dtype"]:
      raise LoadError(f"{npz}: array {k!r} does not match its manifest ({spec})")
  missing = [k for k in _ARRAY_FIELDS if k not in arrays]
  if missing:
    raise LoadError(f"{npz} lacks the arrays {missing}")
  leaves = {int(k[len("codes_") :]): a for k, a in arrays.items() if k.startswith("codes_")}
  codes = _codes_rebuild(m["codes"], leaves)
  images = m["images"]
  seconds = tuple(float(im["seconds"]) for im in images if im.get("seconds") is not None)
  info = Info(
    layer=m["layer"],
    model=m["generator"]["model"],
    composition=m["composition"],
    alpha_subsets=tuple(int(s) for s in m["alpha_subsets"]),
    options=frozen(m["options"]),
    players=frozen(m["players"]),
    indices=tuple(int(im["index"]) for im in images),
    class_ids=tuple(im["class_id"] for im in images),
    fingerprints=tuple(im["fingerprint"] for im in images),
    generator=m["generator"].get("fingerprint", ""),
    seconds=seconds if len(seconds) == len(images) else (),
    versions=frozen(m.get("versions", {})),
  )
  return Explanation(**{k: arrays[k] for k in _ARRAY_FIELDS}, codes=codes, info=info)


def concatenate(exps: Sequence[Explanation]) -> Explanation:
  """One explanation of the images of several (same layer, players, options and baseline)."""
  if not exps:
    raise ValueError("nothing to concatenate")
  first = exps[0]
  for e in exps[1:]:
    same = (e.info.layer, e.info.composition, e.info.alpha_subsets, e.info.options, e.info.players)
    if same != (first.info.layer, first.info.composition, first.info.alpha_subsets, first.info.options,
                first.info.players) or not np.array_equal(np.asarray(e.f0), np.asarray(first.f0)):  # fmt: skip
      raise ValueError("explanations of different layers, players, options or baselines do not concatenate")
  cat = lambda name: np.concatenate([np.asarray(getattr(e, name)) for e in exps])  # noqa: E731

  def cat_codes(*leaves):
    a = leaves[0]
    if isinstance(a, (np.ndarray, jax.Array)) and np.ndim(a) > 0:
      return np.concatenate([np.asarray(x) for x in leaves])
    return a

  info = dataclasses.replace(
    first.info,
    indices=sum((e.info.indices for e in exps), ()),
    class_ids=sum((e.info.class_ids for e in exps), ()),
    fingerprints=sum((e.info.fingerprints for e in exps), ()),
    seconds=sum((e.info.seconds for e in exps), ()) if all(e.info.seconds for e in exps) else (),
  )
  return first.replace(
    **{k: cat(k) for k in ("f", "image", "baseline_image", "alpha", "error", "history", "lam")},
    codes=jax.tree.map(cat_codes, *[e.codes for e in exps]),
    info=info,
  )


def image_dirs(workdir: str) -> list[str]:
  """The per-image directories ``images/<index>/`` of a batch workdir, in index order."""
  root = os.path.join(workdir, "images")
  if not os.path.isdir(root):
    return []
  names = sorted((d for d in os.listdir(root) if d.isdigit()), key=int)
  return [os.path.join(root, d) for d in names if os.path.isdir(os.path.join(root, d))]


def load(path: str) -> Explanation:
  """A saved explanation (the directory :meth:`Explanation.save` wrote), or a finished ``main.py`` workdir
  (one image, or a batch: every ``images/<index>/`` concatenated). Needs no generator.

  Raises :class:`LoadError` (one line) for a directory that holds no explanation
  this version reads — e.g. a workdir of regionjax 0.1, which saved dense
  ``components.npz`` only.
  """
  path = os.path.expanduser(os.fspath(path))
  if os.path.isfile(path) and os.path.basename(path) in (MANIFEST, ARRAYS):
    path = os.path.dirname(path) or "."
  if not os.path.isdir(path):
    raise LoadError(f"{path} is not a directory holding a saved explanation")
  if os.path.exists(os.path.join(path, MANIFEST)):
    return _load_dir(path)
  dirs = [d for d in image_dirs(path) if os.path.exists(os.path.join(d, MANIFEST))]
  if dirs:
    return concatenate([_load_dir(d) for d in dirs])
  if os.path.exists(os.path.join(path, DENSE)):
    raise LoadError(
      f"{path} was written by regionjax 0.1 (components.npz, no {MANIFEST}); rerun the same main.py command "
      f"with this regionjax in a new workdir to get a loadable explanation"
    )
  raise LoadError(f"{path} holds no saved explanation ({MANIFEST} not found)")
