"""A reader for NVlabs network pickles that never runs code from the file.

NVlabs code (EDM, StyleGAN2-ADA/3, and SiD, which builds on EDM) saves
networks with ``pickle.dump``. Each network module is decorated by
``torch_utils.persistence.persistent_class``, so it pickles as a call
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with
``meta = {'type': 'class', 'version': 6, 'module_src': <the whole source of
the module that defined the class>, 'class_name': ..., 'state': <the
module's __dict__>}``; their loader ``exec``\\ s ``module_src``. Tensors pickle
as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``
with each storage a call ``torch.storage._load_from_bytes(b)``, ``b`` being a
small ``torch.save`` file in the legacy (non-zip) format: three pickled
header values (magic number, protocol version, system info), a pickle whose
storages are persistent ids ``('storage', torch.FloatStorage, key,
location, numel, view)``, the pickled list of keys, then per key an
8-byte little-endian element count and the raw little-endian data.

:func:`load` reads such a file with a :class:`pickle.Unpickler` whose
``find_class`` resolves only an allow-list of names, each to a function of
ours (``_reconstruct_persistent_obj`` to a stub that keeps ``class_name``,
``state`` and ``_init_kwargs`` as data — ``module_src`` is kept as text and
never executed; tensors and storages to numpy arrays, decoded from the bytes
without torch; ``dnnlib.util.EasyDict`` to ``dict``; ``collections.OrderedDict``;
numpy scalars), and refuses every other name with :class:`UnsafePickleError`.
Persistent objects are further limited to known network class names, and
their ``module_src`` is parsed (never compiled or run) and refused when
importing it would do more than define classes and functions
(:func:`audit_source`).

:func:`dump` writes the same format without torch (the test suite and the
parity fixtures use it to build files a real NVlabs loader accepts).
"""

from __future__ import annotations

import ast
import collections
import contextlib
import contextvars
import dataclasses
import io
import os
import pickle
import struct
import zipfile
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = [
  "KNOWN_CLASSES",
  "audit_source",
  "PersistentObject",
  "UnsafePickleError",
  "NVlabsPickleError",
  "MemoryBombError",
  "dump",
  "dumps",
  "load",
  "loads",
  "load_torch_checkpoint",
  "TorchNamespace",
  "container",
  "persistent",
]

#: torch.save's legacy-format magic number and protocol version (torch/serialization.py).
_MAGIC = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001

#: Class names of the persistent network modules of NVlabs/edm
#: training/networks.py and NVlabs/stylegan2-ada-pytorch / stylegan3
#: training/networks*.py. Only these are accepted from a file.
KNOWN_CLASSES = frozenset(
  {
    # EDM (and SiD, which reuses EDM's networks.py)
    "Linear",
    "Conv2d",
    "GroupNorm",
    "UNetBlock",
    "PositionalEmbedding",
    "FourierEmbedding",
    "SongUNet",
    "DhariwalUNet",
    "VPPrecond",
    "VEPrecond",
    "iDDPMPrecond",
    "EDMPrecond",
    "VPLoss",
    "VELoss",
    "EDMLoss",
    # StyleGAN2-ADA / StyleGAN3
    "FullyConnectedLayer",
    "Conv2dLayer",
    "MappingNetwork",
    "SynthesisLayer",
    "ToRGBLayer",
    "SynthesisBlock",
    "SynthesisNetwork",
    "Generator",
    "SynthesisInput",
    "DiscriminatorBlock",
    "MinibatchStdLayer",
    "DiscriminatorEpilogue",
    "Discriminator",
    "AugmentPipe",
  }
)


class NVlabsPickleError(ValueError):
  """The file is not a readable NVlabs network pickle."""


class UnsafePickleError(NVlabsPickleError):
  """The file asks for something this reader does not allow (it is refused
  before anything it names is called)."""


class MemoryBombError(NVlabsPickleError):
  """The file would need more memory than it can honestly describe (refused before allocating)."""


# ------------------------------------------------------------- memory bound
#: The most bytes one load may allocate for tensors and storages, whatever the file says (16 GB); the
#: environment variable REGIONJAX_MAX_LOAD_GB or the ``max_bytes`` argument of the loaders changes it.
MAX_LOAD_BYTES = 16 * 10**9
#: Tensors and storages together may take at most this many times the file's (uncompressed) size, plus
#: :data:`_SLACK`: a tensor is a copy of (part of) a storage, so an honest file needs about twice its size.
SIZE_FACTOR = 4
#: A zip member may inflate at most this much (torch.save stores tensors uncompressed: about 1).
ZIP_RATIO = 20
_SLACK = 1 << 20
_BUDGET = contextvars.ContextVar("nvlabs_pickle_budget", default=None)


def _ceiling(max_bytes: int | None) -> int:
  if max_bytes is not None:
    return int(max_bytes)
  env = os.environ.get("REGIONJAX_MAX_LOAD_GB")
  if env:
    try:
      return int(float(env) * 10**9)
    except ValueError:
      raise NVlabsPickleError(f"REGIONJAX_MAX_LOAD_GB={env!r} is not a number of gigabytes") from None
  return MAX_LOAD_BYTES


