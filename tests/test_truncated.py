"""Components up to order k from C(n, ≤k) minimal features (regionjax.truncated)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import regionjax as rj
from regionjax import solver as solver_lib
from regionjax import subsets as subsets_lib
from regionjax import testing
from regionjax import truncated as truncated_lib

SETTINGS = dict(lam=200.0, learning_rate=0.02, steps=400, schedule="cosine", chunk_size=16)
TOL = 0.03  # as tests/test_solver.py: per element, after the L1 shrinkage


def _dense_rows(dense, n, k):
  return np.asarray(dense)[truncated_lib.family(n, k).sets]


def test_family_sizes_and_order():
  assert truncated_lib.num_sets(36, 2) == 667 and truncated_lib.family(36, 2).size == 667
  assert truncated_lib.num_sets(16, 3) == 697
  fam = truncated_lib.family(4, 2)
  assert fam.sets.tolist() == [0, 1, 2, 4, 8, 3, 5, 9, 6, 10, 12]
  assert fam.orders.tolist() == [0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]
  assert truncated_lib.family(3, 7).k == 3 and truncated_lib.family(3, 7).size == 8  # k > n: every subset
  big = truncated_lib.family(62, 1)
  assert big.sets[-1] == 1 << 61 and big.sets.dtype == np.int64
  with pytest.raises(ValueError, match="62"):
    truncated_lib.family(63, 1)
  with pytest.raises(ValueError, match="max_order"):
    truncated_lib.family(5, 0)


@pytest.mark.parametrize("n,k", [(1, 1), (3, 2), (6, 1), (6, 3), (8, 2), (10, 2), (10, 4), (5, 5)])
def test_equals_dense_transform(n, k):
  """Same u: the truncated components are the dense components of order ≤ k."""
  rng = np.random.default_rng(n * 10 + k)
  u = rng.normal(size=(1 << n, 3, 2)).astype(np.float32)
  dense = np.asarray(rj.or_interactions(u))
  got = np.asarray(truncated_lib.or_components(truncated_lib.from_dense(u, k), u[0], n, k))
  want = _dense_rows(dense, n, k)
  scale = np.abs(want).max()
  assert np.isfinite(got).all()
  np.testing.assert_allclose(got, want, atol=1e-5 * scale, rtol=0)
  np.testing.assert_array_equal(got[0], u[0])  # ∅ holds f0 = u(∅), the project's convention


def test_exact_when_no_higher_order():
  """u built from components of order ≤ k: zero residual, exact OR matching on every N \\ T."""
  n, k = 7, 2
  rng = np.random.default_rng(1)
  comps = np.zeros((1 << n, 4), np.float32)
  fam = truncated_lib.family(n, k)
  comps[fam.sets] = rng.normal(size=(fam.size, 4))
  u = np.asarray(rj.or_matching(comps))
  rows = truncated_lib.from_dense(u, k)
  got = truncated_lib.or_components(rows, u[0], n, k)
  np.testing.assert_allclose(np.asarray(got), comps[fam.sets], atol=1e-5)
  r = truncated_lib.residual_measures(rows, got, n, k, u[0])
  assert r["relative"] < 1e-5 and r["or_matching"]["max"] < 1e-5
  # a planted order-3 component shows up as residual, of exactly its size
  comps[0b111] = 1.0
  u = np.asarray(rj.or_matching(comps))
  rows = truncated_lib.from_dense(u, k)
  r = truncated_lib.residual_measures(rows, truncated_lib.or_components(rows, u[0], n, k), n, k, u[0])
  assert r["norm"] == pytest.approx(2.0, rel=1e-5)  # ‖(1,1,1,1)‖
  assert r["or_matching"]["max"] > 0.05


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 6), k=st.integers(1, 6), seed=st.integers(0, 2**16), a=st.floats(-3, 3), b=st.floats(-3, 3))
def test_restricted_transform_properties(n, k, seed, a, b):
  rng = np.random.default_rng(seed)
  fam = truncated_lib.family(n, k)
  v, w = rng.normal(size=(2, fam.size, 3)).astype(np.float32)
  m = lambda x: np.asarray(truncated_lib.restricted_mobius(jnp.asarray(x), n, fam.k))  # noqa: E731
  # linear
  np.testing.assert_allclose(m(a * v + b * w), a * m(v) + b * m(w), atol=1e-3)
  # inverse of the restricted zeta
  np.testing.assert_allclose(np.asarray(truncated_lib.restricted_zeta(m(v), n, fam.k)), v, atol=1e-4)
  # agrees with the dense Möbius on any dense array, at the family's rows
  dense = rng.normal(size=(1 << n, 3)).astype(np.float32)
  np.testing.assert_allclose(m(dense[fam.sets]), np.asarray(rj.mobius(dense))[fam.sets], atol=1e-4)


def test_compose_missing_matches_compose_max():
  n, k = 6, 2
  a = np.random.default_rng(2).uniform(size=(n, 5)).astype(np.float32)
  dense = np.asarray(solver_lib.compose_max(a))
  np.testing.assert_array_equal(
    np.asarray(truncated_lib.compose_missing(a, n, k)), dense[subsets_lib.full_set(n) ^ truncated_lib.family(n, k).sets]
  )


def test_sparse_components():
  n = 4
  rng = np.random.default_rng(3)
  fam = truncated_lib.family(n, 2)
  sc = truncated_lib.SparseComponents(fields=fam.sets, values=rng.normal(size=(fam.size, 2)), n=n)
  dense = sc.to_dense()
  assert dense.shape == (16, 2) and not dense[7].any()
  np.testing.assert_array_equal(sc.get(0b1010), dense[0b1010])
  assert sc.norms()[0] == 0
  top = sc.rank()[0]
  assert sc.fields[top] == rj.rank(dense)[0]
  with pytest.raises(KeyError):
    sc.get(0b111)


@pytest.fixture(scope="module")
def planted6():
  return testing.planted_generator(fields=((0,), (1,), (0, 1), (2, 3), (1, 3), (3,), (4, 5)), n=6, grid=3)


@pytest.mark.slow  # over 10 s on the 2-core CPU; CI runs it with -m slow
def test_solved_equal_full_solver(planted6):
  """Independent: the same minimal features as the full solve, so the same components of order ≤ 2."""
  p = planted6
  quick = dict(SETTINGS, steps=60)  # equality, not convergence
  full = rj.solve_minimal_features(p.decode, p.f, p.f0, p.image, p.masks, **quick)
  res = truncated_lib.solve_truncated(p.decode, p.f, p.f0, p.image, p.masks, max_order=2, **quick)
  assert res.problems.size == truncated_lib.num_sets(6, 2) == 22
  np.testing.assert_allclose(res.u, _dense_rows(np.asarray(full.u)[::-1], 6, 2), atol=2e-5)
  dense = np.asarray(rj.or_components(full.u))
  np.testing.assert_allclose(res.components.values, _dense_rows(dense, 6, 2), atol=1e-4)
  np.testing.assert_allclose(res.error, _dense_rows(np.asarray(full.error)[::-1], 6, 2), atol=1e-5)


PAIR_FIELDS = ((0,), (1,), (0, 1), (2, 3), (4, 7), (5,), (9, 11), (6, 10), (8,))


@pytest.fixture(scope="module")
def planted12():
  return testing.planted_generator(fields=PAIR_FIELDS, n=12, grid=4, size=16)


def _check_recovered(p, res):
  fam = res.family
  expected = np.zeros((fam.size,) + p.f.shape, np.float32)
  expected[0] = p.f0
  for field, sl in zip(p.fields, p.block_slices):
    expected[fam.index(field), sl] += (p.f - p.f0)[sl]
  np.testing.assert_allclose(res.components.values, expected, atol=TOL)
  planted = set(p.fields)
  norms = res.components.norms()
  for m, s in enumerate(fam.sets):
    if s:
      assert (norms[m] > 1.0) if s in planted else (norms[m] < 0.05), (subsets_lib.format_subset(s), norms[m])
  assert res.residual["relative"] < 5e-3, res.residual
  assert res.residual["or_matching"]["max"] < 5e-3


def test_planted_order_two_recovered_n12(planted12):
  p = planted12
  # large sets N \ T weigh the image term by λ/|S|: a larger λ keeps their L1 shrinkage within TOL
  res = truncated_lib.solve_truncated(
    p.decode, p.f, p.f0, p.image, p.masks, max_order=2, tau=0.05, **dict(SETTINGS, lam=1000.0)
  )
  assert res.problems.size == 1 + 12 + 66
  assert not res.unmet.any()
  _check_recovered(p, res)


@pytest.mark.slow  # over 10 s on the 2-core CPU; CI runs it with -m slow
def test_planted_max_composition_n36():
  """All 36 cells of a 6×6 grid from 37 problems; fields of order ≤ 2 recovered, ~zero residual."""
  fields = ((0,), (1, 2), (7, 14), (20, 35), (12,), (30, 31), (5, 6))
  p = testing.planted_generator(fields=fields, n=36, grid=6, size=24)
  res = truncated_lib.solve_truncated(
    p.decode, p.f, p.f0, p.image, p.masks, max_order=2, tau=0.05, composition="max", **SETTINGS
  )
  assert res.problems.size == 37 and res.family.size == 667
  assert not res.unmet.any()
  _check_recovered(p, res)
  assert res.residual["heldout_singletons"]["max"] < 0.05


def test_continuation_and_bad_input(planted6):
  p = planted6
  with pytest.raises(ValueError, match="max_order"):
    truncated_lib.solve_truncated(p.decode, p.f, p.f0, p.image, p.masks, max_order=0, **SETTINGS)
  with pytest.raises(ValueError, match="composition"):
    truncated_lib.solve_truncated(p.decode, p.f, p.f0, p.image, p.masks, max_order=1, composition="sum", **SETTINGS)
  few = dict(SETTINGS, steps=5)
  res = truncated_lib.solve_truncated(
    p.decode, p.f, p.f0, p.image, p.masks, max_order=1, tau=1e-4, lam_max=800.0, **few
  )
  assert np.nanmax(res.lam) == pytest.approx(800.0) and math.isfinite(res.residual["relative"])


# ------------------------------------------------------------------ pipeline
def _main(*args, timeout=300):
  import os
  import subprocess
  import sys

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, XLA_FLAGS="")
  return subprocess.run(
    [sys.executable, os.path.join(root, "main.py"), f"--config={os.path.join(root, 'configs', 'planted.py')}", *args],
    cwd=root,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )


@pytest.mark.slow  # over 10 s on the 2-core CPU; CI runs it with -m slow
def test_pipeline_max_order(tmp_path):
  import json
  import os

  workdir = str(tmp_path / "run")
  proc = _main(f"--config.workdir={workdir}", "--config.solver.max_order=2")
  assert proc.returncode == 0, proc.stderr[-3000:]
  metrics = json.load(open(os.path.join(workdir, "metrics.json")))
  r = metrics["residual"]
  assert 0 <= r["relative"] < 0.02 and r["or_matching"]["count"] == 11
  assert metrics["solver"]["problems_solved"] == 11 and metrics["solver"]["met_tau"] == 11
  top = {c["field"] for c in metrics["top_components"][:6]}
  assert top == {"{0}", "{1}", "{0,1}", "{2,3}", "{1,3}", "{3}"}  # the planted fields (all of order ≤ 2)
  shares = np.array(metrics["explained"]["share_by_order"], dtype=float)
  assert shares.shape == (2, 9) and np.nanmin(shares[1, :4]) > 0.9  # the players' cells redrawn by order ≤ 2
  data = np.load(os.path.join(workdir, "components.npz"))
  assert data["fields"].dtype == np.int64 and data["components"].shape == (11, 23)
  html = open(os.path.join(workdir, "report.html")).read()
  assert "What the truncation leaves out" in html and "are skipped in this mode" in html
  assert html.count("data:image/png;base64,") == 4
  again = _main(f"--config.workdir={workdir}", "--config.solver.max_order=2")
  assert again.returncode == 0 and "Finished earlier" in again.stdout and "residual" in again.stdout


@pytest.mark.parametrize(
  "changes,match",
  [
    ({"solver.max_order": -1}, "solver.max_order must be an integer in 0 … 62"),
    ({"solver.max_order": 2, "solver.refine_steps": 3}, "refine_steps"),
    ({"patches.rows": 8, "patches.cols": 8, "patches.n": 40}, "more than 30 players"),
    (
      {"patches.rows": 8, "patches.cols": 8, "patches.n": 63, "solver.max_order": 1},
      "patches.n must be an integer in 1 … 62",
    ),
  ],
)
def test_config_checks(changes, match):
  from configs import planted as planted_config
  from regionjax import pipeline

  config = planted_config.get_config()
  for key, value in changes.items():
    group, name = key.split(".")
    config[group][name] = value
  with pytest.raises(ValueError, match=match):
    pipeline.validate_config(config)
  config = planted_config.get_config()
  config.patches.update(rows=8, cols=8, n=40, method="center")
  config.solver.max_order = 2
  pipeline.validate_config(config)  # n = 40 is fine with max_order > 0


def test_pipeline_bad_input_is_one_error_line(tmp_path):
  proc = _main(f"--config.workdir={tmp_path / 'bad'}", "--config.solver.max_order=-1", timeout=120)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "error: solver.max_order must be an integer in 0 … 62" in proc.stderr and "Traceback" not in proc.stderr


def test_membership_encoding_matches_bitmasks():
  """Subsets of more than 30 players reach the jitted solver as membership rows; the same pixels and |S|."""
  masks = jnp.asarray(testing.planted_generator(n=9, grid=3).masks)
  ids = np.array([0, 1, 5, 0b101100111, 511], np.int64)
  rows = np.asarray((ids[:, None] >> np.arange(9)) & 1, bool)
  for s, r in zip(ids, rows):
    m1, k1 = solver_lib.subset_pixel_mask(masks, jnp.int32(s))
    m2, k2 = solver_lib.subset_pixel_mask(masks, jnp.asarray(r))
    np.testing.assert_array_equal(np.asarray(m1), np.asarray(m2))
    assert int(k1) == int(k2) == bin(int(s)).count("1")
  enc = solver_lib.encode_subsets(40, np.array([1 << 39 | 3], np.int64))
  assert enc.shape == (1, 40) and np.asarray(enc).sum() == 3 and bool(enc[0, 39])


@pytest.mark.slow  # ~30 s: compiles the chunk for one and for eight devices
def test_sharded_n36_equals_one_device():
  import jax
  from jax.sharding import Mesh

  if jax.device_count() < 2:
    pytest.skip("needs several devices (XLA_FLAGS=--xla_force_host_platform_device_count=8)")
  fields = ((0,), (1, 2), (20, 35))
  p = testing.planted_generator(fields=fields, n=36, grid=6, size=24)
  kw = dict(SETTINGS, steps=20, chunk_size=8, max_order=1)
  one = truncated_lib.solve_truncated(p.decode, p.f, p.f0, p.image, p.masks, **kw)
  mesh = Mesh(np.array(jax.devices()), ("d",))
  many = truncated_lib.solve_truncated(p.decode, p.f, p.f0, p.image, p.masks, mesh=mesh, **kw)
  assert one.problems.size == 37
  np.testing.assert_allclose(many.components.values, one.components.values, atol=1e-5)
  np.testing.assert_allclose(many.error, one.error, atol=1e-5)


def test_max_composition_closed_form():
  """Composed u(N∖T): truncated components = the closed form's (components.max_components) of order ≤ k,
  and the residual is the (k+1)-th largest singleton α per element times Δf (docs/method.md)."""
  from regionjax import components as components_lib

  n, k = 7, 2
  rng = np.random.default_rng(4)
  a = rng.uniform(size=(n, 6)).astype(np.float32)
  f0 = rng.normal(size=6).astype(np.float32)
  delta = rng.normal(size=6).astype(np.float32)
  u = f0 + truncated_lib.compose_missing(a, n, k) * delta
  got = np.asarray(truncated_lib.or_components(u, f0, n, k))
  closed = np.asarray(components_lib.max_components(f0, delta, a))[truncated_lib.family(n, k).sets]
  np.testing.assert_allclose(got, closed, atol=1e-5)
  r = truncated_lib.residual_measures(u, got, n, k, f0)
  third = np.sort(a, axis=0)[-(k + 1)]
  want = np.linalg.norm(third * delta) / np.linalg.norm(a.max(0) * delta)
  assert r["relative"] == pytest.approx(want, rel=1e-4)
