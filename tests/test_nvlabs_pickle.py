"""regionjax.ports.nvlabs_pickle: reads NVlabs network pickles as data; refuses code."""

import collections
import os
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest

from regionjax.ports import nvlabs_pickle as nvp


def _network():
  lin = nvp.persistent(
    "Linear",
    parameters={"weight": np.arange(6, dtype=np.float32).reshape(2, 3), "bias": None},
    attributes={"in_features": 3, "out_features": 2},
    init_kwargs={"in_features": 3, "out_features": 2, "init_weight": np.float64(np.sqrt(0.5))},
  )
  conv = nvp.persistent(
    "Conv2d",
    parameters={
      "weight": np.random.RandomState(0).randn(4, 3, 3, 3).astype(np.float32).transpose(1, 0, 2, 3),
      "bias": np.array([1.5, -2.0, 0.25], np.float16),
    },
    buffers={
      "resample_filter": np.full((1, 1, 2, 2), 0.25, np.float32),
      "counter": np.array([7], np.int64),
      "mask": np.array([True, False]),
      "scratch": np.zeros(3, np.float64),
    },
    non_persistent_buffers=["scratch"],
    init_kwargs={"in_channels": 4, "out_channels": 3, "kernel": 3, "resample_filter": [1, 1]},
  )
  top = nvp.persistent(
    "EDMPrecond",
    modules={"lin": lin, "conv": conv},
    init_kwargs={"img_resolution": 16, "channel_mult": [1, 2], "use_fp16": True},
    attributes={"sigma_data": 0.5, "label_dim": 0},
    module_src="# not our concern\n",
  )
  return top


def test_pickle_round_trip_of_our_writer(tmp_path):
  path = tmp_path / "net.pkl"
  nvp.dump({"ema": _network(), "extra": [1, 2.5, "x", (3, None)]}, path)
  data = nvp.load(path)
  assert set(data) == {"ema", "extra"} and data["extra"] == [1, 2.5, "x", (3, None)]
  net = data["ema"]
  assert isinstance(net, nvp.PersistentObject) and net.class_name == "EDMPrecond"
  assert net.init_kwargs == {"img_resolution": 16, "channel_mult": [1, 2], "use_fp16": True}
  assert net.state["sigma_data"] == 0.5 and net.module_src == "# not our concern\n"
  sd = net.state_dict()
  # torch's order: own parameters, own persistent buffers, then each child in order
  assert list(sd) == ["lin.weight", "conv.weight", "conv.bias", "conv.resample_filter", "conv.counter", "conv.mask"]
  np.testing.assert_array_equal(sd["lin.weight"], np.arange(6, dtype=np.float32).reshape(2, 3))
  want = np.random.RandomState(0).randn(4, 3, 3, 3).astype(np.float32).transpose(1, 0, 2, 3)
  assert sd["conv.weight"].shape == (3, 4, 3, 3) and sd["conv.weight"].dtype == np.float32
  np.testing.assert_array_equal(sd["conv.weight"], want)
  assert sd["conv.bias"].dtype == np.float16 and sd["conv.bias"].tolist() == [1.5, -2.0, 0.25]
  assert sd["conv.counter"].dtype == np.int64 and sd["conv.counter"].tolist() == [7]
  assert sd["conv.mask"].tolist() == [True, False]
  kw = net.children()["lin"].init_kwargs
  assert isinstance(kw["init_weight"], np.float64) and kw["init_weight"] == np.float64(np.sqrt(0.5))


def test_pickle_writer_output_loads_in_torch_with_nvlabs_hook(monkeypatch):
  """Our writer produces what torch + torch_utils.persistence read (the hook
  here is a recorder, not NVlabs' exec-ing loader)."""
  torch = pytest.importorskip("torch")
  seen = []
  pkg, mod = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
  mod._reconstruct_persistent_obj = lambda meta: seen.append(meta["class_name"]) or meta
  pkg.persistence = mod
  monkeypatch.setitem(sys.modules, "torch_utils", pkg)
  monkeypatch.setitem(sys.modules, "torch_utils.persistence", mod)
  data = pickle.loads(nvp.dumps({"ema": _network()}))
  assert sorted(seen) == ["Conv2d", "EDMPrecond", "Linear"]
  conv = data["ema"]["state"]["_modules"]["conv"]["state"]
  assert isinstance(conv["_parameters"]["weight"], torch.nn.Parameter)
  want = np.random.RandomState(0).randn(4, 3, 3, 3).astype(np.float32).transpose(1, 0, 2, 3)
  np.testing.assert_array_equal(conv["_parameters"]["weight"].detach().numpy(), want)
  assert conv["_buffers"]["counter"].dtype == torch.int64


