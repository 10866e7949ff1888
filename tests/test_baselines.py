"""regionjax.baselines on the planted generator, where the right answer is known (``pytest -k baseline``).

The planted decoder paints each feature block on exactly the pixels of its
field and nothing else, pixel by pixel (tanh of a per-pixel sum). So:

* any component whose fields the ablation rule finds exactly is bounded (ρ = 1,
  no breach) and consistent (its pattern lives on pixels no disjoint-field
  context touches): these axioms separate the methods only through the fields;
* completeness holds for every split of ``f − f0`` (units, cells, a complete
  basis of directions) and fails by the residual for too few directions;
* additivity (the top-K OR surrogate against the minimal features ``u``)
  separates them: it needs each field's blocks together in few components.
"""

import math

import jax
import numpy as np
import pytest

from regionjax import baselines as baselines_lib
from regionjax import components as components_lib
from regionjax import metrics as metrics_lib
from regionjax import subsets as subsets_lib
from regionjax import testing

K = 6  # configs/planted.py metrics.top_k


@pytest.fixture(scope="module")
def planted():
  return testing.planted_generator(inert_dim=0)  # no inert tail: u(N) = f, so the known answer is complete


def _score(p, dec, **kw):
  return baselines_lib.score(dec, p.decode, p.f, p.image, p.masks, p.expected_u(), k=K, **kw)


def _block_of(p):
  """The planted field of every feature element."""
  out = np.zeros(p.f.shape, np.int64)
  for field, sl in zip(p.fields, p.block_slices):
    out[sl] = field
  return out


def _or_surrogate_error(p, comps, fields, kept):
  """√(Σ_Ŝ ‖f0 + Σ_{m kept, field ∩ Ŝ ≠ ∅} Δ_m − u(Ŝ)‖² / Σ_Ŝ ‖u(Ŝ) − f0‖²), written out element by element."""
  u = p.expected_u().astype(np.float64)
  miss = size = 0.0
  for s in range(1 << p.n):
    h = p.f0.astype(np.float64).copy()
    for m in kept:
      if fields[m] & s:
        h += comps[m]
    miss += ((h - u[s]) ** 2).sum()
    size += ((u[s] - p.f0) ** 2).sum()
  return math.sqrt(miss / size)


def test_baseline_ours_is_perfect(planted):
  p = planted
  s, raw = _score(p, baselines_lib.ours(p.expected_components()))
  nonzero = np.nonzero(np.abs(p.expected_components()[1:]).sum(1))[0]
  np.testing.assert_array_equal(raw["fields"][nonzero], nonzero + 1)  # the rule finds every field S itself
  assert s.num_components == 15 and s.k == K
  assert s.completeness < 1e-6 and s.image_rmse < 1e-6 and s.image_rmse_players < 1e-6
  assert (
    s.rho_image_top == pytest.approx(1.0, abs=1e-12)
    and s.rho_declared_top == pytest.approx(1.0, abs=1e-12)
    and s.rho_image_mean == pytest.approx(1.0, abs=1e-12)
  )
  assert s.breach_max == 0.0 and s.inconsistency_mean == 0.0
  assert s.additivity < 1e-6  # 6 non-zero components, all in the top 6
  assert s.near_zero_share == 1 - 18 / (15 * 18)  # 18 numbers in 15 components of 18
  assert s.others_final_mean > 0.1  # the breach test did add components elsewhere


def test_baseline_units(planted):
  """One unit per element: exact fields, complete, bounded; additivity misses the units outside the top 6."""
  p = planted
  comps = baselines_lib.units(p.f, p.f0)
  np.testing.assert_allclose(comps.sum(0), p.f - p.f0, atol=1e-6)
  s, raw = _score(p, baselines_lib.Decomposition("units", p.f0, comps))
  np.testing.assert_array_equal(raw["fields"], _block_of(p))  # each unit paints its block's field
  assert (
    s.completeness < 1e-6
    and s.rho_image_top == pytest.approx(1.0, abs=1e-12)
    and s.breach_max == 0.0
    and s.inconsistency_mean == 0.0
  )
  assert s.rho_declared_top is None
  assert s.near_zero_share == pytest.approx(1 - 1 / 18, abs=1e-12)  # one non-zero number per unit
  kept = np.argsort(-np.linalg.norm(comps, axis=1), kind="stable")[:K]
  expected = _or_surrogate_error(p, comps.astype(np.float64), raw["fields"], kept)
  assert s.additivity == pytest.approx(expected, rel=1e-5)
  assert s.additivity == pytest.approx(0.7421, abs=1e-3)  # 6 of 18 units: most of u(Ŝ) is missed


