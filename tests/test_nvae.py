"""regionjax.ports.nvae: parity with the reference NVAE code (committed fixtures), taps, decode from a tap, the
converter and its errors, BN re-estimation. Select with `pytest -k nvae`."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import regionjax
from regionjax.ports import nvlabs_pickle as nvp
from regionjax.ports import nvae
from regionjax.ports.nvae import CELEBA64, NVAEConfig, NVAEGenerator, convert, testing
from regionjax.ports.nvae import model as nvae_model
from regionjax.ports.nvae.generator import bn_update
from regionjax.ports.nvae.layout import state_dict_shapes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
PERTURBED = ("layer3", "layer4", "layer10")


def _fixture(name):
  d = np.load(os.path.join(FIXTURES, name))
  assert str(d["repository"]) == "https://github.com/NVlabs/NVAE" and len(str(d["commit"])) == 40
  assert "make_nvae_fixtures.py" in str(d["command"])
  return d


def _bn_stats(d):
  return {k[3:]: d[k].astype(np.float32) for k in d.files if k.startswith("bn:")}


def _codes(d, prefix="eps"):
  cfg = NVAEConfig.from_dict(json.loads(str(d["config"])))
  return {"eps": tuple(d[f"{prefix}{g}"] for g in range(cfg.num_groups)), "t": float(d["t"])}


def _max(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  assert a.shape == b.shape and np.isfinite(a).all() and np.isfinite(b).all()
  return float(np.abs(a - b).max())


@pytest.fixture(scope="module")
def small(tmp_path_factory):
  """The fixture and a generator converted from a torch.save checkpoint of its weights."""
  d = _fixture("nvae_small_parity.npz")
  cfg = NVAEConfig.from_dict(json.loads(str(d["config"])))
  path = tmp_path_factory.mktemp("nvae") / "checkpoint.pt"
  pytest.importorskip("torch")
  testing.write_random_checkpoint(path, cfg, seed=int(d["seed"]), bn_stats=_bn_stats(d))
  cfg2, variables = convert.read_checkpoint(path)
  assert cfg2 == cfg
  return d, NVAEGenerator(cfg2, variables), NVAEGenerator(cfg2, variables, output="sample")


@pytest.fixture(scope="module")
def small_taps(small):
  d, gen, _ = small
  logits, taps = gen.generate_with_taps(_codes(d))
  return np.asarray(logits), {k: np.asarray(v) for k, v in taps.items()}


def test_nvae_small_logits_and_mean_match_reference(small, small_taps):
  d, gen, _ = small
  logits, _ = small_taps
  assert np.abs(d["logits"]).max() > 1.0 and d["image"].std() > 0.05  # not degenerate
  assert _max(logits, d["logits"]) <= 1e-4
  assert _max(gen.generate(_codes(d)), d["image"]) <= 1e-4


def test_nvae_small_sample_with_injected_noise_matches_reference(small):
  d, _, gen_s = small
  codes = dict(_codes(d), u_mix=d["u_mix"], u_logistic=d["u_logistic"])
  x = np.asarray(gen_s.generate(codes))
  assert _max(x, d["image_sample"]) <= 1e-4
  assert _max(x, d["image"]) > 1e-2  # a sample, not the mean


def test_nvae_small_every_tap_matches_reference(small, small_taps):
  d, gen, _ = small
  _, taps = small_taps
  names = [k[4:] for k in d.files if k.startswith("tap:")]
  assert names == list(gen.layers) and len(names) == 17
  for name in names:
    assert _max(taps[name], d["tap:" + name]) <= 1e-4, name
    assert gen.feature_shape(name) == d["tap:" + name].shape[1:]


def test_nvae_small_decode_after_perturbed_tap_matches_reference(small, small_taps):
  """Decoding from a perturbed tap re-samples the later latents from their prior with the same ε."""
  d, gen, _ = small
  _, taps = small_taps
  codes = _codes(d)
  for layer in PERTURBED:
    x = np.asarray(gen.decode(codes, layer, taps[layer] + d["delta:" + layer]))
    assert _max(x, d["perturbed:" + layer]) <= 1e-4, layer
    assert _max(x, d["image"]) > 1e-3, layer  # the perturbation matters
    # round trip: decoding the tap's own features gives the image
    assert _max(gen.decode(codes, layer, taps[layer]), d["image"]) <= 1e-4, layer


def test_nvae_protocol_encode_vmap_grad(small):
  d, gen, _ = small
  assert isinstance(gen, regionjax.Generator) and gen.num_classes is None
  codes = gen.sample_codes(jax.random.PRNGKey(0), 2)
  assert len(codes["eps"]) == gen.config.num_groups and gen.class_of(codes) is None
  layer = "layer4"
  f = gen.encode(codes, layer)
  x = np.asarray(gen.generate(codes))
  assert x.shape == (2, 16, 16, 3) and x.dtype == np.float32 and np.abs(x).max() <= 1.0
  assert _max(gen.decode(codes, layer, f), x) <= 1e-4
  one = jax.tree.map(lambda a: a[:1] if getattr(a, "ndim", 0) > 0 else a, codes)
  dec = lambda v: gen.decode(one, layer, v[None])[0]
  g = jax.grad(lambda v: jnp.sum(dec(v) ** 2))(f[0])
  assert np.isfinite(np.asarray(g)).all() and np.abs(np.asarray(g)).max() > 0
  batched = jax.vmap(dec)(jnp.stack([f[0], f[0] * 0.5]))
  assert _max(batched[0], x[0]) <= 1e-4


def test_nvae_readjust_bn_step_matches_reference(small):
  """One step of evaluate.py's BN re-estimation (training-mode BN, momentum 0.05) with the ε given."""
  d, gen, _ = small
  eps = _codes(d, "readjust_eps")["eps"]
  stats = bn_update(gen.variables, gen.config, eps, 1.0)
  keys = [k for k in d.files if k.startswith("readjust:")]
  assert len(keys) == len(_bn_stats(d)) > 0
  worst = 0.0
  for k in keys:
    path, leaf = k[len("readjust:") :].rsplit(".", 1)
    v = stats
    for part in path.split("."):
      v = v[part]
    ours = v["mean" if leaf == "running_mean" else "var"]
    worst = max(worst, _max(ours, d[k]) / max(1.0, float(np.abs(d[k]).max())))
  assert worst <= 1e-4, worst
  moved = max(_max(np.asarray(d[k]), _bn_stats(d)[k[len("readjust:") :]]) for k in keys)
  assert moved > 1e-3  # the step changed the statistics