@pytest.mark.parametrize("protocol", [2, 4])
def test_pickle_reads_torch_pickled_tensors_and_containers(protocol):
  """Tensors, parameters, views and nn.ModuleDict as torch itself pickles them."""
  torch = pytest.importorskip("torch")
  base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
  box = torch.nn.ModuleDict()
  box.register_parameter("p", torch.nn.Parameter(torch.randn(3, 2, dtype=torch.float64)))
  box.register_buffer("h", torch.tensor([1.0, 2.0], dtype=torch.bfloat16))
  obj = {"view": base[1:, ::2].t(), "half": base.half(), "box": box, "od": collections.OrderedDict(a=1)}
  data = nvp.loads(pickle.dumps(obj, protocol=protocol))
  np.testing.assert_array_equal(data["view"], base[1:, ::2].t().numpy())
  np.testing.assert_array_equal(data["half"], base.half().numpy())
  sd = data["box"].state_dict()
  np.testing.assert_array_equal(sd["p"], box.p.detach().numpy())
  assert sd["h"].dtype == np.float32 and sd["h"].tolist() == [1.0, 2.0]  # bfloat16 widened
  assert data["od"] == {"a": 1}


def test_pickle_easydict_reads_as_dict():
  raw = b"\x80\x02cdnnlib.util\nEasyDict\n)\x81(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00bX\x01\x00\x00\x00cu."
  out = nvp.loads(raw)
  assert type(out) is dict and out == {"a": 1, "b": "c"}


def _os_system_pickle(marker):
  class Payload:
    def __reduce__(self):
      return (os.system, (f"touch {marker}",))

  return pickle.dumps(Payload(), protocol=2)


@pytest.mark.parametrize("target", ["os.system", "builtins.eval", "posix.system", "subprocess.call"])
def test_pickle_hostile_find_class_is_refused_and_nothing_runs(tmp_path, target):
  marker = tmp_path / "pwned"
  module, name = target.rsplit(".", 1)
  code = f"open({str(marker)!r}, 'w').write('x')" if name == "eval" else f"touch {marker}"
  raw = (
    b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X" + len(code).to_bytes(4, "little") + code.encode() + b"\x85R."
  )
  with pytest.raises(nvp.UnsafePickleError, match=f"refusing to load {module}.{name}"):
    nvp.loads(raw)
  assert not marker.exists()
  if target == "os.system":  # the payload is live: plain pickle runs it (in a child process)
    path = tmp_path / "hostile.pkl"
    path.write_bytes(_os_system_pickle(marker))
    with pytest.raises(nvp.UnsafePickleError, match="refusing to load posix.system|refusing to load os.system"):
      nvp.load(path)
    assert not marker.exists()
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.load(open({str(path)!r}, 'rb'))"], check=True)
    assert marker.exists()


def _hostile_src(marker):
  return f"import os\nos.system('touch {marker}')\nclass Linear:\n    pass\n"


def test_pickle_hostile_module_src_is_refused_and_never_executed(tmp_path):
  marker = tmp_path / "pwned"
  src = _hostile_src(marker)
  # an unknown class is refused by name
  evil = nvp.persistent("Exploit", module_src=src)
  with pytest.raises(nvp.UnsafePickleError, match="refusing persistent class 'Exploit'"):
    nvp.loads(nvp.dumps({"ema": evil}))
  # a known class whose module source would run code on import is refused after parsing it (not running it)
  sneaky = nvp.persistent("Linear", module_src=src, parameters={"weight": np.ones((1, 1), np.float32)})
  with pytest.raises(nvp.UnsafePickleError, match="refusing persistent class 'Linear'.*would run code.*line 1"):
    nvp.loads(nvp.dumps({"ema": sneaky}))
  for payload in (
    f"def f(a=open({str(marker)!r}, 'w')):\n    pass\n",
    f"class Linear:\n    x = open({str(marker)!r}, 'w')\n",
    f"@open({str(marker)!r}, 'w').close\ndef f():\n    pass\n",
    f"class Linear(type(open({str(marker)!r}, 'w'))):\n    pass\n",
    "from . import evil\n",
    "import subprocess\n",
  ):
    assert nvp.audit_source(payload), payload
    with pytest.raises(nvp.UnsafePickleError, match="would run code"):
      nvp.loads(nvp.dumps({"ema": nvp.persistent("Linear", module_src=payload)}))
  assert not marker.exists()
  exec(compile(src, "<payload>", "exec"), {})  # noqa: S102 - the payload is live: exec-ing it (NVlabs' loader) would run it
  assert marker.exists()


