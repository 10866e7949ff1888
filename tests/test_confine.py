"""The confining options of the objective: the distance-weighted L1 and keeping the cells outside the players."""

import jax.numpy as jnp
import numpy as np
import pytest

import regionjax as rj
from regionjax import explanation as explanation_lib
from regionjax import solver as solver_lib
from regionjax import subsets as subsets_lib
from regionjax import testing

SETTINGS = dict(lam=200.0, learning_rate=0.02, steps=400, schedule="cosine", chunk_size=8, tau=0.02)
TOL = 0.03  # as tests/test_solver.py: per feature element, |Δ| per element is 0.6 … 1.2


@pytest.fixture(scope="module")
def planted():
  return testing.planted_generator()


def block_distances(p) -> np.ndarray:
  """``(n, D)``: 0 for the elements of a block whose planted field holds player ``i``, 1 for every other
  element (the other blocks and the inert tail): "far from patch i" in the planted feature."""
  d = np.ones((p.n,) + p.f.shape, np.float32)
  for field, sl in zip(p.fields, p.block_slices):
    for i in subsets_lib.to_indices(field):
      d[i, sl] = 0.0
  return d


def far_mass(p, alpha, distances) -> float:
  """``Σ_S Σ_{d_S > 0} |α_S ⊙ Δf|`` over the non-empty subsets: feature kept away from ``S``."""
  alpha, delta = np.asarray(alpha), p.f - p.f0
  total = 0.0
  for s in range(1, 1 << p.n):
    d_s = distances[subsets_lib.to_indices(s)].min(0)
    total += float(np.abs(alpha[s] * delta)[d_s > 0].sum())
  return total


def solve(p, **kw):
  return rj.solve_minimal_features(p.decode, p.f, p.f0, p.image, p.masks, **{**SETTINGS, **kw})


def test_weight_zero_is_the_papers_objective_exactly(planted):
  today = solve(planted)
  zero = solve(planted, l1_distance_weight=0.0, keep_outside=False, distances=block_distances(planted))
  np.testing.assert_array_equal(np.asarray(zero.alpha), np.asarray(today.alpha))
  np.testing.assert_array_equal(np.asarray(zero.error), np.asarray(today.error))


def test_weight_keeps_less_far_from_s_and_the_planted_answer(planted):
  d = block_distances(planted)
  # after few steps of gradient descent the L1 has not yet emptied what is not needed; the weight empties what
  # is far faster. (Adam would not show it here: it moves an element whose only gradient is the L1 by about η
  # per step whatever the weight; the weight acts under Adam where the L1 competes with the reconstruction.)
  short = dict(steps=30, schedule="constant", tau=1.0, optimizer="gd", learning_rate=0.005)
  plain, weighted = solve(planted, **short), solve(planted, l1_distance_weight=4.0, distances=d, **short)
  assert far_mass(planted, weighted.alpha, d) < 0.7 * far_mass(planted, plain.alpha, d)
  # converged: the planted components are recovered as without the weight (the needed blocks lie at d = 0)
  full = solve(planted, l1_distance_weight=4.0, distances=d)
  assert not full.unmet.any(), np.asarray(full.error)
  np.testing.assert_allclose(np.asarray(rj.or_components(full.u)), planted.expected_components(), atol=TOL)


def test_weighted_objective_matches_formula(planted):
  """‖(1 + β·min_{i∈S} d_i)⊙α⊙Δf‖₁ + (λ/|S|)‖mask'_S⊙(g(u)−x)‖², checked by hand, with and without outside."""
  rng = np.random.default_rng(0)
  alpha = rng.uniform(size=planted.f.shape).astype(np.float32)
  d = rng.uniform(size=(planted.n,) + planted.f.shape).astype(np.float32)
  s, beta = 0b0101, 3.0
  outside = ~planted.masks.any(0)
  delta = planted.f - planted.f0
  img = np.asarray(planted.decode(jnp.asarray(planted.f0 + alpha * delta)))
  m = planted.masks[0] | planted.masks[2]
  sq = (((img - planted.image) ** 2) * m[..., None]).sum()
  sq_out = (((img - planted.image) ** 2) * (m | outside)[..., None]).sum()
  l1 = (np.abs(alpha * delta) * (1 + beta * np.minimum(d[0], d[2]))).sum()
  for out, fit in ((None, sq), (jnp.asarray(outside), sq_out)):
    problem = solver_lib.Problem(
      decode=planted.decode,
      f=jnp.asarray(planted.f),
      f0=jnp.asarray(planted.f0),
      target=jnp.asarray(planted.image),
      masks=jnp.asarray(planted.masks),
      lam=7.0,
      optimizer=None,
      steps=1,
      l1_distance=jnp.asarray(beta * d),
      outside=out,
    )
    loss, rmse = solver_lib.objective(problem, jnp.asarray(alpha), jnp.asarray(s))
    np.testing.assert_allclose(float(loss), l1 + 7.0 / 2 * fit, rtol=1e-5)
    np.testing.assert_allclose(float(rmse), np.sqrt(sq / (m.sum() * 3)), rtol=1e-5)  # τ is judged on S only


