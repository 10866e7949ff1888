"""Other explanations of the same ``f − f0``, scored on the paper's axioms with our metrics.

The paper's Table 1 marks other methods ✓/✗ against its axioms without a
number. Here each alternative is a :class:`Decomposition` of the same feature
difference into components ``Δ_m`` (``f ≈ f0 + Σ_m Δ_m``), each with the field
(set of players) it paints, and :func:`score` measures every decomposition,
ours included, with the definitions of ``regionjax.metrics`` written for a list
of components with arbitrary fields (docs/method.md §Baselines):

* :func:`units` — GAN Dissection (Bau et al. 2019): one component per channel
  of the layer, ``Δ_c = e_c ⊙ (f − f0)`` (the unit ablation of ACE);
* :func:`directions` — GANSpace (Härkönen et al. 2020): the top principal
  components ``v_j`` of the feature over many codes, ``Δ_j = ⟨f − f0, v_j⟩ v_j``;
* :func:`spatial_cells` — the naive regional split: the feature positions under
  each player's patch, ``Δ_i = [position under patch i] ⊙ (f − f0)``, and one
  component for the positions under no player;
* :func:`ours` — our OR components ``Δf_S`` (raw or denoised).

A component's field is decided by one rule for every method,
:func:`field_by_ablation`: remove it, ``p_m = g(f) − g(f − Δ_m)`` (the
regional pattern of v2 §2.3), and keep the players whose RMSE change is at
least ``threshold`` (default 0.5) times the largest player's. A method that
declares fields (ours: ``S``; spatial cells: the patch) is also scored against
its declaration (``rho_declared_top``).

Pure functions of arrays; nothing here draws or writes a file.
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax.numpy as jnp
import numpy as np

from regionjax import decoding
from regionjax import metrics as metrics_lib
from regionjax import subsets as subsets_lib
from regionjax import transforms

#: Players whose RMSE change on removal is at least this fraction of the largest form the field.
FIELD_THRESHOLD = 0.5


@dataclasses.dataclass(frozen=True)
class Decomposition:
  """``f ≈ f0 + Σ_m Δ_m``: ``components`` ``(M, *feature_shape)``, ``f0`` ``feature_shape``.

  ``declared``: the field each component claims by construction (bitmasks,
  ``(M,)``), or None when the method declares none (units, directions).
  """

  name: str
  f0: np.ndarray
  components: np.ndarray
  declared: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class Scores:
  """The axioms' numbers of one decomposition (docs/method.md §Baselines). ↓ lower is better, ↑ higher."""

  method: str
  num_components: int
  completeness: float  # ↓ ‖f0 + Σ Δ_m − f‖ / ‖f − f0‖            (v2 Axiom 1)
  image_rmse: float  # ↓ RMSE of g(f0 + Σ Δ_m) against x, whole image
  image_rmse_players: float  # ↓ the same on the players' pixels (what eq. 5 constrains)
  rho_image_top: float  # ↑ mean ρ over the whole image, strongest 10%  (v2 Axiom 2, §3.2.1)
  rho_image_mean: float  # ↑ the same over every component with a non-zero pattern
  rho_declared_top: float | None  # ↑ ρ_image of the strongest 10% against their declared fields (∅ left out)
  breach_max: float  # ↓ boundary breach (v2 §3.2.2)
  breach_mean: float
  others_final_mean: float
  inconsistency_mean: float  # ↓ (v2 Axiom 3, §3.3)
  near_zero_share: float  # ↑ sparsity (v2 §2.3)
  additivity: float  # ↓ aggregate relative error of the top-K OR surrogate vs u (v2 §3.1)
  k: int
  mean_field_size: float  # players per field, strongest 10%
  empty_fields: int  # components that move no player by the rule (field ∅)
  seconds: float

  def to_dict(self) -> dict:
    return metrics_lib.summary(dataclasses.asdict(self))


# ---------------------------------------------------------------------------
# The decompositions
# ---------------------------------------------------------------------------