def test_pickle_network_like_module_src_is_accepted_as_text():
  src = (
    '"""Networks."""\nimport numpy as np\nimport torch\nfrom torch_utils import persistence\n'
    'from torch.nn.functional import silu\nTABLE = {"a": [1, 2]}\n\n'
    'def weight_init(shape, mode, fan_in, fan_out):\n    return np.sqrt(6 / (fan_in + fan_out))\n\n'
    '@persistence.persistent_class\nclass Linear(torch.nn.Module):\n    """A layer."""\n'
    '    def __init__(self, a, init=dict(), f=[1, 1], s=float("inf"), k=-1):\n        super().__init__()\n'
    '    @staticmethod\n    def g(x):\n        return silu(x)\n'
  )
  assert nvp.audit_source(src) is None
  data = nvp.loads(nvp.dumps({"ema": nvp.persistent("Linear", module_src=src)}))
  assert data["ema"].module_src == src


def test_pickle_hostile_nested_storage_file_is_refused(tmp_path):
  marker = tmp_path / "pwned"
  inner = _os_system_pickle(marker)
  raw = nvp.dumps(nvp._Call(nvp._Global("torch.storage", "_load_from_bytes"), (inner,)))
  with pytest.raises(nvp.UnsafePickleError, match="refusing to load"):
    nvp.loads(raw)
  # a nested file may name only storage types, not even the allowed outer names
  nested = nvp._legacy_storage_bytes(np.ones(2, np.float32)).replace(
    b"torch\nFloatStorage", b"torch_utils.persistence\n_reconstruct_persistent_obj"
  )
  with pytest.raises(nvp.UnsafePickleError, match="refusing to load torch_utils.persistence"):
    nvp.loads(nvp.dumps(nvp._Call(nvp._Global("torch.storage", "_load_from_bytes"), (nested,))))
  assert not marker.exists()