class _Budget:
  """Bytes a load may still allocate: ``min(ceiling, SIZE_FACTOR × size + slack)``; checked before allocating."""

  def __init__(self, size: int, max_bytes: int | None, source: str):
    self.ceiling = _ceiling(max_bytes)
    self.limit = min(self.ceiling, SIZE_FACTOR * int(size) + _SLACK)
    self.used = 0
    self.source = source

  def take(self, nbytes: int, what: str) -> None:
    nbytes = int(nbytes)
    if nbytes < 0 or self.used + nbytes > self.limit:
      capped = self.limit == self.ceiling
      why = (
        f"the ceiling of {self.ceiling / 1e9:.3g} GB (REGIONJAX_MAX_LOAD_GB)"
        if capped
        else f"{SIZE_FACTOR}× what the file holds"
      )
      raise MemoryBombError(
        f"{what} would bring the memory of this load to {(self.used + max(nbytes, 0)) / 1e9:.3g} GB, over {why}; "
        f"refused before allocating (a hostile or corrupt file)"
      )
    self.used += nbytes


def _take(nbytes: int, what: str) -> None:
  budget = _BUDGET.get()
  if budget is not None:
    budget.take(nbytes, what)


@contextlib.contextmanager
def _budget(size: int, max_bytes: int | None, source: str):
  token = _BUDGET.set(_Budget(size, max_bytes, source))
  try:
    yield
  finally:
    _BUDGET.reset(token)


def _zip_member(zf: zipfile.ZipFile, name: str, compressed_total: int) -> bytes:
  """``zf.read(name)`` after checking its declared size: no member inflating more than :data:`ZIP_RATIO`×
  (a zip bomb) and none beyond the memory budget (zipfile never returns more than the declared size)."""
  info = zf.getinfo(name)
  if info.file_size > ZIP_RATIO * max(info.compress_size, 1) + _SLACK:
    raise MemoryBombError(
      f"zip member {name} inflates {info.compress_size} bytes to {info.file_size} (over {ZIP_RATIO}×): a zip bomb"
    )
  if info.file_size > ZIP_RATIO * max(compressed_total, 1) + _SLACK:
    raise MemoryBombError(f"zip member {name} declares {info.file_size} bytes, far more than the whole file")
  _take(info.file_size, f"zip member {name} ({info.file_size} bytes)")
  return zf.read(name)


# ------------------------------------------------------------------ objects
@dataclasses.dataclass
class PersistentObject:
  """A persistent NVlabs module read as data.

  Attributes:
    class_name: e.g. ``'EDMPrecond'``.
    state: the module's pickled ``__dict__`` (``_parameters``, ``_buffers``,
      ``_modules``, plain attributes), tensors as numpy arrays.
    module_src: the pickled module source, as text (never executed).
    version: the persistence format version (6 for EDM/StyleGAN2-ADA/3).
  """

  class_name: str
  state: dict[str, Any]
  module_src: str = ""
  version: int = 6

  @property
  def init_kwargs(self) -> dict:
    """The keyword arguments the module was constructed with."""
    kw = self.state.get("_init_kwargs")
    return dict(kw) if isinstance(kw, Mapping) else {}

  @property
  def init_args(self) -> tuple:
    args = self.state.get("_init_args")
    return tuple(args) if isinstance(args, (list, tuple)) else ()

  def children(self) -> dict[str, Any]:
    mods = self.state.get("_modules") or {}
    return {k: v for k, v in mods.items() if v is not None}

  def _own(self, key: str):
    d = self.state.get(key) or {}
    return [(k, v) for k, v in d.items() if v is not None]

  def state_dict(self, prefix: str = "") -> "collections.OrderedDict[str, np.ndarray]":
    """``torch.nn.Module.state_dict()``: parameters, then persistent buffers,
    then each child's entries under ``name.``, in registration order."""
    out = collections.OrderedDict()
    for k, v in self._own("_parameters"):
      out[prefix + k] = _as_array(v, prefix + k)
    skip = set(self.state.get("_non_persistent_buffers_set") or ())
    for k, v in self._own("_buffers"):
      if k not in skip:
        out[prefix + k] = _as_array(v, prefix + k)
    for name, child in self.children().items():
      if not isinstance(child, PersistentObject):
        raise NVlabsPickleError(f"submodule {prefix + name!r} is a {type(child).__name__}, not a network module")
      out.update(child.state_dict(prefix + name + "."))
    return out

  def __repr__(self):
    return f"PersistentObject({self.class_name}, {len(self.state)} attributes)"


def _as_array(v, name):
  if not isinstance(v, np.ndarray):
    raise NVlabsPickleError(f"{name} is a {type(v).__name__}, not a tensor")
  return v


# ---------------------------------------------------------- storages/tensors
_STORAGE_DTYPES = {
  "FloatStorage": np.dtype("<f4"),
  "DoubleStorage": np.dtype("<f8"),
  "HalfStorage": np.dtype("<f2"),
  "BFloat16Storage": "bfloat16",
  "LongStorage": np.dtype("<i8"),
  "IntStorage": np.dtype("<i4"),
  "ShortStorage": np.dtype("<i2"),
  "CharStorage": np.dtype("i1"),
  "ByteStorage": np.dtype("u1"),
  "BoolStorage": np.dtype("?"),
  "UntypedStorage": np.dtype("u1"),
}


class _StorageType:
  """What a ``torch.<Kind>Storage`` global resolves to: a dtype, not a class."""

  def __init__(self, name):
    self.name = name
    self.dtype = _STORAGE_DTYPES[name]

  def itemsize(self):
    return 2 if self.dtype == "bfloat16" else self.dtype.itemsize

  def decode(self, raw: bytes, numel: int) -> np.ndarray:
    _take(4 * numel if self.dtype == "bfloat16" else numel * self.itemsize(), f"a storage of {numel} elements")
    if self.dtype == "bfloat16":  # numpy has no bfloat16: widen the bits to float32
      bits = np.frombuffer(raw, "<u2", numel).astype(np.uint32) << 16
      return bits.view(np.float32)
    return np.frombuffer(raw, self.dtype, numel).copy()