def units(f, f0, *, channel_axis: int = -1) -> np.ndarray:
  """One component per channel: ``Δ_c = e_c ⊙ (f − f0)`` (GAN Dissection; ACE's unit ablation).

  ``α`` is a one-hot over channels; the components sum to ``f − f0`` exactly.
  A feature without a channel axis (a vector) has one unit per element.
  Returns ``(C, *feature_shape)``.
  """
  delta = np.asarray(f, np.float32) - np.asarray(f0, np.float32)
  axis = channel_axis % delta.ndim
  c = delta.shape[axis]
  onehot = np.eye(c, dtype=np.float32).reshape((c,) + tuple(c if a == axis else 1 for a in range(delta.ndim)))
  return onehot * delta[None]


def principal_directions(features, k: int) -> np.ndarray:
  """The top ``k`` principal directions ``(k, D)`` (orthonormal rows) of features ``(B, *shape)``.

  PCA of the features centred on their mean (GANSpace): the right singular
  vectors of the centred ``(B, D)`` matrix, from the ``B × B`` Gram matrix.
  """
  x = np.asarray(features, np.float64).reshape(np.shape(features)[0], -1)
  x = x - x.mean(0, keepdims=True)
  if not 1 <= k <= min(x.shape):
    raise ValueError(f"k must be in [1, {min(x.shape)}] for {x.shape[0]} features of {x.shape[1]} numbers, got {k}")
  if x.shape[0] < x.shape[1]:
    evals, evecs = np.linalg.eigh(x @ x.T)
    order = np.argsort(-evals)[:k]
    v = (x.T @ evecs[:, order]) / np.sqrt(np.maximum(evals[order], 1e-300))
    return v.T.astype(np.float32)
  _, _, vt = np.linalg.svd(x, full_matrices=False)
  return vt[:k].astype(np.float32)


def directions(f, f0, basis) -> np.ndarray:
  """``Δ_j = ⟨f − f0, v_j⟩ v_j`` for each direction (row) ``v_j`` of ``basis`` (GANSpace).

  The components sum to the projection of ``f − f0`` on the span of the
  basis: complete only when it spans ``f − f0``. Returns ``(k, *feature_shape)``.
  """
  delta = np.asarray(f, np.float64) - np.asarray(f0, np.float64)
  v = np.asarray(basis, np.float64).reshape(np.shape(basis)[0], -1)
  coef = v @ delta.reshape(-1)
  return (coef[:, None] * v).reshape((v.shape[0],) + delta.shape).astype(np.float32)


def feature_owners(masks, spatial_shape: tuple[int, int]) -> np.ndarray:
  """The player under each feature position ``(h, w)``: ``−1`` where none.

  Position ``(r, c)`` of an ``h × w`` map covers the image as the feature's
  grid does; its owner is the player whose mask holds the pixel at the centre
  of that footprint (the naive receptive area).
  """
  masks = np.asarray(masks, bool)
  big_h, big_w = masks.shape[1:]
  h, w = spatial_shape
  rows = np.minimum(((np.arange(h) + 0.5) * big_h / h).astype(np.int64), big_h - 1)
  cols = np.minimum(((np.arange(w) + 0.5) * big_w / w).astype(np.int64), big_w - 1)
  hit = masks[:, rows][:, :, cols]  # (n, h, w)
  return np.where(hit.any(0), hit.argmax(0), -1).astype(np.int64)


def spatial_cells(f, f0, owner, n: int) -> tuple[np.ndarray, np.ndarray]:
  """The naive regional split: ``Δ_i = [owner = i] ⊙ (f − f0)`` for players ``i``, then the rest.

  ``owner`` (broadcastable to the feature) names the player of each feature
  element, ``−1`` for none (e.g. :func:`feature_owners` ``[..., None]`` for
  an ``(H, W, C)`` feature). Returns the components ``(n + 1, *shape)`` (the
  last holds the elements under no player; they sum to ``f − f0``) and their
  declared fields (``1 << i``, and ∅ for the rest).
  """
  delta = np.asarray(f, np.float32) - np.asarray(f0, np.float32)
  owner = np.broadcast_to(np.asarray(owner, np.int64), delta.shape)
  comps = np.stack([np.where(owner == i, delta, 0.0) for i in range(n)] + [np.where(owner < 0, delta, 0.0)])
  declared = np.array([1 << i for i in range(n)] + [0], np.int64)
  return comps.astype(np.float32), declared


def ours(components, name: str = "OR components") -> Decomposition:
  """Our ``(2**n, *shape)`` OR components as a list: ``Δf_S`` for ``S = 1 … 2**n − 1``, declared field ``S``."""
  comps = np.asarray(components)
  n = metrics_lib.num_players(comps)
  return Decomposition(name=name, f0=comps[0], components=comps[1:], declared=np.arange(1, 1 << n, dtype=np.int64))