def test_baseline_spatial_cells(planted):
  """Each block under its lowest player: the cell of player 0 holds blocks {0} and {0,1}, and paints both."""
  p = planted
  owner = np.array([subsets_lib.to_indices(f)[0] for f in _block_of(p)])
  comps, declared = baselines_lib.spatial_cells(p.f, p.f0, owner, p.n)
  s, raw = _score(p, baselines_lib.Decomposition("cells", p.f0, comps, declared))
  # fields by the rule: the union of the planted fields of the blocks in each cell; the rest is empty
  np.testing.assert_array_equal(raw["fields"], [0b0011, 0b1010, 0b1100, 0b1000, 0])
  assert (
    s.completeness < 1e-6
    and s.rho_image_top == pytest.approx(1.0, abs=1e-12)
    and s.breach_max == 0.0
    and s.inconsistency_mean == 0.0
  )
  assert s.near_zero_share == pytest.approx(0.8, abs=1e-12)  # 18 numbers in 5 components of 18
  # against their declared single patches the cells leak: ρ < 1
  assert s.rho_declared_top == pytest.approx(0.6557, abs=1e-3)
  # all 5 kept, but u({1}) needs blocks {1},{0,1},{1,3} and cell 0 brings {0} along with {0,1}
  expected = _or_surrogate_error(p, comps.astype(np.float64), raw["fields"], np.arange(5))
  assert s.additivity == pytest.approx(expected, rel=1e-5)
  assert s.additivity == pytest.approx(0.3737, abs=1e-3)


def test_baseline_directions(planted):
  """Principal directions of isotropic codes are rotations that mix blocks: complete with all 18, not bounded."""
  p = planted
  gen = testing.PlantedGenerator(p)
  feats = np.asarray(gen.encode(gen.sample_codes(jax.random.PRNGKey(0), 200), "feature"))
  basis = baselines_lib.principal_directions(feats, 18)
  np.testing.assert_allclose(basis @ basis.T, np.eye(18), atol=1e-4)
  comps = baselines_lib.directions(p.f, p.f0, basis)
  s, raw = _score(p, baselines_lib.Decomposition("directions", p.f0, comps))
  assert s.completeness < 1e-5  # a complete orthonormal basis
  assert s.mean_field_size > 2.5  # each direction paints several fields
  assert s.rho_image_top < 0.99 and s.breach_max > 0.05
  assert s.near_zero_share < 0.5  # dense directions
  assert s.additivity > 0.7
  # the measured values (a seeded PCA of 200 codes; loose: near-equal eigenvalues may rotate on another BLAS)
  assert s.rho_image_top == pytest.approx(0.963, abs=0.03) and s.breach_mean == pytest.approx(0.082, abs=0.02)
  assert s.additivity == pytest.approx(0.789, abs=0.05) and s.mean_field_size == pytest.approx(3.5, abs=0.6)
  assert s.inconsistency_mean == 0.0  # pixel-separable decoder, disjoint contexts
  # fewer directions: completeness fails by exactly the part of f − f0 outside their span
  few = baselines_lib.directions(p.f, p.f0, basis[:6])
  s6, _ = _score(p, baselines_lib.Decomposition("directions", p.f0, few))
  delta = (p.f - p.f0).astype(np.float64)
  resid = delta - basis[:6].T.astype(np.float64) @ (basis[:6].astype(np.float64) @ delta)
  assert s6.completeness == pytest.approx(np.linalg.norm(resid) / np.linalg.norm(delta), rel=1e-4)
  assert s6.completeness > 0.3


