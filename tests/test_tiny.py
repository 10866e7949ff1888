"""The tiny generators of regionjax.ports.tiny: shipped weights, the protocol, every tap round-trips."""

import os

import jax
import numpy as np
import pytest

from regionjax.ports import tiny
from regionjax.ports.tiny import data as data_lib


@pytest.fixture(scope="module", params=tiny.NAMES)
def gen(request):
  return tiny.load(request.param)


def test_weights_are_small():
  for name in tiny.NAMES:
    assert os.path.getsize(os.path.join(tiny.HERE, f"{name}.msgpack")) < 1 << 20


def test_protocol_round_trips_every_tap(gen):
  codes = gen.sample_codes(jax.random.PRNGKey(0), 3)
  x = np.asarray(gen.generate(codes))
  assert x.shape == (3, 32, 32, 3) and np.abs(x).max() <= 1.0
  assert np.std(x) > 0.05  # not a blank frame
  for layer, side in zip(gen.layers, (4, 8, 16, 32)):
    f = gen.encode(codes, layer)
    assert f.shape[:3] == (3, side, side)
    np.testing.assert_allclose(np.asarray(gen.decode(codes, layer, f)), x, atol=1e-5)
  with pytest.raises(ValueError, match="unknown layer"):
    gen.encode(codes, "nope")


def test_codes_differ_and_are_seeded(gen):
  a = np.asarray(gen.generate(gen.sample_codes(jax.random.PRNGKey(0), 2)))
  b = np.asarray(gen.generate(gen.sample_codes(jax.random.PRNGKey(0), 2)))
  np.testing.assert_array_equal(a, b)
  assert np.abs(a[0] - a[1]).mean() > 0.02


def test_digits_data_is_seeded_and_in_range():
  a, b = data_lib.digits(3), data_lib.digits(3)
  np.testing.assert_array_equal(a, b)
  assert a.shape == (1797, 32, 32, 3) and a.min() >= -1 and a.max() <= 1


def test_unknown_name():
  with pytest.raises(ValueError, match="unknown tiny generator"):
    tiny.load("faces")