# ---------------------------------------------------------------------------
# The field rule and the scores
# ---------------------------------------------------------------------------


def ablation_patterns(decode, f, components, *, batch_size: int | None = None) -> np.ndarray:
  """``p_m = g(f) − g(f − Δ_m)`` for every component (the regional pattern, v2 §2.3). ``(M, H, W, C)``."""
  comps = jnp.asarray(components)
  f = jnp.asarray(f, comps.dtype)
  base = np.asarray(decoding.decode_one(decode, f), np.float64)
  return base[None] - np.asarray(metrics_lib.decode_batch(decode, f[None] - comps, batch_size), np.float64)


def field_by_ablation(patterns, masks, threshold: float = FIELD_THRESHOLD) -> np.ndarray:
  """The field of each component: players whose RMSE change is ≥ ``threshold`` × the largest.

      rmse_i(m) = RMSE of p_m over the pixels of player i
      field(m)  = { i : rmse_i(m) ≥ threshold · max_j rmse_j(m) }     (∅ if p_m is 0 on every player)

  The one rule of every method (docs/method.md §Baselines). Returns bitmasks ``(M,)``.
  """
  if not 0.0 < threshold <= 1.0:
    raise ValueError(f"threshold must be in (0, 1], got {threshold}")
  masks = np.asarray(masks, bool)
  per, count = metrics_lib.patch_sq_error(patterns, np.zeros_like(np.asarray(patterns[0])), masks)
  rmse = np.sqrt(per / count[None])
  top = rmse.max(1, keepdims=True)
  inside = (rmse >= threshold * top) & (top > 0)
  return (inside.astype(np.int64) << np.arange(masks.shape[0])).sum(1)


def _rho(patterns, masks, fields) -> tuple[np.ndarray, np.ndarray]:
  """ρ over the whole image of each pattern against its field (1 for an all-zero pattern) and the empty flags."""
  n = masks.shape[0]
  per, _ = metrics_lib.patch_sq_error(patterns, np.zeros_like(patterns[0]), masks)
  inside = np.stack([metrics_lib.bits_of(s, n) for s in fields]) if len(fields) else np.zeros((0, n), bool)
  e_in = (per * inside).sum(-1)
  e_image = (patterns**2).reshape(len(fields), -1).sum(-1)
  empty = e_image == 0
  return np.where(empty, 1.0, metrics_lib.safe_ratio(e_in, e_image)), empty


def _ranked(norms: np.ndarray, candidates: np.ndarray) -> np.ndarray:
  return candidates[np.argsort(-norms[candidates], kind="stable")]


def _with_f0(dec: Decomposition) -> np.ndarray:
  """``(M + 1, *shape)``: ``f0`` then the components, the layout ``metrics.decode_combinations`` takes."""
  return np.concatenate([np.asarray(dec.f0, np.float32)[None], np.asarray(dec.components, np.float32)])


def boundary_breach(
  decode, stacked, fields, masks, norms, *, fractions=metrics_lib.DEFAULT_FRACTIONS, batch_size: int | None = None
) -> dict:
  """``metrics.boundary_breach`` for a list: ``Ω_i = {m : i ∉ field(m)}``, strongest first, growing fractions."""
  n = masks.shape[0]
  num = len(fields)
  comps = jnp.asarray(stacked)
  base = decoding.decode_one(decode, comps[0])
  rows, counts = [], []
  for i in range(n):
    omega = _ranked(norms, np.nonzero((fields >> i) & 1 == 0)[0])
    c = metrics_lib.fraction_counts(fractions, omega.size)
    w = np.zeros((len(c), num + 1), np.float32)
    for r, cnt in enumerate(c):
      w[r, omega[:cnt] + 1] = 1.0
    rows.append(w)
    counts.append(c)
  images = metrics_lib.decode_combinations(decode, comps, np.concatenate(rows), batch_size)
  per, count = metrics_lib.patch_sq_error(images, base, masks)
  num_f = len(counts[0])
  member = np.repeat(np.eye(n, dtype=bool), num_f, axis=0)
  rmse_patch = metrics_lib.union_rmse(per, count, member).reshape(n, num_f)
  rmse_others = metrics_lib.union_rmse(per, count, ~member).reshape(n, num_f)
  return {
    "rmse_patch": rmse_patch,
    "rmse_others": rmse_others,
    "breach_max": float(rmse_patch.max()),
    "breach_mean": float(rmse_patch.mean()),
    "others_final_mean": float(rmse_others[:, -1].mean()),
  }


