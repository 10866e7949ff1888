"""Parity of regionjax.ports.biggan with the reference pytorch-pretrained-biggan.

The reference BigGAN-deep is built from PyPI (pytorch-pretrained-biggan 0.1.1,
torch 2.13.0 CPU) for the released 128 and 256 configs — the values of
`BigGAN128` / `BigGAN256` in the package's `convert_tf_to_pytorch.py`, which
are those of the published biggan-deep-{128,256}-config.json — with random
weights, u/v vectors and per-truncation running statistics
(`regionjax.ports.biggan.testing.randomized_reference`). Its state dict is written with
`torch.save`, converted by the command-line converter into an orbax
checkpoint, loaded back with `regionjax.ports.biggan.load`, and compared with the
reference in eval mode:

* final images, max-abs difference ≤ 1e-4;
* every tap `layer{i}` (output of `generator.layers[i]`),
  max|ours − ref| / max|ref| ≤ 1e-4;
at truncations 0.4 and 1.0 (grid points of the stored statistics) and 0.55
(an interpolated one), with several classes. Then `decode(encode(c, L), L)`
reproduces `generate(c)` for every tap, and decoding is deterministic.
"""

import json
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity tests need torch==2.13.0 (the test extra)")
pytest.importorskip("pytorch_pretrained_biggan", reason="parity tests need pytorch-pretrained-biggan (the test extra)")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from pytorch_pretrained_biggan import BigGAN  # noqa: E402
from pytorch_pretrained_biggan.utils import truncated_noise_sample  # noqa: E402

import regionjax.ports.biggan as pb  # noqa: E402
from regionjax.ports.biggan import convert, testing  # noqa: E402

IMAGE_ATOL = 1e-4
TAP_RTOL = 1e-4

# (truncation, classes) — two codes per batch keeps 2-core CI runs short.
CASES = [(0.4, [1, 999]), (1.0, [207, 0]), (0.55, [417, 88])]

# The released configs, as published in biggan-deep-{128,256}-config.json
# (identical to pytorch_pretrained_biggan/convert_tf_to_pytorch.py BigGAN128/256).
RELEASED_JSON = {
  128: {
    "output_dim": 128,
    "z_dim": 128,
    "class_embed_dim": 128,
    "channel_width": 128,
    "num_classes": 1000,
    "layers": [
      [False, 16, 16],
      [True, 16, 16],
      [False, 16, 16],
      [True, 16, 8],
      [False, 8, 8],
      [True, 8, 4],
      [False, 4, 4],
      [True, 4, 2],
      [False, 2, 2],
      [True, 2, 1],
    ],
    "attention_layer_position": 8,
    "eps": 1e-4,
    "n_stats": 51,
  },
  256: {
    "output_dim": 256,
    "z_dim": 128,
    "class_embed_dim": 128,
    "channel_width": 128,
    "num_classes": 1000,
    "layers": [
      [False, 16, 16],
      [True, 16, 16],
      [False, 16, 16],
      [True, 16, 8],
      [False, 8, 8],
      [True, 8, 8],
      [False, 8, 8],
      [True, 8, 4],
      [False, 4, 4],
      [True, 4, 2],
      [False, 2, 2],
      [True, 2, 1],
    ],
    "attention_layer_position": 8,
    "eps": 1e-4,
    "n_stats": 51,
  },
}


def test_released_configs_match_reference_package():
  from pytorch_pretrained_biggan import convert_tf_to_pytorch as ref_convert

  for res, ref_cfg in [(128, ref_convert.BigGAN128), (256, ref_convert.BigGAN256), (512, ref_convert.BigGAN512)]:
    ours = pb.RELEASED_CONFIGS[f"biggan-deep-{res}"]
    d = ref_cfg.to_dict()
    d["layers"] = [list(l) for l in d["layers"]]
    assert ours.to_dict() == d
    if res in RELEASED_JSON:
      assert pb.BigGANConfig.from_dict(RELEASED_JSON[res]) == ours


