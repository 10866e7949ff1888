"""regionjax.ports.stylegan2: parity with the reference StyleGAN2-ADA code (committed fixtures), taps,
decode, truncation, converter and its errors. Select with `pytest -k stylegan2`."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from regionjax.ports import nvlabs_pickle as nvp
from regionjax.ports.stylegan2 import StyleGAN2Config, StyleGAN2Generator, convert, testing
from regionjax.ports.stylegan2.config import RELEASED_CONFIGS, RELEASED_INIT_KWARGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def _fixture(name):
  d = np.load(os.path.join(FIXTURES, name))
  assert str(d["repository"]) == "https://github.com/NVlabs/stylegan2-ada-pytorch" and len(str(d["commit"])) == 40
  assert "make_stylegan2_fixtures.py" in str(d["command"])
  return d


def _converted(tmp_path, d):
  """Our writer's pickle of the fixture's random weights, read by the converter -> (config, variables)."""
  cfg = StyleGAN2Config.from_dict(json.loads(str(d["config"])))
  path = tmp_path / "net.pkl"
  testing.write_random_pickle(path, cfg, seed=int(d["seed"]))
  cfg2, variables = convert.read_pickle(path)
  assert cfg2 == cfg
  return cfg2, variables


def _rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  assert a.shape == b.shape and np.isfinite(a).all() and np.isfinite(b).all()
  return float(np.abs(a - b).max() / np.abs(b).max())


def _abs(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  assert a.shape == b.shape and np.isfinite(a).all() and np.isfinite(b).all()
  return float(np.abs(a - b).max())


@pytest.fixture(scope="module")
def small(tmp_path_factory):
  d = _fixture("stylegan2_small_parity.npz")
  psi, cutoff = d["truncation"]
  cfg, variables = _converted(tmp_path_factory.mktemp("stylegan2"), d)
  return d, StyleGAN2Generator(cfg, variables, truncation_cutoff=int(cutoff)), float(psi), variables


@pytest.fixture(scope="module")
def small_taps(small):
  d, gen, _, _ = small
  x, taps = gen.generate_with_taps({"z": d["z"]})
  return np.asarray(x), {k: np.asarray(v) for k, v in taps.items()}


def test_stylegan2_small_image_and_taps_match_reference(small, small_taps):
  d, gen, _, _ = small
  x, taps = small_taps
  assert np.abs(d["image"]).max() > 0.5  # a real image, not a degenerate one
  assert _abs(x, d["image"]) <= 1e-4
  names = [k[4:] for k in d.files if k.startswith("tap:")]
  assert names == list(gen.block_names)
  for name in names:
    assert _rel(taps[name], d["tap:" + name]) <= 1e-4, name
  # the fixture's clamp (1.5) clips part of every layer's output, so clamping is exercised
  assert (d["clamped_fraction"] > 0.01).all() and gen.config.conv_clamp == 1.5
  assert np.abs(taps["b16.conv0"]).max() <= 1.5


def test_stylegan2_small_mapping_truncation_and_noise_match_reference(small):
  d, gen, psi, variables = small
  codes = {"z": d["z"]}
  assert _rel(gen.ws(codes), d["ws"]) <= 1e-4
  assert _rel(gen.ws(dict(codes, truncation=psi)), d["ws_trunc"]) <= 1e-4
  assert _abs(d["ws_trunc"][:, 4:], d["ws"][:, 4:]) == 0 and _abs(d["ws_trunc"][:, :4], d["ws"][:, :4]) > 1e-2
  assert _abs(gen.generate(dict(codes, truncation=psi)), d["image_trunc"]) <= 1e-4
  assert _abs(d["image_trunc"], d["image"]) > 1e-2  # truncation changes the image
  assert _abs(gen.generate(dict(codes, noise_mode="none")), d["image_nonoise"]) <= 1e-4
  assert _abs(d["image_nonoise"], d["image"]) > 1e-2  # the noise inputs matter


def _check_perturbed(d, gen, taps, only=None):
  codes = {"z": d["z"]}
  keys = [k[len("perturbed:") :] for k in d.files if k.startswith("perturbed:")]
  assert any(k.endswith(".conv0") for k in keys) and any("." not in k for k in keys)
  for k in keys:
    if only is not None and k not in only:
      continue
    x = gen.decode(codes, k, taps[k] + d["delta:" + k])
    assert np.abs(d["perturbed:" + k] - d["image"]).max() > 1e-2  # the perturbation matters
    assert _abs(x, d["perturbed:" + k]) <= 1e-4, k


def test_stylegan2_decode_from_a_tap_matches_reference_and_regenerates_the_image(small, small_taps):
  """One tap (b16) in the default run, each tap being its own XLA programs; the slow test checks all."""
  d, gen, _, _ = small
  x, taps = small_taps
  codes = {"z": d["z"]}
  _check_perturbed(d, gen, taps, only=("b16",))
  np.testing.assert_allclose(gen.decode(codes, "b16", gen.encode(codes, "b16")), x, rtol=0, atol=1e-5)
  np.testing.assert_array_equal(gen.encode(codes, "layer2"), gen.encode(codes, "b16"))
  np.testing.assert_array_equal(taps["b16"], taps["b16.conv1"])
  # its gradient (the solver differentiates decode with the codes fixed)
  g = jax.grad(lambda u: (gen.decode(codes, "b16", u) ** 2).sum())(taps["b16"])
  assert np.isfinite(np.asarray(g)).all() and np.abs(np.asarray(g)).max() > 0


@pytest.mark.slow
def test_stylegan2_truncation_without_cutoff_and_random_noise(small):
  d, gen, psi, variables = small
  codes = {"z": d["z"]}
  all_rows = StyleGAN2Generator(gen.config, variables)  # cutoff None: every w truncated
  assert _abs(all_rows.generate(dict(codes, truncation=psi)), d["image_trunc_all"]) <= 1e-4
  assert _abs(d["image_trunc_all"], d["image_trunc"]) > 1e-3
  # with truncation and random noise (per-code seeds): still decode(encode(z)) == generate(z)
  c2 = dict(gen.sample_codes(jax.random.PRNGKey(1), 2), truncation=psi, noise_mode="random")
  x2 = np.asarray(gen.generate(c2))
  np.testing.assert_allclose(gen.decode(c2, "b16", gen.encode(c2, "b16")), x2, rtol=0, atol=1e-5)
  assert _abs(gen.generate(dict(c2, noise_seed=c2["noise_seed"] + 1)), x2) > 1e-3  # the seed matters


@pytest.mark.slow
def test_stylegan2_every_tap_encodes_and_decodes_like_the_reference(small, small_taps):
  d, gen, _, _ = small
  x, taps = small_taps
  codes = {"z": d["z"]}
  _check_perturbed(d, gen, taps)
  for name in gen.layers:
    f = gen.encode(codes, name)
    assert _rel(f, d["tap:" + gen.aliases.get(name, name)]) <= 1e-4, name
    np.testing.assert_allclose(gen.decode(codes, name, f), x, rtol=0, atol=1e-5, err_msg=name)
  # under an outer jit with the codes fixed (the solver's use)
  f = gen.encode(codes, "b16")
  np.testing.assert_allclose(jax.jit(lambda u: gen.decode(codes, "b16", u))(f), x, rtol=0, atol=1e-5)
  # traced codes: w and the RGB sum computed inside the same program
  f = gen.encode(codes, "b8.conv1")
  np.testing.assert_allclose(jax.jit(lambda z, u: gen.decode({"z": z}, "b8.conv1", u))(d["z"], f), x, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_stylegan2_afhqcat512_full_size_image_matches_reference(tmp_path):
  d = _fixture("stylegan2_afhqcat512_image.npz")
  assert json.loads(str(d["config"])) == RELEASED_CONFIGS["afhqcat"].to_dict()
  cfg, variables = _converted(tmp_path, d)
  x = np.asarray(StyleGAN2Generator(cfg, variables).generate({"z": d["z"]}))
  o = int(d["crop_offset"])
  assert _abs(x[:, o : o + 64, o : o + 64], d["image_crop"]) <= 1e-4
  b, h, w, c = x.shape
  assert _abs(x.reshape(b, h // 8, 8, w // 8, 8, c).mean((2, 4)), d["image_pool"]) <= 1e-4
  np.testing.assert_allclose([x.mean(), x.std(), np.abs(x).max()], d["image_stats"], rtol=1e-5, atol=1e-5)


def test_stylegan2_released_config_and_taps():
  cfg = StyleGAN2Config.from_init_kwargs(RELEASED_INIT_KWARGS["afhqcat"])
  assert cfg == RELEASED_CONFIGS["afhqcat"]
  assert cfg.num_ws == 16 and cfg.resolutions == (4, 8, 16, 32, 64, 128, 256, 512)
  assert cfg.channels() == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64}
  assert cfg.fp16_resolutions() == (64, 128, 256, 512)
  names = cfg.tap_names
  assert names[:5] == ("b4.conv1", "b4", "b8.conv0", "b8.conv1", "b8") and names[-1] == "b512"
  assert len(names) == 2 + 3 * 7
  shapes = {n: (r, r, c) for n, r, _, c in cfg.taps()}
  assert shapes["b32"] == (32, 32, 512) and shapes["b256"] == (256, 256, 128)


def test_stylegan2_convert_cli_round_trip_and_load(tmp_path):
  cfg = StyleGAN2Config(
    z_dim=8, w_dim=8, img_resolution=8, channel_base=64, channel_max=8, mapping_layers=2, conv_clamp=256
  )
  pkl = tmp_path / "net.pkl"
  testing.write_random_pickle(pkl, cfg, seed=3)
  out = tmp_path / "ckpt"
  assert convert.main(["--pickle", str(pkl), "--out", str(out)]) == 0
  gen = convert.load(out, truncation=0.5)
  _, variables = convert.read_pickle(pkl)
  ref = StyleGAN2Generator(cfg, variables, truncation=0.5)
  codes = gen.sample_codes(jax.random.PRNGKey(0), 2)
  assert codes["z"].shape == (2, 8) and codes["truncation"] == 0.5 and codes["noise_mode"] == "const"
  np.testing.assert_array_equal(np.asarray(gen.generate(codes)), np.asarray(ref.generate(codes)))
  assert convert.main(["--pickle", str(pkl), "--out", str(out)]) == 2  # exists, no --overwrite


def _cli(*args):
  r = subprocess.run(
    [sys.executable, "-m", "regionjax.ports.stylegan2.convert", *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    env=dict(os.environ, PYTHONPATH=ROOT),
  )
  return r.returncode, r.stderr.strip()


def test_stylegan2_convert_bad_files_one_clear_line(tmp_path, capsys):
  cfg = StyleGAN2Config(z_dim=8, w_dim=8, img_resolution=8, channel_base=64, channel_max=8, mapping_layers=2)
  good = nvp.dumps({"G_ema": testing.random_generator(cfg, 0)})
  resnet = testing.random_generator(cfg, 0)
  resnet.meta["state"]["_init_kwargs"]["synthesis_kwargs"]["architecture"] = "resnet"
  cond = testing.random_generator(cfg, 0)
  cond.meta["state"]["_init_kwargs"]["c_dim"] = 10
  cases = {
    "text.pkl": (b"not a pickle at all", "not a pickle"),
    "trunc.pkl": (good[: len(good) // 3], "truncated"),
    "sid.pkl": (nvp.dumps({"ema": nvp.persistent("EDMPrecond")}), "not {'G_ema'"),
    "disc.pkl": (nvp.dumps({"G_ema": nvp.persistent("Discriminator")}), "Discriminator as G_ema"),
    "resnet.pkl": (nvp.dumps({"G_ema": resnet}), "architecture='resnet'"),
    "cond.pkl": (nvp.dumps({"G_ema": cond}), "class-conditional"),
    "evil.pkl": (b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueR.", "refusing to load os.system"),
  }
  for name, (raw, needle) in cases.items():
    (tmp_path / name).write_bytes(raw)
    rc = convert.main(["--pickle", str(tmp_path / name), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err and needle in err, (name, err)
  assert not (tmp_path / "o").exists()
  # the command line itself (one subprocess): a missing file names the release and the command
  rc, err = _cli("--pickle", str(tmp_path / "missing.pkl"), "--out", str(tmp_path / "o"))
  assert rc == 2 and "afhqcat.pkl" in err and "python -m regionjax.ports.stylegan2.convert" in err and "\n" not in err


def test_stylegan2_generator_rejects_bad_inputs(small):
  _, gen, _, _ = small
  z = np.zeros((1, gen.config.z_dim), np.float32)
  with pytest.raises(ValueError, match="unknown layer"):
    gen.encode({"z": z}, "layer99")
  with pytest.raises(ValueError, match="codes\\['z'\\] must be"):
    gen.generate({"z": np.zeros((1, 3), np.float32)})
  with pytest.raises(ValueError, match="must have shape"):
    gen.decode({"z": z}, "b16", np.zeros((1, 8, 8, 3)))
  with pytest.raises(ValueError, match="noise_mode"):
    gen.generate({"z": z, "noise_mode": "loud"})
  with pytest.raises(ValueError, match="truncation"):
    gen.generate({"z": z, "truncation": float("nan")})
  with pytest.raises(ValueError, match="unconditional"):
    gen.sample_codes(jax.random.PRNGKey(0), 1, classes=[3])


def test_stylegan2_registry_names_the_release_without_a_checkpoint_and_config_has_paper_settings():
  from configs import stylegan2 as cfg_file
  from regionjax.ports import registry

  c = cfg_file.get_config()
  assert (c.model.name, c.model.layer, c.solver.lam, c.solver.learning_rate, c.solver.steps) == (
    "stylegan2",
    "layer3",
    500.0,
    1e-3,
    10000,
  )  # v2 §3 and App. E Table 2
  with pytest.raises(ValueError) as e:
    registry.build(c.model)
  assert "afhqcat.pkl" in str(e.value) and "python -m regionjax.ports.stylegan2.convert" in str(e.value)