def consistency(
  decode,
  stacked,
  fields,
  norms,
  n: int,
  *,
  num_contexts: int = 8,
  top: int = 10,
  seed: int = 0,
  batch_size: int | None = None,
) -> dict:
  """``metrics.consistency`` for a list: the ``top`` strongest non-zero components, contexts ``T ⊆ N \\ field``.

  ``Ω_T`` = the other components whose field meets ``T`` and not the tested one's.
  """
  num = len(fields)
  chosen = _ranked(norms, np.arange(num))[: min(int(top), num)]
  chosen = chosen[norms[chosen] > 0]
  rng = np.random.default_rng(seed)
  full = subsets_lib.full_set(n)
  contexts = np.zeros((len(chosen), num_contexts), np.int64)
  weights = []
  for a, m in enumerate(chosen):
    s = int(fields[m])
    choices = subsets_lib.subsets_of(full ^ s)[1:]
    if choices.size:
      contexts[a] = rng.choice(choices, size=num_contexts, replace=True)
    for t in contexts[a]:
      w = np.zeros(num + 1, np.float32)
      w[1:] = ((fields & int(t)) != 0) & ((fields & s) == 0)
      w[m + 1] = 0.0
      weights.append(w)
  if not len(chosen):
    return {"inconsistency": np.zeros(0), "inconsistency_mean": 0.0, "inconsistency_max": 0.0}
  weights = np.stack(weights).reshape(len(chosen), num_contexts, num + 1)
  with_s = weights.copy()
  with_s[np.arange(len(chosen)), :, chosen + 1] = 1.0
  ref_w = np.zeros((2, len(chosen), num + 1), np.float32)
  ref_w[1, np.arange(len(chosen)), chosen + 1] = 1.0
  batch = np.concatenate([weights.reshape(-1, num + 1), with_s.reshape(-1, num + 1), ref_w.reshape(-1, num + 1)])
  images = np.asarray(metrics_lib.decode_combinations(decode, jnp.asarray(stacked), batch, batch_size), np.float64)
  k = len(chosen) * num_contexts
  p_ctx = (images[k : 2 * k] - images[:k]).reshape((len(chosen), num_contexts) + images.shape[1:])
  p_ref = images[2 * k + len(chosen) :] - images[2 * k : 2 * k + len(chosen)]
  ref_norm = np.linalg.norm(p_ref.reshape(len(chosen), -1), axis=1)
  diff = np.linalg.norm((p_ctx - p_ref[:, None]).reshape(len(chosen), num_contexts, -1), axis=-1)
  used = contexts != 0
  per_context = np.where(used, metrics_lib.safe_ratio(diff, ref_norm[:, None]), 0.0)
  inconsistency = metrics_lib.safe_ratio(per_context.sum(1), used.sum(1))
  return {
    "fields": chosen,
    "inconsistency": inconsistency,
    "inconsistency_mean": float(inconsistency.mean()),
    "inconsistency_max": float(inconsistency.max()),
  }


def sparsity(components, eps: float = 1e-2) -> float:
  """``metrics.sparsity``'s near-zero share: elements with ``|x| < eps · max|x|`` over all components."""
  x = np.abs(np.asarray(components, np.float64).reshape(-1))
  if x.size == 0:
    return 0.0
  top = x.max()
  return float(np.mean(x < eps * top)) if top > 0 else 1.0