class _Storage:
  """A decoded storage: a flat numpy array."""

  def __init__(self, array: np.ndarray):
    self.array = array


def _rebuild_tensor(storage, storage_offset, size, stride, *rest):
  """``torch._utils._rebuild_tensor(_v2)``: a strided view of a storage, copied."""
  if not isinstance(storage, _Storage):
    raise UnsafePickleError(f"a tensor's storage is a {type(storage).__name__}, not a torch storage")
  flat = storage.array
  size = tuple(int(s) for s in size)
  stride = tuple(int(s) for s in stride)
  offset = int(storage_offset)
  if any(s < 0 for s in size) or any(s < 0 for s in stride) or offset < 0:
    raise NVlabsPickleError("a tensor has a negative size, stride or offset")
  n = 1
  for d in size:  # Python ints: no overflow
    n *= d
  if n > flat.size:  # stride 0 (an expanded view) or overlapping strides: more elements than the storage holds
    raise MemoryBombError(
      f"a tensor of size {size} and stride {stride} has {n} elements, more than its storage of {flat.size}; "
      f"refused before allocating (a hostile or corrupt file)"
    )
  if n and offset + sum((d - 1) * s for d, s in zip(size, stride)) >= flat.size:
    raise NVlabsPickleError(
      f"a tensor of size {size} and stride {stride} overruns its storage "
      f"of {flat.size} elements (the file is corrupt or truncated)"
    )
  if n == 0:
    return np.zeros(size, flat.dtype)
  _take(n * flat.itemsize, f"a tensor of size {size}")
  base = flat[offset:]
  view = np.lib.stride_tricks.as_strided(base, shape=size, strides=tuple(s * flat.itemsize for s in stride))
  return np.array(view, copy=True)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *rest):
  """``torch._utils._rebuild_parameter(_with_state)``: the data array."""
  if not isinstance(data, np.ndarray):
    raise UnsafePickleError(f"a parameter's data is a {type(data).__name__}, not a tensor")
  return data


def _load_storage_bytes(b):
  """``torch.storage._load_from_bytes``: decode a nested torch.save file
  holding one storage (legacy or zip format) without torch."""
  if not isinstance(b, (bytes, bytearray)):
    raise UnsafePickleError("torch.storage._load_from_bytes got a non-bytes argument")
  b = bytes(b)
  obj = _read_torch_file(b)
  if not isinstance(obj, _Storage):
    raise NVlabsPickleError(f"a nested torch file holds a {type(obj).__name__}, not a storage")
  return obj


class _StorageRef:
  def __init__(self, stype, key, numel, view):
    self.stype, self.key, self.numel, self.view = stype, str(key), int(numel), view


class _TorchFileUnpickler(pickle.Unpickler):
  """Unpickles the body of a torch.save file: storages are persistent ids."""

  def __init__(self, f, refs):
    super().__init__(f)
    self.refs = refs

  def find_class(self, module, name):
    return _find(module, name, inner=True)

  def persistent_load(self, pid):
    if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
      raise UnsafePickleError(f"unexpected persistent id {str(pid)[:80]!r} in a nested torch file")
    if len(pid) == 6:  # legacy: (tag, type, key, location, numel, view_metadata)
      _, stype, key, _loc, numel, view = pid
    elif len(pid) == 5:  # zip: (tag, type, key, location, numel)
      _, stype, key, _loc, numel = pid
      view = None
    else:
      raise NVlabsPickleError(f"malformed storage id {pid!r}")
    if not isinstance(stype, _StorageType):
      raise UnsafePickleError(f"storage type {stype!r} is not a torch storage class")
    ref = _StorageRef(stype, key, numel, view)
    self.refs.append(ref)
    return ref


def _resolve(obj, data: Mapping[str, np.ndarray]):
  if isinstance(obj, _StorageRef):
    if obj.key not in data:
      raise NVlabsPickleError(f"storage {obj.key} is missing from a nested torch file")
    arr = data[obj.key]
    if obj.view is not None:
      _, off, nbytes = obj.view
      arr = arr.view(np.uint8)[int(off) : int(off) + int(nbytes)].view(arr.dtype)
    return _Storage(arr)
  return obj


def _read_torch_file(b: bytes):
  if b[:2] == b"PK":
    return _read_torch_zip(b)
  f = io.BytesIO(b)
  try:
    magic = _TorchFileUnpickler(f, []).load()
    if magic != _MAGIC:
      raise NVlabsPickleError("a nested torch file has a bad magic number")
    version = _TorchFileUnpickler(f, []).load()
    if version != _PROTOCOL_VERSION:
      raise NVlabsPickleError(f"a nested torch file has protocol version {version}, not {_PROTOCOL_VERSION}")
    sys_info = _TorchFileUnpickler(f, []).load()
    if isinstance(sys_info, Mapping) and not sys_info.get("little_endian", True):
      raise NVlabsPickleError("big-endian torch files are not supported")
    refs = []
    obj = _TorchFileUnpickler(f, refs).load()
    keys = _TorchFileUnpickler(f, []).load()
  except (EOFError, pickle.UnpicklingError, struct.error) as e:
    raise NVlabsPickleError(f"a nested torch file is truncated or corrupt ({type(e).__name__}: {e})") from e
  types = {r.key: r.stype for r in refs}
  data = {}
  for key in keys:
    key = str(key)
    if key not in types:
      raise NVlabsPickleError(f"a nested torch file lists storage {key} that nothing uses")
    head = f.read(8)
    if len(head) != 8:
      raise NVlabsPickleError("a nested torch file is truncated (storage header)")
    (numel,) = struct.unpack("<q", head)
    nbytes = numel * types[key].itemsize()
    raw = f.read(nbytes)
    if numel < 0 or len(raw) != nbytes:
      raise NVlabsPickleError("a nested torch file is truncated (storage data)")
    data[key] = types[key].decode(raw, numel)
  return _resolve(obj, data)


