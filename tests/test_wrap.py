"""Bring your own generator: rj.from_flax and rj.from_functions, and python -m regionjax.check.

The Flax model is defined here (no port): a dense stem and two upsampling
blocks with a skip connection from the stem around the tap, so that decode
must keep the paths that do not go through the tap.
"""

import os
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import harness

import regionjax as rj
from regionjax import check as check_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODEL_SOURCE = '''
import flax.linen as nn
import jax
import jax.numpy as jnp


def up(h):
  return jax.image.resize(h, (h.shape[0], 2 * h.shape[1], 2 * h.shape[2], h.shape[3]), "nearest")


class Block(nn.Module):
  ch: int

  @nn.compact
  def __call__(self, h):
    return nn.leaky_relu(nn.Conv(self.ch, (3, 3))(up(h)), 0.2)


class Tiny(nn.Module):
  """z (6,) -> 4x4x8 -> block1 8x8x8 -> block2 16x16x8 -> rgb, plus a skip from the stem."""

  @nn.compact
  def __call__(self, z):
    h0 = nn.Dense(4 * 4 * 8, name="stem")(z).reshape(z.shape[0], 4, 4, 8)
    h = Block(8, name="block1")(h0)
    h = Block(8, name="block2")(h)
    skip = up(up(h0))                      # does not pass through block1
    return jnp.tanh(nn.Conv(3, (3, 3), name="to_rgb")(h + 0.3 * skip))


def make(model_config=None):
  import regionjax as rj
  module = Tiny()
  variables = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 6)))
  layer = "block1" if model_config is None else model_config.layer
  return rj.from_flax(module, variables, layer=layer, input_shape=(6,))
'''

namespace: dict = {}
exec(compile(MODEL_SOURCE, "tiny_model", "exec"), namespace)  # the same source the subprocess test imports
make = namespace["make"]


@pytest.fixture(scope="module")
def gen():
  return make()


def test_protocol_taps_and_round_trip(gen):
  assert isinstance(gen, rj.Generator)
  assert gen.layers == ("block1",) and gen.num_classes is None
  taps = {t[0]: t[1] for t in gen.taps}
  assert taps["stem"] == (1, 128) and taps["block1"] == (1, 8, 8, 8) and taps["block2"] == (1, 16, 16, 8)
  assert [t[0] for t in gen.taps].index("block1") < [t[0] for t in gen.taps].index("block2")
  codes = gen.sample_codes(jax.random.PRNGKey(1), 3)
  x = np.asarray(gen.generate(codes))
  assert x.shape == (3, 16, 16, 3) and np.isfinite(x).all() and np.abs(x).max() <= 1
  f = gen.encode(codes, "block1")
  assert f.shape == (3, 8, 8, 8)
  y = np.asarray(gen.decode(codes, "block1", f))
  np.testing.assert_allclose(y, x, atol=1e-6)
  # the substituted feature is what decode uses, and the skip path still comes from the codes
  y0 = np.asarray(gen.decode(codes, "block1", jnp.zeros_like(f)))
  assert np.abs(y0 - x).max() > 1e-2
  g = jax.grad(lambda v: gen.decode(codes, "block1", v).sum())(f)
  assert np.isfinite(np.asarray(g)).all() and float(jnp.abs(g).sum()) > 0


def test_bad_layers_and_codes(gen):
  module, variables = gen.module, gen.variables
  with pytest.raises(ValueError, match="taps are"):
    rj.from_flax(module, variables, layer="nope", input_shape=(6,))
  with pytest.raises(ValueError, match="Conv_0"):  # 'Conv_0' is in block1 and block2: ambiguous
    rj.from_flax(module, variables, layer="Conv_0", input_shape=(6,))
  nested = rj.from_flax(module, variables, layer="block2/Conv_0", input_shape=(6,))
  assert nested.layers == ("block2/Conv_0",)
  with pytest.raises(ValueError, match="unknown layer"):
    gen.encode(gen.sample_codes(jax.random.PRNGKey(0), 1), "block2")
  with pytest.raises(ValueError, match="shape"):
    gen.decode(gen.sample_codes(jax.random.PRNGKey(0), 1), "block1", jnp.zeros((1, 4, 4, 8)))
  with pytest.raises(ValueError, match="unconditional"):
    gen.sample_codes(jax.random.PRNGKey(0), 2, classes=1)


