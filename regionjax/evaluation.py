"""Evaluation: every number of a run, computed apart from its presentation.

``evaluate_image`` turns one solved image (``pipeline.ImageResult``) into an
:class:`ImageEvaluation`: the scalars of ``metrics.json``, the raw curves of
each metric, and the decoded images the report shows (regional patterns of
the strongest components, incremental reconstructions). ``evaluate_batch``
adds what needs several images (transferability over same-class pairs, mean ±
std of every scalar). ``regionjax.report`` only draws and writes these;
nothing here draws or writes a file.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import jax.numpy as jnp
import numpy as np

from regionjax import baselines as baselines_lib
from regionjax import components as components_lib
from regionjax import denoise as denoise_lib
from regionjax import metrics as metrics_lib
from regionjax import progress
from regionjax import results as results_lib
from regionjax import subsets as subsets_lib

#: Fractions p of Algorithm 2 shown in the incremental strips (v1 Fig. 4, 7).
STRIP_FRACTIONS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


@dataclasses.dataclass(frozen=True)
class MetricOptions:
  """Every setting of the metrics (the fields of ``config.metrics``, ``config.seed`` and ``config.denoise``).

  Args:
    top_k: K of the additivity with the top-K components (v2 Fig. 4).
    salient_fraction: share of components kept as the salient set (v1 App. H: 60 %).
    salient_rel_tol: "similar to the baseline": RMSE to ``g(f0)`` at most this share of the start.
    sparsity_eps: near zero means ``|x| < eps · max|x|``.
    consistency_contexts, consistency_top: contexts per component and components tested (v2 §3.3).
    transfer_k: top-K action fields compared between images (v2 §3.4).
    decode_batch: decodes per compiled call (the memory knob of the metrics).
    seed: seed of every random choice of the metrics.
    denoise: also run the denoising of v1 App. G and report it; ``denoise_tau_q_relative`` is τ_q as a
      share of ``max|f − f0|``, ``denoise_steps`` its steps.
  """

  top_k: int = 30
  salient_fraction: float = 0.6
  salient_rel_tol: float = 0.05
  sparsity_eps: float = 0.01
  consistency_contexts: int = 8
  consistency_top: int = 10
  transfer_k: int = 30
  decode_batch: int = 64
  seed: int = 0
  denoise: bool = False
  denoise_tau_q_relative: float = 0.02
  denoise_steps: int = 300

  @classmethod
  def from_config(cls, config) -> "MetricOptions":
    """From a run's config (``config.metrics``, ``config.seed``, ``config.denoise``)."""
    m, d = config.metrics, config.denoise
    return cls(
      top_k=int(m.top_k),
      salient_fraction=float(m.salient_fraction),
      salient_rel_tol=float(m.salient_rel_tol),
      sparsity_eps=float(m.sparsity_eps),
      consistency_contexts=int(m.consistency_contexts),
      consistency_top=int(m.consistency_top),
      transfer_k=int(m.transfer_k),
      decode_batch=int(m.decode_batch),
      seed=int(config.seed),
      denoise=bool(d.enabled),
      denoise_tau_q_relative=float(d.tau_q_relative),
      denoise_steps=int(d.steps),
    )

  def score_settings(self) -> dict:
    """The :func:`regionjax.baselines.score` keywords (the same K, contexts, ε as the metrics)."""
    return dict(
      k=self.top_k,
      consistency_contexts=self.consistency_contexts,
      consistency_top=self.consistency_top,
      sparsity_eps=self.sparsity_eps,
      seed=self.seed,
      batch_size=self.decode_batch,
    )


@dataclasses.dataclass(frozen=True)
class ImageEvaluation:
  """Everything computed about one image.

  Attributes:
    metrics: metrics.json of the image, typed (:class:`regionjax.results.ImageMetrics`; values as the JSON holds
      them, ``to_json_dict()`` writes it).
    raw: each metric's full output by name (curves and per-component arrays).
    top: the strongest 10% of components (bitmasks), whose patterns are drawn.
    patterns: ``g(f0 + Δf_S)`` for ``S`` in ``top`` (regional patterns).
    strips: images of Algorithm 2 for ``strip_sets`` × ``STRIP_FRACTIONS``.
    strip_titles: one title per strip image.
  """

  metrics: results_lib.ImageMetrics
  raw: dict
  top: np.ndarray
  patterns: np.ndarray
  strips: list
  strip_titles: list


