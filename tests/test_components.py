import jax.numpy as jnp
import numpy as np
import pytest

import regionjax as rj
from regionjax import testing


def test_ranking_and_selection():
  comps = np.zeros((8, 2), np.float32)
  comps[0] = 5.0  # f0: never ranked
  comps[3] = [3.0, 4.0]  # norm 5
  comps[5] = [1.0, 0.0]  # norm 1
  comps[6] = [0.0, 2.0]  # norm 2
  np.testing.assert_allclose(rj.component_norms(comps), [0, 0, 0, 5, 0, 1, 2, 0])
  assert rj.rank(comps)[:3].tolist() == [3, 6, 5]
  assert rj.top_k(comps, 2).tolist() == [3, 6]
  assert rj.above(comps, 1.5).tolist() == [3, 6]
  assert rj.top_fraction(comps, 3 / 7).tolist() == [3, 6, 5]
  with pytest.raises(ValueError, match="fraction"):
    rj.top_fraction(comps, 1.5)


def test_algorithm2_is_or_matching():
  """Adding every component that meets Ŝ gives back u(Ŝ) (Algorithm 2 = eq. 11)."""
  u = np.random.default_rng(0).normal(size=(1 << 4, 3))
  comps = rj.or_components(jnp.asarray(u))
  for s in range(16):
    np.testing.assert_allclose(rj.reconstruct_feature(comps, s), u[s], atol=1e-5)
  # keeping only some components drops the others
  kept = [1, 3]
  expect = np.asarray(comps[0]) + np.asarray(comps[1]) + np.asarray(comps[3])
  np.testing.assert_allclose(rj.reconstruct_feature(comps, 0b0001, kept=kept), expect, atol=1e-6)


def test_regional_pattern_of_planted_block():
  p = testing.planted_generator()
  comps = p.expected_components()
  field = p.fields[3]  # {2, 3}
  pattern = np.asarray(rj.regional_pattern(p.decode, jnp.asarray(p.f), jnp.asarray(comps[field])))
  inside = np.any(p.masks[[2, 3]], axis=0)
  assert np.abs(pattern[~inside]).max() < 1e-6
  assert np.abs(pattern[inside]).max() > 0.05
  batch = np.asarray(rj.regional_patterns(p.decode, jnp.asarray(p.f), jnp.asarray(comps), [field, p.fields[0]]))
  np.testing.assert_allclose(batch[0], pattern, atol=1e-6)