def additivity(stacked, fields, norms, u, k: int) -> float:
  """``metrics.additivity``'s aggregate error of the top-K OR surrogate against the minimal features ``u``.

      h_K(Ŝ) = f0 + Σ_{m ∈ top-K, field(m) ∩ Ŝ ≠ ∅} Δ_m
      error  = √( Σ_Ŝ ‖h_K(Ŝ) − u(Ŝ)‖² / Σ_Ŝ ‖u(Ŝ) − f0‖² )

  ``u`` ``(2**n, *shape)`` are the minimal features of the image (the same for
  every method). The kept components are summed by field and OR-matched.
  """
  u = np.asarray(u, np.float64)
  n = metrics_lib.num_players(u)
  keep = _ranked(norms, np.arange(len(fields)))[: min(int(k), len(fields))]
  grouped = np.zeros((1 << n,) + np.shape(stacked)[1:], np.float64)
  grouped[0] = np.asarray(stacked[0], np.float64)
  for m in keep:
    if fields[m]:
      grouped[fields[m]] += np.asarray(stacked[m + 1], np.float64)
  h = np.asarray(transforms.or_matching(jnp.asarray(grouped, jnp.float32)), np.float64)
  miss = np.linalg.norm((h - u).reshape(1 << n, -1), axis=1)
  size = np.linalg.norm((u - u[:1]).reshape(1 << n, -1), axis=1)
  return float(metrics_lib.safe_ratio(np.sqrt((miss**2).sum()), np.sqrt((size**2).sum())))


def score(
  dec: Decomposition,
  decode,
  f,
  image,
  masks,
  u,
  *,
  k: int = metrics_lib.ADDITIVITY_TOP_K,
  top_fraction: float = 0.1,
  threshold: float = FIELD_THRESHOLD,
  consistency_contexts: int = 8,
  consistency_top: int = 10,
  sparsity_eps: float = 1e-2,
  seed: int = 0,
  batch_size: int | None = None,
  fields=None,
) -> tuple[Scores, dict]:
  """Every axiom's number for one decomposition (docs/method.md §Baselines): ``(Scores, raw)``.

  Fields come from :func:`field_by_ablation` unless ``fields`` is given
  (``(M,)`` bitmasks; e.g. ``ours(...).declared`` to reproduce ``metrics``).
  ``raw`` holds the fields, ρ per component, the breach and consistency curves.
  """
  t0 = time.perf_counter()
  masks = np.asarray(masks, bool)
  n = masks.shape[0]
  comps = np.asarray(dec.components, np.float32)
  num = comps.shape[0]
  stacked = _with_f0(dec)
  norms = np.linalg.norm(comps.reshape(num, -1).astype(np.float64), axis=1)
  f = np.asarray(f, np.float32)
  # completeness (v2 Axiom 1)
  delta = f.astype(np.float64) - np.asarray(dec.f0, np.float64)
  total = np.asarray(dec.f0, np.float64) + comps.astype(np.float64).sum(0)
  completeness = float(metrics_lib.safe_ratio(np.linalg.norm(total - f), np.linalg.norm(delta)))
  img = np.asarray(decoding.decode_one(decode, jnp.asarray(total, jnp.float32)), np.float64)
  image_rmse = float(np.sqrt(np.mean((img - np.asarray(image, np.float64)) ** 2)))
  per, count = metrics_lib.patch_sq_error(img[None], image, masks)
  image_rmse_players = float(metrics_lib.union_rmse(per, count, np.ones(n, bool))[0])
  # the patterns, the fields and ρ (v2 Axiom 2)
  patterns = ablation_patterns(decode, f, comps, batch_size=batch_size)
  fields = field_by_ablation(patterns, masks, threshold) if fields is None else np.asarray(fields, np.int64)
  rho, empty = _rho(patterns, masks, fields)
  ranked = _ranked(norms, np.arange(num))
  ranked = ranked[norms[ranked] > 0]
  top = ranked[: max(1, math.ceil(top_fraction * num))]
  rho_declared = None
  if dec.declared is not None:  # the strongest 10% of the components that claim a player (a claim of ∅ is vacuous)
    declared = np.asarray(dec.declared, np.int64)
    claim = ranked[declared[ranked] != 0]
    claim = claim[: max(1, math.ceil(top_fraction * int((declared != 0).sum())))]
    rho_declared = float(np.mean(_rho(patterns[claim], masks, declared[claim])[0])) if claim.size else None
  breach = boundary_breach(decode, stacked, fields, masks, norms, batch_size=batch_size)
  cons = consistency(
    decode,
    stacked,
    fields,
    norms,
    n,
    num_contexts=consistency_contexts,
    top=consistency_top,
    seed=seed,
    batch_size=batch_size,
  )
  add = additivity(stacked, fields, norms, u, k)
  sizes = metrics_lib.field_sizes(fields[top]) if top.size else np.zeros(1)
  out = Scores(
    method=dec.name,
    num_components=num,
    completeness=completeness,
    image_rmse=image_rmse,
    image_rmse_players=image_rmse_players,
    rho_image_top=float(rho[top].mean()) if top.size else 1.0,
    rho_image_mean=float(rho[~empty].mean()) if (~empty).any() else 1.0,
    rho_declared_top=rho_declared,
    breach_max=breach["breach_max"],
    breach_mean=breach["breach_mean"],
    others_final_mean=breach["others_final_mean"],
    inconsistency_mean=cons["inconsistency_mean"],
    near_zero_share=sparsity(comps, sparsity_eps),
    additivity=add,
    k=min(int(k), num),
    mean_field_size=float(sizes.mean()),
    empty_fields=int(((fields == 0) & ~empty).sum()),
    seconds=time.perf_counter() - t0,
  )
  raw = {
    "fields": fields,
    "rho_image": rho,
    "empty": empty,
    "top": top,
    "norms": norms,
    "breach": breach,
    "consistency": cons,
  }
  return out, raw


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------

