"""Exact identities of the subset transforms (docs/method.md §OR interactions), n = 0 … 12."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import regionjax as rj
from regionjax import subsets


def brute_mobius(v):
  n = subsets.num_players_of(len(v))
  out = np.zeros_like(v)
  for s in range(1 << n):
    for t in subsets.subsets_of(s):
      out[s] += (-1) ** (subsets.size(s) - subsets.size(t)) * v[t]
  return out


def brute_or(u):
  """v1 eq. (10), term by term: I_or(S) = −Σ_{T⊆S} (−1)^{|S|−|T|} u(N\\T)."""
  n = subsets.num_players_of(len(u))
  full = subsets.full_set(n)
  out = np.zeros_like(u)
  out[0] = u[0]
  for s in range(1, 1 << n):
    for t in subsets.subsets_of(s):
      out[s] -= (-1) ** (subsets.size(s) - subsets.size(t)) * u[full ^ t]
  return out


def brute_or_matching(i_or):
  n = subsets.num_players_of(len(i_or))
  out = np.zeros_like(i_or)
  for s in range(1 << n):
    out[s] = i_or[0] + sum(i_or[t] for t in range(1, 1 << n) if t & s)
  return out


@pytest.mark.parametrize("n", range(0, 13))
def test_zeta_inverts_mobius(n):
  v = np.random.default_rng(n).normal(size=(1 << n, 3)).astype(np.float64)
  with jax.enable_x64(True):
    np.testing.assert_allclose(rj.zeta(rj.mobius(jnp.asarray(v))), v, atol=1e-9)
    np.testing.assert_allclose(rj.mobius(rj.zeta(jnp.asarray(v))), v, atol=1e-9)


@pytest.mark.parametrize("n", range(1, 13))
def test_or_matching_recovers_u_and_efficiency(n):
  u = np.random.default_rng(100 + n).normal(size=(1 << n, 2, 2))
  with jax.enable_x64(True):
    i_or = rj.or_interactions(jnp.asarray(u))
    np.testing.assert_allclose(rj.or_matching(i_or), u, atol=1e-8)
    # Σ_{S≠∅} I_or(S) = u(N) − u(∅)
    np.testing.assert_allclose(i_or[1:].sum(0), u[-1] - u[0], atol=1e-8)
    assert i_or.dtype == jnp.float64


@pytest.mark.parametrize("n", range(0, 7))
def test_fast_transforms_match_brute_force(n):
  u = np.random.default_rng(7 + n).normal(size=(1 << n,))
  with jax.enable_x64(True):
    np.testing.assert_allclose(rj.mobius(jnp.asarray(u)), brute_mobius(u), atol=1e-10)
    np.testing.assert_allclose(rj.and_interactions(jnp.asarray(u)), brute_mobius(u), atol=1e-10)
    if n >= 1:
      np.testing.assert_allclose(rj.or_interactions(jnp.asarray(u)), brute_or(u), atol=1e-10)
      i = np.random.default_rng(n).normal(size=(1 << n,))
      np.testing.assert_allclose(rj.or_matching(jnp.asarray(i)), brute_or_matching(i), atol=1e-10)


def test_float32_and_jit_and_trailing_shapes():
  u = np.random.default_rng(0).normal(size=(1 << 5, 2, 3, 4)).astype(np.float32)
  i_or = jax.jit(rj.or_interactions)(u)
  assert i_or.dtype == jnp.float32 and i_or.shape == u.shape
  np.testing.assert_allclose(rj.or_matching(i_or), u, atol=1e-4)


def test_or_is_and_of_complement_game():
  """I_or(S) = −I_and'(S) of the game w(T) = u(N\\T) (v1 App. D, eq. 14)."""
  u = np.random.default_rng(3).normal(size=(1 << 6,))
  with jax.enable_x64(True):
    i_or = np.asarray(rj.or_interactions(jnp.asarray(u)))
    i_and_w = np.asarray(rj.and_interactions(jnp.asarray(u[::-1])))
  np.testing.assert_allclose(i_or[1:], -i_and_w[1:], atol=1e-10)


def test_pure_or_game_has_one_interaction():
  """u(S) = c·1[S∩F≠∅] has exactly one OR interaction, at F, equal to c."""
  n, field = 5, 0b10110
  u = np.array([2.0 if s & field else 0.0 for s in range(1 << n)])
  i_or = np.asarray(rj.or_interactions(jnp.asarray(u)))
  expect = np.zeros_like(u)
  expect[field] = 2.0
  np.testing.assert_allclose(i_or, expect, atol=1e-6)


def test_rejects_non_power_of_two():
  with pytest.raises(ValueError, match="power of two"):
    rj.mobius(jnp.zeros((6, 2)))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 7), data=st.data())
def test_property_linear_and_round_trip(n, data):
  shape = (1 << n, 2)
  elems = st.floats(-100, 100, allow_nan=False, width=64)
  a = data.draw(hnp.arrays(np.float64, shape, elements=elems))
  b = data.draw(hnp.arrays(np.float64, shape, elements=elems))
  with jax.enable_x64(True):
    ia, ib = rj.or_interactions(jnp.asarray(a)), rj.or_interactions(jnp.asarray(b))
    np.testing.assert_allclose(
      rj.or_interactions(jnp.asarray(a + b)), ia + ib, atol=1e-6 * (1 + np.abs(a).max() + np.abs(b).max()) * (1 << n)
    )
    np.testing.assert_allclose(rj.or_matching(ia), a, atol=1e-7 * (1 + np.abs(a).max()) * (1 << n))
    np.testing.assert_allclose(rj.zeta(rj.mobius(jnp.asarray(a))), a, atol=1e-7 * (1 + np.abs(a).max()) * (1 << n))


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), dummy=st.integers(0, 5), seed=st.integers(0, 2**16))
def test_property_dummy_player_has_no_interactions(n, dummy, seed):
  """Dummy axiom: if u(S∪{i}) = u(S) for all S, every I(S∋i) = 0, AND and OR."""
  dummy = dummy % n
  base = np.random.default_rng(seed).normal(size=(1 << n,))
  u = np.array([base[s & ~(1 << dummy)] for s in range(1 << n)])
  with jax.enable_x64(True):
    for i in (np.asarray(rj.and_interactions(jnp.asarray(u))), np.asarray(rj.or_interactions(jnp.asarray(u)))):
      hit = [s for s in range(1, 1 << n) if s >> dummy & 1]
      np.testing.assert_allclose(i[hit], 0.0, atol=1e-9)


def test_n20_scalar_game_transforms():
  """n = 20 must be practical (the benchmark times it against a dense matrix)."""
  u = jnp.asarray(np.random.default_rng(0).normal(size=(1 << 20,)).astype(np.float32))
  i_or = rj.or_interactions(u)
  back = rj.or_matching(i_or)
  assert float(jnp.max(jnp.abs(back - u))) < 1e-2