def _read_torch_zip(b: bytes):
  try:
    zf = zipfile.ZipFile(io.BytesIO(b))
    names = zf.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
      raise NVlabsPickleError("a torch zip file without exactly one data.pkl")
    root = pkl[0][: -len("data.pkl")]
    refs = []
    obj = _TorchFileUnpickler(io.BytesIO(_zip_member(zf, pkl[0], len(b))), refs).load()
    data = {}
    for r in refs:
      raw = _zip_member(zf, f"{root}data/{r.key}", len(b))
      if len(raw) < r.numel * r.stype.itemsize():
        raise NVlabsPickleError(f"storage {r.key} is truncated")
      data[r.key] = r.stype.decode(raw[: r.numel * r.stype.itemsize()], r.numel)
  except (zipfile.BadZipFile, KeyError, EOFError, pickle.UnpicklingError) as e:
    raise NVlabsPickleError(f"a torch zip file is corrupt ({type(e).__name__}: {e})") from e
  return _resolve(obj, data)


class TorchNamespace:
  """An ``argparse.Namespace`` read from a torch checkpoint: attributes only, no behaviour."""

  def __repr__(self):
    return "Namespace(" + ", ".join(f"{k}={v!r}" for k, v in sorted(vars(self).items())) + ")"


_CHECKPOINT_ALLOWED = {
  ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
  ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
  ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
  ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
  ("collections", "OrderedDict"): collections.OrderedDict,
  ("argparse", "Namespace"): TorchNamespace,
}


class _CheckpointUnpickler(pickle.Unpickler):
  """The data.pkl of a ``torch.save`` zip file: tensors, containers, argparse.Namespace; nothing else."""

  def __init__(self, f, zf, root, size):
    super().__init__(f)
    self.zf, self.root, self.cache, self.size = zf, root, {}, size

  def find_class(self, module, name):
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)
    fn = _CHECKPOINT_ALLOWED.get((module, name))
    if fn is None:
      raise UnsafePickleError(
        f"refusing to load {module}.{name}: a checkpoint is read as tensors, containers and "
        "argparse.Namespace only, so as never to run code from a file"
      )
    return fn

  def persistent_load(self, pid):
    if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage":
      raise UnsafePickleError(f"unexpected persistent id {str(pid)[:80]!r} in a torch zip file")
    _, stype, key, _loc, numel = pid
    if not isinstance(stype, _StorageType):
      raise UnsafePickleError(f"storage type {stype!r} is not a torch storage class")
    key = str(key)
    if key not in self.cache:
      raw = _zip_member(self.zf, f"{self.root}data/{key}", self.size)
      n = int(numel)
      if len(raw) < n * stype.itemsize():
        raise NVlabsPickleError(f"storage {key} is truncated")
      self.cache[key] = _Storage(stype.decode(raw[: n * stype.itemsize()], n))
    return self.cache[key]


def load_torch_checkpoint(path, source: str | None = None, max_bytes: int | None = None):
  """Reads a ``torch.save`` zip file (e.g. ``{'state_dict': …, 'args': Namespace, …}``) without torch and
  without running code from it: tensors become numpy arrays, ``argparse.Namespace`` a
  :class:`TorchNamespace`; every other global raises :class:`UnsafePickleError`.

  Memory is bounded before anything is allocated: no member inflating like a zip bomb, no tensor larger than
  its storage, at most :data:`SIZE_FACTOR` × the members' size in all and never more than ``max_bytes``
  (default :data:`MAX_LOAD_BYTES`, or REGIONJAX_MAX_LOAD_GB).

  Raises:
    FileNotFoundError: no such file.
    NVlabsPickleError: not a torch zip file, or truncated/corrupt; MemoryBombError past the memory bound.
  """

  path = os.fspath(path)
  source = source or path
  if not os.path.isfile(path):
    raise FileNotFoundError(f"checkpoint file not found: {path}")
  with open(path, "rb") as f:
    head = f.read(4)
  if head[:2] != b"PK":
    raise NVlabsPickleError(f"{source} is not a torch.save zip file (torch >= 1.6 format)")
  try:
    size = os.path.getsize(path)
    with zipfile.ZipFile(path) as zf:
      pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
      if len(pkl) != 1:
        raise NVlabsPickleError(f"{source}: a torch zip file holds exactly one data.pkl")
      root = pkl[0][: -len("data.pkl")]
      declared = sum(i.file_size for i in zf.infolist())
      if declared > ZIP_RATIO * size + _SLACK:
        raise MemoryBombError(f"its members declare {declared} bytes in a file of {size}: a zip bomb")
      with _budget(declared, max_bytes, source):
        return _CheckpointUnpickler(io.BytesIO(_zip_member(zf, pkl[0], size)), zf, root, size).load()
  except NVlabsPickleError as e:
    raise type(e)(f"{source}: {e}" if not str(e).startswith(source) else str(e)) from None
  except (zipfile.BadZipFile, KeyError, EOFError, pickle.UnpicklingError, struct.error) as e:
    raise NVlabsPickleError(f"{source} is a corrupt torch zip file ({type(e).__name__}: {e})") from None
  except (TypeError, ValueError, AttributeError, IndexError) as e:
    raise NVlabsPickleError(f"{source} is not a readable torch checkpoint ({type(e).__name__}: {e})") from None