def test_from_flax_explained_by_the_solver(gen):
  """The tiny model end to end: minimal features of 4 quadrants, OR components, completeness."""
  codes = gen.sample_codes(jax.random.PRNGKey(3), 1)
  image = np.asarray(gen.generate(codes))[0]
  f = np.asarray(gen.encode(codes, "block1"))[0]
  f0 = np.asarray(gen.encode(gen.sample_codes(jax.random.PRNGKey(4), 32), "block1")).mean(0)
  masks = rj.patch_masks(16, 16, 2, 2)
  decode = lambda v: gen.decode(codes, "block1", v[None])[0]  # noqa: E731
  res = rj.solve_minimal_features(decode, f, f0, image, masks, lam=200.0, learning_rate=0.05, steps=80, tau=0.05)
  comps = np.asarray(rj.or_components(res.u))
  assert comps.shape == (16, 8, 8, 8)
  np.testing.assert_allclose(comps[0] + comps[1:].sum(0), np.asarray(res.u[15]), atol=1e-4)  # completeness
  err = np.asarray(res.error)
  assert np.isfinite(err).all() and err[1:].max() < 0.05, err  # every u(S) regenerates its patches
  # a 3×3 conv per block: a quadrant's minimal feature keeps little beyond its neighbourhood
  full = np.abs(np.asarray(res.u[15]) - f0).sum()
  single = np.abs(np.asarray(res.u[1]) - f0).sum()
  assert 0 < single < full


def test_from_functions():
  w = np.random.default_rng(0).normal(size=(5, 4, 4, 3)).astype(np.float32)
  gen = rj.from_functions(
    lambda c: c["z"] * 2.0,
    lambda c, f: jnp.tanh(jnp.tensordot(f, w, axes=1)),
    sample_codes=lambda rng, num: {"z": jax.random.normal(rng, (num, 5))},
  )
  assert isinstance(gen, rj.Generator) and gen.layers == ("feature",)
  codes = gen.sample_codes(jax.random.PRNGKey(0), 2)
  np.testing.assert_allclose(
    np.asarray(gen.decode(codes, "feature", gen.encode(codes, "feature"))), np.asarray(gen.generate(codes)), atol=0
  )
  with pytest.raises(ValueError, match="unknown layer"):
    gen.encode(codes, "x")


def test_check_reports_taps_round_trip_and_cost(gen):
  lines = []
  assert check_lib.check(gen, "block1", steps=3, print_fn=lines.append)
  text = "\n".join(lines)
  assert "block2" in text and "(1, 8, 8, 8)" in text and "ok" in text
  assert "memory per subset" in text and "ms per step" in text
  bad = rj.from_functions(
    lambda c: c["z"],
    lambda c, f: jnp.tanh(f.reshape(-1, 2, 2, 1).repeat(3, -1)),
    sample_codes=lambda rng, num: {"z": jax.random.normal(rng, (num, 4))},
    generate=lambda c: jnp.zeros((c["z"].shape[0], 2, 2, 3)),
  )
  lines = []
  assert not check_lib.check(bad, "feature", steps=2, print_fn=lines.append)
  assert "FAILED" in "\n".join(lines)


@pytest.mark.slow
def test_check_command_and_main_with_your_own_generator(tmp_path):
  """`model.name = 'module:factory'`: python -m regionjax.check and main.py on the tiny model (~1 min)."""
  (tmp_path / "tiny_model.py").write_text(MODEL_SOURCE)
  (tmp_path / "tiny_config.py").write_text(
    textwrap.dedent('''
      from configs import planted

      def get_config():
        c = planted.get_config()
        c.model.name = "tiny_model:make"
        c.model.layer = "block1"
        c.patches.rows = c.patches.cols = 2
        c.patches.indices = (0, 1, 2, 3)
        c.baseline.num_codes = 64
        c.baseline.batch_size = 64
        c.solver.steps = 100
        c.solver.tau = 0.1
        return c
      ''')
  )
  env = harness.env(tmp_path)
  cfg = f"--config={tmp_path / 'tiny_config.py'}"
  proc = harness.run(cfg, "--steps=3", module="regionjax.check", environ=env, timeout=300)
  assert "block1" in proc.stdout and "ok" in proc.stdout and "ms per step" in proc.stdout
  bad = harness.run(cfg, "--config.model.layer=nope", module="regionjax.check", environ=env, ok=False, timeout=300)
  assert "taps are" in harness.error_line(bad) and "Traceback" not in bad.stderr
  work = tmp_path / "run"
  harness.run(cfg, f"--config.workdir={work}", "--config.report.interactive=false", environ=env, timeout=600)
  import json

  metrics = json.loads((work / "metrics.json").read_text())
  assert metrics["summary"]["model"] == "tiny_model:make" and metrics["summary"]["feature_shape"] == [8, 8, 8]
  assert metrics["solver"]["subsets"] == 16
