"""regionjax.ports.biggan without torch: a small BigGAN-deep built from the same code
(config, Flax module, training mode, generator protocol, orbax round trip,
bad-input errors)."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import regionjax.ports.biggan as pb
from regionjax.ports.biggan import convert

SMALL = pb.BigGANConfig(
  output_dim=32,
  z_dim=16,
  class_embed_dim=16,
  channel_width=8,
  num_classes=10,
  layers=[(False, 16, 16), (True, 16, 8), (True, 8, 4), (True, 4, 2), (False, 2, 1)],
  attention_layer_position=3,
  eps=1e-4,
  n_stats=51,
)


def _init_shapes(cfg):
  m = pb.BigGANDeep(cfg)
  return jax.eval_shape(
    lambda: m.init(jax.random.PRNGKey(0), jnp.zeros((1, cfg.z_dim)), jnp.zeros((1, cfg.num_classes)), 1.0)
  )


def _random_variables(cfg, seed=0):
  """Random variables drawn with numpy (XLA takes ~30 s to compile the
  RNG-heavy `init` on a 2-core CPU; the shapes come from eval_shape)."""
  rs = np.random.RandomState(seed)

  def draw(path, s):
    name = jax.tree_util.keystr(path)
    if "running_vars" in name:
      return jnp.asarray(rs.uniform(0.5, 2.0, s.shape), jnp.float32)
    if "kernel" in name:
      fan_in = int(np.prod(s.shape[:-1]))
      return jnp.asarray(rs.standard_normal(s.shape) / np.sqrt(fan_in), jnp.float32)
    if name.endswith("['weight']"):
      return jnp.asarray(1 + 0.1 * rs.standard_normal(s.shape), jnp.float32)
    return jnp.asarray(0.1 * rs.standard_normal(s.shape) + ("gamma" in name) * 0.5, jnp.float32)

  return jax.tree_util.tree_map_with_path(draw, _init_shapes(cfg))


@pytest.fixture(scope="module")
def small():
  return pb.BigGANGenerator(SMALL, _random_variables(SMALL), truncation=0.5)


def test_released_configs_and_taps():
  assert pb.RELEASED_CONFIGS["biggan-deep-128"] == pb.BigGANConfig()
  assert [len(pb.RELEASED_CONFIGS[f"biggan-deep-{r}"].tap_names) for r in (128, 256, 512)] == [11, 13, 15]
  cfg = pb.RELEASED_CONFIGS["biggan-deep-128"]
  # the attention layer takes index 8: layer8 is its output, layer6 a GenBlock's
  assert cfg.stages()[8] == ("attention", 256) and cfg.stages()[6][0] == "block"


def test_config_json_round_trip(tmp_path):
  p = tmp_path / "config.json"
  SMALL.to_json(p)
  assert pb.BigGANConfig.from_json(p) == SMALL
  assert json.loads(p.read_text())["layers"][1] == [True, 16, 8]


def test_stats_position_is_the_reference_rule():
  assert pb.stats_position(0.4, 51) == (20, 0.0)
  assert pb.stats_position(1.0, 51) == (50, 0.0)
  assert pb.stats_position(0.45, 51) == (22, pytest.approx(0.5))
  for bad in (0.0, -0.1, 1.5, float("nan")):
    with pytest.raises(ValueError, match="truncation"):
      pb.stats_position(bad, 51)


def test_forward_shapes_range_and_protocol(small):
  codes = small.sample_codes(jax.random.PRNGKey(0), 3, classes=[0, 5, 9])
  assert codes["z"].shape == (3, 16) and codes["class_vector"].shape == (3, 10)
  assert codes["truncation"] == 0.5 and float(jnp.max(jnp.abs(codes["z"]))) <= 2 * 0.5
  np.testing.assert_array_equal(np.argmax(codes["class_vector"], -1), [0, 5, 9])
  x = small.generate(codes)
  assert x.shape == (3, 32, 32, 3) and x.dtype == jnp.float32
  assert float(jnp.max(jnp.abs(x))) <= 1.0
  # the Flax module gives the same images
  direct = jax.jit(lambda v, z, c: small.module.apply(v, z, c, 0.5))(small.variables, codes["z"], codes["class_vector"])
  np.testing.assert_allclose(direct, x, atol=1e-5)
  assert small.layers == ("layer0", "layer1", "layer2", "layer3", "layer4", "layer5")
  for layer in small.layers:
    f = small.encode(codes, layer)
    assert f.shape == (3,) + small.feature_shape(layer)
    np.testing.assert_array_equal(small.decode(codes, layer, f), x)
    np.testing.assert_array_equal(small.decode(codes, layer, f), small.decode(codes, layer, f))
  x_t, taps = small.generate_with_taps(codes)
  np.testing.assert_array_equal(x_t, x)
  np.testing.assert_array_equal(taps["layer4"], small.encode(codes, "layer4"))


def test_truncation_selects_statistics(small):
  codes = small.sample_codes(jax.random.PRNGKey(1), 2, classes=3)
  x1 = small.generate(codes)
  x2 = small.generate(dict(codes, truncation=0.9))
  assert float(jnp.max(jnp.abs(x1 - x2))) > 1e-3
  np.testing.assert_array_equal(small.generate(dict(codes, truncation=np.float32(0.5))), x1)


def test_decode_is_pure_and_differentiable(small):
  codes = small.sample_codes(jax.random.PRNGKey(2), 1, classes=[4])
  f = small.encode(codes, "layer3")[0]
  x = small.generate(codes)[0]
  dec = lambda feat: small.decode(codes, "layer3", feat[None])[0]
  loss = lambda a: jnp.sum((dec(a * f) - x) ** 2)
  alphas = jnp.stack([jnp.ones_like(f), 0.5 * jnp.ones_like(f)])
  vals, grads = jax.jit(jax.vmap(jax.value_and_grad(loss)))(alphas)
  assert float(vals[0]) < 1e-8 < float(vals[1])
  assert bool(jnp.all(jnp.isfinite(grads))) and float(jnp.abs(grads[1]).max()) > 0


@pytest.mark.slow  # two gradient compilations, about 15 s
def test_remat_blocks_same_values_and_gradients(small):
  """Per-block rematerialisation (issue 18 item 5) changes only what the
  backward pass keeps: the same images and gradients. (Its memory on
  XLA:CPU is measured by benchmarks/memory.py: no saving there.)"""
  remat = pb.BigGANGenerator(SMALL, small.variables, truncation=0.5, remat_blocks=True)
  codes = small.sample_codes(jax.random.PRNGKey(3), 1, classes=[2])
  f = small.encode(codes, "layer0")[0]
  x = small.generate(codes)[0]

  def grad_fn(gen):
    loss = lambda a: jnp.sum((gen.decode(codes, "layer0", (a * f)[None])[0] - x) ** 2)
    return jax.jit(jax.vmap(jax.grad(loss)))

  alphas = 1 + 0.3 * jax.random.normal(jax.random.PRNGKey(4), (8,) + f.shape)
  g0, g1 = grad_fn(small)(alphas), grad_fn(remat)(alphas)
  assert bool(jnp.all(jnp.isfinite(g0))) and float(jnp.abs(g0).max()) > 0
  np.testing.assert_allclose(np.asarray(g1), np.asarray(g0), rtol=1e-4, atol=1e-6 * float(jnp.abs(g0).max()))
  np.testing.assert_allclose(np.asarray(remat.decode(codes, "layer0", f[None])), np.asarray(x[None]), atol=1e-5)


@pytest.mark.slow  # over 20 s on the 2-core CPU; CI runs it with -m slow
def test_training_mode_updates_batch_stats():
  m = pb.BigGANDeep(SMALL, momentum=0.9)
  v = _random_variables(SMALL)
  z = jax.random.normal(jax.random.PRNGKey(1), (4, 16))
  cv = jax.nn.one_hot(jnp.arange(4), 10)
  train = jax.jit(
    lambda v, rows: m.apply(v, z, cv, 1.0, train=True, stats_rows=rows, mutable=["batch_stats"]), static_argnums=1
  )
  x, upd = train(v, None)
  assert x.shape == (4, 32, 32, 3)
  before = v["batch_stats"]["layers_0"]["bn_0"]["running_means"]
  after = upd["batch_stats"]["layers_0"]["bn_0"]["running_means"]
  assert after.shape == before.shape == (51, 128)
  assert float(jnp.abs(after - before).max()) > 0
  batch_mean = (after - 0.9 * before) / 0.1  # every row moved towards the same batch mean
  np.testing.assert_allclose(batch_mean, jnp.broadcast_to(batch_mean[0], after.shape), atol=1e-4)
  # gradients flow in training mode
  g = jax.jit(
    jax.grad(
      lambda p: jnp.mean(
        m.apply({"params": p, "batch_stats": v["batch_stats"]}, z, cv, 1.0, train=True, mutable=["batch_stats"])[0] ** 2
      )
    )
  )(v["params"])
  assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(g))
  # standing statistics for one truncation row
  _, upd = train(v, (20,))
  rm, rm0 = upd["batch_stats"]["bn"]["running_means"], v["batch_stats"]["bn"]["running_means"]
  assert float(jnp.abs(rm[20] - rm0[20]).max()) > 0
  np.testing.assert_array_equal(np.delete(np.asarray(rm), 20, 0), np.delete(np.asarray(rm0), 20, 0))
  # the trained variables wrap into a generator
  gen = pb.BigGANGenerator(SMALL, {"params": v["params"], "batch_stats": upd["batch_stats"]})
  assert gen.generate(gen.sample_codes(jax.random.PRNGKey(3), 2)).shape == (2, 32, 32, 3)


def test_bad_inputs(small, tmp_path):
  codes = small.sample_codes(jax.random.PRNGKey(0), 2)
  with pytest.raises(ValueError, match="unknown layer 'layer99'"):
    small.encode(codes, "layer99")
  with pytest.raises(ValueError, match="unknown layer"):
    small.decode(codes, "conv_to_rgb", jnp.zeros((2, 4, 4, 128)))
  with pytest.raises(ValueError, match="class id 10 is out of range"):
    small.sample_codes(jax.random.PRNGKey(0), 2, classes=[3, 10])
  with pytest.raises(ValueError, match="class id -1 is out of range"):
    small.sample_codes(jax.random.PRNGKey(0), 1, classes=-1)
  with pytest.raises(ValueError, match="must have shape"):
    small.decode(codes, "layer2", jnp.zeros((2, 8, 8, 3)))
  with pytest.raises(ValueError, match="truncation"):
    small.generate(dict(codes, truncation=0.0))
  with pytest.raises(FileNotFoundError, match="nope.json"):
    pb.BigGANConfig.from_json(tmp_path / "nope.json")
  notcfg = tmp_path / "notcfg.json"
  notcfg.write_text('{"hidden_size": 768}')
  with pytest.raises(ValueError, match="notcfg.json is not a pytorch-pretrained-biggan BigGAN config"):
    pb.BigGANConfig.from_json(notcfg)
  garbage = tmp_path / "garbage.json"
  garbage.write_bytes(b"\x80\x02garbage")
  with pytest.raises(ValueError, match="garbage.json is not a BigGAN config.json"):
    pb.BigGANConfig.from_json(garbage)
  with pytest.raises(ValueError, match="output_dim=64"):
    pb.BigGANConfig.from_dict(dict(SMALL.to_dict(), output_dim=64))
  with pytest.raises(FileNotFoundError, match="is not a converted BigGAN checkpoint"):
    pb.load(tmp_path / "missing")
  with pytest.raises(FileNotFoundError, match="weights file not found"):
    pb.read_torch_state_dict(tmp_path / "pytorch_model.bin")


def test_state_dict_checks_without_torch():
  """Weights of the 256 model with the 128 config, and a foreign state dict,
  fail with one ValueError naming the problem (numpy arrays, no torch)."""
  cfg128, cfg256 = pb.RELEASED_CONFIGS["biggan-deep-128"], pb.RELEASED_CONFIGS["biggan-deep-256"]
  sd256 = {k: np.broadcast_to(np.float32(0), s) for k, s in pb.expected_state_dict_shapes(cfg256).items()}
  with pytest.raises(ValueError, match="the weights in w256.bin do not match the config c128.json") as e:
    pb.state_dict_to_variables(sd256, cfg128, source="w256.bin", config_source="c128.json")
  assert "shape mismatches" in str(e.value) and "generator.layers.11" in str(e.value)
  with pytest.raises(ValueError, match="other.bin is not a pytorch-pretrained-biggan BigGAN-deep checkpoint"):
    pb.state_dict_to_variables({"fc.weight": np.zeros((2, 2))}, cfg128, source="other.bin")
  with pytest.raises(ValueError, match="x.bin is not a BigGAN checkpoint"):
    pb.state_dict_to_variables([1, 2], cfg128, source="x.bin")


def test_orbax_round_trip_without_torch(small, tmp_path):
  out = tmp_path / "ckpt"
  pb.save(out, small.config, small.variables)
  with pytest.raises(FileExistsError):
    pb.save(out, small.config, small.variables)
  codes = small.sample_codes(jax.random.PRNGKey(5), 2, classes=[1, 2])
  want = np.asarray(small.generate(codes))
  np.save(tmp_path / "z.npy", np.asarray(codes["z"]))
  script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now fails
        import numpy as np, jax.numpy as jnp
        import regionjax.ports.biggan as pb
        gen = pb.load({str(out)!r})
        codes = {{"z": jnp.asarray(np.load({str(tmp_path / "z.npy")!r})),
                  "class_vector": gen.one_hot([1, 2]), "truncation": 0.5}}
        np.save({str(tmp_path / "x.npy")!r}, np.asarray(gen.generate(codes)))
        assert "torch" not in sys.modules or sys.modules["torch"] is None
    """)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
  r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=root)
  assert r.returncode == 0, r.stderr[-3000:]
  np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), want)


def test_cli_reports_missing_files(tmp_path, capsys):
  assert (
    convert.main(
      ["--weights", str(tmp_path / "w.bin"), "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "o")]
    )
    == 2
  )
  assert "c.json" in capsys.readouterr().err