# ------------------------------------------------------------------- numpy
def _np_dtype(name, align=False, copy=True):
  if not isinstance(name, str):
    raise UnsafePickleError("numpy.dtype with a non-string argument")
  dt = np.dtype(name)
  if dt.kind not in "biufc?":
    raise UnsafePickleError(f"numpy dtype {name!r} is not numeric")
  return np.dtype(name)


def _np_scalar(dtype, data=None):
  """``numpy.core.multiarray.scalar(dtype, bytes)``: one numeric scalar."""
  if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc?" or not isinstance(data, (bytes, bytearray)):
    raise UnsafePickleError("numpy scalar of a non-numeric dtype")
  return np.frombuffer(bytes(data), dtype, 1)[0]


# ----------------------------------------------------------- source audit
#: Modules an NVlabs network source may import (EDM, StyleGAN2-ADA/3).
_SOURCE_IMPORTS = frozenset(
  {
    "numpy",
    "torch",
    "torch_utils",
    "dnnlib",
    "scipy",
    "math",
    "copy",
    "functools",
    "typing",
    "collections",
    "__future__",
  }
)
_SOURCE_DECORATORS = frozenset(
  {"persistence.persistent_class", "misc.profiled_function", "staticmethod", "classmethod", "property"}
)


def _literalish(node) -> bool:
  """Literals, containers of literals, and ``dict(...)``/``float('inf')``-style calls of them."""
  if isinstance(node, ast.Constant):
    return True
  if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
    return all(_literalish(e) for e in node.elts)
  if isinstance(node, ast.Dict):
    return all(k is None or _literalish(k) for k in node.keys) and all(_literalish(v) for v in node.values)
  if isinstance(node, ast.UnaryOp):
    return _literalish(node.operand)
  if (
    isinstance(node, ast.Call)
    and isinstance(node.func, ast.Name)
    and node.func.id in ("dict", "float", "list", "tuple", "int")
  ):
    return all(_literalish(a) for a in node.args) and all(_literalish(k.value) for k in node.keywords)
  return False


def _dotted(node) -> bool:
  return isinstance(node, ast.Name) or (isinstance(node, ast.Attribute) and _dotted(node.value))


def _audit_body(body, where):
  for n in body:
    if isinstance(n, (ast.Import, ast.ImportFrom)):
      names = [a.name for a in n.names] if isinstance(n, ast.Import) else [n.module or ""]
      if isinstance(n, ast.ImportFrom) and n.level:
        return n, "a relative import"
      for name in names:
        if name.split(".")[0] not in _SOURCE_IMPORTS:
          return n, f"imports {name}"
    elif isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant):
      pass  # docstring
    elif isinstance(n, ast.Pass):
      pass
    elif isinstance(n, ast.Assign) and _literalish(n.value) and all(isinstance(t, ast.Name) for t in n.targets):
      pass
    elif isinstance(n, (ast.FunctionDef, ast.ClassDef)):
      for d in n.decorator_list:
        if ast.unparse(d) not in _SOURCE_DECORATORS:
          return d, f"decorator @{ast.unparse(d)}"
      if isinstance(n, ast.ClassDef):
        for b in list(n.bases) + [k.value for k in n.keywords]:
          if not _dotted(b):
            return b, "a computed base class"
        bad = _audit_body(n.body, where + "." + n.name)
        if bad:
          return bad
      else:
        a = n.args
        for d in list(a.defaults) + [d for d in a.kw_defaults if d is not None]:
          if not _literalish(d):
            return d, "a computed default argument"
        annotations = [
          x.annotation
          for x in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg]
          if x is not None and x.annotation is not None
        ] + ([n.returns] if n.returns else [])
        for ann in annotations:
          if any(isinstance(x, ast.Call) for x in ast.walk(ann)):
            return ann, "a computed annotation"
    else:
      return n, f"a top-level {type(n).__name__} statement"
  return None


_AUDITED: dict[int, str | None] = {}


def audit_source(src: str) -> str | None:
  """Why running ``src`` as a module would do more than define classes and
  functions (None if it would not). Parses only; nothing is compiled or run.

  An NVlabs network module's top level imports numpy/torch/torch_utils,
  defines functions and (decorated) classes, and assigns literals; function
  bodies run only when called. Anything else — a call at import time, a
  computed default argument, decorator, base class or annotation, an import
  of another module — is reported."""
  key = hash(src)
  if key not in _AUDITED:
    try:
      tree = ast.parse(src.lstrip("\ufeff"))
    except (SyntaxError, ValueError) as e:
      _AUDITED[key] = f"it does not parse ({type(e).__name__})"
    else:
      bad = _audit_body(tree.body, "<module>")
      _AUDITED[key] = (
        None
        if bad is None
        else (f"line {getattr(bad[0], 'lineno', '?')}: {bad[1]} ({ast.unparse(bad[0]).splitlines()[0][:60]!r})")
      )
  return _AUDITED[key]


