"""The batched minimal-feature solver, its known answer, and its errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import regionjax as rj
from regionjax import solver as solver_lib
from regionjax import testing

# λ = 200 and lr 0.02 × 400 cosine-decayed Adam steps make the planted problem
# converge; the L1 shrinkage leaves each kept element within ~1e-2 of f.
SETTINGS = dict(lam=200.0, learning_rate=0.02, steps=400, schedule="cosine", chunk_size=8)
TOL = 0.03  # absolute, per feature element (|Δ| per element is 0.6 … 1.2)


@pytest.fixture(scope="module")
def planted():
  return testing.planted_generator()


@pytest.fixture(scope="module")
def solved(planted):
  return rj.solve_minimal_features(
    planted.decode, planted.f, planted.f0, planted.image, planted.masks, tau=0.02, **SETTINGS
  )


def test_result_shapes(planted, solved):
  size = 1 << planted.n
  assert solved.alpha.shape == solved.u.shape == (size,) + planted.f.shape
  assert solved.error.shape == (size,) and solved.history.shape == (size, SETTINGS["steps"])
  assert np.all((np.asarray(solved.alpha) >= 0) & (np.asarray(solved.alpha) <= 1))


def test_empty_set_is_baseline_exactly(planted, solved):
  np.testing.assert_array_equal(np.asarray(solved.u[0]), planted.f0)
  assert float(solved.error[0]) == 0.0


def test_planted_minimal_features(planted, solved):
  np.testing.assert_allclose(np.asarray(solved.u), planted.expected_u(), atol=TOL)
  assert not solved.unmet.any(), np.asarray(solved.error)


def test_planted_components_recovered(planted, solved):
  """Every planted block is the component of exactly its field; all others ≈ 0."""
  comps = np.asarray(rj.or_components(solved.u))
  expected = planted.expected_components()
  np.testing.assert_allclose(comps, expected, atol=TOL)
  planted_fields = set(planted.fields)
  norms = rj.component_norms(comps)
  for s in range(1, 1 << planted.n):
    if s in planted_fields:
      assert norms[s] > 1.0, (s, norms[s])
    else:
      assert norms[s] < 0.05, (s, norms[s])
  # the strongest components are exactly the planted fields
  assert set(rj.top_k(comps, len(planted_fields)).tolist()) == planted_fields


def test_inert_dims_dropped(planted, solved):
  inert = slice(planted.block_slices[-1].stop, None)
  assert np.abs(np.asarray(solved.alpha)[:, inert]).max() < 1e-3


def test_loss_history_decreases(solved):
  h = np.asarray(solved.history)
  assert np.all(h[1:, -1] < h[1:, 0])


def test_chunking_and_resume_give_the_same_result(planted, solved):
  seen = {}
  kw = dict(SETTINGS, chunk_size=5)
  full = rj.solve_minimal_features(
    planted.decode,
    planted.f,
    planted.f0,
    planted.image,
    planted.masks,
    on_chunk=lambda i, k, c: seen.setdefault(i, c),
    **kw,
  )
  np.testing.assert_allclose(np.asarray(full.u), np.asarray(solved.u), atol=1e-5)
  assert sorted(seen) == list(range(len(rj.chunk_plan(planted.n, 5))))
  # resume from the first two chunks: identical answer, and only the rest recomputed
  again = []
  partial = {i: seen[i] for i in (0, 1)}
  resumed = rj.solve_minimal_features(
    planted.decode,
    planted.f,
    planted.f0,
    planted.image,
    planted.masks,
    done=partial,
    on_chunk=lambda i, k, c: again.append(i),
    **kw,
  )
  np.testing.assert_array_equal(np.asarray(resumed.u), np.asarray(full.u))
  assert again == list(range(2, len(seen)))


def test_tau_flags_unmet_subsets(planted):
  res = rj.solve_minimal_features(
    planted.decode,
    planted.f,
    planted.f0,
    planted.image,
    planted.masks,
    lam=0.01,
    learning_rate=0.05,
    steps=50,
    tau=0.01,
  )
  # λ tiny: the L1 term wins, α → 0, the patches are not regenerated and are flagged
  assert res.unmet[1:].all() and not res.unmet[0]


def test_chunk_plan():
  plan = rj.chunk_plan(3, 4)
  assert [p.tolist() for p in plan] == [[7], [1, 2, 3, 4], [5, 6]]


def _args(planted):
  return planted.decode, planted.f, planted.f0, planted.image, planted.masks


@pytest.mark.parametrize(
  "change,match",
  [
    (dict(f0=np.zeros(3, np.float32)), "f0"),
    (dict(masks=np.ones((2, 5, 5), bool)), "masks"),
    (dict(masks=np.zeros((0, 12, 12), bool)), "at least 1"),
    (dict(lam=0.0), "lam"),
    (dict(lam=-1.0), "lam"),
    (dict(steps=0), "steps"),
    (dict(learning_rate=0.0), "learning_rate"),
    (dict(chunk_size=0), "chunk_size"),
  ],
)
def test_bad_input(planted, change, match):
  kw = dict(zip(("decode", "f", "f0", "target", "masks"), _args(planted)))
  kw.update(lam=1.0, learning_rate=0.1, steps=3)
  kw.update(change)
  with pytest.raises(ValueError, match=match):
    rj.solve_minimal_features(**kw)


def test_empty_and_overlapping_masks(planted):
  decode, f, f0, x, masks = _args(planted)
  empty = masks.copy()
  empty[2] = False
  with pytest.raises(ValueError, match=r"masks \[2\] are empty"):
    rj.solve_minimal_features(decode, f, f0, x, empty, lam=1.0, learning_rate=0.1, steps=3)
  overlap = masks.copy()
  overlap[1] |= masks[0]
  with pytest.raises(ValueError, match="overlap"):
    rj.solve_minimal_features(decode, f, f0, x, overlap, lam=1.0, learning_rate=0.1, steps=3)


def test_too_many_players_for_memory():
  masks = np.zeros((28, 28, 1), bool)
  masks = np.stack([np.eye(28, dtype=bool)[i][:, None].repeat(1, 1) for i in range(28)])  # (28, 28, 1)
  f = np.zeros((4096,), np.float32)
  with pytest.raises(ValueError, match="n=28 needs about"):
    rj.solve_minimal_features(
      lambda v: jnp.zeros((28, 1, 3)), f, f, np.zeros((28, 1, 3)), masks, lam=1.0, learning_rate=0.1, steps=3
    )


def test_decode_shape_mismatch(planted):
  decode, f, f0, x, masks = _args(planted)
  with pytest.raises(ValueError, match="decode maps"):
    rj.solve_minimal_features(lambda v: decode(v)[:-1], f, f0, x, masks, lam=1.0, learning_rate=0.1, steps=3)


def test_nan_decoder_names_subsets(planted):
  decode, f, f0, x, masks = _args(planted)

  def bad(v):  # NaN whenever the feature is far from f (all but u(N) at start)
    img = decode(v)
    return jnp.where(jnp.sum(jnp.abs(v - f)) > 1.0, jnp.nan, 1.0) * img

  with pytest.raises(ValueError, match=r"NaN or Inf .*\{"):
    rj.solve_minimal_features(bad, f, f0, x, masks, lam=1.0, learning_rate=0.5, steps=5)


def test_float64(planted):
  with jax.enable_x64(True):
    res = rj.solve_minimal_features(
      planted.decode,
      planted.f,
      planted.f0,
      planted.image,
      planted.masks,
      lam=200.0,
      learning_rate=0.02,
      steps=20,
      dtype=jnp.float64,
    )
    assert res.alpha.dtype == jnp.float64


def test_objective_matches_formula(planted):
  """The objective is ‖α⊙Δf‖₁ + (λ/|S|)‖mask_S⊙(g(u)−x)‖², checked by hand."""
  alpha = np.random.default_rng(0).uniform(size=planted.f.shape).astype(np.float32)
  s = 0b0101
  problem = solver_lib.Problem(
    decode=planted.decode,
    f=jnp.asarray(planted.f),
    f0=jnp.asarray(planted.f0),
    target=jnp.asarray(planted.image),
    masks=jnp.asarray(planted.masks),
    lam=7.0,
    optimizer=None,
    steps=1,
  )
  loss, rmse = solver_lib.objective(problem, jnp.asarray(alpha), jnp.asarray(s))
  delta = planted.f - planted.f0
  u = planted.f0 + alpha * delta
  img = np.asarray(planted.decode(jnp.asarray(u)))
  m = planted.masks[0] | planted.masks[2]
  sq = (((img - planted.image) ** 2) * m[..., None]).sum()
  np.testing.assert_allclose(float(loss), np.abs(alpha * delta).sum() + 7.0 / 2 * sq, rtol=1e-5)
  np.testing.assert_allclose(float(rmse), np.sqrt(sq / (m.sum() * 3)), rtol=1e-5)


@pytest.mark.parametrize("steps_per_call", [3, 7, pytest.param(20, marks=pytest.mark.slow)])
def test_blocked_steps_match_one_scan(planted, steps_per_call):
  """Blocks of unrolled steps (the CPU default) compute what one lax.scan does."""
  kw = dict(lam=200.0, learning_rate=0.02, steps=20, schedule="cosine", chunk_size=8)
  args = (planted.decode, planted.f, planted.f0, planted.image, planted.masks)
  scan = rj.solve_minimal_features(*args, steps_per_call=0, **kw)
  blocked = rj.solve_minimal_features(*args, steps_per_call=steps_per_call, **kw)
  # different fusion, so float32 rounding differs: equal to 1e-5 (α ∈ [0, 1])
  np.testing.assert_allclose(np.asarray(blocked.alpha), np.asarray(scan.alpha), atol=1e-5)
  np.testing.assert_allclose(np.asarray(blocked.history), np.asarray(scan.history), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(blocked.error), np.asarray(scan.error), atol=1e-5)


@pytest.mark.parametrize("subsets_per_call", [1, 3])
def test_subsets_per_call_is_the_vmapped_solve(planted, subsets_per_call):
  """Groups of subsets called one after another (the padded last group too) give the vmap's results."""
  kw = dict(lam=200.0, learning_rate=0.02, steps=10, schedule="cosine", chunk_size=8, steps_per_call=5)
  args = (planted.decode, planted.f, planted.f0, planted.image, planted.masks)
  vmapped = rj.solve_minimal_features(*args, subsets_per_call=0, **kw)
  grouped = rj.solve_minimal_features(*args, subsets_per_call=subsets_per_call, **kw)
  assert np.isfinite(np.asarray(vmapped.alpha)).all() and float(np.ptp(np.asarray(vmapped.alpha))) > 0.1
  np.testing.assert_allclose(np.asarray(grouped.alpha), np.asarray(vmapped.alpha), atol=1e-5)
  np.testing.assert_allclose(np.asarray(grouped.history), np.asarray(vmapped.history), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(grouped.error), np.asarray(vmapped.error), atol=1e-5)