#: (column head naming the paper's axiom, Scores attribute, format)
COLUMNS = (
  ("components", "num_components", "d"),
  ("Axiom 1 completeness ‖f0+ΣΔ−f‖/‖f−f0‖ ↓", "completeness", ".3f"),
  ("Axiom 1 RMSE of g(f0+ΣΔ) on the players ↓", "image_rmse_players", ".4f"),
  ("Axiom 2 boundedness ρ image, top 10% ↑", "rho_image_top", ".3f"),
  ("Axiom 2 ρ image, all ↑", "rho_image_mean", ".3f"),
  ("Axiom 2 ρ, declared field ↑", "rho_declared_top", ".3f"),
  ("Axiom 2 boundary breach, mean RMSE ↓", "breach_mean", ".4f"),
  ("Axiom 3 consistency, inconsistency ↓", "inconsistency_mean", ".3f"),
  ("sparsity, near-zero share ↑", "near_zero_share", ".3f"),
  ("additivity top-K ↓", "additivity", ".3f"),
  ("mean field size, top 10%", "mean_field_size", ".2f"),
)


def markdown_table(rows: list[Scores]) -> str:
  """Method × metric, the column heads naming the paper's axioms (— where a method declares no field)."""

  def cell(r, attr, fmt):
    v = getattr(r, attr)
    return "—" if v is None else format(v, fmt)

  head = "| method | " + " | ".join(c[0] for c in COLUMNS) + " |"
  sep = "|---|" + "---:|" * len(COLUMNS)
  body = ["| " + r.method + " | " + " | ".join(cell(r, a, f) for _, a, f in COLUMNS) + " |" for r in rows]
  return "\n".join([head, sep] + body)


# ---------------------------------------------------------------------------
# All methods on one solved image
# ---------------------------------------------------------------------------


def decompositions(
  f, f0, components, masks, features, *, num_directions: int | None = None, denoised=None
) -> list[Decomposition]:
  """Units, directions, spatial cells (a feature with two spatial axes then channels) and ours.

  ``features`` ``(B, *shape)``: the feature of many codes, for the principal
  directions; ``num_directions`` defaults to the number of channels (as many
  directions as units), capped by ``B − 1``. ``denoised``: our components after
  denoising, added as a row when given.
  """
  f = np.asarray(f, np.float32)
  f0 = np.asarray(f0, np.float32)
  out = [Decomposition("units (GAN Dissection)", f0, units(f, f0))]
  k = min(num_directions or f.shape[-1], np.shape(features)[0] - 1, f.size)
  out.append(Decomposition(f"directions (GANSpace, top {k})", f0, directions(f, f0, principal_directions(features, k))))
  masks = np.asarray(masks, bool)
  if f.ndim == 3:
    owner = feature_owners(masks, f.shape[:2])[..., None]
    comps, declared = spatial_cells(f, f0, owner, masks.shape[0])
    out.append(Decomposition("spatial cells", f0, comps, declared))
  out.append(ours(components, "OR components (ours)"))
  if denoised is not None:
    out.append(ours(denoised, "OR components, denoised (ours)"))
  return out


def compare(decs: list[Decomposition], decode, f, image, masks, u, **score_kw) -> list[Scores]:
  """:func:`score` of every decomposition with the same image, cells, minimal features and settings."""
  return [score(d, decode, f, image, masks, u, **score_kw)[0] for d in decs]