@dataclasses.dataclass(frozen=True)
class BatchEvaluation:
  """Batch mode: the per-image evaluations and what needs several images (the batch index's dicts)."""

  images: list[ImageEvaluation]
  aggregate: dict
  transferability: dict
  faithfulness: dict


def evaluate_image(options: MetricOptions, res) -> ImageEvaluation:
  """Metrics, curves and the decoded images of the report for one image."""
  metrics, raw = compute_metrics(options, res)
  comps = res.components
  n = res.masks.shape[0]
  ranked = components_lib.rank(comps)
  top = ranked[: max(1, math.ceil(0.1 * ranked.size))]
  patterns = np.asarray(components_lib.regional_patterns(res.decode, jnp.asarray(res.f), jnp.asarray(comps), top))
  salient = raw["salient"]["top_fraction_fields"].tolist()
  strip_sets = [1 << i for i in range(min(n, 3))] + [subsets_lib.full_set(n)]
  strips, titles = incremental_strips(res, strip_sets, salient)
  return ImageEvaluation(metrics=metrics, raw=raw, top=top, patterns=patterns, strips=strips, strip_titles=titles)


def evaluate_batch(options: MetricOptions, results, per_image: list[ImageEvaluation]) -> BatchEvaluation:
  """Transferability over same-class pairs and mean ± std of every scalar over images."""
  metrics = [e.metrics for e in per_image]
  return BatchEvaluation(
    images=per_image,
    aggregate=aggregate(metrics),
    transferability=transfer_pairs(results, options.transfer_k),
    faithfulness=mean_faithfulness([m.faithfulness for m in metrics]),
  )


def incremental_strips(res, target_sets, kept) -> tuple[list[np.ndarray], list[str]]:
  """f0 plus the strongest fraction p of kept components meeting Ŝ (v1 Fig. 4, 7)."""
  comps = res.components
  n = res.masks.shape[0]
  norms = components_lib.component_norms(comps)
  weights, titles = [], []
  for target in target_sets:
    cover = sorted((s for s in kept if s & target), key=lambda s: -norms[s])
    for p in STRIP_FRACTIONS:
      w = np.zeros(1 << n, np.float32)
      w[cover[: int(round(p * len(cover)))]] = 1.0
      weights.append(w)
      name = "N" if target == subsets_lib.full_set(n) else subsets_lib.format_subset(target)
      titles.append(f"Ŝ={name} p={p:g}")
  images = metrics_lib.decode_combinations(res.decode, comps, np.stack(weights))
  return list(np.asarray(images)), titles


