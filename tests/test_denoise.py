"""Noise removal from the minimal features (v1 App. G, eq. 16)."""

import numpy as np
import pytest

import regionjax as rj
from regionjax import denoise as denoise_lib
from regionjax import testing

TAU = 0.02


@pytest.fixture(scope="module")
def planted():
  return testing.planted_generator()


@pytest.fixture(scope="module")
def noisy(planted):
  """The exact minimal features plus uniform noise of ±0.01 on every u(S), S ∉ {∅, N}."""
  u = planted.expected_u()
  noise = np.random.default_rng(0).uniform(-0.01, 0.01, size=u.shape).astype(np.float32)
  noise[0] = noise[-1] = 0.0
  return u + noise


@pytest.fixture(scope="module")
def result(noisy):
  return denoise_lib.denoise(noisy, tau_q=TAU, steps=300)


def test_one_player_is_soft_thresholding():
  """n = 1 with q_N free: min |d + q| over |q| ≤ τ gives I(1) = d − clip(d, ±τ)."""
  f0 = np.zeros(4, np.float32)
  d = np.array([0.005, -0.3, 0.02, 0.0], np.float32)
  u = np.stack([f0, f0 + d])
  out = denoise_lib.denoise(u, tau_q=0.01, steps=300, fix_full=False)
  np.testing.assert_allclose(np.asarray(out.components[1]), d - np.clip(d, -0.01, 0.01), atol=5e-4)
  np.testing.assert_array_equal(np.asarray(out.q[0]), 0.0)  # u(∅) = f0 is never moved
  assert out.l1_after < out.l1_before
  # with q_N fixed nothing is free: unchanged
  fixed = denoise_lib.denoise(u, tau_q=0.01, steps=10)
  np.testing.assert_array_equal(np.asarray(fixed.u), u)


def test_planted_noise_is_removed(planted, noisy, result):
  q = np.asarray(result.q)
  assert np.abs(q).max() <= TAU + 1e-7
  np.testing.assert_array_equal(q[0], 0.0)
  np.testing.assert_array_equal(q[-1], 0.0)
  expected = planted.expected_components()
  l1_expected = np.abs(expected[1:]).sum()
  # q = −noise is feasible and gives the planted components, so the optimum is at most their L1
  assert result.l1_after < result.l1_before - 2.0
  assert result.l1_after <= l1_expected + 0.02
  err_before = np.abs(np.asarray(rj.or_components(noisy)) - expected).max()
  err_after = np.abs(np.asarray(result.components) - expected).max()
  assert err_after < 0.5 * err_before
  # completeness untouched: the components still sum to u(N) − f0
  np.testing.assert_allclose(np.asarray(result.components[1:]).sum(0), noisy[-1] - noisy[0], atol=1e-5)
  h = np.asarray(result.history)
  assert h.shape == (300,) and h[-1] < h[0]
  np.testing.assert_allclose(np.asarray(result.components), np.asarray(rj.or_components(result.u)), atol=1e-6)


def test_chunking_does_not_change_the_answer(noisy, result):
  chunked = denoise_lib.denoise(noisy, tau_q=TAU, steps=300, chunk_size=7)
  np.testing.assert_allclose(np.asarray(chunked.q), np.asarray(result.q), atol=1e-6)
  np.testing.assert_allclose(np.asarray(chunked.history), np.asarray(result.history), rtol=1e-5)


def test_zero_bound_is_identity(noisy):
  out = denoise_lib.denoise(noisy, tau_q=0.0)
  np.testing.assert_array_equal(np.asarray(out.u), noisy)
  assert out.l1_after == out.l1_before


def test_report_before_after(planted, noisy, result):
  rep = denoise_lib.denoise_report(planted.decode, noisy, result.u, planted.image, planted.masks)
  before, after = rep["before"], rep["after"]
  assert after["l1"] < before["l1"]
  assert after["near_zero_share_common"] > before["near_zero_share_common"]
  assert before["full_rmse"] == pytest.approx(after["full_rmse"], abs=1e-6)  # q_N fixed
  assert after["recon_rmse"].shape == (16,) and after["recon_rmse_max"] < 0.01
  for side in (before, after):
    assert all(np.isfinite(v) for v in (side["l1"], side["recon_rmse_mean"], side["near_zero_share"]))


@pytest.mark.parametrize(
  "kw,match",
  [
    (dict(tau_q=-1.0), "tau_q"),
    (dict(tau_q=float("nan")), "tau_q"),
    (dict(tau_q=0.1, steps=0), "steps"),
    (dict(tau_q=0.1, chunk_size=0), "chunk_size"),
    (dict(tau_q=0.1, schedule="x"), "schedule"),
  ],
)
def test_bad_input(noisy, kw, match):
  with pytest.raises(ValueError, match=match):
    denoise_lib.denoise(noisy, **kw)
