"""Bring a PyTorch generator: ``rj.from_torch`` runs a ``torch.nn.Module`` inside JAX's tracing.

``from_torch(module, split=PATH, sample_codes=…)`` wraps an (eval-mode)
``torch.nn.Module`` with no change to its code and splits it at the submodule
whose path is ``PATH`` — the name PyTorch gives it in
``module.named_modules()``, such as ``'main.11'`` or ``'synthesis.b32.conv1'``:

* the module runs under torchax (a bridge that executes every ATen op of
  the forward pass as the equivalent JAX op on JAX arrays), so ``jit``,
  ``vmap`` and ``grad`` act on it as on any JAX function, and the solver runs
  on it unchanged;
* ``encode``: run the forward pass; when the submodule ``PATH`` returns (a
  forward hook), keep its output ``f = d(z)`` and stop;
* ``decode``: run the forward pass again, with a forward hook that replaces
  what ``PATH`` returns by the given feature: ``g(f)``. Paths that do not
  depend on ``PATH``'s output are computed from the codes (held fixed), so
  ``decode(codes, encode(codes)) = generate(codes)``; under ``jit`` the work
  before ``PATH`` is dead code and XLA drops it.

Layouts: images come back ``(B, H, W, 3)`` (the module's ``(B, 3, H, W)``
transposed); a 4-D feature ``(B, C, H, W)`` comes back channels last,
``(B, H, W, C)``, as the ports give theirs (the spatial cells of the
baselines read it so); other ranks are as the module makes them.

What cannot be traced (in-place ops that alias, data-dependent Python control
flow, host round trips, ops torchax does not lower) raises
:class:`TorchBridgeError`, a ``ValueError`` whose one-line message names the
submodule and the op, when the generator is built. Recipe and limits:
docs/torch.md.

torch and torchax are imported only when ``from_torch`` is called:
regionjax itself does not depend on them (``pip install torch==2.13.0
torchax==0.0.13``; see docs/torch.md §Installing).
"""

from __future__ import annotations

import contextlib
import difflib
import linecache
import os
import re
import sysconfig
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from regionjax import wrap as wrap_lib

__all__ = ["TorchBridgeError", "TorchGenerator", "from_torch", "import_torchax"]

# aten ops that draw random numbers (their results differ between PyTorch and the bridge by design)
_RANDOM_OP = re.compile(r"rand|normal|bernoulli|dropout|multinomial|uniform|exponential|poisson", re.IGNORECASE)

# A verified output may differ from PyTorch's by float32 rounding: |Δ| ≤ VERIFY_RTOL · max(1, max |output|).
VERIFY_RTOL = 1e-3


class TorchBridgeError(ValueError):
  """A forward pass the bridge cannot trace; ``module`` (path) and ``op`` say where and what."""

  def __init__(self, module: str, op: str, message: str):
    super().__init__(message)
    self.module, self.op = module, op


# ---------------------------------------------------------------- torchax import
# torch 2.13 removed the named-tensor overloads (aten.prod.dim_Dimname, aten.index_copy.dimname, …); torchax 0.0.13
# names them in module-level tables (its autocast policy and its decomposition list), so `import torchax` fails with
# "AttributeError: The underlying op of 'aten.prod' has no overload name 'dim_Dimname'". torchax fixed it after the
# release (google/torchax commit d1a9349, "Fix PyTorch 2.13 named overload compatibility": it drops those entries).
# Until a release carries the fix, the lookups of *missing named-tensor overloads* return an inert placeholder while
# torchax imports and builds its environment, which has the same effect: a placeholder is no OpOverload, so
# torch._decomp.get_decompositions skips it and no op dispatches to it. Nothing else changes, and on a torch that
# still has the overloads (or a torchax that no longer names them) it never triggers.
_NAMED_TENSOR_OVERLOAD = re.compile(r"dimname|(^|_)names($|_)", re.IGNORECASE)


class _RemovedOverload:
  """Stands for a named-tensor overload that the installed torch no longer has."""

  def __init__(self, name: str):
    self.name = name

  def __repr__(self):
    return f"<removed overload {self.name}>"