# ------------------------------------------------------------- the hook stub
def _reconstruct_persistent_obj(meta):
  """Stand-in for ``torch_utils.persistence._reconstruct_persistent_obj``:
  keeps the metadata as data; ``module_src`` is never executed."""
  if not isinstance(meta, Mapping):
    raise UnsafePickleError("a persistent object without a metadata dict")
  if meta.get("type") != "class":
    raise UnsafePickleError(f"persistent object of type {meta.get('type')!r}; only 'class' is supported")
  name = meta.get("class_name")
  if name not in KNOWN_CLASSES:
    raise UnsafePickleError(
      f"refusing persistent class {name!r}: it is not one of the known NVlabs network classes "
      f"(its module source is never run; see regionjax.ports.nvlabs_pickle.KNOWN_CLASSES)"
    )
  state = meta.get("state")
  if state is None:
    state = {}
  if not isinstance(state, Mapping):
    raise NVlabsPickleError(f"persistent {name} has a {type(state).__name__} state, not a dict")
  src = meta.get("module_src", "")
  if not isinstance(src, str):
    raise UnsafePickleError(f"persistent class {name!r} has a {type(src).__name__} module_src")
  problem = audit_source(src) if src else None
  if problem:
    raise UnsafePickleError(
      f"refusing persistent class {name!r}: its module source would run code when imported ({problem}); "
      "this reader never runs it, and refuses files that carry such sources"
    )
  return PersistentObject(
    class_name=str(name),
    state=dict(state),
    module_src=src if isinstance(src, str) else "",
    version=int(meta.get("version", 0) or 0),
  )


def _codecs_encode(text, encoding="utf-8"):
  """``_codecs.encode(str, 'latin1')``: how protocol-2 pickles spell bytes."""
  if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
    raise UnsafePickleError("_codecs.encode is allowed only as protocol 2's bytes encoding (str, 'latin1')")
  return text.encode("latin1")


def _container(name):
  """``torch.nn.ModuleDict`` & co. (not persistent, pickled by class name):
  a :class:`PersistentObject` whose state the unpickler fills in."""

  class _Container(PersistentObject):
    def __new__(cls, *args):
      obj = object.__new__(cls)
      obj.class_name, obj.state, obj.module_src, obj.version = name, {}, "", 0
      return obj

    def __init__(self, *args):  # noqa: D107 - state arrives via __setstate__
      pass

    def __setstate__(self, state):
      if not isinstance(state, Mapping):
        raise NVlabsPickleError(f"torch.nn.{name} with a {type(state).__name__} state")
      self.state = dict(state)

  _Container.__name__ = _Container.__qualname__ = name
  return _Container


class _EasyDict(dict):
  """``dnnlib.util.EasyDict`` read as a dict (``__dict__`` absorbs a BUILD)."""


_ALLOWED = {
  ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
  ("dnnlib.util", "EasyDict"): _EasyDict,
  ("collections", "OrderedDict"): collections.OrderedDict,
  ("builtins", "set"): set,
  ("_codecs", "encode"): _codecs_encode,
  ("builtins", "frozenset"): frozenset,
  ("__builtin__", "set"): set,
  ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
  ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
  ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
  ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
  ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
  ("numpy.core.multiarray", "scalar"): _np_scalar,
  ("numpy._core.multiarray", "scalar"): _np_scalar,
  ("numpy", "dtype"): _np_dtype,
  ("torch.nn.modules.container", "ModuleDict"): _container("ModuleDict"),
  ("torch.nn.modules.container", "ModuleList"): _container("ModuleList"),
  ("torch.nn.modules.container", "Sequential"): _container("Sequential"),
}


def _find(module: str, name: str, inner: bool = False):
  if inner and module == "torch" and name in _STORAGE_DTYPES:
    return _StorageType(name)
  if inner and module == "torch.storage" and name == "UntypedStorage":
    return _StorageType(name)
  fn = None if inner else _ALLOWED.get((module, name))  # a nested torch file names only storage types
  if fn is None:
    raise UnsafePickleError(
      f"refusing to load {module}.{name}: this reader only resolves the names an NVlabs network "
      "pickle needs (persistent modules, tensors, dicts, numpy scalars), so as never to run code from a file"
    )
  return fn


class _SafeUnpickler(pickle.Unpickler):
  def find_class(self, module, name):
    return _find(module, name)

  def persistent_load(self, pid):
    raise UnsafePickleError(f"unexpected persistent id {str(pid)[:80]!r}: not an NVlabs pickle.dump file")


def _plain(obj, depth=0):
  """EasyDict → dict, recursively (inside PersistentObject states too)."""
  if depth > 200:
    raise NVlabsPickleError("the pickle nests too deeply")
  if isinstance(obj, PersistentObject):
    obj.state = _plain(obj.state, depth + 1)
    return obj
  if isinstance(obj, collections.OrderedDict):
    return collections.OrderedDict((k, _plain(v, depth + 1)) for k, v in obj.items())
  if isinstance(obj, dict):
    return {k: _plain(v, depth + 1) for k, v in obj.items()}
  if isinstance(obj, list):
    return [_plain(v, depth + 1) for v in obj]
  if isinstance(obj, tuple):
    return tuple(_plain(v, depth + 1) for v in obj)
  return obj


def loads(data: bytes, source: str = "the pickle", max_bytes: int | None = None):
  """Reads an NVlabs network pickle from bytes (see :func:`load`)."""
  with _budget(len(data), max_bytes, source):
    return _loads(data, source)


def _loads(data: bytes, source: str):
  if not data:
    raise NVlabsPickleError(f"{source} is empty")
  if data[:1] != b"\x80":
    raise NVlabsPickleError(f"{source} is not a pickle file (it does not start with a pickle protocol header)")
  try:
    obj = _SafeUnpickler(io.BytesIO(data)).load()
  except NVlabsPickleError as e:
    raise type(e)(f"{source}: {e}") from None
  except (EOFError, pickle.UnpicklingError, struct.error, IndexError, MemoryError) as e:
    raise NVlabsPickleError(f"{source} is truncated or not a valid pickle ({type(e).__name__}: {e})") from None
  except (TypeError, ValueError, AttributeError, KeyError) as e:
    raise NVlabsPickleError(f"{source} is not a readable NVlabs network pickle ({type(e).__name__}: {e})") from None
  return _plain(obj)


