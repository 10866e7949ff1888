"""rj.from_torch: the face GAN's own PyTorch module against the Flax port, the protocol, the errors, the CLI.

Skips only without torch. torchax (the test extra) and gan-face-generate
(installed with --no-deps by scripts/test.sh) are required next to torch: a
missing one fails the module, it does not hide it.
"""

import json
import linecache
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="rj.from_torch runs PyTorch modules")

import regionjax as rj  # noqa: E402
from regionjax import torch_bridge  # noqa: E402

try:
  torch_bridge.import_torchax()
  import gan_face_generate  # noqa: F401
except ImportError as e:
  pytest.fail(
    f"{e} — with torch installed, the bridge's tests need torchax (pip install -e '.[test]') and gan-face-generate "
    f"(pip install --no-deps gan-face-generate==1.1.1); scripts/test.sh installs both",
    pytrace=False,
  )

import regionjax.ports.dcgan as dcgan  # noqa: E402
from regionjax.ports.dcgan import torch_face  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACE_TAPS = ("layer1", "layer3")  # 8×8×256 and the default 32×32×64

# A tiny generator in PyTorch, with a skip connection from the stem around 'body' (decode must keep the paths that
# do not pass through the split), and the modules the bridge cannot trace; the CLI tests import the same source.
MODEL_SOURCE = '''
import torch
from torch import nn


class Tiny(nn.Module):
  """z (6,) -> stem 8x4x4 -> body -> 2x up -> head conv -> tanh: (B, 3, 8, 8), plus a skip from the stem."""

  def __init__(self, body=None):
    super().__init__()
    self.stem = nn.Linear(6, 8 * 4 * 4)
    self.body = body if body is not None else nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.LeakyReLU(0.2))
    self.up = nn.Upsample(scale_factor=2, mode="nearest")
    self.head = nn.Conv2d(8, 3, 3, padding=1)

  def forward(self, z):
    h0 = self.stem(z).reshape(-1, 8, 4, 4)
    h = self.body(h0)
    return torch.tanh(self.head(self.up(h + 0.3 * h0)))


class ViewInPlace(nn.Module):
  def forward(self, x):
    y = x * 1
    y.view(-1).mul_(2)
    return y


class Branch(nn.Module):
  def forward(self, x):
    if x.mean() > 0:
      return x
    return -x


class Item(nn.Module):
  def forward(self, x):
    return x * x.abs().max().item()


class MaxPool(nn.Module):
  def forward(self, x):
    return x + nn.functional.adaptive_max_pool2d(x, 1)


class Counter(nn.Module):
  def __init__(self):
    super().__init__()
    self.register_buffer("calls", torch.zeros(()))

  def forward(self, x):
    self.calls += 1
    return x


class Noise(nn.Module):
  def forward(self, x):
    return x + 0.1 * torch.randn_like(x)


class CpuConstant(nn.Module):
  def forward(self, x):
    return x * torch.linspace(0.5, 1.5, 8).reshape(1, 8, 1, 1)


def tiny(body=None, seed=0):
  torch.manual_seed(seed)
  return Tiny(body).eval()


def module(model_config=None):
  """'torch:tiny_torch_model:module': the nn.Module (codes from model.input_shape)."""
  return tiny()


def make(model_config):
  """'torch:tiny_torch_model:make': a generator built here with rj.from_torch."""
  import regionjax as rj

  return rj.from_torch(tiny(), split=model_config.layer, sample_codes=(6,))


def branch(model_config=None):
  return tiny(nn.Sequential(nn.Identity(), Branch()))
'''

namespace: dict = {}
exec(compile(MODEL_SOURCE, "tiny_torch_model.py", "exec"), namespace)  # the same source the subprocesses import
# the source lines of the exec'd code, for the errors that quote them (a file's lines are read from the file)
linecache.cache["tiny_torch_model.py"] = (len(MODEL_SOURCE), None, MODEL_SOURCE.splitlines(True), "tiny_torch_model.py")
tiny = namespace["tiny"]
nn = torch.nn