@contextlib.contextmanager
def _removed_named_overloads_as_placeholders():
  from torch import _ops

  packet = _ops.OpOverloadPacket
  original = packet.__getattr__

  def lookup(self, key):
    try:
      return original(self, key)
    except AttributeError:
      if _NAMED_TENSOR_OVERLOAD.search(key):
        return _RemovedOverload(f"{getattr(self, '_qualified_op_name', '?')}.{key}")
      raise

  packet.__getattr__ = lookup
  try:
    yield
  finally:
    packet.__getattr__ = original


_TORCHAX: dict = {}


def import_torchax():
  """``(torchax, env)``: torchax imported (with the torch 2.13 shim above) and its default environment."""
  if not _TORCHAX:
    try:
      import torch  # noqa: F401
    except ImportError:
      raise ImportError(
        "rj.from_torch needs torch (the CPU build: pip install torch==2.13.0) and torchax (pip install "
        "torchax==0.0.13); see docs/torch.md"
      ) from None
    with _removed_named_overloads_as_placeholders():
      try:
        import torchax
      except ImportError:
        raise ImportError("rj.from_torch needs torchax: pip install torchax==0.0.13 (see docs/torch.md)") from None
      env = torchax.default_env()  # builds the op tables (they name overloads too)
    _TORCHAX.update(torchax=torchax, env=env)
  return _TORCHAX["torchax"], _TORCHAX["env"]


# ---------------------------------------------------------------- hooks on the module tree
class _Captured(Exception):
  """Raised by the encode hook to stop the forward pass at the tap."""

  def __init__(self, value):
    super().__init__()
    self.value = value


class _Hooks:
  """Forward pre-/post-hooks on every submodule, for one forward pass.

  Keeps the stack of running submodules (so that an error names the innermost
  one); ``capture``: raise :class:`_Captured` with that path's output;
  ``substitute``: ``(path, tensor)``, return the tensor instead of that path's
  output; ``record``: a list that receives ``(path, output)`` of every
  submodule that returns one tensor, in the order the outputs are made;
  ``convert``: applied to an output before it is captured or recorded.
  """

  def __init__(self, module, *, capture=None, substitute=None, record=None, convert=None):
    self.module = module
    self.capture, self.substitute, self.record = capture, substitute, record
    self.convert = convert or (lambda t: t)
    self.stack: list[str] = []
    self.substituted = 0
    self.captured = False
    self._handles: list = []

  def __enter__(self):
    import torch

    for path, sub in self.module.named_modules():
      if not path:
        continue
      self._handles.append(sub.register_forward_pre_hook(self._pre(path)))
      self._handles.append(sub.register_forward_hook(self._post(path, torch.Tensor)))
    return self

  def __exit__(self, *exc):
    for h in self._handles:
      h.remove()
    self._handles.clear()

  def _pre(self, path):
    def hook(mod, args):
      self.stack.append(path)

    return hook

  def _post(self, path, tensor_type):
    def hook(mod, args, out):
      if self.stack and self.stack[-1] == path:
        self.stack.pop()
      if not isinstance(out, tensor_type):
        return None
      if self.record is not None:
        self.record.append((path, self.convert(out)))
      if path == self.capture:
        self.captured = True
        raise _Captured(self.convert(out))
      if self.substitute is not None and path == self.substitute[0]:
        self.substituted += 1
        return self.substitute[1]
      return None

    return hook


# ---------------------------------------------------------------- errors
def _library_dirs() -> tuple[str, ...]:
  import torch
  import torchax

  dirs = [os.path.dirname(m.__file__) for m in (torch, torchax, jax, np)]
  try:
    import jaxlib

    dirs.append(os.path.dirname(jaxlib.__file__))
  except ImportError:  # pragma: no cover - jax needs it
    pass
  return tuple(d + os.sep for d in dirs) + (os.path.abspath(__file__),)


def _is_library(filename: str, dirs: tuple[str, ...]) -> bool:
  path = os.path.abspath(filename)
  if path.startswith(dirs):
    return True
  stdlib = sysconfig.get_paths()["stdlib"] + os.sep
  site = sysconfig.get_paths()["purelib"] + os.sep
  return path.startswith(stdlib) and not path.startswith(site)