def test_pickle_bad_files_give_one_clear_error(tmp_path):
  good = nvp.dumps({"ema": _network()})
  cases = {
    "empty": b"",
    "text": b"hello, not a pickle\n",
    "truncated": good[: len(good) // 2],
    "zip": b"PK\x03\x04garbage",
  }
  for name, raw in cases.items():
    path = tmp_path / name
    path.write_bytes(raw)
    with pytest.raises(nvp.NVlabsPickleError) as e:
      nvp.load(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value), (name, str(e.value))
  with pytest.raises(FileNotFoundError):
    nvp.load(tmp_path / "missing.pkl")


def test_pickle_reads_torch_modules_pickled_through_a_persistence_hook(monkeypatch):
  """Real torch modules (torch 2.13's full Module state) pickled the NVlabs way:
  each persistent module reduces to _reconstruct_persistent_obj(meta)."""
  torch = pytest.importorskip("torch")
  pkg, mod = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")

  def _reconstruct_persistent_obj(meta):  # what NVlabs' loader would run; ours must not call it
    raise AssertionError("called")

  _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
  _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
  mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
  pkg.persistence = mod
  monkeypatch.setitem(sys.modules, "torch_utils", pkg)
  monkeypatch.setitem(sys.modules, "torch_utils.persistence", mod)

  class Persistent:
    def __reduce__(self):
      meta = dict(
        type="class", version=6, module_src="import torch\n", class_name=type(self).__name__, state=dict(self.__dict__)
      )
      return (_reconstruct_persistent_obj, (meta,))

  class Linear(Persistent, torch.nn.Linear):
    pass

  class EDMPrecond(Persistent, torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.enc = torch.nn.ModuleDict({"a": Linear(3, 2), "b": Linear(2, 2, bias=False)})
      self.register_buffer("filt", torch.full((1, 1, 2, 2), 0.25))
      self.register_buffer("tmp", torch.zeros(2), persistent=False)
      self.scale = torch.nn.Parameter(torch.tensor([2.0]))
      self._init_kwargs = {"img_resolution": 8, "skip_scale": np.sqrt(0.5)}

  net = EDMPrecond().eval().requires_grad_(False)
  for protocol in (2, 4):
    data = nvp.loads(pickle.dumps({"ema": net}, protocol=protocol))
    got, want = data["ema"].state_dict(), net.state_dict()
    assert list(got) == list(want) == ["scale", "filt", "enc.a.weight", "enc.a.bias", "enc.b.weight"]
    for k in want:
      np.testing.assert_array_equal(got[k], want[k].numpy())
    assert data["ema"].init_kwargs["skip_scale"] == np.sqrt(0.5)
    assert data["ema"].children()["enc"].class_name == "ModuleDict"


# ------------------------------------------------------------- memory bombs (issue 27)
def _tensor(storage_bytes, size, stride):
  od = nvp._Call(nvp._Global("collections", "OrderedDict"), ())
  storage = nvp._Call(nvp._Global("torch.storage", "_load_from_bytes"), (storage_bytes,))
  return nvp._Call(nvp._Global("torch._utils", "_rebuild_tensor_v2"), (storage, 0, size, stride, False, od))


def _watch_memory(monkeypatch):
  """The largest single numpy allocation the loader asks for (a bomb is refused before any)."""
  biggest = [0]
  real = np.lib.stride_tricks.as_strided

  def as_strided(x, shape=None, strides=None, **k):
    n = 1
    for d in shape:
      n *= d
    biggest[0] = max(biggest[0], n * x.itemsize)
    return real(x, shape=shape, strides=strides, **k)

  monkeypatch.setattr(np.lib.stride_tricks, "as_strided", as_strided)
  return biggest


def test_stride_zero_tensor_is_refused_before_allocating(tmp_path, monkeypatch):
  """A few hundred bytes that describe a 40 GB tensor over a one-element storage (stride 0)."""
  biggest = _watch_memory(monkeypatch)
  raw = nvp.dumps({"ema": _tensor(nvp._legacy_storage_bytes(np.ones(1, np.float32)), (100_000, 100_000), (0, 0))})
  assert len(raw) < 1000
  path = tmp_path / "bomb.pkl"
  path.write_bytes(raw)
  with pytest.raises(nvp.MemoryBombError, match="more than its storage") as e:
    nvp.load(path)
  assert str(path) in str(e.value) and "\n" not in str(e.value)
  assert biggest[0] == 0  # nothing was allocated for it


def test_honest_expanded_views_and_normal_tensors_still_load():
  arr = np.arange(12, dtype=np.float32).reshape(3, 4)
  got = nvp.loads(nvp.dumps({"w": arr}))
  np.testing.assert_array_equal(got["w"], arr)
  # a transposed view of its storage (same element count) is fine
  t = _tensor(nvp._legacy_storage_bytes(arr), (4, 3), (1, 4))
  np.testing.assert_array_equal(nvp.loads(nvp.dumps({"t": t}))["t"], arr.T)


def _zip_storage(numel, payload: bytes, compression=None):
  """A torch zip file holding one float storage of ``numel`` elements, ``payload`` as its data."""
  import io as io_mod
  import zipfile

  body = io_mod.BytesIO()
  p = nvp._Writer(body, protocol=2)
  p.pid = ("storage", nvp._Global("torch", "FloatStorage"), "0", "cpu", numel)
  p.dump(nvp._PID_MARK)
  out = io_mod.BytesIO()
  with zipfile.ZipFile(out, "w", compression=compression or zipfile.ZIP_STORED) as zf:
    zf.writestr("archive/data.pkl", body.getvalue())
    zf.writestr(
      zipfile.ZipInfo("archive/data/0"), payload, compress_type=compression or zipfile.ZIP_STORED, compresslevel=9
    )
  return out.getvalue()


def test_nested_zip_bomb_is_refused_before_inflating():
  import zipfile

  bomb = _zip_storage(10_000_000, bytes(40_000_000), zipfile.ZIP_DEFLATED)  # 40 MB of zeros in about 40 KB
  assert len(bomb) < 100_000
  raw = nvp.dumps({"ema": _tensor(bomb, (10_000_000,), (1,))})
  with pytest.raises(nvp.MemoryBombError, match="zip bomb"):
    nvp.loads(raw)
  ok = _zip_storage(3, np.arange(3, dtype="<f4").tobytes())  # an honest stored zip storage still loads
  np.testing.assert_array_equal(nvp.loads(nvp.dumps({"t": _tensor(ok, (3,), (1,))}))["t"], [0, 1, 2])


def test_checkpoint_zip_bomb_is_refused(tmp_path):
  import zipfile

  body_path = tmp_path / "model.pt"
  with zipfile.ZipFile(body_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
    zf.writestr("archive/data.pkl", pickle.dumps({"x": 1}, protocol=2))
    zf.writestr("archive/data/0", bytes(40_000_000))
  assert os.path.getsize(body_path) < 100_000
  with pytest.raises(nvp.MemoryBombError, match="zip bomb"):
    nvp.load_torch_checkpoint(body_path)


def test_memory_ceiling_is_configurable(monkeypatch):
  arr = np.zeros(300_000, np.float32)  # 1.2 MB of tensor
  raw = nvp.dumps({"w": arr})
  assert nvp.loads(raw)["w"].shape == arr.shape
  with pytest.raises(nvp.MemoryBombError, match="ceiling of 0.001 GB"):
    nvp.loads(raw, max_bytes=10**6)
  monkeypatch.setenv("REGIONJAX_MAX_LOAD_GB", "0.001")
  with pytest.raises(nvp.MemoryBombError, match="REGIONJAX_MAX_LOAD_GB"):
    nvp.loads(raw)
  assert nvp.MAX_LOAD_BYTES == 16 * 10**9