def compute_metrics(options: MetricOptions, res) -> tuple[results_lib.ImageMetrics, dict]:
  """All faithfulness metrics of one image (docs/method.md §Metrics): (typed scalars of metrics.json, raw curves).

  ``raw`` holds each metric's full output by name (``regionjax.metrics``'s dicts of arrays).
  """
  mc = options
  comps, u, decode, masks = res.components, np.asarray(res.solution.u), res.decode, res.masks
  n = masks.shape[0]
  bs = mc.decode_batch
  raw = {}
  steps = [
    ("completeness", lambda: metrics_lib.completeness(comps, res.f, u=u, decode=decode, image=res.image, masks=masks)),
    ("additivity", lambda: metrics_lib.additivity(comps, u, k=mc.top_k)),
    ("sparsity", lambda: metrics_lib.sparsity(comps, eps=mc.sparsity_eps)),
    ("boundedness", lambda: metrics_lib.boundedness(decode, res.f, comps, masks, batch_size=bs)),
    ("boundary_breach", lambda: metrics_lib.boundary_breach(decode, comps, masks, batch_size=bs)),
    (
      "consistency",
      lambda: metrics_lib.consistency(
        decode, comps, num_contexts=mc.consistency_contexts, top=mc.consistency_top, seed=mc.seed, batch_size=bs
      ),
    ),
    (
      "consistency_paper",
      lambda: metrics_lib.consistency(
        decode,
        comps,
        num_contexts=mc.consistency_contexts,
        top=mc.consistency_top,
        seed=mc.seed,
        batch_size=bs,
        paper_literal=True,
      ),
    ),
    (
      "controllable",
      lambda: metrics_lib.controllable_reconstruction(
        decode, comps, res.image, masks, [1 << i for i in range(n)] + [subsets_lib.full_set(n)], batch_size=bs
      ),
    ),
    (
      "sequential",
      lambda: metrics_lib.sequential_reconstruction(decode, comps, res.image, masks, seed=mc.seed, batch_size=bs),
    ),
    (
      "salient",
      lambda: metrics_lib.salient_set(
        decode, comps, masks, fraction=mc.salient_fraction, rel_tol=mc.salient_rel_tol, image=res.image, batch_size=bs
      ),
    ),
  ]
  steps.append(("headline", lambda: metrics_lib.headline(decode, res.f, comps, u, masks, k=mc.top_k, batch_size=bs)))
  # Algorithm 2 on the salient set (v1 App. E/H): random multi-patch targets, so p = 1 is a real test
  steps.append(("salient_algorithm2", lambda: _salient_algorithm2(mc, res, raw["salient"])))
  if mc.denoise:
    steps.append(("denoise", lambda: _denoise(mc, res)))
  bar = progress.bar(total=len(steps), desc=f"metrics image {res.index}", unit="metric")
  for name, fn in steps:
    bar.set_postfix(metric=name)
    raw[name] = fn()
    bar.update(1)
  bar.close()
  err = np.asarray(res.solution.error)
  unmet = np.nonzero(res.solution.unmet)[0]
  ranked = components_lib.rank(comps)
  norms = components_lib.component_norms(comps)
  c, a, sp, b, br = raw["completeness"], raw["additivity"], raw["sparsity"], raw["boundedness"], raw["boundary_breach"]
  sal, ctl, seq = raw["salient"], raw["controllable"], raw["sequential"]
  metrics = results_lib.ImageMetrics(
    completeness=results_lib.Completeness(
      feature_error=c["feature_error"],
      identity_error=c["identity_error"],
      image_rmse=c["image_rmse"],
      image_rmse_players=c["image_rmse_players"],
    ),
    additivity=results_lib.Additivity(
      k=a["k"], error_mean=a["error_mean"], error_max=a["error_max"], error_all_components=_additivity_all(comps, u)
    ),
    sparsity=results_lib.Sparsity(
      near_zero_share=sp["near_zero_share"],
      eps=sp["eps"],
      shares=dict(zip([str(t) for t in sp["thresholds"]], sp["shares"])),
      num_elements=sp["num_elements"],
    ),
    boundedness=results_lib.Boundedness(
      rho_mean=b["rho_mean"], rho_min=b["rho_min"], rho_max=b["rho_max"], rho_image_mean=b["rho_image_mean"]
    ),
    boundedness_top10pct=_top_rho(b, max(1, math.ceil(0.1 * ranked.size))),
    boundary_breach=results_lib.BoundaryBreach(
      breach_max=br["breach_max"], breach_mean=br["breach_mean"], others_final_mean=br["others_final_mean"]
    ),
    consistency=_consistency(raw["consistency"]),
    consistency_paper=_consistency(raw["consistency_paper"]),
    salient_algorithm2=raw["salient_algorithm2"]["scalars"],
    controllable=results_lib.Controllable(
      initial_rmse_mean=ctl["initial_rmse_mean"], final_rmse_mean=ctl["final_rmse_mean"]
    ),
    sequential=results_lib.Sequential(new_rmse_mean=seq["new_rmse_mean"], final_rmse=seq["final_rmse"]),
    salient=results_lib.Salient(
      num_salient=sal["num_salient"],
      fraction_salient=sal["fraction_salient"],
      num_components=sal["num_components"],
      num_top_fraction=sal["num_top_fraction"],
      fraction=sal["fraction"],
      rmse_salient_only=sal.get("rmse_salient_only"),
      rmse_top_fraction_only=sal.get("rmse_top_fraction_only"),
    ),
    solver=results_lib.SolverSummary(
      subsets=int(err.size),
      met_tau=int(err.size - unmet.size),
      tau=float(res.solution.tau),
      unmet=[subsets_lib.format_subset(s) for s in unmet[:50]],
      num_unmet=int(unmet.size),
      max_error=float(err.max()),
      median_error=float(np.median(err[1:])),
      seconds=float(res.seconds),
      composition=res.options.composition,
      optimizer=res.options.optimizer,
      problems_solved=_problems_solved(res),
      lam_final_max=float(np.nanmax(res.solution.lam)) if res.solution.lam is not None else None,
      continued=int(np.sum(res.solution.lam > res.options.lam)) if res.solution.lam is not None else 0,
    ),
    alpha=results_lib.AlphaMovement(**metrics_lib.alpha_movement(res.solution.alpha)),
    faithfulness=_faithfulness(raw["headline"], err.size - unmet.size, err.size),
    top_components=[
      results_lib.TopComponent(
        field=subsets_lib.format_subset(s), players=subsets_lib.to_indices(s), norm=float(norms[s])
      )
      for s in ranked[:20]
    ],
    denoise=_denoise_scalars(raw["denoise"]) if "denoise" in raw else None,
  )
  return metrics.normalised(), raw


