"""regionjax.ports.sid: parity with the reference SiD/EDM code (committed fixtures), taps,
decode, converter and its errors. Select with `pytest -k sid`."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from regionjax.ports import nvlabs_pickle as nvp
from regionjax.ports.sid import SiDConfig, SiDGenerator, precond
from regionjax.ports.sid import convert, testing
from regionjax.ports.sid.config import RELEASED_CONFIGS, RELEASED_INIT_KWARGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def _fixture(name):
  d = np.load(os.path.join(FIXTURES, name))
  assert str(d["repository"]) == "https://github.com/mingyuanzhou/SiD" and len(str(d["commit"])) == 40
  assert "make_sid_fixtures.py" in str(d["command"])
  return d


def _converted(tmp_path, d):
  """Our writer's pickle of the fixture's random weights, read by the converter."""
  cfg = SiDConfig.from_dict(json.loads(str(d["config"])))
  path = tmp_path / "net.pkl"
  testing.write_random_pickle(path, cfg, seed=int(d["seed"]))
  cfg2, variables = convert.read_pickle(path)
  assert cfg2 == cfg
  return SiDGenerator(cfg2, variables)


def _rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  assert a.shape == b.shape and np.isfinite(a).all() and np.isfinite(b).all()
  return float(np.abs(a - b).max() / np.abs(b).max())


# Taps whose encode/decode programs the fast tests compile (the perturbed ones;
# each tap is its own XLA program, seconds to compile on CPU). The slow test
# checks every tap.
_CHECKED = ("enc/8x8_block1", "dec/8x8_up")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
  d = _fixture("sid_small_parity.npz")
  return d, _converted(tmp_path_factory.mktemp("sid"), d)


@pytest.fixture(scope="module")
def small_taps(small):
  """(image, {tap: features}) of the fixture's codes, from one compiled program."""
  d, gen = small
  x, taps = gen.generate_with_taps({"z": d["z"]})
  return np.asarray(x), {k: np.asarray(v) for k, v in taps.items()}


def test_sid_small_image_matches_reference(small):
  d, gen = small
  x = np.asarray(gen.generate({"z": d["z"]}))
  assert np.isfinite(x).all() and np.abs(d["image"]).max() > 0.5  # a real image, not a degenerate one
  err = float(np.abs(x - d["image"]).max())
  assert err <= 1e-4, err


def test_sid_small_taps_match_reference(small, small_taps):
  d, gen = small
  _, taps = small_taps
  names = [k[4:] for k in d.files if k.startswith("tap:")]
  assert names == list(gen.block_names)
  for name in names:
    assert _rel(taps[name], d["tap:" + name]) <= 1e-4, name
  # each tap's encode is its own program; the slow test checks every tap
  np.testing.assert_allclose(gen.encode({"z": d["z"]}, "dec/8x8_up"), taps["dec/8x8_up"], rtol=0, atol=1e-5)
  i = gen.block_names.index("dec/8x8_up")
  np.testing.assert_array_equal(gen.encode({"z": d["z"]}, f"layer{i}"), gen.encode({"z": d["z"]}, "dec/8x8_up"))


def _check_perturbed(d, gen, taps, only=None):
  codes = {"z": d["z"]}
  keys = [k[len("perturbed:") :] for k in d.files if k.startswith("perturbed:")]
  assert any(k.startswith("enc/") for k in keys) and any(k.startswith("dec/") for k in keys)
  for k in keys:
    if only is not None and k not in only:
      continue
    f = taps[k] + d["delta:" + k]
    x = np.asarray(gen.decode(codes, k, f))
    assert np.abs(d["perturbed:" + k] - d["image"]).max() > 1e-2  # the perturbation matters
    err = float(np.abs(x - d["perturbed:" + k]).max())
    assert err <= 1e-4, (k, err)


@pytest.mark.slow  # over 20 s on the 2-core CPU; CI runs it with -m slow
def test_sid_small_decode_after_perturbed_tap_matches_reference(small, small_taps):
  d, gen = small
  _check_perturbed(d, gen, small_taps[1], only=_CHECKED)  # one encoder and one decoder tap; all in the slow test


def _decode_own(gen, d, names, x, taps):
  codes = {"z": d["z"]}
  for name in names:
    np.testing.assert_allclose(gen.decode(codes, name, taps[name]), x, rtol=0, atol=1e-5, err_msg=name)
  return codes


def test_sid_decode_of_own_features_regenerates_the_image(small, small_taps):
  d, gen = small
  x, taps = small_taps
  codes = _decode_own(gen, d, _CHECKED, x, taps)
  # under an outer jit with the codes fixed (the solver's use), and its gradient
  f = gen.encode(codes, "dec/8x8_up")
  np.testing.assert_allclose(jax.jit(lambda u: gen.decode(codes, "dec/8x8_up", u))(f), x, rtol=0, atol=1e-5)
  g = jax.grad(lambda u: (gen.decode(codes, "dec/8x8_up", u) ** 2).sum())(f)
  assert np.isfinite(np.asarray(g)).all() and np.abs(np.asarray(g)).max() > 0


