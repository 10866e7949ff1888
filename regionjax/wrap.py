"""Bring your own generator: a Flax (linen) module or two plain functions as a :class:`regionjax.Generator`.

``from_flax(module, variables, layer=NAME, input_shape=…)`` splits any linen
module at the submodule whose path is ``NAME`` (``'block2'``, or
``'block2/conv'`` for a nested one) by method interception
(``flax.linen.intercept_methods``), with no change to the module's code:

* ``encode``: run the module; when the submodule ``NAME`` returns, keep its
  output ``f = d(z)`` and stop;
* ``decode``: run the module again, but when ``NAME`` is called, return the
  given feature instead of calling it: ``g(f)``. Everything that does not
  depend on ``NAME``'s output (skip connections from earlier layers, the
  code's own paths) is computed from the codes, which ``decode`` holds fixed,
  so ``decode(codes, f) = generate(codes)`` when ``f = encode(codes)``.

``from_functions(encode, decode, sample_codes=…)`` wraps a pair of plain
functions. ``python -m regionjax.check`` prints the taps and the round trip.
Recipe: docs/adding_a_generator.md §Bring your own generator.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["FlaxGenerator", "FunctionGenerator", "from_flax", "from_functions", "flax_taps"]


class _Captured(Exception):
  """Raised by the encode interceptor to stop the forward pass at the tap."""


def _path(module) -> str:
  return "/".join(str(p) for p in module.path)


def flax_taps(module, variables, *inputs, method=None, **kwargs) -> list[tuple[str, tuple, Any, int]]:
  """Every submodule call of ``module.apply(variables, *inputs)`` that returns one array.

  Returns ``(path, shape, dtype, calls)`` in the order the outputs are made
  (forward order), shapes with the batch axis; ``calls`` > 1 marks a module
  called several times (not a valid split point). Shapes only: nothing is
  computed (``jax.eval_shape``).
  """
  import flax.linen as nn

  found: dict[str, list] = {}

  def record(next_fun, args, kw, ctx):
    out = next_fun(*args, **kw)
    if ctx.method_name == "__call__" and ctx.module.path and hasattr(out, "shape") and hasattr(out, "dtype"):
      name = _path(ctx.module)
      if name in found:
        found[name][3] += 1
      else:
        found[name] = [name, tuple(out.shape), out.dtype, 1]
    return out

  def run(v, *x):
    with nn.intercept_methods(record):
      return module.apply(v, *x, method=method, **kwargs)

  jax.eval_shape(run, variables, *inputs)
  return [tuple(t) for t in found.values()]


class FlaxGenerator:
  """A linen module split at one or more named submodules (see :func:`from_flax`).

  Codes are ``{'z': (B, *input_shape)}``, drawn from ``N(0, I)``; the module
  is called as ``module.apply(variables, z, method=method, **apply_kwargs)``
  and must return ``(B, H, W, 3)`` images in ``[-1, 1]``.
  """

  num_classes = None

  def __init__(
    self,
    module,
    variables,
    layers: Sequence[str],
    *,
    input_shape: Sequence[int],
    method=None,
    apply_kwargs: dict | None = None,
    dtype=jnp.float32,
  ):
    self.module, self.variables, self.method = module, variables, method
    self.apply_kwargs = dict(apply_kwargs or {})
    self.input_shape, self.dtype = tuple(int(d) for d in input_shape), dtype
    self.taps = flax_taps(
      module, variables, jnp.zeros((1,) + self.input_shape, dtype), method=method, **self.apply_kwargs
    )
    by_path = {t[0]: t for t in self.taps}
    resolved = []
    for layer in layers:
      matches = [t for t in self.taps if t[0] == layer] or [t for t in self.taps if t[0].split("/")[-1] == layer]
      valid = [t[0] for t in self.taps if t[3] == 1]
      if len(matches) != 1:
        what = "names several submodules" if matches else "is not a submodule that returns one array"
        raise ValueError(f"layer {layer!r} {what}; the module's taps are {valid}")
      if matches[0][3] != 1:
        raise ValueError(
          f"layer {layer!r} is called {matches[0][3]} times in one forward pass; split at a module called once: {valid}"
        )
      resolved.append(matches[0][0])
    self.layers = tuple(resolved)
    self._aliases = {**{l: p for l, p in zip(layers, resolved)}, **{p: p for p in resolved}}
    self._shapes = {p: by_path[p][1][1:] for p in resolved}
    self._generate = jax.jit(self._apply)
    self._encode = jax.jit(self._capture, static_argnums=1)

  # ---------------------------------------------------------------- internals
  def _tap(self, layer: str) -> str:
    if layer not in self._aliases:
      raise ValueError(f"unknown layer {layer!r}; this generator's layers are {list(self.layers)}")
    return self._aliases[layer]

  def _apply(self, z):
    return self.module.apply(self.variables, z, method=self.method, **self.apply_kwargs)

  def _capture(self, z, path: str):
    import flax.linen as nn

    box = {}

    def capture(next_fun, args, kw, ctx):
      out = next_fun(*args, **kw)
      if ctx.method_name == "__call__" and _path(ctx.module) == path:
        box["f"] = out
        raise _Captured()
      return out

    try:
      with nn.intercept_methods(capture):
        self._apply(z)
    except _Captured:
      return box["f"]
    raise ValueError(f"layer {path!r} was not called in the forward pass")

  # ---------------------------------------------------------------- protocol
  def sample_codes(self, rng, num: int, classes=None):
    if classes is not None:
      raise ValueError("this generator is unconditional (num_classes is None): pass no classes")
    return {"z": jax.random.normal(rng, (num,) + self.input_shape, self.dtype)}

  def class_of(self, codes):
    return None

  def _z(self, codes):
    if not isinstance(codes, dict) or "z" not in codes:
      raise ValueError("codes must be a dict {'z': (B, *input_shape)} (see sample_codes)")
    z = jnp.asarray(codes["z"])
    if z.shape[1:] != self.input_shape:
      raise ValueError(f"codes['z'] must have shape (B, {', '.join(map(str, self.input_shape))}), got {z.shape}")
    return z

  def generate(self, codes):
    return self._generate(self._z(codes))

  def encode(self, codes, layer: str):
    return self._encode(self._z(codes), self._tap(layer))

  def feature_shape(self, layer: str) -> tuple:
    return self._shapes[self._tap(layer)]

  def decode(self, codes, layer: str, features):
    """The module with the output of ``layer`` replaced by ``features`` (pure in ``features``)."""
    import flax.linen as nn

    path = self._tap(layer)
    z = self._z(codes)
    features = jnp.asarray(features)
    want = (z.shape[0],) + self._shapes[path]
    if features.shape != want:
      raise ValueError(f"features for layer {path!r} must have shape {want}, got {features.shape}")
    calls = []

    def substitute(next_fun, args, kw, ctx):
      if ctx.method_name == "__call__" and _path(ctx.module) == path:
        calls.append(1)
        return features
      return next_fun(*args, **kw)

    with nn.intercept_methods(substitute):
      out = self._apply(z)
    if len(calls) != 1:  # pragma: no cover - excluded when the taps are resolved
      raise ValueError(f"layer {path!r} was called {len(calls)} times; cannot substitute its output")
    return out


def from_flax(
  module,
  variables,
  layer: str | Sequence[str],
  *,
  input_shape: Sequence[int],
  method=None,
  apply_kwargs: dict | None = None,
) -> FlaxGenerator:
  """A :class:`regionjax.Generator` that splits a linen module at the submodule ``layer``.

  Args:
    module: a ``flax.linen.Module``; ``module.apply(variables, z)`` returns ``(B, H, W, 3)`` images in ``[-1, 1]``.
    variables: its variables (batch norm must run with stored statistics: pass ``apply_kwargs={'train': False}``
      or whatever the module needs for inference).
    layer: the path of the submodule to split at (``'block2'`` or ``'stage/conv'``; its last component alone
      when that is unique), or several paths.
    input_shape: shape of one input code (without the batch axis); codes are ``{'z': N(0, I)}``.
    method: the module's method to call instead of ``__call__``.
    apply_kwargs: extra keyword arguments of every ``apply``.

  Returns:
    A :class:`FlaxGenerator`; ``gen.taps`` lists every submodule output with its shape.
  """
  layers = (layer,) if isinstance(layer, str) else tuple(layer)
  return FlaxGenerator(module, variables, layers, input_shape=input_shape, method=method, apply_kwargs=apply_kwargs)


class UserCodes:
  """The protocol's layer check, ``sample_codes`` and ``class_of`` from user functions ``_sample`` (``(rng, num)``
  or ``(rng, num, classes)`` → codes) and ``_class_of`` (or None); shared by the wrappers of this module and
  :mod:`regionjax.torch_bridge`."""

  layers: tuple
  num_classes: int | None
  _sample: Callable
  _class_of: Callable | None

  def _check(self, layer: str) -> str:
    if layer not in self.layers:
      raise ValueError(f"unknown layer {layer!r}; this generator's layers are {list(self.layers)}")
    return layer

  def sample_codes(self, rng, num: int, classes=None):
    if classes is not None and self.num_classes is None:
      raise ValueError("this generator is unconditional (num_classes is None): pass no classes")
    return self._sample(rng, num) if classes is None else self._sample(rng, num, classes)

  def class_of(self, codes):
    return None if self._class_of is None else np.asarray(self._class_of(codes))


class FunctionGenerator(UserCodes):
  """Two plain functions as a generator (see :func:`from_functions`)."""

  def __init__(
    self,
    encode: Callable,
    decode: Callable,
    sample_codes: Callable,
    *,
    generate: Callable | None = None,
    layer: str = "feature",
    num_classes: int | None = None,
    class_of: Callable | None = None,
  ):
    self._enc, self._dec, self._sample, self._gen = encode, decode, sample_codes, generate
    self.layers = (layer,)
    self.num_classes = num_classes
    self._class_of = class_of

  def encode(self, codes, layer: str):
    self._check(layer)
    return self._enc(codes)

  def decode(self, codes, layer: str, features):
    self._check(layer)
    return self._dec(codes, features)

  def generate(self, codes):
    return self._gen(codes) if self._gen is not None else self._dec(codes, self._enc(codes))


def from_functions(
  encode: Callable,
  decode: Callable,
  *,
  sample_codes: Callable,
  generate: Callable | None = None,
  layer: str = "feature",
  num_classes: int | None = None,
  class_of: Callable | None = None,
) -> FunctionGenerator:
  """A :class:`regionjax.Generator` from ``encode(codes) → features`` and ``decode(codes, features) → images``.

  Args:
    encode: ``codes → (B, *feature_shape)``, the feature ``f = d(z)``.
    decode: ``(codes, features) → (B, H, W, 3)`` images in ``[-1, 1]``; must be a pure, differentiable
      function of ``features`` (the solver ``jit``s, ``vmap``s and differentiates it).
    sample_codes: ``(rng, num) → codes`` (``(rng, num, classes)`` for a conditional model).
    generate: the whole model, ``codes → images``; default ``decode(codes, encode(codes))``. Giving the real
      forward pass lets ``python -m regionjax.check`` test the split.
    layer: the name of the only tap.
    num_classes, class_of: for a class-conditional model.
  """
  return FunctionGenerator(
    encode, decode, sample_codes, generate=generate, layer=layer, num_classes=num_classes, class_of=class_of
  )