@pytest.mark.parametrize("res", [128, 256, 512])
def test_expected_keys_and_shapes_are_the_reference_state_dict(res):
  cfg = pb.RELEASED_CONFIGS[f"biggan-deep-{res}"]
  ref = BigGAN(testing.reference_config(cfg))
  have = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
  assert have == pb.expected_state_dict_shapes(cfg)


# The 256 model takes ~3 min on a 2-core CPU (build + 3 forward passes + 13 taps' round trips).
@pytest.fixture(
  scope="module",
  params=[pytest.param(128, id="biggan-deep-128"), pytest.param(256, id="biggan-deep-256", marks=pytest.mark.slow)],
)
def converted(request, tmp_path_factory):
  """(reference model, generator loaded from the orbax checkpoint, timings)."""
  res = request.param
  t0 = time.perf_counter()
  root = tmp_path_factory.mktemp(f"biggan{res}")
  cfg_path = root / "config.json"
  cfg_path.write_text(json.dumps(RELEASED_JSON[res]))
  cfg = pb.BigGANConfig.from_json(cfg_path)
  ref = testing.randomized_reference(cfg, seed=res)
  weights = root / "pytorch_model.bin"
  torch.save(ref.state_dict(), weights)
  out = root / "flax"
  assert convert.main(["--weights", str(weights), "--config", str(cfg_path), "--out", str(out)]) == 0
  gen = pb.load(out)
  return ref, gen, {"weights": weights, "config": cfg_path, "setup_s": time.perf_counter() - t0}


def _codes(gen, truncation, classes, seed):
  z = truncated_noise_sample(batch_size=len(classes), dim_z=gen.config.z_dim, truncation=truncation, seed=seed)
  return {"z": jnp.asarray(z), "class_vector": gen.one_hot(classes), "truncation": truncation}


def test_images_and_taps_match_reference(converted, record_property):
  ref, gen, _ = converted
  worst_img, worst_tap = 0.0, 0.0
  for k, (truncation, classes) in enumerate(CASES):
    codes = _codes(gen, truncation, classes, seed=k)
    want_x, want_taps = testing.reference_forward(ref, codes["z"], codes["class_vector"], truncation)
    x, taps = gen.generate_with_taps(codes)
    assert list(taps) == list(gen.layers) and len(want_taps) == len(gen.layers)
    img_err = float(np.max(np.abs(np.asarray(x) - want_x)))
    assert img_err <= IMAGE_ATOL, (truncation, img_err)
    assert 0.05 < float(np.std(want_x)) and np.mean(np.abs(want_x) > 0.99) < 0.05  # tanh not saturated
    worst_img = max(worst_img, img_err)
    for name, want in zip(gen.layers, want_taps):
      got = np.asarray(taps[name])
      assert got.shape == want.shape == (len(classes),) + gen.feature_shape(name)
      rel = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
      assert rel <= TAP_RTOL, (truncation, name, rel)
      worst_tap = max(worst_tap, rel)
    np.testing.assert_array_equal(np.asarray(gen.generate(codes)), np.asarray(x))
  record_property("max_abs_image_diff", worst_img)
  record_property("max_rel_tap_diff", worst_tap)
  print(f"\n{gen}: max|Δimage| = {worst_img:.2e}, max tap rel diff = {worst_tap:.2e}")


def test_encode_decode_roundtrip_every_layer(converted):
  _, gen, _ = converted
  codes = _codes(gen, 0.4, [3, 980], seed=7)
  x = np.asarray(gen.generate(codes))
  for layer in gen.layers:
    f = gen.encode(codes, layer)
    assert f.shape == (2,) + gen.feature_shape(layer)
    y1 = np.asarray(gen.decode(codes, layer, f))
    y2 = np.asarray(gen.decode(codes, layer, f))
    np.testing.assert_array_equal(y1, y2)  # deterministic
    np.testing.assert_array_equal(y1, x, err_msg=layer)  # bit for bit


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