@pytest.mark.slow
def test_sid_every_tap_encodes_and_decodes_like_the_reference(small, small_taps):
  d, gen = small
  x, taps = small_taps
  codes = _decode_own(gen, d, gen.block_names, x, taps)
  _check_perturbed(d, gen, taps)
  for name in gen.block_names:
    assert _rel(gen.encode(codes, name), d["tap:" + name]) <= 1e-4, name
  f = gen.encode(codes, "enc/16x16_conv")  # traced codes: prefix and tail inline in one program
  np.testing.assert_allclose(
    jax.jit(lambda z, u: gen.decode({"z": z}, "enc/16x16_conv", u))(d["z"], f), x, rtol=0, atol=1e-5
  )


def test_sid_image_includes_the_c_skip_noise_term():
  c_skip, c_out, c_in, c_noise = precond(2.5, 0.5)
  np.testing.assert_allclose(
    [c_skip * 2.5, c_out, c_in, c_noise], [0.0961538, 0.4902903, 0.3922323, 0.2290727], rtol=1e-5
  )


@pytest.mark.slow
def test_sid_ffhq64_full_size_image_matches_reference(tmp_path):
  d = _fixture("sid_ffhq64_image.npz")
  assert json.loads(str(d["config"])) == RELEASED_CONFIGS["sid-ffhq64"].to_dict()
  gen = _converted(tmp_path, d)
  x = np.asarray(gen.generate({"z": d["z"]}))
  err = float(np.abs(x - d["image"]).max())
  assert err <= 1e-4, err


def test_sid_released_config_and_taps():
  cfg = SiDConfig.from_init_kwargs(RELEASED_INIT_KWARGS["sid-ffhq64"])
  assert cfg == RELEASED_CONFIGS["sid-ffhq64"]
  names = cfg.tap_names
  assert names[0] == "enc/64x64_conv" and names[-1] == "dec/64x64_block4" and "dec/32x32_up" in names
  assert len(names) == 1 + 4 + 3 * 5 + 2 + 5 + 3 * 6
  shapes = {p + "/" + n: (r, r, o) for p, n, _, _, o, r, _ in cfg.blocks()}
  assert shapes["dec/32x32_up"] == (32, 32, 256) and shapes["dec/64x64_block4"] == (64, 64, 128)
  attn = [p + "/" + n for p, n, *_, a in cfg.blocks() if a]
  assert attn == [f"enc/16x16_block{i}" for i in range(4)] + ["dec/8x8_in0", "dec/16x16_block4"]


def test_sid_convert_cli_round_trip_and_load(tmp_path):
  cfg = SiDConfig(img_resolution=8, model_channels=8, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(4,))
  pkl = tmp_path / "net.pkl"
  testing.write_random_pickle(pkl, cfg, seed=3)
  out = tmp_path / "ckpt"
  assert convert.main(["--pickle", str(pkl), "--out", str(out)]) == 0
  gen = convert.load(out)
  _, variables = convert.read_pickle(pkl)
  ref = SiDGenerator(cfg, variables)
  codes = gen.sample_codes(jax.random.PRNGKey(0), 2)
  assert codes["z"].shape == (2, 8, 8, 3)
  np.testing.assert_array_equal(np.asarray(gen.generate(codes)), np.asarray(ref.generate(codes)))
  assert convert.main(["--pickle", str(pkl), "--out", str(out)]) == 2  # exists, no --overwrite


def _cli(*args):
  r = subprocess.run(
    [sys.executable, "-m", "regionjax.ports.sid.convert", *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    env=dict(os.environ, PYTHONPATH=ROOT),
  )
  return r.returncode, r.stderr.strip()


def test_sid_convert_bad_files_one_clear_line(tmp_path):
  cfg = SiDConfig(img_resolution=8, model_channels=8, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(4,))
  good = nvp.dumps({"ema": testing.random_network(cfg, 0)})
  wrong_net = nvp.dumps({"G_ema": nvp.persistent("Generator")})
  adm = testing.random_network(cfg, 0)
  adm.meta["state"]["_init_kwargs"]["model_type"] = "DhariwalUNet"
  cases = {
    "text.pkl": (b"not a pickle at all", "not a pickle"),
    "trunc.pkl": (good[: len(good) // 3], "truncated"),
    "wrong.pkl": (wrong_net, "not {'ema': network}"),
    "adm.pkl": (nvp.dumps({"ema": adm}), "model_type='DhariwalUNet'"),
    "evil.pkl": (b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueR.", "refusing to load os.system"),
  }
  for name, (raw, needle) in cases.items():
    (tmp_path / name).write_bytes(raw)
    rc, err = _cli("--pickle", str(tmp_path / name), "--out", str(tmp_path / "o"))
    assert rc == 2 and err.startswith("error: ") and "\n" not in err and needle in err, (name, err)
  rc, err = _cli("--pickle", str(tmp_path / "missing.pkl"), "--out", str(tmp_path / "o"))
  assert rc == 2 and "network-snapshot-1.200000-498176.pkl" in err and "\n" not in err


def test_sid_generator_rejects_bad_inputs(small):
  _, gen = small
  with pytest.raises(ValueError, match="unknown layer"):
    gen.encode({"z": np.zeros((1, 16, 16, 3), np.float32)}, "layer999")
  with pytest.raises(ValueError, match="codes\\['z'\\] must be"):
    gen.generate({"z": np.zeros((1, 8, 8, 3), np.float32)})
  with pytest.raises(ValueError, match="must have shape"):
    gen.decode({"z": np.zeros((1, 16, 16, 3), np.float32)}, "dec/8x8_up", np.zeros((1, 8, 8, 3)))