def _where_in_traceback(exc: BaseException) -> tuple[str | None, str | None, str | None]:
  """``(aten op, torch function, source line)`` of the failure, read off the traceback.

  The aten op is the one torchax was dispatching (the ``func`` of its
  innermost dispatch frame), the torch function what the module called
  (``Tensor.__bool__``, ``Tensor.item``, ``F.adaptive_max_pool2d`` …), and the
  source line the innermost frame of the module's own code.
  """
  dirs = _library_dirs()
  torchax_dir = dirs[1]
  aten = fn = line = None
  tb = exc.__traceback__
  while tb is not None:
    frame = tb.tb_frame
    name = frame.f_code.co_name
    filename = frame.f_code.co_filename
    if os.path.abspath(filename).startswith(torchax_dir) and "func" in frame.f_locals:
      func = frame.f_locals["func"]
      if name == "__torch_function__":
        fn = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or str(func)
        fn = fn.replace("TensorBase.", "Tensor.")
      elif aten is None or name == "dispatch":
        aten = str(func)
    elif not _is_library(filename, dirs):
      text = linecache.getline(filename, tb.tb_lineno).strip()
      line = f"{os.path.basename(filename)}:{tb.tb_lineno}" + (f" `{text}`" if text else "")
    tb = tb.tb_next
  return aten, fn, line


_VALUE_NEEDED = (
  "the value of a traced tensor is needed in Python: data-dependent control flow (`if`/`while` on a tensor), "
  "host round trips (.item(), .cpu(), .numpy(), .tolist(), int()/float()) and ops whose output shape depends on "
  "the values (torch.unique, torch.nonzero, boolean-mask indexing) cannot be traced; compute both branches and "
  "pick with torch.where, keep values as tensors"
)


def _describe(exc: BaseException, module_desc: str, module_path: str) -> TorchBridgeError:
  """One line naming the module and the op, for an exception raised while tracing the forward pass."""
  if isinstance(exc, TorchBridgeError):
    return exc
  torchax, _ = import_torchax()
  aten, fn, line = _where_in_traceback(exc)
  at = f" at {line}" if line else ""
  op = aten or fn or type(exc).__name__
  first = " ".join(str(exc).split("\n")[0].split())[:300]
  errors = jax.errors
  value_errors = (
    errors.ConcretizationTypeError,
    errors.TracerBoolConversionError,
    errors.TracerIntegerConversionError,
    errors.TracerArrayConversionError,
  )
  if type(exc).__name__ == "OperatorNotFound":
    m = re.search(r"name (\S+) has no lowering", str(exc))
    op = m.group(1) if m else op
    what = (
      f"the op {op} has no JAX lowering in torchax {torchax.__version__}{at}; replace that call in the module, "
      f"or wrap the model with rj.from_functions (docs/torch.md §Limits)"
    )
  elif isinstance(exc, value_errors):
    called = f"{fn} → {aten}" if fn and aten else op
    what = f"{called}{at}: {_VALUE_NEEDED}"
  elif isinstance(exc, AssertionError) and "mixed math" in str(exc):
    what = (
      f"{op}{at} mixes a plain CPU torch.Tensor made inside forward (torch.tensor, torch.ones … without a device) "
      f"with traced tensors; create it on the input's device (device=x.device) or register it as a buffer"
    )
  else:
    what = f"{type(exc).__name__} in {op}{at}: {first}"
  return TorchBridgeError(module_path, op, f"torch {module_desc}: {what}")


# ---------------------------------------------------------------- the generator
def _nchw_to_nhwc(x):
  return jnp.transpose(x, (0, 2, 3, 1)) if x.ndim == 4 else x


def _nhwc_to_nchw(x):
  return jnp.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x


def _default_inputs(codes) -> tuple:
  if isinstance(codes, dict) and "z" in codes:
    return (codes["z"],)
  if hasattr(codes, "shape"):
    return (codes,)
  raise ValueError("codes must be a dict with 'z' or an array, or pass inputs=(codes → forward's arguments)")