def _problems_solved(res) -> int | None:
  """Problems optimised, counted as the solve's progress bar counts them: with max composition ``N`` (the
  singletons' warm start) and the ``n`` singletons, ``n + 1``; else every solved subset."""
  if res.explanation is not None:
    return len(res.explanation.info.alpha_subsets)
  if res.solution.solved is None:
    return None
  solved = int(np.sum(res.solution.solved))
  n = res.masks.shape[0]
  composed = res.options is not None and res.options.composition == "max" and n > 1
  return solved + 1 if composed else solved


#: Targets of the faithfulness figures on the face model (issue "Faithful explanations…").
TARGETS = {
  "rho_image_top10": 0.8,
  "additivity_top30": 0.3,
  "transferability": metrics_lib.TRANSFERABILITY_SID,
  "transferability_kappa": 0.5,  # κ against the size-matched chance (docs/method.md §Transferability)
}


def _faithfulness(h: dict, met: int, total: int) -> results_lib.Faithfulness:
  """The headline figures of one image, each with its target and whether it is met."""
  return results_lib.Faithfulness(
    subsets_meeting_tau=results_lib.SubsetsMeetingTau(value=int(met), of=int(total), met=bool(met == total)),
    rho_image_top10=results_lib.RhoImageTop(
      value=h["rho_image_top"],
      target=TARGETS["rho_image_top10"],
      met=bool(h["rho_image_top"] >= TARGETS["rho_image_top10"]),
      players_denominator=h["rho_players_top"],
      num_components=h["num_top"],
    ),
    additivity_top30=results_lib.AdditivityTop(
      value=h["additivity_aggregate"],
      k=h["k"],
      target=TARGETS["additivity_top30"],
      met=bool(h["additivity_aggregate"] <= TARGETS["additivity_top30"]),
    ),
    top30_mean_field_size=h["top_k_mean_field_size"],
  )


def mean_faithfulness(per: list[results_lib.Faithfulness]) -> dict:
  """Batch mode: the headline figures averaged over images (met = the mean meets the target)."""
  rho = float(np.mean([p.rho_image_top10.value for p in per]))
  add = float(np.mean([p.additivity_top30.value for p in per]))
  met = int(sum(p.subsets_meeting_tau.value for p in per))
  total = int(sum(p.subsets_meeting_tau.of for p in per))
  return {
    "subsets_meeting_tau": {"value": met, "of": total, "met": met == total},
    "rho_image_top10": {"value": rho, "target": TARGETS["rho_image_top10"], "met": rho >= TARGETS["rho_image_top10"]},
    "additivity_top30": {
      "value": add,
      "k": per[0].additivity_top30.k,
      "target": TARGETS["additivity_top30"],
      "met": add <= TARGETS["additivity_top30"],
    },
    "top30_mean_field_size": float(np.mean([p.top30_mean_field_size for p in per])),
  }


def random_target_sets(n: int, count: int, seed: int) -> np.ndarray:
  """``count`` distinct random target sets of 2 … n − 1 patches (fewer if n is small)."""
  rng = np.random.default_rng(seed)
  pool = [s for s in range(1, 1 << n) if 2 <= bin(s).count("1") <= max(2, n - 1)]
  if not pool:
    return np.array([subsets_lib.full_set(n)], np.int64)
  return np.sort(rng.choice(pool, size=min(count, len(pool)), replace=False)).astype(np.int64)


