"""The subset axis sharded over 8 (virtual CPU) devices gives the 1-device answer.

scripts/test.sh exports XLA_FLAGS=--xla_force_host_platform_device_count=8;
without it (fewer than 8 devices) the multi-device tests are skipped.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

import regionjax as rj
from regionjax import distributed
from regionjax import solver as solver_lib
from regionjax import testing

SETTINGS = dict(lam=200.0, learning_rate=0.02, steps=60, schedule="cosine")
need8 = pytest.mark.skipif(jax.device_count() < 8, reason="needs XLA_FLAGS=--xla_force_host_platform_device_count=8")


@pytest.fixture(scope="module")
def planted():
  return testing.planted_generator()


def _args(p):
  return p.decode, p.f, p.f0, p.image, p.masks


@pytest.fixture(scope="module")
def single(planted):
  return rj.solve_minimal_features(*_args(planted), chunk_size=5, **SETTINGS)


@need8
@pytest.mark.parametrize("chunk_size", [5, 13])  # neither divides by 8: chunks are padded
def test_eight_devices_equal_one(planted, single, chunk_size):
  mesh = distributed.local_mesh()
  assert mesh.devices.size == 8
  res = rj.solve_minimal_features(*_args(planted), chunk_size=chunk_size, mesh=mesh, **SETTINGS)
  for name in ("u", "alpha", "error", "history"):
    np.testing.assert_allclose(
      np.asarray(getattr(res, name)), np.asarray(getattr(single, name)), atol=1e-5, rtol=1e-5, err_msg=name
    )


@need8
def test_chunk_is_really_sharded(planted):
  mesh = distributed.local_mesh()
  setup = solver_lib.prepare(*_args(planted), chunk_size=5, mesh=mesh, **SETTINGS)
  assert setup.width == 8 and [len(c) for c in setup.plan] == [1, 8, 6]
  seen = {}
  run = setup.run
  object.__setattr__(setup, "run", lambda a, s: seen.setdefault("out", run(a, s)))
  chunk = solver_lib.solve_chunk(setup, 2, jnp.ones(planted.f.shape))
  alpha = seen["out"][0]
  assert len(alpha.sharding.device_set) == 8 and alpha.shape[0] == 8
  assert {s.data.shape[0] for s in alpha.addressable_shards} == {1}
  assert chunk.alpha.shape[0] == 6  # padding dropped


@need8
def test_two_axis_mesh(planted, single):
  """A 2-d mesh (e.g. 4 × 2) shards the subset axis over all 8 of its devices."""
  mesh = Mesh(np.asarray(jax.devices()[:8]).reshape(4, 2), ("a", "b"))
  res = rj.solve_minimal_features(*_args(planted), chunk_size=6, mesh=mesh, **SETTINGS)
  np.testing.assert_allclose(np.asarray(res.u), np.asarray(single.u), atol=1e-5)


def test_remat_same_result(planted, single):
  for remat in (True, "nothing"):
    res = rj.solve_minimal_features(*_args(planted), chunk_size=5, remat=remat, **SETTINGS)
    np.testing.assert_allclose(np.asarray(res.u), np.asarray(single.u), atol=1e-5)
  with pytest.raises(ValueError, match="remat policy"):
    rj.solve_minimal_features(*_args(planted), chunk_size=5, remat="bogus", **SETTINGS)


def test_bf16_decoding_keeps_alpha_float32(planted, single):
  res = rj.solve_minimal_features(*_args(planted), chunk_size=5, decode_dtype=jnp.bfloat16, **SETTINGS)
  assert res.alpha.dtype == jnp.float32 and res.u.dtype == jnp.float32
  err = np.abs(np.asarray(res.u) - np.asarray(single.u)).max()
  assert 0 < err < 0.05, err  # bf16 changes the answer a little, not much


@pytest.mark.slow  # over 20 s on the 2-core CPU; CI runs it with -m slow
def test_chunk_size_for_budget(planted):
  args = (planted.decode, planted.f, planted.image)
  per1 = solver_lib.chunk_memory_bytes(*args, 1)
  per9 = solver_lib.chunk_memory_bytes(*args, 9)
  assert per9 > per1 > 0
  chunk = solver_lib.chunk_size_for_budget(*args, budget_bytes=per9)
  assert 8 <= chunk <= 10
  assert solver_lib.chunk_size_for_budget(*args, budget_bytes=per9, devices=8, max_chunk=32) == 32
  with pytest.raises(ValueError, match="does not hold one subset"):
    solver_lib.chunk_size_for_budget(*args, budget_bytes=16)
  # memory_budget picks the chunk size; the answer is unchanged
  res = rj.solve_minimal_features(*_args(planted), memory_budget=per9, **SETTINGS)
  ref = rj.solve_minimal_features(*_args(planted), chunk_size=chunk, **SETTINGS)
  np.testing.assert_array_equal(np.asarray(res.u), np.asarray(ref.u))