@pytest.mark.slow
def test_nvae_readjust_bn_option_on_the_generator(small):
  """gen.readjust_bn: iterated steps (lax.scan) give a new generator whose statistics moved."""
  d, gen, _ = small
  gen2 = gen.readjust_bn(jax.random.PRNGKey(1), num_samples=2, iters=2)
  x1, x2 = gen.generate(_codes(d)), gen2.generate(_codes(d))
  assert np.isfinite(np.asarray(x2)).all() and _max(x1, x2) > 1e-4


def test_nvae_bilinear_align_corners():
  x = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2) ** 1.5
  y = np.asarray(nvae_model.bilinear_up2(jnp.asarray(x)))
  assert y.shape == (2, 6, 8, 2)
  np.testing.assert_allclose(y[:, 0, 0], x[:, 0, 0], rtol=1e-6)  # corners fixed (align_corners=True)
  np.testing.assert_allclose(y[:, -1, -1], x[:, -1, -1], rtol=1e-6)
  torch = pytest.importorskip("torch")
  ref = (
    torch.nn.functional.interpolate(
      torch.from_numpy(x.transpose(0, 3, 1, 2)), scale_factor=2, mode="bilinear", align_corners=True
    )
    .numpy()
    .transpose(0, 2, 3, 1)
  )
  np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-4)


def test_nvae_celeba64_layout_and_taps():
  cfg = CELEBA64
  assert cfg.groups_per_scale == (20, 10, 5) and cfg.num_groups == 35
  tower = cfg.tower()
  assert len(tower) == 105 and cfg.tap_names[-1] == "layer104" and cfg.image_resolution == 64
  # the paper's taps under this port's count (from 0): layer44 the up cell 16→32, layer66 a normal cell at 32×32
  assert (tower[44].kind, tower[44].cin, tower[44].cout, tower[44].res) == ("up", 256, 128, 32)
  assert (tower[66].kind, tower[66].res, tower[66].cout) == ("normal", 32, 128)
  shapes = state_dict_shapes(cfg)
  assert shapes["prior_ftr0"] == (512, 8, 8) and shapes["image_conditional.1.weight"] == (100, 64, 3, 3)
  assert shapes["dec_tower.1._ops.0.conv.2.conv.0.weight"] == (3072, 1, 5, 5)  # depthwise 5×5, expansion 6
  assert shapes["dec_tower.1.se.se.0.weight"] == (32, 512)