def _default_output(out):
  if not hasattr(out, "ndim") or out.ndim != 4 or out.shape[1] != 3:
    shape = getattr(out, "shape", type(out).__name__)
    raise ValueError(
      f"the module returns {shape}, not (B, 3, H, W) images; pass output=(module output → (B, H, W, 3) images "
      f"in [-1, 1])"
    )
  return jnp.transpose(out, (0, 2, 3, 1))


class TorchGenerator(wrap_lib.UserCodes):
  """A ``torch.nn.Module`` split at named submodules, run under torchax (see :func:`from_torch`).

  Attributes:
    layers: the split paths (``module.named_modules()`` names), as given.
    taps: ``(path, shape, dtype, calls)`` of every submodule that returns one tensor, in the order the outputs are
      made; shapes with the batch axis, in the generator's layout (4-D outputs channels last); ``calls`` > 1 marks
      a submodule called several times in one forward pass (not a split point).
    module: the wrapped module; ``states``: its parameters and buffers as JAX arrays (a copy).
  """

  def __init__(
    self,
    module,
    split: Sequence[str],
    *,
    sample_codes: Callable,
    inputs: Callable | None = None,
    output: Callable | None = None,
    channels_last: bool = True,
    num_classes: int | None = None,
    class_of: Callable | None = None,
    verify: bool = True,
    seed: int = 0,
  ):
    import torch

    torchax, self._env = import_torchax()
    if not isinstance(module, torch.nn.Module):
      raise ValueError(f"rj.from_torch needs a torch.nn.Module, got {type(module).__name__}")
    training = [p for p, m in module.named_modules() if m.training]
    if training:
      which = f"submodule {training[0]!r}" if training[0] else "the module"
      raise ValueError(
        f"torch module {type(module).__name__} is in training mode ({which} and {len(training) - 1} more): call "
        f"module.eval() before rj.from_torch, so that batch norm uses its stored statistics and dropout is off"
      )
    self.module = module
    self.name = type(module).__name__
    self._sample, self._inputs = sample_codes, inputs or _default_inputs
    self._output = output or _default_output
    self.channels_last = bool(channels_last)
    self.num_classes = num_classes
    self._class_of = class_of
    self.seed = int(seed)
    self.states, self._fn = torchax.extract_jax(module)

    probe = self.sample_codes(jax.random.PRNGKey(0), 1, classes=np.zeros(1, int) if num_classes else None)
    self.taps, self._torch_shapes = self._find_taps(probe)
    self.layers = tuple(self._resolve(p) for p in split)
    for layer in self.layers:  # trace encode and decode once: what cannot be traced fails here, not in the solver
      shape = (1,) + self.feature_shape(layer)
      jax.eval_shape(
        lambda s, c, f: self._decode_fn(s, c, layer, f), self.states, probe, jax.ShapeDtypeStruct(shape, jnp.float32)
      )
    if verify:
      self._verify(probe)
    self._generate_jit = jax.jit(self._generate_fn)
    self._encode_jit = jax.jit(self._encode_fn, static_argnums=2)
    self._decode_jit = jax.jit(self._decode_fn, static_argnums=2)

  # ------------------------------------------------------------ tracing
  def _describe_module(self, path: str | None) -> str:
    if not path:
      return f"module {self.name}"
    sub = self.module.get_submodule(path)
    return f"module {path!r} ({type(sub).__name__})"

  def _run(self, states, codes, hooks: _Hooks):
    """The forward pass on JAX arrays under ``hooks``; its output (JAX) or what the hooks captured."""
    import torch

    args = tuple(jnp.asarray(a) for a in self._inputs(codes))
    try:  # random draws (torch.randn …) come from a fixed key, restored afterwards: no key tracer leaks out
      with hooks, torch.no_grad(), self._env.override_property(prng=jax.random.key(self.seed)):
        return self._fn(states, args)
    except _Captured as c:
      return c.value
    except Exception as e:  # noqa: BLE001 - every failure of the traced forward becomes one named line
      path = hooks.stack[-1] if hooks.stack else None
      raise _describe(e, self._describe_module(path), path or "") from e

  def _jax(self, t):
    return self._env.t2j_iso(t)

  def _find_taps(self, probe):
    record: list = []

    def trace(states, codes):
      out = self._run(states, codes, _Hooks(self.module, record=record, convert=self._jax))
      return self._output(out)

    image = jax.eval_shape(trace, self.states, probe)
    if tuple(image.shape[-1:]) != (3,) or len(image.shape) != 4:
      raise ValueError(f"output= must give (B, H, W, 3) images, got {tuple(image.shape)}")
    found: dict[str, list] = {}
    torch_shapes: dict[str, tuple] = {}
    for path, value in record:
      if path in found:
        found[path][3] += 1
        continue
      shape = tuple(value.shape)
      torch_shapes[path] = shape
      if self.channels_last and len(shape) == 4:
        shape = (shape[0], shape[2], shape[3], shape[1])
      found[path] = [path, shape, value.dtype, 1]
    return [tuple(t) for t in found.values()], torch_shapes

  def _resolve(self, path: str) -> str:
    taps = {t[0]: t for t in self.taps}
    valid = [t[0] for t in self.taps if t[3] == 1]
    if path not in taps:
      near = difflib.get_close_matches(str(path), valid, n=3)
      hint = f" (did you mean {', '.join(map(repr, near))}?)" if near else ""
      raise ValueError(
        f"split {path!r} is not a submodule of {self.name} that returns one tensor{hint}; its taps are "
        f"{valid[:40]}{' …' if len(valid) > 40 else ''} (module.named_modules() names; gen.taps lists their shapes)"
      )
    if taps[path][3] != 1:
      raise ValueError(
        f"split {path!r} is called {taps[path][3]} times in one forward pass; split at a submodule called once: "
        f"{valid[:40]}"
      )
    return path

  def _generate_fn(self, states, codes):
    return self._output(self._run(states, codes, _Hooks(self.module))).astype(jnp.float32)

  def _encode_fn(self, states, codes, layer: str):
    hooks = _Hooks(self.module, capture=layer, convert=self._jax)
    f = self._run(states, codes, hooks)
    if not hooks.captured:  # pragma: no cover - a split is a tap, which the forward pass calls
      raise ValueError(f"split {layer!r} was not called in the forward pass")
    return _nchw_to_nhwc(f) if self.channels_last else f

  def _decode_fn(self, states, codes, layer: str, features):
    features = jnp.asarray(features)
    torch_shape = self._torch_shapes[layer]
    f = _nhwc_to_nchw(features) if self.channels_last and len(torch_shape) == 4 else features
    hooks = _Hooks(self.module, substitute=(layer, self._env.j2t_iso(f.astype(self._tap_dtype(layer)))))
    out = self._run(states, codes, hooks)
    if hooks.substituted != 1:  # pragma: no cover - taps called once only
      raise ValueError(f"split {layer!r} was called {hooks.substituted} times; cannot substitute its output")
    return self._output(out).astype(jnp.float32)

  def _tap_dtype(self, layer: str):
    return next(t[2] for t in self.taps if t[0] == layer)

  # ------------------------------------------------------------ verification
  def _verify(self, codes) -> None:
    """Every tap and the image through the bridge against PyTorch itself on ``codes`` (see :func:`from_torch`)."""
    import torch

    args = [torch.from_numpy(np.array(a)) for a in self._inputs(codes)]
    reference, ops = _torch_reference(self.module, args)
    paths: list = []

    def every_output(states, codes):  # one compiled forward pass that returns every submodule's output
      record: list = []
      out = self._run(states, codes, _Hooks(self.module, record=record, convert=self._jax))
      paths[:] = [p for p, _ in record] + [""]
      return [v for _, v in record] + [out]

    values = jax.jit(every_output)(self.states, codes)
    bridged = list(zip(paths, values))
    seen = set()
    for path, value in bridged:
      if path in seen or path not in reference:
        continue
      seen.add(path)
      ours, ref = np.asarray(value, np.float64), reference[path]
      if ours.shape != ref.shape:
        continue
      scale = max(1.0, float(np.nanmax(np.abs(ref), initial=0.0)))
      close = np.isclose(ours, ref, rtol=0, atol=VERIFY_RTOL * scale, equal_nan=True)
      if close.all():
        continue
      delta = float(np.nanmax(np.abs(ours - ref)[~close], initial=0.0))  # NaN against a number: shown as nan
      delta = delta if np.isfinite(ours[~close]).all() and np.isfinite(ref[~close]).all() else float("nan")
      own = ops.get(path, [])
      inplace = [o for o, mutable in own if mutable and not _RANDOM_OP.search(o)]
      random = [o for o, _ in own if _RANDOM_OP.search(o)]
      if random:
        why = (
          f"it draws random numbers ({', '.join(dict.fromkeys(random))}), which the bridge draws from its own fixed "
          f"key (seed={self.seed}), the same on every call: expected if fixed noise is what you want; else make "
          f"the noise an input (part of the codes)"
        )
        op = random[0]
      elif inplace:
        why = (
          f"it runs the in-place op(s) {', '.join(dict.fromkeys(inplace))}; torchax does not carry an in-place op on "
          f"an aliasing view (.view, .reshape, .flatten, .transpose, .expand …) back to the tensor it views: write "
          f"it out of place (y = y * 2 instead of y.view(-1).mul_(2))"
        )
        op = inplace[0]
      else:
        names = list(dict.fromkeys(o for o, _ in own))
        why = f"its ops: {', '.join(names[:12]) or 'none of its own'} (a lowering that differs from PyTorch's)"
        op = names[0] if names else ""
      raise TorchBridgeError(
        path,
        op,
        f"torch {self._describe_module(path)}: the bridge's output differs from PyTorch's on a sample code "
        f"(max |Δ| = {delta:.3g} at a scale of {scale:.3g}); {why}; or pass verify=False to skip this check",
      )

  # ------------------------------------------------------------ protocol
  def feature_shape(self, layer: str) -> tuple:
    """The feature's shape without the batch axis, in the generator's layout (4-D taps channels last)."""
    return tuple(next(t[1] for t in self.taps if t[0] == layer)[1:])

  def generate(self, codes):
    """``(B, H, W, 3)`` float32 images."""
    return self._generate_jit(self.states, codes)

  def encode(self, codes, layer: str):
    """``(B, *feature_shape)``: the output of submodule ``layer`` (channels last for a 4-D output)."""
    return self._encode_jit(self.states, codes, self._check(layer))

  def decode(self, codes, layer: str, features):
    """The module with the output of ``layer`` replaced by ``features`` (pure in ``features``)."""
    layer = self._check(layer)
    want = tuple(self.feature_shape(layer))
    if tuple(np.shape(features)[1:]) != want:
      raise ValueError(
        f"features for layer {layer!r} must have shape (B, {', '.join(map(str, want))}), got {np.shape(features)}"
      )
    return self._decode_jit(self.states, codes, layer, features)

  def __repr__(self):
    return f"TorchGenerator({self.name}, layers={list(self.layers)})"