def test_subsets_per_call_bad_settings():
  for bad in (-1, 1.5, True):
    with pytest.raises(ValueError, match="subsets_per_call"):
      rj.SolverOptions(lam=1.0, learning_rate=0.1, steps=2, subsets_per_call=bad)
  with pytest.raises(ValueError, match="stop_tol"):
    rj.SolverOptions(lam=1.0, learning_rate=0.1, steps=2, subsets_per_call=1, stop_tol=1e-3)


def test_images_of_a_batch_share_one_compiled_solver():
  """pipeline.prepare_target binds each image's codes to its decoder as arrays (a Partial), so the
  second image of a batch reuses the first one's compiled chunk, with the closure's results."""
  from regionjax import pipeline, testing

  gen = testing.PlantedGenerator()
  codes = gen.sample_codes(jax.random.PRNGKey(0), 2)
  f0 = np.asarray(gen.encode(codes, "feature")).mean(0)
  masks = gen.planted.masks
  kw = dict(lam=200.0, learning_rate=0.02, steps=6, chunk_size=4, steps_per_call=3)
  first = pipeline.prepare_target(gen, codes, 0, "feature", f0)
  second = pipeline.prepare_target(gen, codes, 1, "feature", f0)
  assert isinstance(second.decode, jax.tree_util.Partial) and second.decode.func is first.decode.func
  rj.solve_minimal_features(first.decode, first.f, f0, first.image, masks, **kw)
  before = solver_lib._steps_jit._cache_size()
  res = rj.solve_minimal_features(second.decode, second.f, f0, second.image, masks, **kw)
  assert solver_lib._steps_jit._cache_size() == before  # no new compilation

  def closure(v):
    return gen.decode(jax.tree.map(lambda a: a[1:2], codes), "feature", v[None])[0]

  ref = rj.solve_minimal_features(closure, second.f, f0, second.image, masks, **kw)
  assert np.isfinite(np.asarray(ref.alpha)).all()
  np.testing.assert_allclose(np.asarray(res.alpha), np.asarray(ref.alpha), atol=1e-6)
