"""The DCGAN face port: parity with PyTorch and with the released generator's recorded outputs."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import regionjax.ports.dcgan as dcgan
from regionjax.ports.dcgan import convert

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "dcgan_face_reference.npz")


def _torch_generator(state, nz, ngf):
  """The DCGAN-tutorial generator built from torch.nn primitives, loaded with ``state``."""
  torch = pytest.importorskip("torch")
  nn = torch.nn
  w = (8 * ngf, 4 * ngf, 2 * ngf, ngf)
  layers = [nn.ConvTranspose2d(nz, w[0], 4, 1, 0, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU()]
  for a, b in zip(w[:-1], w[1:]):
    layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
  layers += [nn.ConvTranspose2d(w[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
  main = nn.Sequential(*layers)
  main.load_state_dict({k[len("main.") :]: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
  return main.eval()


def _random_state(nz=100, ngf=8, seed=0):
  rng = np.random.default_rng(seed)
  state = {}
  for k, shape in convert.expected_shapes(dcgan.DCGANConfig(nz=nz, ngf=ngf)).items():
    if k.endswith("running_var"):
      state[k] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
    elif k.endswith("running_mean") or k.endswith("bias"):
      state[k] = rng.normal(0, 0.3, shape).astype(np.float32)
    elif len(shape) == 1:
      state[k] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    else:
      state[k] = rng.normal(0, 0.05, shape).astype(np.float32)
  return state


def test_dcgan_parity_with_torch_random_weights():
  torch = pytest.importorskip("torch")
  state = _random_state(nz=100, ngf=8)
  config, variables = convert.state_dict_to_variables(state)
  assert config == dcgan.DCGANConfig(nz=100, ngf=8)
  gen = dcgan.DCGANGenerator(config, variables)
  codes = gen.sample_codes(jax.random.PRNGKey(3), 3)
  ref = _torch_generator(state, 100, 8)
  with torch.no_grad():
    zt = torch.from_numpy(np.array(codes["z"]))[:, :, None, None]
    want = ref(zt).numpy().transpose(0, 2, 3, 1)
    taps = [ref[: 3 * (i + 1)](zt).numpy().transpose(0, 2, 3, 1) for i in range(4)]
  got = np.asarray(gen.generate(codes))
  assert got.shape == (3, 64, 64, 3)
  assert np.isfinite(got).all() and np.abs(got - want).max() <= 1e-4
  for i, tap in enumerate(taps):
    f = np.asarray(gen.encode(codes, f"layer{i}"))
    assert f.shape == tap.shape
    assert np.abs(f - tap).max() <= 1e-4 * max(np.abs(tap).max(), 1e-6)
    # decode(encode) is the whole generator
    np.testing.assert_allclose(np.asarray(gen.decode(codes, f"layer{i}", f)), got, atol=1e-5)


def test_dcgan_shipped_weights_match_the_released_generator():
  """The shipped msgpack reproduces gan-face-generate 1.1.1 run by its own code (recorded fixture)."""
  ref = np.load(FIXTURE)
  gen = dcgan.load()
  codes = {"z": jnp.asarray(ref["z"])}
  got = np.asarray(gen.generate(codes))
  assert np.isfinite(got).all()
  assert np.abs(got - ref["images"]).max() <= 1e-4
  tap = np.asarray(gen.encode({"z": codes["z"][:1]}, "layer2"))
  assert np.abs(tap - ref["layer2"]).max() <= 1e-4 * np.abs(ref["layer2"]).max()
  assert "gan-face-generate==1.1.1" in str(ref["reference"])


def test_dcgan_decode_is_differentiable_and_vmappable():
  gen = dcgan.load()
  codes = gen.sample_codes(jax.random.PRNGKey(0), 1)
  f = gen.encode(codes, "layer2")[0]
  dec = lambda v: gen.decode(codes, "layer2", v[None])[0]  # noqa: E731
  g = jax.grad(lambda v: jnp.sum(dec(v) ** 2))(f)
  assert g.shape == f.shape and np.isfinite(np.asarray(g)).all() and float(jnp.abs(g).max()) > 0
  batch = jax.vmap(dec)(jnp.stack([f, f * 0.5]))
  assert batch.shape == (2, 64, 64, 3)


def test_dcgan_bad_inputs():
  gen = dcgan.load()
  with pytest.raises(ValueError, match="unknown layer"):
    gen.encode(gen.sample_codes(jax.random.PRNGKey(0), 1), "layer9")
  with pytest.raises(ValueError, match="must have shape"):
    gen.decode(gen.sample_codes(jax.random.PRNGKey(0), 1), "layer2", jnp.zeros((1, 8, 8, 256)))
  with pytest.raises(ValueError, match=r"codes\['z'\]"):
    gen.generate({"z": jnp.zeros((1, 7))})
  with pytest.raises(ValueError, match="not a DCGAN generator"):
    convert.state_dict_to_variables({"foo": np.zeros(3)})
  bad = _random_state(ngf=8)
  bad.pop("main.4.running_var")
  with pytest.raises(ValueError, match="missing"):
    convert.state_dict_to_variables(bad)


def test_dcgan_convert_cli(tmp_path):
  torch = pytest.importorskip("torch")
  state = _random_state(ngf=8, seed=1)
  path = tmp_path / "weights.tar"
  torch.save({"netG_state_dict": {k: torch.from_numpy(v) for k, v in state.items()}}, path)
  out = tmp_path / "w.msgpack"
  assert convert.main(["--weights", str(path), "--out", str(out)]) == 0
  gen = dcgan.load(str(out), dcgan.DCGANConfig(ngf=8))
  assert gen.generate(gen.sample_codes(jax.random.PRNGKey(0), 1)).shape == (1, 64, 64, 3)
  (tmp_path / "junk.tar").write_bytes(b"not a torch file")
  assert convert.main(["--weights", str(tmp_path / "junk.tar"), "--out", str(out)]) == 2
  with pytest.raises(ValueError, match="not a DCGAN checkpoint|other shapes"):
    dcgan.load(str(out))  # ngf=8 weights read as the default ngf=64