def _salient_algorithm2(mc: MetricOptions, res, salient) -> dict:
  """Controllable and sequential reconstruction and boundary breach with only the salient components kept."""
  comps, masks, bs = res.components, res.masks, mc.decode_batch
  kept = np.asarray(salient["salient_fields"])
  n = masks.shape[0]
  targets = random_target_sets(n, 8, mc.seed)
  ctl = metrics_lib.controllable_reconstruction(res.decode, comps, res.image, masks, targets, kept=kept, batch_size=bs)
  seq = metrics_lib.sequential_reconstruction(
    res.decode, comps, res.image, masks, seed=mc.seed, kept=kept, batch_size=bs
  )
  br = metrics_lib.boundary_breach(res.decode, comps, masks, kept=kept, batch_size=bs)
  return {
    "raw": {"controllable": ctl, "sequential": seq, "breach": br},
    "scalars": results_lib.SalientAlgorithm2(
      num_kept=int(kept.size),
      targets=[subsets_lib.format_subset(t) for t in targets],
      controllable_initial_rmse_mean=ctl["initial_rmse_mean"],
      controllable_final_rmse_mean=ctl["final_rmse_mean"],
      sequential_new_rmse_mean=seq["new_rmse_mean"],
      sequential_final_rmse=seq["final_rmse"],
      breach_max=br["breach_max"],
      breach_mean=br["breach_mean"],
    ),
  }


def baseline_scores(options: MetricOptions, res, features) -> list[baselines_lib.Scores]:
  """Units, directions, spatial cells and our components (denoised too when ``denoise.enabled``) scored on the
  axioms with this run's settings (``regionjax.baselines``; ``features``: the tap's feature of many codes)."""
  denoised = None
  if options.denoise:
    out = denoise_lib.denoise(
      jnp.asarray(res.solution.u),
      tau_q=options.denoise_tau_q_relative * float(np.abs(res.f - res.f0).max()),
      steps=options.denoise_steps,
    )
    denoised = np.asarray(out.components)
  decs = baselines_lib.decompositions(res.f, res.f0, res.components, res.masks, features, denoised=denoised)
  rows = baselines_lib.compare(
    decs, res.decode, res.f, res.image, res.masks, np.asarray(res.solution.u), **options.score_settings()
  )
  return [baselines_lib.Scores(**r.to_dict()) for r in rows]  # values as metrics.json holds them


def _additivity_all(comps, u) -> float:
  """Matching error with all components: 0 up to rounding (OR matching)."""
  return float(metrics_lib.additivity(comps, u, k=comps.shape[0] - 1)["error_max"])


def _top_rho(b, k) -> results_lib.TopBoundedness:
  rho = np.asarray(b["rho"])[:k]
  return results_lib.TopBoundedness(
    k=int(rho.size), mean=float(rho.mean()) if rho.size else 1.0, min=float(rho.min()) if rho.size else 1.0
  )


def _consistency(c: dict) -> results_lib.Consistency:
  return results_lib.Consistency(inconsistency_mean=c["inconsistency_mean"], inconsistency_max=c["inconsistency_max"])


def _denoise_scalars(d: dict) -> results_lib.Denoise:
  side = lambda s: results_lib.DenoiseSide(  # noqa: E731
    l1=s["l1"],
    near_zero_share=s["near_zero_share"],
    near_zero_share_common=s["near_zero_share_common"],
    recon_rmse_mean=s["recon_rmse_mean"],
    full_rmse=s["full_rmse"],
  )
  return results_lib.Denoise(before=side(d["before"]), after=side(d["after"]), tau_q=float(d["tau_q"]))


def _denoise(options: MetricOptions, res) -> dict:
  scale = float(np.abs(res.f - res.f0).max())
  tau_q = options.denoise_tau_q_relative * scale
  out = denoise_lib.denoise(jnp.asarray(res.solution.u), tau_q=tau_q, steps=options.denoise_steps)
  rep = denoise_lib.denoise_report(
    res.decode, res.solution.u, out.u, res.image, res.masks, batch_size=options.decode_batch
  )
  rep["tau_q"] = tau_q
  rep["components_after"] = np.asarray(out.components)
  rep["sparsity_after"] = metrics_lib.sparsity(rep["components_after"], eps=options.sparsity_eps)
  return rep