def test_keep_outside_leaves_planted_components_unchanged(planted):
  """The planted fields lie inside the players; the decoder paints nothing of the feature outside them, so
  constraining the outside cells changes no recovered component."""
  assert (~planted.masks.any(0)).any()
  kept = solve(planted, keep_outside=True)
  today = solve(planted)
  np.testing.assert_allclose(np.asarray(kept.alpha), np.asarray(today.alpha), atol=1e-5)
  np.testing.assert_allclose(np.asarray(rj.or_components(kept.u)), planted.expected_components(), atol=TOL)


def test_distance_maps():
  masks = rj.patch_masks(24, 24, 3, 3)[[4]]  # the centre cell
  d = solver_lib.distance_maps(masks, (6, 6, 2))
  assert d.shape == (1, 6, 6, 2)
  np.testing.assert_array_equal(d[0, ..., 0], d[0, ..., 1])
  np.testing.assert_array_equal(d[0, 2:4, 2:4, 0], 0.0)  # under the patch
  assert d[0, 0, 0, 0] == pytest.approx(np.sqrt(8) / 6)  # two cells up, two left, over a side of 6
  assert d[0, 0, 2, 0] == pytest.approx(2 / 6) and d[0, 1, 2, 0] == pytest.approx(1 / 6)
  with pytest.raises(ValueError, match="spatial feature"):
    solver_lib.distance_maps(masks, (12,))


def test_options_validated_and_read_from_config():
  with pytest.raises(ValueError, match="l1_distance_weight"):
    solver_lib.SolverOptions(lam=1.0, learning_rate=0.1, steps=1, l1_distance_weight=-1.0)
  with pytest.raises(ValueError, match="keep_outside"):
    solver_lib.SolverOptions(lam=1.0, learning_rate=0.1, steps=1, keep_outside="yes")
  o = solver_lib.SolverOptions.from_config(
    {"lam": 1.0, "learning_rate": 0.1, "steps": 1, "l1_distance_weight": 2, "keep_outside": True}
  )
  assert o.l1_distance_weight == 2.0 and o.keep_outside is True
  assert explanation_lib.options_from_json(explanation_lib.options_to_json(o)) == o


def test_fingerprint_unchanged_by_default_options_changed_when_set(planted):
  args = dict(layer="l", f=planted.f, f0=planted.f0, image=planted.image, masks=planted.masks, model="m")
  base = solver_lib.SolverOptions(lam=1.0, learning_rate=0.1, steps=1)
  fp = explanation_lib.solve_fingerprint(options=base, **args)
  # the options added later are left out at their defaults, so fingerprints made before them still match
  o = explanation_lib.options_to_json(base)
  old = {k: o[k] for k in explanation_lib.RESULT_OPTIONS}
  assert fp == explanation_lib.digest(
    "solve", "m", "l", old, planted.f, planted.f0, planted.image, np.asarray(planted.masks, bool)
  )
  assert explanation_lib.solve_fingerprint(options=base.replace(l1_distance_weight=1.0), **args) != fp
  assert explanation_lib.solve_fingerprint(options=base.replace(keep_outside=True), **args) != fp


def test_spill_line_names_the_cause_and_the_override():
  from regionjax import report

  assert report.spill_line({"value": 0.85, "target": 0.8, "met": True, "players_denominator": 0.9}) is None
  assert report.spill_line({"value": 0.7, "target": 0.8, "met": False}) is None  # batch means: no players figure
  line = report.spill_line({"value": 0.76, "target": 0.8, "met": False, "players_denominator": 0.9})
  assert "spill outside the players" in line and "0.900 vs 0.760" in line and "l1_distance_weight" in line
  line = report.spill_line({"value": 0.52, "target": 0.8, "met": False, "players_denominator": 0.78})
  assert "not confined even within the players" in line
