"""Solver modes: max-composition from n + 1 solves, projected gradient descent, λ continuation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import regionjax as rj
from regionjax import components as components_lib
from regionjax import metrics as metrics_lib
from regionjax import solver as solver_lib
from regionjax import testing

SETTINGS = dict(lam=200.0, learning_rate=0.02, steps=400, schedule="cosine", chunk_size=8)


@pytest.fixture(scope="module")
def planted():
  return testing.planted_generator()


@pytest.fixture(scope="module")
def composed(planted):
  return rj.solve_minimal_features(
    planted.decode, planted.f, planted.f0, planted.image, planted.masks, tau=0.02, composition="max", **SETTINGS
  )


def test_compose_max_is_the_elementwise_max():
  a = np.random.default_rng(0).uniform(size=(4, 6)).astype(np.float32)
  out = np.asarray(solver_lib.compose_max(a))
  assert out.shape == (16, 6)
  np.testing.assert_array_equal(out[0], 0)
  for s in range(1, 16):
    members = [i for i in range(4) if s >> i & 1]
    np.testing.assert_array_equal(out[s], a[members].max(0))


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_closed_form_components_equal_the_transform(n):
  rng = np.random.default_rng(n)
  a = rng.uniform(size=(n, 3, 7)).astype(np.float32)
  a[:, 0, 0] = 0.5  # ties across all players
  a[0, 1, 1] = 0.0  # a zero
  f0 = rng.normal(size=(3, 7)).astype(np.float32)
  delta = rng.normal(size=(3, 7)).astype(np.float32)
  u = f0 + np.asarray(solver_lib.compose_max(a)) * delta
  u[0] = f0
  by_transform = np.asarray(rj.or_components(jnp.asarray(u)))
  closed = np.asarray(components_lib.max_components(f0, delta, a))
  np.testing.assert_allclose(closed, by_transform, atol=1e-5)
  # at most n non-zero components per element, on nested fields
  nonzero = (np.abs(closed[1:]) > 1e-7).reshape((1 << n) - 1, -1).sum(0)
  assert nonzero.max() <= n
  assert np.abs(closed[1:]).sum() > 0


def test_max_composition_solves_n_plus_one_problems(planted, composed):
  n = planted.n
  solved = np.asarray(composed.solved)
  assert solved.sum() == n  # the singletons; α_N was only their warm start
  assert all(solved[1 << i] for i in range(n)) and not solved[(1 << n) - 1]
  assert np.isnan(composed.lam[~solved]).all() and np.all(composed.lam[solved] == SETTINGS["lam"])
  assert [p.tolist() for p in rj.chunk_plan(n, 8, "max")] == [[(1 << n) - 1], [1 << i for i in range(n)]]


def test_max_composition_recovers_the_planted_components(planted, composed):
  """Block b is kept in α_{i} iff i ∈ F_b, so max over S keeps it iff F_b meets S: the planted answer."""
  np.testing.assert_allclose(np.asarray(composed.u), planted.expected_u(), atol=0.03)
  comps = np.asarray(rj.or_components(composed.u))
  np.testing.assert_allclose(comps, planted.expected_components(), atol=0.03)
  assert set(rj.top_k(comps, len(planted.fields)).tolist()) == set(planted.fields)
  assert not composed.unmet.any(), np.asarray(composed.error)


def test_composed_errors_are_measured_by_decoding(planted, composed):
  """The error of a composed subset is the RMSE of its decoded image on S, not copied from a solve."""
  s = 0b1011
  problem = solver_lib.Problem(
    decode=planted.decode,
    f=jnp.asarray(planted.f),
    f0=jnp.asarray(planted.f0),
    target=jnp.asarray(planted.image),
    masks=jnp.asarray(planted.masks),
    lam=1.0,
    optimizer=None,
    steps=1,
  )
  _, rmse = solver_lib.objective(problem, composed.alpha[s], jnp.asarray(s))
  np.testing.assert_allclose(float(composed.error[s]), float(rmse), rtol=1e-5)


def test_gd_is_plain_projected_gradient_descent(planted):
  """One 'gd' step is α ← clip(α − η∇L, 0, 1)."""
  problem = solver_lib.Problem(
    decode=planted.decode,
    f=jnp.asarray(planted.f),
    f0=jnp.asarray(planted.f0),
    target=jnp.asarray(planted.image),
    masks=jnp.asarray(planted.masks),
    lam=50.0,
    optimizer=solver_lib.make_optimizer(0.3, 1, optimizer="gd"),
    steps=1,
  )
  alpha = jnp.full(planted.f.shape, 0.5)
  s = jnp.asarray(0b0011)
  grad = jax.grad(lambda a: solver_lib.objective(problem, a, s)[0])(alpha)
  (after, _), _ = solver_lib._step_fn(problem)((alpha, problem.optimizer.init(alpha)), s)
  np.testing.assert_allclose(np.asarray(after), np.clip(np.asarray(alpha - 0.3 * grad), 0, 1), atol=1e-6)


@pytest.mark.slow  # over 10 s on the 2-core CPU; CI runs it with -m slow
def test_lambda_continuation_meets_tau(planted):
  """λ too small misses τ; with a cap, the unmet subsets are solved again with λ × growth until they meet it."""
  kw = dict(lam=0.5, learning_rate=0.05, steps=60, tau=0.1, chunk_size=8)
  args = (planted.decode, planted.f, planted.f0, planted.image, planted.masks)
  plain = rj.solve_minimal_features(*args, **kw)
  assert plain.unmet[1:].any()
  cont = rj.solve_minimal_features(*args, lam_max=2000.0, lam_growth=4.0, **kw)
  assert not cont.unmet.any(), np.asarray(cont.error)
  raised = cont.lam > kw["lam"]
  assert raised.any() and np.nanmax(cont.lam) <= 2000.0
  # subsets that met τ at the first λ were not touched
  met_first = ~plain.unmet & np.asarray(plain.solved)
  np.testing.assert_array_equal(np.asarray(cont.alpha)[met_first], np.asarray(plain.alpha)[met_first])
  # continuation in max mode re-solves singletons and recomposes
  contm = rj.solve_minimal_features(*args, lam_max=2000.0, composition="max", **kw)
  assert not contm.unmet.any()


def test_bad_solver_options(planted):
  args = (planted.decode, planted.f, planted.f0, planted.image, planted.masks)
  with pytest.raises(ValueError, match="optimizer"):
    rj.solve_minimal_features(*args, lam=1.0, learning_rate=0.1, steps=2, optimizer="sgdd")
  with pytest.raises(ValueError, match="composition"):
    rj.solve_minimal_features(*args, lam=1.0, learning_rate=0.1, steps=2, composition="min")
  with pytest.raises(ValueError, match="learning_rate"):
    rj.solve_minimal_features(*args, lam=1.0, learning_rate=float("inf"), steps=2)
  with pytest.raises(ValueError, match="lam"):
    rj.solve_minimal_features(*args, lam=float("inf"), learning_rate=0.1, steps=2)


def test_alpha_movement():
  alpha = np.ones((8, 5))
  alpha[7, 2] = 0.25  # α_N moved by 0.75 in one element
  alpha[1] = 0.0  # size-1 subsets
  alpha[2] = 0.5
  alpha[4] = 1.0
  m = metrics_lib.alpha_movement(alpha)
  assert m["max_one_minus_alpha_full"] == pytest.approx(0.75)
  assert m["mean_by_size"][0] == pytest.approx(0.5)
  assert m["mean_by_size"][2] == pytest.approx(0.85)


@pytest.mark.slow
def test_paper_biggan_settings_move_alpha_with_gd_not_adam():
  """λ = 500, η = 1e-4, 1000 steps (v2 Table 2, BigGAN) on a trained BigGAN-deep (the embedded one):
  gradient descent moves α_N far from 1; Adam moves each element by at most about η per step."""
  from regionjax.ports import embedded
  from regionjax import patches, pipeline

  gen = embedded.load()
  codes = gen.sample_codes(jax.random.PRNGKey(0), 1, classes=[0])
  f0 = pipeline.compute_baseline(gen, "layer2", 100, 50, jax.random.PRNGKey(1), 5)
  t = pipeline.prepare_target(gen, codes, 0, "layer2", f0)
  masks = patches.patch_masks(32, 32, 3, 3)[:1]
  moved = {}
  for opt in ("gd", "adam"):
    setup = solver_lib.prepare(
      t.decode, t.f, f0, t.image, masks, lam=500.0, learning_rate=1e-4, steps=1000, optimizer=opt
    )
    alpha = solver_lib.solve_chunk(setup, 0, jnp.ones(t.f.shape)).alpha[0]
    moved[opt] = metrics_lib.alpha_movement(np.stack([np.zeros_like(alpha), alpha]))["max_one_minus_alpha_full"]
  assert moved["gd"] > 0.5, moved
  assert moved["adam"] < 0.15, moved


def test_refine_starts_from_the_composition_and_keeps_the_planted_answer(planted, composed):
  refined = rj.solve_minimal_features(
    planted.decode,
    planted.f,
    planted.f0,
    planted.image,
    planted.masks,
    tau=0.02,
    composition="max",
    refine_steps=10,
    **SETTINGS,
  )
  assert np.asarray(refined.solved)[1:].all()
  assert not refined.unmet.any()
  np.testing.assert_allclose(np.asarray(refined.u), planted.expected_u(), atol=0.03)
  # singletons are not refined: identical to the composition's
  for i in range(planted.n):
    np.testing.assert_array_equal(np.asarray(refined.alpha[1 << i]), np.asarray(composed.alpha[1 << i]))