def load(path, source: str | None = None, max_bytes: int | None = None):
  """Reads an NVlabs network pickle (e.g. ``{'ema': EDMPrecond}``) without
  running any code from it: persistent modules become
  :class:`PersistentObject`, tensors numpy arrays.

  Raises:
    UnsafePickleError: the file names anything outside the allow-list.
    NVlabsPickleError: the file is not a pickle, truncated or malformed.
    MemoryBombError: (an NVlabsPickleError) it would allocate more than :data:`SIZE_FACTOR` × its size, or more
      than ``max_bytes`` (default :data:`MAX_LOAD_BYTES` = 16 GB, or REGIONJAX_MAX_LOAD_GB): a tensor larger than
      its storage (stride 0), a nested zip bomb; refused before allocating.
    FileNotFoundError: no such file.
  """

  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"pickle file not found: {path}")
  with open(path, "rb") as f:
    data = f.read()
  return loads(data, source or path, max_bytes)


# ------------------------------------------------------------------- writer
class _Global:
  def __init__(self, module, name):
    self.module, self.name = module, name


class _Call:
  def __init__(self, func: _Global, args: tuple, state=None):
    self.func, self.args, self.state = func, tuple(args), state


class _NewObj:
  """``cls.__new__(cls)`` then ``__setstate__(state)``: how torch pickles a
  module that is not persistent (e.g. ``torch.nn.ModuleDict``)."""

  def __init__(self, cls: _Global, state):
    self.cls, self.state = cls, state


def container(kind: str = "ModuleDict", modules: Mapping[str, Any] = (), training: bool = False):
  """A ``torch.nn.ModuleDict``/``ModuleList``/``Sequential`` for :func:`dump`."""
  state = persistent(kind, modules=modules, training=training).meta["state"]
  for k in ("_init_args", "_init_kwargs"):
    state.pop(k)
  return _NewObj(_Global("torch.nn.modules.container", kind), state)


class _Persist:
  """A module to be written as ``_reconstruct_persistent_obj(meta)``."""

  def __init__(self, meta):
    self.meta = meta


def persistent(
  class_name: str,
  *,
  parameters: Mapping[str, Any] = (),
  buffers: Mapping[str, Any] = (),
  modules: Mapping[str, Any] = (),
  attributes: Mapping[str, Any] = (),
  init_args: Iterable = (),
  init_kwargs: Mapping[str, Any] | None = None,
  module_src: str = "",
  training: bool = False,
  non_persistent_buffers: Iterable[str] = (),
):
  """A persistent module for :func:`dump`, with the state a ``torch.nn.Module``
  pickles: ``_parameters``/``_buffers``/``_modules`` (ordered), the hook
  dicts (empty), plain attributes, and ``_init_args``/``_init_kwargs``.
  Arrays may be ``None`` (an absent optional tensor)."""
  od = collections.OrderedDict
  state = {
    "training": bool(training),
    "_parameters": od(parameters),
    "_buffers": od(buffers),
    "_non_persistent_buffers_set": set(non_persistent_buffers),
  }
  for hook in (
    "_backward_pre_hooks",
    "_backward_hooks",
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
  ):
    state[hook] = od()
  state["_modules"] = od(modules)
  state.update(dict(attributes))
  state["_init_args"] = tuple(init_args)
  state["_init_kwargs"] = dict(init_kwargs or {})
  return _Persist({"type": "class", "version": 6, "module_src": module_src, "class_name": class_name, "state": state})


def _legacy_storage_bytes(arr: np.ndarray) -> bytes:
  """A torch.save legacy-format file holding one storage of ``arr``'s data."""
  kinds = {
    np.dtype("float32"): "FloatStorage",
    np.dtype("float64"): "DoubleStorage",
    np.dtype("float16"): "HalfStorage",
    np.dtype("int64"): "LongStorage",
    np.dtype("int32"): "IntStorage",
    np.dtype("int16"): "ShortStorage",
    np.dtype("int8"): "CharStorage",
    np.dtype("uint8"): "ByteStorage",
    np.dtype("bool"): "BoolStorage",
  }
  if arr.dtype not in kinds:
    raise ValueError(f"cannot write a {arr.dtype} tensor")
  flat = np.ascontiguousarray(arr).reshape(-1)
  le = flat.astype(flat.dtype.newbyteorder("<"), copy=False)
  key = "0"
  out = io.BytesIO()
  pickle.dump(_MAGIC, out, protocol=2)
  pickle.dump(_PROTOCOL_VERSION, out, protocol=2)
  pickle.dump(
    {"protocol_version": _PROTOCOL_VERSION, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}},
    out,
    protocol=2,
  )
  p = _Writer(out, protocol=2)
  p.pid = ("storage", _Global("torch", kinds[arr.dtype]), key, "cpu", int(flat.size), None)
  p.dump(_PID_MARK)
  pickle.dump([key], out, protocol=2)
  out.write(struct.pack("<q", int(flat.size)))
  out.write(le.tobytes())
  return out.getvalue()


_PID_MARK = object()


def _tensor_call(arr: np.ndarray, parameter: bool):
  arr = np.asarray(arr)
  if not arr.flags.c_contiguous:
    arr = np.ascontiguousarray(arr)
  stride, acc = [], 1
  for d in reversed(arr.shape):
    stride.insert(0, acc)
    acc *= d
  od = _Call(_Global("collections", "OrderedDict"), ())
  storage = _Call(_Global("torch.storage", "_load_from_bytes"), (_legacy_storage_bytes(arr),))
  t = _Call(_Global("torch._utils", "_rebuild_tensor_v2"), (storage, 0, tuple(arr.shape), tuple(stride), False, od))
  if parameter:
    return _Call(_Global("torch._utils", "_rebuild_parameter"), (t, False, od))
  return t