def _flatten(d, prefix=""):
  for k, v in d.items():
    if isinstance(v, dict):
      yield from _flatten(v, f"{prefix}{k}.")
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
      yield f"{prefix}{k}", float(v)


def aggregate(per_image: list[results_lib.ImageMetrics]) -> dict:
  """mean ± std over images of every scalar metric (keys: dotted paths into metrics.json)."""
  keys = {}
  for m in per_image:
    d = m.to_json_dict()
    for k, v in _flatten({k: v for k, v in d.items() if k not in ("summary", "top_components")}):
      keys.setdefault(k, []).append(v)
  return {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "count": len(v)} for k, v in sorted(keys.items())}


def transfer_pairs(results, k: int) -> dict:
  """Transferability (v2 §3.4) over all pairs of same-class images."""
  pairs = []
  for a, b in itertools.combinations(results, 2):
    if a.class_id == b.class_id and np.array_equal(a.players, b.players):
      t = metrics_lib.transferability(a.components, b.components, k)
      pairs.append(
        {
          "a": a.index,
          "b": b.index,
          "class_id": a.class_id,
          "ratio": t["ratio"],
          "k": t["k"],
          "chance_size_matched": t["chance_size_matched"],
          "chance_uniform": t["chance_uniform"],
        }
      )
  ratios = [p["ratio"] for p in pairs]
  chance = [p["chance_size_matched"] for p in pairs]
  mean = float(np.mean(ratios)) if ratios else None
  out = {
    "pairs": pairs,
    "k": k,
    "mean": mean,
    "std": float(np.std(ratios)) if ratios else None,
    "chance_size_matched_mean": float(np.mean(chance)) if chance else None,
    "chance_uniform": pairs[0]["chance_uniform"] if pairs else None,
    "paper_nvae": metrics_lib.TRANSFERABILITY_NVAE,
    "paper_sid": metrics_lib.TRANSFERABILITY_SID,
    "target": TARGETS["transferability"],
    "kappa_target": TARGETS["transferability_kappa"],
  }
  if ratios:
    # judged against the paper's SiD figure and against chance: κ = (ratio − chance) / (1 − chance) with the
    # size-matched chance (the same field sizes drawn at random), which a method must beat by half the headroom
    c = out["chance_size_matched_mean"]
    out["kappa_size_matched"] = float((mean - c) / (1 - c)) if c < 1 else None
    kappa = out["kappa_size_matched"]
    out["met"] = bool(mean >= TARGETS["transferability"] and kappa is not None and kappa >= out["kappa_target"])
  return out


def evaluate(exp, generator=None, options: MetricOptions | None = None, *, decode=None) -> results_lib.Metrics:
  """Every faithfulness metric of every image of an explanation (docs/method.md §Metrics), typed.

  Args:
    exp: a :class:`regionjax.Explanation` (from :func:`regionjax.explain` or :func:`regionjax.load`).
    generator: the generator it explains (its decoder paints the patterns the metrics measure).
    options: a :class:`MetricOptions` (default: the defaults of configs/default.py).
    decode: instead of ``generator``, one decoder ``v ↦ g(v)`` for a one-image explanation.

  Returns:
    :class:`regionjax.results.Metrics`: ``metrics[i]`` is image ``i``'s :class:`ImageMetrics`; with two or more
    images, ``metrics.transferability`` over their same-class pairs (v2 §3.4).
  """
  from regionjax import explainer

  options = MetricOptions() if options is None else options
  if decode is not None and len(exp) != 1:
    raise ValueError("decode= serves a one-image explanation; pass the generator for a batch")
  bound = [explainer.bind(exp, i, generator, decode=decode) for i in range(len(exp))]
  images = [compute_metrics(options, r)[0] for r in bound]
  transfer = None
  if len(bound) > 1:
    transfer = results_lib.from_json(results_lib.Transferability, transfer_pairs(bound, options.transfer_k))
  return results_lib.Metrics(images=images, transferability=transfer)