def test_nvae_config_from_args_fills_evaluate_defaults():
  args = {
    k: v for k, v in CELEBA64.to_dict().items() if k not in ("ada_groups", "min_groups_per_scale", "num_mixture_dec")
  }
  cfg = NVAEConfig.from_args(args)
  assert not cfg.ada_groups and cfg.min_groups_per_scale == 1 and cfg.num_mixture_dec == 10
  with pytest.raises(ValueError, match="lack"):
    NVAEConfig.from_args({"dataset": "celeba_64"})
  with pytest.raises(ValueError, match="Bernoulli"):
    NVAEConfig.from_args(dict(CELEBA64.to_dict(), dataset="mnist"))
  with pytest.raises(ValueError, match="arch_instance"):
    NVAEConfig.from_args(dict(CELEBA64.to_dict(), arch_instance="res_bnswish"))


def test_nvae_convert_cli_round_trip_and_load(small, tmp_path):
  pytest.importorskip("torch")
  d, gen, _ = small
  ckpt = tmp_path / "checkpoint.pt"
  testing.write_random_checkpoint(ckpt, gen.config, seed=int(d["seed"]), bn_stats=_bn_stats(d))
  out = tmp_path / "conv"
  r = subprocess.run(
    [sys.executable, "-m", "regionjax.ports.nvae.convert", "--checkpoint", str(ckpt), "--out", str(out)],
    cwd=ROOT,
    env=dict(os.environ, PYTHONPATH=ROOT),
    capture_output=True,
    text=True,
  )
  assert r.returncode == 0, r.stderr
  g2 = nvae.load(out)
  for a, b in zip(jax.tree.leaves(g2.variables), jax.tree.leaves(gen.variables)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  again = subprocess.run(
    [sys.executable, "-m", "regionjax.ports.nvae.convert", "--checkpoint", str(ckpt), "--out", str(out)],
    cwd=ROOT,
    env=dict(os.environ, PYTHONPATH=ROOT),
    capture_output=True,
    text=True,
  )
  assert again.returncode == 2 and "--overwrite" in again.stderr


def test_nvae_convert_bad_files_clear_errors(tmp_path):
  torch = pytest.importorskip("torch")
  import argparse

  with pytest.raises(FileNotFoundError, match="not found"):
    convert.read_checkpoint(tmp_path / "missing.pt")
  bad = tmp_path / "bad.pt"
  bad.write_bytes(b"not a checkpoint")
  with pytest.raises(ValueError, match="zip"):
    convert.read_checkpoint(bad)
  plain = tmp_path / "plain.pt"
  torch.save({"model": torch.zeros(2)}, plain)
  with pytest.raises(ValueError, match="not an NVAE train.py checkpoint"):
    convert.read_checkpoint(plain)
  small_cfg = NVAEConfig(
    dataset="celeba_16", num_channels_dec=8, num_latent_scales=2, num_groups_per_scale=2, num_latent_per_group=4
  )
  wrong = tmp_path / "wrong.pt"  # weights of one config, args of another
  testing.write_random_checkpoint(wrong, small_cfg, seed=0, args=testing.train_args(small_cfg, num_latent_per_group=5))
  with pytest.raises(ValueError, match="shape"):
    convert.read_checkpoint(wrong)

  class Evil:
    def __reduce__(self):
      return (os.system, ("echo unsafe",))

  evil = tmp_path / "evil.pt"
  torch.save({"state_dict": {}, "args": argparse.Namespace(), "x": Evil()}, evil)
  with pytest.raises(ValueError, match="refusing"):
    convert.read_checkpoint(evil)
  r = subprocess.run(
    [sys.executable, "-m", "regionjax.ports.nvae.convert", "--checkpoint", str(bad), "--out", str(tmp_path / "o")],
    cwd=ROOT,
    env=dict(os.environ, PYTHONPATH=ROOT),
    capture_output=True,
    text=True,
  )
  assert r.returncode == 2 and r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1


def test_nvae_torch_checkpoint_reader_tensors_and_namespace(tmp_path):
  torch = pytest.importorskip("torch")
  import argparse

  a = torch.arange(12, dtype=torch.float32).reshape(3, 4)
  path = tmp_path / "c.pt"
  torch.save({"sd": {"t": a.t(), "i": torch.arange(3), "shared": a[1]}, "args": argparse.Namespace(x=1, y="z")}, path)
  d = nvp.load_torch_checkpoint(path)
  np.testing.assert_array_equal(d["sd"]["t"], a.t().numpy())
  np.testing.assert_array_equal(d["sd"]["shared"], a[1].numpy())
  assert d["sd"]["i"].dtype == np.int64 and vars(d["args"]) == {"x": 1, "y": "z"}


def test_nvae_generator_rejects_bad_inputs(small):
  _, gen, gen_s = small
  codes = gen.sample_codes(jax.random.PRNGKey(0), 1)
  with pytest.raises(ValueError, match="layer0"):
    gen.encode(codes, "layer99")
  with pytest.raises(ValueError, match="eps"):
    gen.generate({"z": np.zeros((1, 4))})
  with pytest.raises(ValueError, match="eps"):
    gen.generate({"eps": codes["eps"][:-1], "t": 1.0})
  with pytest.raises(ValueError, match="temperature"):
    gen.generate(dict(codes, t=-1.0))
  with pytest.raises(ValueError, match="unconditional"):
    gen.sample_codes(jax.random.PRNGKey(0), 1, classes=[0])
  with pytest.raises(ValueError, match="shape"):
    gen.decode(codes, "layer3", np.zeros((1, 2, 2, 2), np.float32))
  with pytest.raises(ValueError, match="u_mix"):
    gen_s.generate(codes)
  with pytest.raises(ValueError, match="output"):
    NVAEGenerator(gen.config, gen.variables, output="mode")


@pytest.mark.slow
def test_nvae_celeba64_full_size_matches_reference():
  """The released CelebA 64 architecture (105 dec_tower modules, 35 latent groups) on random weights."""
  d = _fixture("nvae_celeba64_image.npz")
  cfg = NVAEConfig.from_dict(json.loads(str(d["config"])))
  assert cfg == CELEBA64
  seed = int(d["seed"])
  sd = testing.random_state_dict(cfg, seed, _bn_stats(d))
  gen = NVAEGenerator(cfg, convert.state_dict_to_variables(sd, cfg), output="sample")
  rs = np.random.RandomState(seed + 1)  # the fixture script's ε
  eps = tuple(rs.standard_normal((1,) + s).astype(np.float32) for s in cfg.group_shapes())
  codes = {"eps": eps, "t": float(d["t"]), "u_mix": d["u_mix"], "u_logistic": d["u_logistic"]}
  logits, taps = gen.generate_with_taps(codes)
  logits = np.asarray(logits)
  assert _max(logits[:, 24:40, 24:40], d["logits_crop"]) <= 1e-4
  np.testing.assert_allclose([logits.mean(), logits.std(), np.abs(logits).max()], d["logits_stats"], atol=1e-4)
  assert _max(nvae_model.mixture_mean(jnp.asarray(logits), 10), d["image"]) <= 1e-4
  assert _max(gen.generate(codes), d["image_sample"]) <= 1e-4
  for layer in ("layer44", "layer66"):
    t = np.asarray(taps[layer])
    pooled = t.reshape(1, 8, 4, 8, 4, 128).mean((2, 4))
    assert _max(pooled, d["tap_pool:" + layer]) <= 1e-4, layer


def test_nvae_registry_needs_a_converted_checkpoint(tmp_path):
  from configs import nvae as nvae_config
  from regionjax.ports import registry

  c = nvae_config.get_config()
  assert c.model.name == "nvae" and c.model.layer == "layer44" and c.solver.lam == 200.0
  with pytest.raises(ValueError, match="python -m regionjax.ports.nvae.convert"):
    registry.build(c.model)
  c.model.checkpoint = str(tmp_path)
  with pytest.raises(FileNotFoundError, match="not a converted NVAE checkpoint"):
    registry.build(c.model)
