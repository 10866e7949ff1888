"""Faithfulness metrics (docs/method.md §Metrics) on the planted generator, whose answer is known."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import regionjax as rj
from regionjax import metrics as metrics_lib
from regionjax import subsets, testing

EXACT = 1e-6  # float32 decodes of identical pre-activations


@pytest.fixture(scope="module")
def planted():
  return testing.planted_generator()


@pytest.fixture(scope="module")
def comps(planted):
  return planted.expected_components()


@pytest.fixture(scope="module")
def bad(planted, comps):
  """A wrong decomposition: the block of field {0,1} is moved into the component of {0}."""
  c = comps.copy()
  c[0b0001] += c[0b0011]
  c[0b0011] = 0.0
  return c


def _finite(tree):
  for leaf in jax.tree_util.tree_leaves(tree):
    arr = np.asarray(leaf)
    if arr.dtype.kind == "f":
      assert np.all(np.isfinite(arr)), tree


# --- completeness ------------------------------------------------------------------


def test_completeness_planted(planted, comps):
  out = metrics_lib.completeness(
    comps, planted.f, u=planted.expected_u(), decode=planted.decode, image=planted.image, masks=planted.masks
  )
  assert out["identity_error"] < EXACT
  assert out["image_rmse"] < EXACT and out["image_rmse_players"] < EXACT
  # u(N) drops exactly the inert tail, which the decoder ignores.
  delta = planted.f - planted.f0
  inert = delta[planted.block_slices[-1].stop :]
  np.testing.assert_allclose(out["feature_error"], np.linalg.norm(inert) / np.linalg.norm(delta), rtol=1e-5)
  # with the inert tail put into the component of N, the components sum to f exactly
  full = comps.copy()
  full[-1, planted.block_slices[-1].stop :] += inert
  assert metrics_lib.completeness(full, planted.f)["feature_error"] < EXACT


def test_completeness_detects_missing_component(planted, comps):
  c = comps.copy()
  c[planted.fields[2]] *= 0.5
  out = metrics_lib.completeness(c, planted.f, decode=planted.decode, image=planted.image, masks=planted.masks)
  assert out["image_rmse_players"] > 0.01 and out["feature_error"] > 0.1


# --- additivity --------------------------------------------------------------------


def test_additivity_all_components_exact(planted, comps):
  u = planted.expected_u()
  out = metrics_lib.additivity(comps, u, k=metrics_lib.ADDITIVITY_TOP_K)
  assert out["k"] == 15 and out["error_max"] < EXACT
  # only the 6 planted components are non-zero: top-6 is already exact
  assert metrics_lib.additivity(comps, u, k=6)["error_max"] < EXACT
  np.testing.assert_array_equal(out["order"], np.argsort(np.linalg.norm(u, axis=1), kind="stable"))


def test_additivity_top_k_smaller_than_planted(planted, comps):
  u = planted.expected_u()
  k = 3
  out = metrics_lib.additivity(comps, u, k=k)
  assert out["k"] == k and out["error_max"] > 0.1
  assert out["errors"][0] < EXACT  # h(∅) = f0 = u(∅) whatever is kept
  kept = rj.top_k(comps, k)
  s = 0b0110
  h = comps[0] + sum(comps[t] for t in kept if t & s)
  np.testing.assert_allclose(out["errors"][s], np.linalg.norm(h - u[s]) / math.sqrt(u.shape[1]), rtol=1e-5)


# --- boundedness ---------------------------------------------------------------------


def test_boundedness_planted_is_one(planted, comps):
  out = metrics_lib.boundedness(planted.decode, planted.f, comps, planted.masks)
  assert set(out["fields"].tolist()) == set(planted.fields)  # default: the non-zero components
  np.testing.assert_allclose(out["rho"], 1.0, atol=EXACT)
  np.testing.assert_allclose(out["rho_image"], 1.0, atol=EXACT)
  assert not out["empty"].any() and out["rho_min"] > 1 - EXACT


def test_boundedness_detects_leak(planted, bad):
  out = metrics_lib.boundedness(planted.decode, planted.f, bad, planted.masks, fields=[0b0001, 0b0010])
  assert out["rho"][0] < 0.95  # {0} now also paints patch 1
  assert out["rho"][1] > 1 - EXACT


# --- boundary breach -------------------------------------------------------------------


def test_boundary_breach_planted(planted, comps):
  out = metrics_lib.boundary_breach(planted.decode, comps, planted.masks)
  n = planted.n
  assert out["rmse_patch"].shape == (n, 11) and out["rmse_per_patch"].shape == (n, 11, n)
  assert out["breach_max"] < EXACT
  np.testing.assert_array_equal(out["counts"][:, -1], 2 ** (n - 1) - 1)  # non-empty subsets without i
  assert np.all(out["rmse_others"][:, 0] == 0)  # p = 0 is g(f0)
  assert np.all(out["rmse_others"][:, -1] > 0.1)  # the others are generated
  np.testing.assert_allclose(out["rmse_per_patch"][np.arange(n), :, np.arange(n)], out["rmse_patch"])


def test_boundary_breach_detects_leak(planted, bad):
  out = metrics_lib.boundary_breach(planted.decode, bad, planted.masks, players=[1, 2])
  assert out["rmse_patch"][0, -1] > 0.05  # {0} excludes patch 1 but paints it
  assert out["rmse_patch"][1].max() < EXACT


# --- consistency ---------------------------------------------------------------------


def test_consistency_planted(planted, comps):
  out = metrics_lib.consistency(planted.decode, comps, num_contexts=6, seed=3)
  assert set(out["fields"].tolist()) == set(planted.fields)
  assert out["inconsistency_max"] < EXACT
  assert np.all(out["num_contexts"] == 6)
  for s, ts in zip(out["fields"], out["contexts"]):
    assert np.all((ts & s) == 0) and np.all(ts > 0)  # T ⊆ N \ S, non-empty
  again = metrics_lib.consistency(planted.decode, comps, num_contexts=6, seed=3)
  np.testing.assert_array_equal(again["contexts"], out["contexts"])


def test_consistency_detects_interplay(planted, bad):
  # {0} now paints patch 1, where the context component {1} also paints: tanh couples them
  out = metrics_lib.consistency(planted.decode, bad, fields=[0b0001], num_contexts=8, seed=0)
  assert out["inconsistency"][0] > 1e-3


def test_consistency_full_set_has_no_context(planted, comps):
  out = metrics_lib.consistency(planted.decode, comps, fields=[0b1111])
  assert out["num_contexts"][0] == 0 and out["inconsistency"][0] == 0.0


# --- controllable and sequential reconstruction ----------------------------------------


def test_controllable_reconstruction_planted(planted, comps):
  targets = [0b0001, 0b0100, 0b1010]
  out = metrics_lib.controllable_reconstruction(planted.decode, comps, planted.image, planted.masks, targets)
  assert np.all(out["rmse_target"][:, -1] < EXACT)  # Algorithm 2 regenerates Ŝ
  assert out["counts"][0, -1] == 8 and out["counts"][2, -1] == 12  # |{S : S ∩ Ŝ ≠ ∅}|
  # p = 0 is g(f0), checked by hand on patch 2
  base = np.asarray(planted.decode(jnp.asarray(planted.f0)))
  m = planted.masks[2]
  np.testing.assert_allclose(out["rmse_target"][1, 0], np.sqrt(((base - planted.image)[m] ** 2).mean()), rtol=1e-5)
  assert out["initial_rmse_mean"] > 0.1


def test_sequential_reconstruction_planted(planted, comps):
  out = metrics_lib.sequential_reconstruction(planted.decode, comps, planted.image, planted.masks, order=[2, 0, 3, 1])
  n = planted.n
  assert out["rmse_per_patch"].shape == (n + 1, n)
  assert np.all(out["rmse_new"] < EXACT) and out["final_rmse"] < EXACT
  assert out["rmse_rest"][0] > 0.1 and out["rmse_rest"][-1] == 0.0
  np.testing.assert_array_equal(out["num_components"], [0, 8, 12, 14, 15])
  rnd = metrics_lib.sequential_reconstruction(planted.decode, comps, planted.image, planted.masks, seed=1)
  assert sorted(rnd["order"].tolist()) == list(range(n))
  with pytest.raises(ValueError, match="permutation"):
    metrics_lib.sequential_reconstruction(planted.decode, comps, planted.image, planted.masks, order=[0, 0, 1, 2])


# --- transferability -----------------------------------------------------------------


def test_transferability():
  a = np.zeros((8, 2), np.float32)
  b = np.zeros((8, 2), np.float32)
  a[1], a[2], a[3], a[5] = [4, 0], [3, 0], [2, 0], [1, 0]
  b[1], b[2], b[4], b[3] = [4, 0], [3, 0], [2, 0], [0.5, 0]
  out = metrics_lib.transferability(a, b, 3)
  assert out["ratio"] == pytest.approx(2 / 3)
  assert out["common"].tolist() == [1, 2] and out["transferable"].tolist() == [True, True, False]
  assert metrics_lib.transferability(a, a, 3)["ratio"] == 1.0
  assert metrics_lib.transferability(a, b, 100)["k"] == 7
  assert metrics_lib.transferability(np.zeros((8, 2)), np.zeros((8, 2)), 3)["ratio"] == 0.0
  with pytest.raises(ValueError, match="players"):
    metrics_lib.transferability(a, np.zeros((4, 2)), 3)


def test_transferability_planted_relabelled(planted, comps):
  assert metrics_lib.transferability(comps, comps, 6)["ratio"] == 1.0
  # the same blocks on other patches (players 0 and 2 swapped) share only the fields that avoid/contain both
  perm = [2, 1, 0, 3]
  other = np.zeros_like(comps)
  for s in range(16):
    t = sum(1 << perm[i] for i in subsets.to_indices(s))
    other[t] = comps[s]
  fields = set(planted.fields)
  moved = {sum(1 << perm[i] for i in subsets.to_indices(s)) for s in fields}
  assert metrics_lib.transferability(comps, other, 6)["ratio"] == pytest.approx(len(fields & moved) / 6)


# --- sparsity ------------------------------------------------------------------------


def test_sparsity_by_hand():
  c = np.zeros((4, 5), np.float32)
  c[0] = 100.0  # f0 is not a component
  c[1] = [10, 0.05, 0, 0, 0]
  c[3] = [-5, 0.2, 0.001, 0, 0]
  out = metrics_lib.sparsity(c, eps=1e-2, thresholds=(0.1, 1e-2))
  assert out["num_elements"] == 15 and out["max_abs"] == 10.0
  assert out["near_zero_share"] == pytest.approx(12 / 15)  # |x| < 0.1
  assert out["shares"][0] == pytest.approx(13 / 15) and out["shares"][1] == pytest.approx(12 / 15)
  np.testing.assert_allclose(out["curve"][:3], [10, 5, 0.2])
  assert np.all(np.diff(out["curve"]) <= 0)
  assert out["l1"] == pytest.approx(15.251, rel=1e-5)
  np.testing.assert_allclose(out["norms_sorted"], [np.hypot(10, 0.05), np.hypot(5, np.hypot(0.2, 0.001)), 0], rtol=1e-5)


def test_sparsity_planted(planted, comps):
  out = metrics_lib.sparsity(comps)
  nonzero = sum(s.stop - s.start for s in planted.block_slices)  # one copy of each block
  assert out["near_zero_share"] == pytest.approx(1 - nonzero / (15 * planted.f.size))


# --- salient set ----------------------------------------------------------------------


def test_salient_set_planted(planted, comps):
  out = metrics_lib.salient_set(planted.decode, comps, planted.masks, image=planted.image)
  assert out["num_components"] == 15
  assert set(out["salient_fields"].tolist()) == set(planted.fields)
  assert out["num_salient"] == 6 and out["fraction_salient"] == pytest.approx(6 / 15)
  assert out["num_top_fraction"] == 9  # round(0.6 · 15)
  assert out["rmse_to_baseline"][0] > 0.1 and out["rmse_to_baseline"][-1] == 0.0
  assert out["rmse_salient_only"] < EXACT and out["rmse_top_fraction_only"] < EXACT
  # a strict criterion keeps removing until exactly the baseline
  assert metrics_lib.salient_set(planted.decode, comps, planted.masks, rel_tol=0.0)["num_salient"] == 6


# --- degenerate inputs and summary ---------------------------------------------------------


def _all_metrics(p, comps, u):
  return {
    "completeness": metrics_lib.completeness(comps, p.f, u=u, decode=p.decode, image=p.image, masks=p.masks),
    "additivity": metrics_lib.additivity(comps, u, k=2),
    "boundedness": metrics_lib.boundedness(p.decode, p.f, comps, p.masks, fields=np.arange(1, comps.shape[0])),
    "breach": metrics_lib.boundary_breach(p.decode, comps, p.masks),
    "consistency": metrics_lib.consistency(p.decode, comps, fields=np.arange(1, comps.shape[0]), num_contexts=2),
    "controllable": metrics_lib.controllable_reconstruction(p.decode, comps, p.image, p.masks, [1]),
    "sequential": metrics_lib.sequential_reconstruction(p.decode, comps, p.image, p.masks),
    "transfer": metrics_lib.transferability(comps, comps, 3),
    "sparsity": metrics_lib.sparsity(comps),
    "salient": metrics_lib.salient_set(p.decode, comps, p.masks, image=p.image),
  }


def test_one_player_and_zero_components_give_no_nan():
  p = testing.planted_generator(fields=((0,),), n=1)
  comps = p.expected_components()
  out = _all_metrics(p, comps, p.expected_u())
  _finite(out)
  assert out["boundedness"]["rho"].tolist() == pytest.approx([1.0])
  assert out["breach"]["breach_max"] == 0.0 and out["consistency"]["inconsistency"].tolist() == [0.0]
  # all components zero (u(S) = f0 for every S)
  zero_u = np.repeat(p.f0[None], 2, axis=0)
  zero = np.asarray(rj.or_components(zero_u))
  out = _all_metrics(p, zero, zero_u)
  _finite(out)
  assert out["boundedness"]["empty"].all() and out["boundedness"]["rho"].tolist() == [1.0]
  assert out["salient"]["num_salient"] == 0
  json.dumps(metrics_lib.summary(out), allow_nan=False)


def test_zero_component_among_others(planted, comps):
  zero_field = 0b0101  # not planted: its component is exactly 0
  out = metrics_lib.boundedness(planted.decode, planted.f, comps, planted.masks, fields=[zero_field, planted.fields[0]])
  assert out["empty"].tolist() == [True, False] and out["rho_mean"] == pytest.approx(1.0)
  out = metrics_lib.consistency(planted.decode, comps, fields=[zero_field])
  assert out["inconsistency"].tolist() == [0.0]
  _finite(out)


def test_summary_is_json():
  out = metrics_lib.summary(
    {
      "a": np.arange(3),
      "b": jnp.float32(2.5),
      "c": (np.nan, np.inf, 1),
      "d": {"e": np.bool_(True)},
      "f": np.zeros((2, 2), np.float32),
      "g": None,
      "h": "x",
    }
  )
  assert out == {
    "a": [0, 1, 2],
    "b": 2.5,
    "c": [None, None, 1],
    "d": {"e": True},
    "f": [[0.0, 0.0], [0.0, 0.0]],
    "g": None,
    "h": "x",
  }
  json.dumps(out, allow_nan=False)
  with pytest.raises(TypeError):
    metrics_lib.summary(object())


def test_bad_inputs(planted, comps):
  with pytest.raises(ValueError, match="same shape"):
    metrics_lib.additivity(comps, planted.expected_u()[:8])
  with pytest.raises(ValueError, match="masks"):
    metrics_lib.boundary_breach(planted.decode, comps, planted.masks[:3])
  with pytest.raises(ValueError, match="fields"):
    metrics_lib.boundedness(planted.decode, planted.f, comps, planted.masks, fields=[0])
  with pytest.raises(ValueError, match="fractions"):
    metrics_lib.controllable_reconstruction(
      planted.decode, comps, planted.image, planted.masks, [1], fractions=[0.5, 1.5]
    )


def test_batched_decode_matches_vmap(planted, comps):
  a = metrics_lib.boundary_breach(planted.decode, comps, planted.masks, batch_size=5)
  b = metrics_lib.boundary_breach(planted.decode, comps, planted.masks)
  np.testing.assert_allclose(a["rmse_others"], b["rmse_others"], atol=1e-6)


def test_paper_reference_values():
  assert metrics_lib.PAPER_REFERENCE["transferability_nvae"]["value"] == 0.880
  assert metrics_lib.PAPER_REFERENCE["transferability_sid"]["value"] == 0.763
  assert metrics_lib.ADDITIVITY_TOP_K == 30 and metrics_lib.SALIENT_FRACTION == 0.6
  json.dumps(metrics_lib.summary(metrics_lib.PAPER_REFERENCE), allow_nan=False)


# --- the real solver --------------------------------------------------------------------


def test_metrics_on_solver_result(planted):
  """Sanity on a solved decomposition (settings of tests/test_solver.py; per-element tolerance 0.03)."""
  res = rj.solve_minimal_features(
    planted.decode,
    planted.f,
    planted.f0,
    planted.image,
    planted.masks,
    lam=200.0,
    learning_rate=0.02,
    steps=400,
    schedule="cosine",
    chunk_size=8,
  )
  comps = np.asarray(rj.or_components(res.u))
  u = np.asarray(res.u)
  c = metrics_lib.completeness(comps, planted.f, u=u, decode=planted.decode, image=planted.image, masks=planted.masks)
  assert c["identity_error"] < 1e-5 and c["image_rmse_players"] < 0.02
  assert metrics_lib.additivity(comps, u, k=30)["error_max"] < 1e-5
  assert metrics_lib.additivity(comps, u, k=6)["error_max"] < 0.03
  assert metrics_lib.additivity(comps, u, k=3)["error_max"] > 0.1
  top = rj.top_k(comps, 6)
  assert metrics_lib.boundedness(planted.decode, planted.f, comps, planted.masks, fields=top)["rho_min"] > 0.99
  assert metrics_lib.boundary_breach(planted.decode, comps, planted.masks)["breach_max"] < 0.03
  assert metrics_lib.consistency(planted.decode, comps, fields=top)["inconsistency_max"] < 0.05
  assert metrics_lib.transferability(comps, planted.expected_components(), 6)["ratio"] == 1.0
  ctrl = metrics_lib.controllable_reconstruction(planted.decode, comps, planted.image, planted.masks, [1, 2, 4, 8])
  assert ctrl["final_rmse_mean"] < 0.02 < ctrl["initial_rmse_mean"]
  assert metrics_lib.salient_set(planted.decode, comps, planted.masks)["num_salient"] >= 5


def test_aggregate_additivity_definition():
  """√(Σ_Ŝ ‖h_K(Ŝ) − u(Ŝ)‖² / Σ_Ŝ ‖u(Ŝ) − f0‖²), checked by hand on a 2-player example."""
  f0 = np.zeros(2)
  comps = np.array([f0, [1.0, 0.0], [0.0, 2.0], [0.5, 0.5]])  # ∅, {0}, {1}, {0,1}
  u = np.asarray(rj.or_matching(jnp.asarray(comps)))
  out = metrics_lib.additivity(comps, u, k=1)  # keeps only {1} (norm 2)
  h = np.array([f0, f0, [0, 2.0], [0, 2.0]])
  want = np.sqrt(((h - u) ** 2).sum() / ((u - f0) ** 2).sum())
  assert out["aggregate_relative_error"] == pytest.approx(want)
  assert metrics_lib.additivity(comps, u, k=3)["aggregate_relative_error"] == pytest.approx(0.0, abs=1e-7)


def test_transfer_chance_levels():
  # two lists of the 3 singletons of n = 3, K = 3: same sizes → every singleton is shared by chance
  a = np.array([1, 2, 4])
  assert metrics_lib.transfer_chance(a, a, 3, 3) == pytest.approx(1.0)
  # one field of size 2 each: C(3,2) = 3 sets, expected 1/3 in common
  assert metrics_lib.transfer_chance(np.array([3]), np.array([5]), 3, 1) == pytest.approx(1 / 3)
  comps = np.zeros((8, 2))
  comps[[1, 2, 4]] = [[3, 0], [2, 0], [1, 0]]
  t = metrics_lib.transferability(comps, comps, 3)
  assert t["ratio"] == 1.0 and t["chance_size_matched"] == pytest.approx(1.0)
  assert t["chance_uniform"] == pytest.approx(3 / 7)


def test_headline_on_planted(planted, comps, bad):
  """Planted generator: every component paints only its field, and the planted fields rebuild every u."""
  u = np.asarray(rj.or_matching(jnp.asarray(comps)))
  h = metrics_lib.headline(planted.decode, jnp.asarray(planted.f), comps, u, planted.masks, k=6)
  assert h["rho_image_top"] > 0.99
  assert h["additivity_aggregate"] < 1e-6
  sizes = [bin(s).count("1") for s in planted.fields]
  assert h["top_k_mean_field_size"] == pytest.approx(np.mean(sizes))
  # a corrupted decomposition: the block of {0,1} moved into {0} paints patch 1 from the field {0}
  hb = metrics_lib.headline(planted.decode, jnp.asarray(planted.f), bad, u, planted.masks, k=6)
  assert hb["rho_image_top"] < 0.95
  assert hb["additivity_aggregate"] > 0.05


def test_action_region_weights_v1_app_h():
  """Each component adds ‖Δf_S‖₁ / |S| to every patch of its field (v1 App. H)."""
  from regionjax import figures

  l1 = np.zeros(8)
  l1[0b001], l1[0b011], l1[0b111] = 2.0, 4.0, 9.0
  w = figures.action_region_weights([0b001, 0b011, 0b111], l1, 3)
  np.testing.assert_allclose(w, [2 + 2 + 3, 2 + 3, 3])