def test_baseline_scores_match_metrics(planted):
  """With the declared fields S, the list scorer reproduces regionjax.metrics on a noisy decomposition."""
  p = planted
  rng = np.random.default_rng(0)
  comps = p.expected_components() + 0.05 * rng.normal(size=(16, p.f.size)).astype(np.float32)
  comps[0] = p.f0
  u = np.asarray(components_lib.transforms.or_matching(comps))
  dec = baselines_lib.ours(comps)
  s, _ = baselines_lib.score(dec, p.decode, p.f, p.image, p.masks, u, k=4, fields=dec.declared, seed=3)
  h = metrics_lib.headline(p.decode, p.f, comps, u, p.masks, k=4)
  assert s.rho_image_top == pytest.approx(h["rho_image_top"], rel=1e-6)
  assert s.additivity == pytest.approx(h["additivity_aggregate"], rel=1e-4, abs=1e-7)
  br = metrics_lib.boundary_breach(p.decode, comps, p.masks)
  assert s.breach_max == pytest.approx(br["breach_max"], rel=1e-5) and s.breach_max > 0
  assert s.breach_mean == pytest.approx(br["breach_mean"], rel=1e-5)
  c = metrics_lib.consistency(p.decode, comps, num_contexts=8, top=10, seed=3)
  assert s.inconsistency_mean == pytest.approx(c["inconsistency_mean"], rel=1e-5) and s.inconsistency_mean > 0
  assert s.near_zero_share == pytest.approx(metrics_lib.sparsity(comps)["near_zero_share"], abs=1e-12)
  assert s.completeness == pytest.approx(metrics_lib.completeness(comps, p.f)["feature_error"], rel=1e-5)


def test_baseline_field_rule_and_owners():
  pat = np.zeros((3, 4, 4, 1))
  masks = np.zeros((2, 4, 4), bool)
  masks[0, :2], masks[1, 2:] = True, True
  pat[0, 0, 0] = 1.0  # player 0 only
  pat[1, 0, 0], pat[1, 3, 3] = 1.0, 0.6  # both at threshold 0.5, player 0 at 0.7
  np.testing.assert_array_equal(baselines_lib.field_by_ablation(pat, masks), [1, 3, 0])
  np.testing.assert_array_equal(baselines_lib.field_by_ablation(pat, masks, 0.7), [1, 1, 0])
  owners = baselines_lib.feature_owners(masks, (2, 2))
  np.testing.assert_array_equal(owners, [[0, 0], [1, 1]])
  with pytest.raises(ValueError):
    baselines_lib.field_by_ablation(pat, masks, 0.0)


@pytest.mark.slow
def test_baseline_report_section(tmp_path):
  """report.baselines adds the table to metrics.json and report.html (planted: no spatial axes, so no cells row)."""
  from configs import planted as planted_config
  from regionjax import pipeline

  config = planted_config.get_config()
  config.workdir = str(tmp_path / "run")
  config.report.interactive = False
  config.report.baselines = True
  config.report.baselines_codes = 50
  metrics = pipeline.run(config, lambda mc: testing.PlantedGenerator())
  rows = {r["method"]: r for r in metrics["baselines"]}
  assert list(rows) == [
    "units (GAN Dissection)",
    "directions (GANSpace, top 23)",
    "OR components (ours)",
    "OR components, denoised (ours)",
  ]
  ours = rows["OR components (ours)"]
  assert ours["rho_image_top"] > 0.999 and ours["rho_declared_top"] > 0.999 and ours["breach_max"] < 1e-2
  assert ours["additivity"] < 0.05 and ours["k"] == 6
  assert rows["units (GAN Dissection)"]["additivity"] > 0.5  # 6 of 23 units
  html = open(tmp_path / "run" / "report.html").read()
  assert "Baselines: other explanations on the same axioms" in html and "Axiom 3 consistency" in html


def test_baseline_decompositions_of_a_spatial_feature():
  """An (H, W, C) feature gets units, directions and spatial cells; units and cells sum to f − f0."""
  rng = np.random.default_rng(1)
  f, f0 = rng.normal(size=(4, 4, 3)).astype(np.float32), rng.normal(size=(4, 4, 3)).astype(np.float32)
  masks = np.zeros((2, 8, 8), bool)
  masks[0, :4, :4], masks[1, 4:, 4:] = True, True
  ours_comps = np.zeros((4, 4, 4, 3), np.float32)
  ours_comps[0], ours_comps[3] = f0, f - f0
  decs = baselines_lib.decompositions(f, f0, ours_comps, masks, rng.normal(size=(10, 4, 4, 3)))
  names = [d.name for d in decs]
  assert names == ["units (GAN Dissection)", "directions (GANSpace, top 3)", "spatial cells", "OR components (ours)"]
  for d in (decs[0], decs[2]):
    np.testing.assert_allclose(d.components.sum(0), f - f0, atol=1e-6)
  cells = decs[2]
  np.testing.assert_array_equal(cells.declared, [1, 2, 0])
  assert np.all(cells.components[0][:2, :2] == (f - f0)[:2, :2]) and np.all(cells.components[0][2:] == 0)
  assert decs[1].components.shape == (3, 4, 4, 3)