class _Writer(pickle._Pickler):  # the pure-Python pickler: its dispatch table can be extended
  pid = None
  dispatch = dict(pickle._Pickler.dispatch)

  def persistent_id(self, obj):
    if obj is _PID_MARK:
      return self.pid
    return None

  def save_marker_global(self, obj):
    self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("utf-8"))
    self.memoize(obj)

  def save_call(self, obj):
    self.save(obj.func)
    self.save(obj.args)
    self.write(pickle.REDUCE)
    self.memoize(obj)
    if obj.state is not None:
      self.save(obj.state)
      self.write(pickle.BUILD)

  def save_persist(self, obj):
    self.save_call(_Call(_Global("torch_utils.persistence", "_reconstruct_persistent_obj"), (obj.meta,)))

  def save_ndarray(self, obj):
    self.save_call(_tensor_call(obj, parameter=False))

  def save_numpy_scalar(self, obj):
    dt = _Call(
      _Global("numpy", "dtype"),
      (obj.dtype.str[1:] if obj.dtype.str[0] in "<|" else obj.dtype.str, False, True),
      state=(3, "<" if obj.dtype.itemsize > 1 else "|", None, None, None, -1, -1, 0),
    )
    self.save_call(_Call(_Global("numpy.core.multiarray", "scalar"), (dt, obj.tobytes())))

  def save_newobj(self, obj):
    self.save(obj.cls)
    self.save(())
    self.write(pickle.NEWOBJ)
    self.memoize(obj)
    self.save(obj.state)
    self.write(pickle.BUILD)

  dispatch[_NewObj] = save_newobj
  dispatch[_Global] = save_marker_global
  dispatch[_Call] = save_call
  dispatch[_Persist] = save_persist
  dispatch[np.ndarray] = save_ndarray
  for _t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8, np.bool_):
    dispatch[_t] = save_numpy_scalar


class _Parameter:
  def __init__(self, array):
    self.array = np.asarray(array)


def _prepare(obj):
  """Parameters (in ``_parameters`` dicts) pickle as torch Parameters."""
  if isinstance(obj, _Persist):
    st = dict(obj.meta["state"])
    obj = _Persist(dict(obj.meta, state=st))
    st["_parameters"] = collections.OrderedDict(
      (k, None if v is None else _tensor_call(np.asarray(v), parameter=True)) for k, v in st["_parameters"].items()
    )
    st["_modules"] = collections.OrderedDict((k, _prepare(v)) for k, v in st["_modules"].items())
    return obj
  if isinstance(obj, _NewObj):
    st = dict(obj.state)
    st["_parameters"] = collections.OrderedDict(
      (k, None if v is None else _tensor_call(np.asarray(v), parameter=True)) for k, v in st["_parameters"].items()
    )
    st["_modules"] = collections.OrderedDict((k, _prepare(v)) for k, v in st["_modules"].items())
    return _NewObj(obj.cls, st)
  if isinstance(obj, Mapping):
    return (
      type(obj)((k, _prepare(v)) for k, v in obj.items())
      if isinstance(obj, collections.OrderedDict)
      else {k: _prepare(v) for k, v in obj.items()}
    )
  return obj


def dumps(obj, protocol: int = 4) -> bytes:
  """Serialises ``obj`` (dicts, lists, numbers, strings, numpy arrays as torch
  tensors, modules from :func:`persistent`) in the NVlabs ``pickle.dump``
  format, without torch."""
  out = io.BytesIO()
  _Writer(out, protocol=protocol).dump(_prepare(obj))
  return out.getvalue()


def dump(obj, path, protocol: int = 4) -> None:
  """Writes :func:`dumps` to ``path``."""
  with open(path, "wb") as f:
    f.write(dumps(obj, protocol))


def load_network(path, key: str, class_name: str, *, family: str, hint: str, role: str):
  """The network ``data[key]`` of an NVlabs network pickle, checked to be a ``class_name``, and its state dict.

  Args:
    path: the pickle.
    key: where the pickle's dict holds the network (``'G_ema'``, ``'ema'``).
    class_name: the class the network must be (``'Generator'``, ``'EDMPrecond'``).
    family: the release, for messages (``'StyleGAN2-ADA'``, ``'SiD/EDM'``).
    hint: what to download, appended when the file does not exist.
    role: what the network is, for messages (``"StyleGAN2-ADA's Generator"``).

  Returns:
    ``(network, state_dict)``: the :class:`PersistentObject` (its ``init_kwargs``) and its tensors by name.

  Raises:
    FileNotFoundError, ValueError: one line naming the file and what it holds instead.
  """
  path = os.fspath(path)
  try:
    data = load(path)
  except FileNotFoundError:
    raise FileNotFoundError(f"{family} network pickle not found: {path}. {hint}") from None
  except NVlabsPickleError as e:
    raise ValueError(f"cannot read {path} as an NVlabs network pickle: {e}") from None
  if not isinstance(data, Mapping) or key not in data:
    what = f"a dict with keys {sorted(map(str, data))[:5]}" if isinstance(data, Mapping) else f"a {type(data).__name__}"
    raise ValueError(f"{path} is not a {family} network pickle: it holds {what}, not {{'{key}': network}}")
  net = data[key]
  if not isinstance(net, PersistentObject) or net.class_name != class_name:
    name = net.class_name if isinstance(net, PersistentObject) else type(net).__name__
    raise ValueError(f"{path} holds a {name} as {key}, not {role}")
  try:
    return net, net.state_dict()
  except NVlabsPickleError as e:
    raise ValueError(f"{path}: {e}") from None