@pytest.fixture(scope="module")
def face():
  """The package's own module through the bridge (split at two of the four taps) and the Flax port.

  Building it compares every submodule's output with PyTorch's (``verify``), all four taps included."""
  return torch_face.load(split=[torch_face.TAPS[t] for t in FACE_TAPS]), dcgan.load()


@pytest.fixture(scope="module")
def small():
  return rj.from_torch(tiny(), split=["stem", "body", "body.0"], sample_codes=(6,))


def _close(a, b, rtol=1e-5):
  """Equal within float32 rounding relative to the scale of ``b`` (finite, same shape)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  assert a.shape == b.shape and np.isfinite(a).all() and np.isfinite(b).all()
  scale = max(1.0, float(np.abs(b).max()))
  assert float(np.abs(a - b).max()) <= rtol * scale, float(np.abs(a - b).max())


# ---------------------------------------------------------------- parity with the Flax port
def test_face_gan_images_and_features_equal_the_flax_port(face):
  gt, gf = face
  assert isinstance(gt, rj.Generator) and gt.num_classes is None and gt.layers == ("main.5", "main.11")
  codes = gf.sample_codes(jax.random.PRNGKey(3), 2)
  xf = np.asarray(gf.generate(codes))
  assert np.abs(xf).max() > 0.5  # real faces, not a constant
  _close(gt.generate(codes), xf)
  for flax_layer in FACE_TAPS:
    path = torch_face.TAPS[flax_layer]
    ff = np.asarray(gf.encode(codes, flax_layer))
    ft = np.asarray(gt.encode(codes, path))
    assert gt.feature_shape(path) == gf.feature_shape(flax_layer) == ft.shape[1:]  # channels last, like the port
    _close(ft, ff)
    _close(gt.decode(codes, path, ff), gf.decode(codes, flax_layer, ff))  # the same g on the same feature
    _close(gt.decode(codes, path, ft), xf)  # round trip


def test_face_gan_or_components_equal_the_flax_port(face):
  """The same solver settings on both decoders (a few steps, two players): the same u(S) and OR components."""
  gt, gf = face
  codes = gf.sample_codes(jax.random.PRNGKey(0), 1)
  base = gf.sample_codes(jax.random.PRNGKey(1), 16)
  masks = rj.patch_masks(64, 64, 4, 4)[[5, 6]]
  settings = dict(lam=200.0, learning_rate=0.01, steps=3, chunk_size=4, optimizer="adam")
  out = {}
  for name, gen, layer in ((("torch", gt, "main.11")), ("flax", gf, "layer3")):
    f = np.asarray(gen.encode(codes, layer))[0]
    f0 = np.asarray(gen.encode(base, layer)).mean(0)
    image = np.asarray(gen.generate(codes))[0]

    def decode(v, gen=gen, layer=layer):
      return gen.decode(codes, layer, v[None])[0]

    res = rj.solve_minimal_features(decode, f, f0, image, masks, **settings)
    out[name] = (np.asarray(res.u), np.asarray(rj.or_components(res.u)))
  (ut, ct), (uf, cf) = out["torch"], out["flax"]
  assert ct.shape == (4, 32, 32, 64)
  assert np.abs(cf[1:]).max() > 1e-3  # the solver moved: components are not all zero
  _close(ut, uf)
  _close(ct, cf, rtol=1e-4)  # differences of u(S): rounding of the larger terms


# ---------------------------------------------------------------- the protocol on a small module
def test_protocol_taps_and_round_trip(small):
  assert isinstance(small, rj.Generator)
  taps = {t[0]: t for t in small.taps}
  assert taps["stem"][1] == (1, 128) and taps["body.0"][1] == (1, 4, 4, 8) and taps["head"][1] == (1, 8, 8, 3)
  assert all(t[3] == 1 for t in small.taps)
  codes = small.sample_codes(jax.random.PRNGKey(1), 3)
  x = np.asarray(small.generate(codes))
  assert x.shape == (3, 8, 8, 3) and x.dtype == np.float32 and np.abs(x).max() <= 1
  with torch.no_grad():  # PyTorch itself, NCHW → NHWC
    ref = small.module(torch.from_numpy(np.asarray(codes["z"]))).numpy().transpose(0, 2, 3, 1)
  _close(x, ref)
  for layer in small.layers:
    f = small.encode(codes, layer)
    assert f.shape == (3,) + small.feature_shape(layer)
    _close(small.decode(codes, layer, f), x)


def test_decode_keeps_the_skip_path_and_is_pure_in_the_feature(small):
  codes = small.sample_codes(jax.random.PRNGKey(2), 1)
  f = small.encode(codes, "body")
  other = small.sample_codes(jax.random.PRNGKey(3), 1)
  # the skip from the stem comes from the codes: the same feature with other codes gives another image
  assert np.abs(np.asarray(small.decode(codes, "body", f)) - np.asarray(small.decode(other, "body", f))).max() > 1e-4


def test_decode_jits_vmaps_and_differentiates(small):
  codes = small.sample_codes(jax.random.PRNGKey(4), 1)
  f = small.encode(codes, "body")[0]

  def g(v):
    return small.decode(codes, "body", v[None])[0]

  batch = f[None] * jnp.linspace(0.5, 1.5, 4)[:, None, None, None]
  looped = np.stack([np.asarray(g(v)) for v in batch])
  _close(jax.jit(jax.vmap(g))(batch), looped)
  grad = jax.grad(lambda v: jnp.sum(g(v) ** 2))(f)
  assert grad.shape == f.shape and np.isfinite(grad).all() and np.abs(grad).max() > 0
  with torch.no_grad():  # the gradient PyTorch computes for the same function
    tf = torch.from_numpy(np.asarray(f).transpose(2, 0, 1)[None].copy()).requires_grad_()
  m = small.module
  with torch.enable_grad():
    h0 = m.stem(torch.from_numpy(np.asarray(codes["z"]))).reshape(-1, 8, 4, 4)
    (torch.tanh(m.head(m.up(tf + 0.3 * h0))) ** 2).sum().backward()
  _close(grad, tf.grad[0].numpy().transpose(1, 2, 0), rtol=1e-4)


def test_bad_layers_features_codes_and_modules(small):
  codes = small.sample_codes(jax.random.PRNGKey(0), 2)
  with pytest.raises(ValueError, match="unknown layer 'head'"):
    small.encode(codes, "head")
  with pytest.raises(ValueError, match=r"must have shape \(B, 4, 4, 8\)"):
    small.decode(codes, "body", jnp.zeros((2, 8, 4, 4)))
  with pytest.raises(ValueError, match="unconditional"):
    small.sample_codes(jax.random.PRNGKey(0), 2, classes=[0, 1])
  with pytest.raises(ValueError, match=r"split 'bdy' is not a submodule .*did you mean 'body'"):
    rj.from_torch(tiny(), split="bdy", sample_codes=(6,))
  with pytest.raises(ValueError, match=r"training mode .*module.eval\(\)"):
    rj.from_torch(tiny().train(), split="body", sample_codes=(6,))
  with pytest.raises(ValueError, match="needs a torch.nn.Module"):
    rj.from_torch(lambda z: z, split="body", sample_codes=(6,))
  act = nn.LeakyReLU(0.2)  # one module object called twice: no single output to split at
  twice = tiny(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), act, nn.Conv2d(8, 8, 3, padding=1), act))
  with pytest.raises(ValueError, match=r"split 'body.1' is called 2 times"):
    rj.from_torch(twice, split="body.1", sample_codes=(6,))


# ---------------------------------------------------------------- what the bridge cannot trace
@pytest.mark.parametrize(
  "body, op, words",
  [
    ("ViewInPlace", "aten.mul_.Tensor", ["differs from PyTorch", "in-place", "out of place"]),
    ("Branch", "aten._local_scalar_dense.default", ["Tensor.__bool__", "`if x.mean() > 0:`", "torch.where"]),
    ("Item", "aten._local_scalar_dense.default", ["Tensor.item", ".item()"]),
    ("MaxPool", "aten::adaptive_max_pool2d", ["has no JAX lowering in torchax"]),
    ("Counter", "aten.add_.Tensor", ["changes the buffer 'body.1.calls'"]),
    ("CpuConstant", "aten.mul.Tensor", ["plain CPU torch.Tensor"]),
    ("Noise", "aten.randn_like.default", ["random numbers", "seed=0", "verify=False"]),
  ],
)
def test_untraceable_modules_raise_one_line_naming_module_and_op(body, op, words):
  module = tiny(nn.Sequential(nn.Identity(), namespace[body]()))
  with pytest.raises(rj.TorchBridgeError) as info:
    rj.from_torch(module, split="body.0", sample_codes=(6,))
  e = info.value
  assert isinstance(e, ValueError) and e.module == "body.1" and e.op == op
  message = str(e)
  assert "\n" not in message and message.startswith(f"torch module 'body.1' ({body}): ")
  assert op in message
  for w in words:
    assert w in message, (w, message)


def test_random_draws_are_fixed_noise_without_verification():
  gen = rj.from_torch(
    tiny(nn.Sequential(nn.Identity(), namespace["Noise"]())), split="body.0", sample_codes=(6,), verify=False
  )
  codes = gen.sample_codes(jax.random.PRNGKey(0), 2)
  x = np.asarray(gen.generate(codes))
  np.testing.assert_array_equal(np.asarray(gen.generate(codes)), x)  # the same noise on every call
  _close(gen.decode(codes, "body.0", gen.encode(codes, "body.0")), x)
  with torch.no_grad():  # ... and it is noise: the image differs from the noiseless module's
    clean = gen.module.head(
      gen.module.up(1.3 * gen.module.stem(torch.from_numpy(np.asarray(codes["z"]))).reshape(-1, 8, 4, 4))
    )
  assert np.abs(x - torch.tanh(clean).numpy().transpose(0, 2, 3, 1)).max() > 1e-3


def test_regionjax_imports_neither_torch_nor_torchax():
  code = "import sys, regionjax, regionjax.ports.registry; assert not {'torch', 'torchax'} & set(sys.modules), sorted(sys.modules)"
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr[-2000:]


def test_torchax_import_shim_only_covers_removed_named_overloads():
  torch_bridge.import_torchax()
  with torch_bridge._removed_named_overloads_as_placeholders():
    assert isinstance(torch.ops.aten.prod.dim_NotAnOverloadDimname, torch_bridge._RemovedOverload)
    with pytest.raises(AttributeError):
      torch.ops.aten.prod.not_an_overload  # anything else still fails
  with pytest.raises(AttributeError):
    torch.ops.aten.prod.dim_NotAnOverloadDimname  # the lookup is restored afterwards


# ---------------------------------------------------------------- the command line
def _main(tmp_path, *args, timeout=600):
  (tmp_path / "tiny_torch_model.py").write_text(MODEL_SOURCE)
  env = dict(os.environ, XLA_FLAGS="", PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]))
  return subprocess.run(
    [sys.executable, os.path.join(ROOT, "main.py"), *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )


TINY_RUN = [
  "--config.patches.rows=2",
  "--config.patches.cols=2",
  "--config.patches.n=2",
  "--config.patches.method=indices",
  "--config.patches.indices=(0,3)",
  "--config.baseline.num_codes=8",
  "--config.baseline.batch_size=8",
  "--config.solver.steps=3",
  "--config.solver.lam_max=400.0",
  "--config.metrics.top_k=3",
  "--config.metrics.transfer_k=3",
  "--config.metrics.consistency_contexts=2",
  "--config.metrics.decode_batch=8",
]


@pytest.mark.slow  # a full main.py run, 13-19 s on the 2-core CPU: the fast suite stays under 10 minutes
def test_cli_explains_a_torch_module(tmp_path):
  """'torch:module:factory' returning an nn.Module, split at a module path, codes of model.input_shape."""
  workdir = tmp_path / "run"
  proc = _main(
    tmp_path,
    "--config=configs/from_torch.py",
    f"--config.workdir={workdir}",
    "--config.model.name=torch:tiny_torch_model:module",
    "--config.model.layer=body",
    "--config.model.input_shape=(6,)",
    *TINY_RUN,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  exp = rj.load(str(workdir))
  components = np.asarray(exp.components())
  assert components.shape == (1, 4, 4, 4, 8) and exp.image.shape == (1, 8, 8, 3)  # features channels last
  assert np.isfinite(components).all() and np.abs(components[0, 1:]).max() > 0
  metrics = json.load(open(workdir / "metrics.json"))
  assert metrics["summary"]["layer"] == "body"
  assert "model torch:tiny_torch_model:module at body" in proc.stdout


def test_cli_errors_are_one_line(tmp_path):
  proc = _main(
    tmp_path,
    "--config=configs/from_torch.py",
    f"--config.workdir={tmp_path / 'run'}",
    "--config.model.name=torch:tiny_torch_model:branch",
    "--config.model.layer=body.0",
    "--config.model.input_shape=(6,)",
  )
  assert proc.returncode == 2, proc.stderr[-3000:]
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  errors = [line for line in lines if line.startswith("error:")]
  assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert errors[0].startswith("error: torch module 'body.1' (Branch): Tensor.__bool__")
  assert "tiny_torch_model.py:" in errors[0] and "`if x.mean() > 0:`" in errors[0]


@pytest.mark.slow
def test_cli_face_gan_through_the_bridge_equals_the_flax_port(tmp_path):
  """configs/from_torch.py (the package's PyTorch module) and configs/default.py (the Flax port), same tiny
  settings: the same saved explanation (~3 min on a loaded 2-core machine)."""
  small = [
    "--config.baseline.num_codes=8",
    "--config.baseline.batch_size=8",
    "--config.patches.n=2",
    "--config.solver.steps=2",
    "--config.metrics.decode_batch=8",
  ]
  runs = {}
  for name, config in (("torch", "configs/from_torch.py"), ("flax", "configs/default.py")):
    workdir = tmp_path / name
    proc = _main(tmp_path, f"--config={config}", f"--config.workdir={workdir}", *small, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ("model torch:regionjax.ports.dcgan.torch_face:module at main.11" in proc.stdout) == (name == "torch")
    exp = rj.load(str(workdir))
    runs[name] = {
      "f": exp.f,
      "f0": exp.f0,
      "image": exp.image,
      "u": exp.minimal_features(),
      "components": exp.components(),
    }
  for key, value in runs["flax"].items():
    _close(runs["torch"][key], value, rtol=1e-4)


def test_registry_torch_forms(tmp_path, monkeypatch):
  import ml_collections

  from regionjax.ports import registry

  (tmp_path / "tiny_torch_model.py").write_text(textwrap.dedent(MODEL_SOURCE))
  monkeypatch.syspath_prepend(str(tmp_path))
  c = ml_collections.ConfigDict({"name": "torch:tiny_torch_model:make", "layer": "body", "checkpoint": ""})
  gen = registry.build(c)  # the factory's own rj.from_torch generator, as it is
  assert isinstance(gen, torch_bridge.TorchGenerator) and gen.layers == ("body",)
  c.name = "torch:tiny_torch_model:nowhere"
  with pytest.raises(ValueError, match="cannot import 'nowhere'"):
    registry.build(c)
  c.name = "torch:tiny_torch_model:module"  # an nn.Module, and no model.input_shape to draw codes of
  with pytest.raises(ValueError, match=r"gives a Tiny: set model.input_shape"):
    registry.build(c)
  c.input_shape = (6,)
  gen = registry.build(c)
  assert gen.layers == ("body",) and gen.sample_codes(jax.random.PRNGKey(0), 2)["z"].shape == (2, 6)