def _torch_reference(module, args) -> tuple[dict, dict]:
  """PyTorch's own forward pass on ``args``: every submodule's output (copied when made) and the aten ops each
  submodule runs itself, ``{path: [(op, mutates)]}``; buffers changed by the pass are restored and reported."""
  import torch
  from torch.utils._python_dispatch import TorchDispatchMode

  outputs: list = []
  hooks = _Hooks(module, record=outputs, convert=lambda t: t.detach().double().numpy().copy())
  ops: dict[str, list] = {}

  class Log(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
      path = hooks.stack[-1] if hooks.stack else ""
      schema = getattr(func, "_schema", None)
      ops.setdefault(path, []).append((str(func), bool(schema is not None and schema.is_mutable)))
      return func(*args, **(kwargs or {}))

  buffers = {name: b.detach().clone() for name, b in module.named_buffers()}
  try:
    with torch.no_grad(), hooks, Log():
      out = module(*args)
  except Exception as e:  # noqa: BLE001 - the module itself fails: nothing to compare with
    first = " ".join(str(e).split("\n")[0].split())[:300]
    raise ValueError(
      f"torch module {type(module).__name__}: PyTorch's own forward pass fails on a sample code "
      f"({type(e).__name__}: {first}); check sample_codes= and inputs=, or pass verify=False"
    ) from e
  finally:
    changed = [n for n, b in module.named_buffers() if not torch.equal(b, buffers[n])]
    with torch.no_grad():
      for n, b in module.named_buffers():
        b.copy_(buffers[n])
  if changed:
    owner = changed[0].rpartition(".")[0]
    inplace = [o for o, mutable in ops.get(owner, []) if mutable]
    kind = type(module.get_submodule(owner)).__name__ if owner else type(module).__name__
    raise TorchBridgeError(
      owner,
      inplace[0] if inplace else "",
      f"torch module {owner or type(module).__name__!r} ({kind}): its forward pass changes the buffer "
      f"{changed[0]!r}{' with ' + ', '.join(dict.fromkeys(inplace)) if inplace else ''}; a traced forward pass "
      f"cannot keep state between calls (the change would be lost): make the module stateless in eval mode",
    )
  reference = {p: v for p, v in outputs}
  if isinstance(out, torch.Tensor):
    reference[""] = out.detach().double().numpy()
  return reference, ops


def from_torch(
  module,
  *,
  split: str | Sequence[str],
  sample_codes: Callable | Sequence[int],
  inputs: Callable | None = None,
  output: Callable | None = None,
  channels_last: bool = True,
  num_classes: int | None = None,
  class_of: Callable | None = None,
  verify: bool = True,
  seed: int = 0,
) -> TorchGenerator:
  """A :class:`regionjax.Generator` that runs ``module`` (PyTorch) under JAX, split at the submodule ``split``.

  Args:
    module: a ``torch.nn.Module`` in eval mode (``module.eval()``); ``module(*inputs(codes))`` returns
      ``(B, 3, H, W)`` images in ``[-1, 1]`` (or pass ``output``).
    split: the path of the submodule to split at, as ``module.named_modules()`` names it (``'main.11'``,
      ``'blocks.3.conv'``), or several paths. It must be called once per forward pass (through ``__call__``) and
      return one tensor.
    sample_codes: ``(rng, num) → codes`` (a pytree of JAX arrays with the batch axis first; ``(rng, num, classes)``
      for a conditional model), or the shape of one input (without the batch axis): codes are then
      ``{'z': (num, *shape)}`` drawn from ``N(0, I)``.
    inputs: ``codes → tuple`` of the forward pass's positional arguments (JAX arrays, reshaped as the module wants
      them); default ``(codes['z'],)``.
    output: the module's output (a JAX array, or the pytree it returns) → ``(B, H, W, 3)`` images in ``[-1, 1]``;
      default: ``(B, 3, H, W)`` transposed to channels last.
    channels_last: give 4-D features ``(B, C, H, W)`` as ``(B, H, W, C)`` (the layout of the ports and of the
      baselines' spatial cells); ``decode`` takes them in the same layout. Other ranks are unchanged.
    num_classes, class_of: for a class-conditional model (as :func:`regionjax.from_functions`).
    verify: run PyTorch itself and the bridge on one sample code and compare every submodule's output (tolerance
      ``1e-3 × max(1, max |output|)``); a difference raises :class:`TorchBridgeError` naming the first submodule
      that differs and its in-place (or random) ops. Costs one PyTorch forward pass and one compilation.
    seed: random draws inside the forward pass (``torch.randn``, dropout …) come from ``jax.random.key(seed)``,
      the same numbers on every call (fixed noise, so that ``decode`` is a function of the feature).

  Returns:
    A :class:`TorchGenerator`; ``gen.taps`` lists every submodule output with its shape.

  Raises:
    TorchBridgeError: (a ``ValueError``) the forward pass cannot be traced: one line naming the submodule and the
      op (data-dependent control flow, host round trips, ops without a JAX lowering, state changes, or a
      verification difference). ImportError: torch or torchax is missing.
  """
  if not callable(sample_codes):
    shape = tuple(int(d) for d in sample_codes)

    def sample_codes(rng, num, classes=None):
      return {"z": jax.random.normal(rng, (int(num),) + shape, jnp.float32)}

  splits = (split,) if isinstance(split, str) else tuple(split)
  if not splits:
    raise ValueError("split must name at least one submodule")
  return TorchGenerator(
    module,
    splits,
    sample_codes=sample_codes,
    inputs=inputs,
    output=output,
    channels_last=channels_last,
    num_classes=num_classes,
    class_of=class_of,
    verify=verify,
    seed=seed,
  )
