"""Batched decodes in few compiled programs: what the metrics, the report and the interactive view decode.

Every decode goes through three compiled functions: one feature
(:func:`decode_one`), a block of features (:func:`decode_batch`) and a block of
combinations ``f0 + Σ_S w_S Δf_S`` (:func:`decode_combinations`). A batch is
cut into blocks of exactly ``batch_size`` rows (the last one padded with
copies of its last row, which are dropped), so every call of a run with the
same shapes reuses one compiled program instead of compiling one per batch
length.

The decoder is passed to the compiled function as an argument when it is a
``jax.tree_util.Partial`` (:func:`regionjax.explainer.codes_decoder` makes one
where the generator allows): the codes of the image are then arguments too,
not constants of the program, so the program is the same for every image and
seed, and JAX's persistent compilation cache (:mod:`regionjax.cache`) serves a
second run. Other decoders are static arguments (compiled once per decoder).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


def _one(decode, v):
  return decode(v)


def _rows(decode, feats):
  return jax.vmap(decode)(feats)


def _combine(components, weights):
  """``f0 + Σ_S w_S · Δf_S`` for a batch of weight rows (``w[:, 0]`` ignored; :func:`regionjax.components.combine`)."""
  weights = weights.at[..., 0].set(0.0)
  return components[0] + jnp.tensordot(weights, components, axes=(-1, 0))


def _combinations(decode, components, weights):
  return jax.vmap(lambda w: decode(_combine(components, w)))(weights)


_DYNAMIC = {f: jax.jit(f) for f in (_one, _rows, _combinations)}
_STATIC = {f: jax.jit(f, static_argnums=0) for f in (_one, _rows, _combinations)}


def _call(f, decode: Callable, *args):
  table = _DYNAMIC if isinstance(decode, jax.tree_util.Partial) else _STATIC
  return table[f](decode, *args)


def decode_one(decode: Callable, v) -> jax.Array:
  """``g(v)`` for one feature, compiled (with the decoder's codes as arguments where it is a ``Partial``)."""
  return _call(_one, decode, jnp.asarray(v))


def blocks(num: int, batch_size: int | None) -> list[tuple[int, int]]:
  """``(start, stop)`` of each block of rows; one block of all rows when ``batch_size`` is None."""
  if batch_size is None or num <= 0:
    return [(0, num)]
  size = int(batch_size)
  return [(s, min(s + size, num)) for s in range(0, num, size)]


def _blocked(f, decode, rows, batch_size, *lead) -> np.ndarray:
  num = rows.shape[0]
  if num == 0:
    raise ValueError("nothing to decode: no rows")
  size = num if batch_size is None else int(batch_size)
  out = []
  for start, stop in blocks(num, batch_size):
    block = rows[start:stop] if stop - start == size else _pad_host(rows, start, stop, size)
    out.append(np.asarray(_call(f, decode, *lead, block))[: stop - start])
  return out[0] if len(out) == 1 else np.concatenate(out)


def _pad_host(rows, start: int, stop: int, size: int):
  part = np.asarray(rows[start:stop])
  return np.concatenate([part, np.repeat(part[-1:], size - (stop - start), axis=0)])


def decode_batch(decode: Callable, features, batch_size: int | None = None) -> np.ndarray:
  """``decode`` of every row of ``features`` (host array): blocks of ``batch_size`` rows, one compiled program."""
  feats = np.asarray(features)
  if feats.shape[0] == 0:
    raise ValueError("decode_batch needs at least one feature")
  return _blocked(_rows, decode, feats, batch_size)


def decode_combinations(decode: Callable, components, weights, batch_size: int | None = None) -> np.ndarray:
  """``g(f0 + Σ_S w_S Δf_S)`` for every row of ``weights`` ``(B, 2**n)`` (``w[:, 0]`` ignored), in blocks of
  ``batch_size`` rows; each feature is formed inside the compiled call."""
  comps = jnp.asarray(components)
  weights = np.asarray(weights, comps.dtype)
  if weights.ndim != 2 or weights.shape[1] != comps.shape[0]:
    raise ValueError(f"weights must be (B, {comps.shape[0]}), got {weights.shape}")
  if weights.shape[0] == 0:
    raise ValueError("decode_combinations needs at least one row of weights")
  return _blocked(_combinations, decode, weights, batch_size, comps)