def test_small_config_parity(tmp_path):
  """The same code at a small size (as trained from scratch for the embedded default)."""
  ref = testing.randomized_reference(SMALL, seed=1)
  gen = pb.BigGANGenerator(SMALL, pb.state_dict_to_variables(ref.state_dict(), SMALL))
  for k, (t, classes) in enumerate([(0.4, [0, 9]), (1.0, [3, 3]), (0.07, [5, 1])]):
    codes = _codes(gen, t, classes, seed=k)
    want, want_taps = testing.reference_forward(ref, codes["z"], codes["class_vector"], t)
    x, taps = gen.generate_with_taps(codes)
    assert float(np.max(np.abs(np.asarray(x) - want))) <= IMAGE_ATOL
    for name, w in zip(gen.layers, want_taps):
      assert float(np.max(np.abs(np.asarray(taps[name]) - w)) / np.max(np.abs(w))) <= TAP_RTOL


def test_legacy_spectral_norm_layout_matches_torch_loading(tmp_path):
  """torch < 1.1 state dicts (weight, weight_orig, weight_u; no weight_v)
  convert to what torch computes when it loads them (its pre-hook solves v)."""
  ref = testing.randomized_reference(SMALL, seed=2)
  path = tmp_path / "legacy.bin"
  torch.save(testing.legacy_state_dict(ref), path)
  cfg_path = tmp_path / "config.json"
  SMALL.to_json(cfg_path)
  ref2 = BigGAN(testing.reference_config(SMALL)).eval()
  ref2.load_state_dict(torch.load(path, weights_only=True))
  gen = pb.load_torch(path, cfg_path)
  codes = _codes(gen, 0.4, [5, 6], seed=3)
  want, _ = testing.reference_forward(ref2, codes["z"], codes["class_vector"], 0.4)
  assert float(np.max(np.abs(np.asarray(gen.generate(codes)) - want))) <= IMAGE_ATOL


def test_bad_checkpoint_files(tmp_path):
  cfg_path = tmp_path / "config.json"
  SMALL.to_json(cfg_path)
  garbage = tmp_path / "garbage.bin"
  garbage.write_bytes(b"this is not a checkpoint" * 10)
  with pytest.raises(ValueError, match="garbage.bin is not a BigGAN checkpoint"):
    pb.load_torch(garbage, cfg_path)
  tensor = tmp_path / "tensor.bin"
  torch.save(torch.zeros(3), tensor)
  with pytest.raises(ValueError, match="tensor.bin is not a BigGAN checkpoint"):
    pb.load_torch(tensor, cfg_path)
  other = tmp_path / "resnet.bin"
  torch.save(torch.nn.Linear(3, 2).state_dict(), other)
  with pytest.raises(ValueError, match="resnet.bin is not a pytorch-pretrained-biggan BigGAN-deep checkpoint"):
    pb.load_torch(other, cfg_path)
  with pytest.raises(ValueError, match="garbage.bin is not a BigGAN config"):
    pb.load_torch(other, garbage)
  with pytest.raises(FileNotFoundError, match="missing.bin"):
    pb.load_torch(tmp_path / "missing.bin", cfg_path)
  assert convert.main(["--weights", str(garbage), "--config", str(cfg_path), "--out", str(tmp_path / "o")]) == 2


def test_load_torch_equals_orbax_round_trip(converted):
  _, gen, paths = converted
  direct = pb.load_torch(paths["weights"], paths["config"])
  jax.tree.map(np.testing.assert_array_equal, direct.variables, gen.variables)


def test_mismatched_weights_and_config_name_both_files(converted, tmp_path):
  """The other resolution's config with these weights -> ValueError naming both."""
  _, gen, paths = converted
  other = 256 if gen.config.output_dim == 128 else 128
  cfg_path = tmp_path / f"biggan-deep-{other}-config.json"
  cfg_path.write_text(json.dumps(RELEASED_JSON[other]))
  with pytest.raises(ValueError) as e:
    pb.load_torch(paths["weights"], cfg_path)
  assert str(paths["weights"]) in str(e.value) and str(cfg_path) in str(e.value)
  assert "do not match" in str(e.value)
