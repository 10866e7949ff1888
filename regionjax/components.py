"""Feature components ``Δf_S``: OR interactions of the minimal features.

``f = f0 + Σ_{S≠∅} Δf_S`` (completeness, when ``u(N) = f``) and, for every
``Ŝ``, ``u(Ŝ) = f0 + Σ_{S∩Ŝ≠∅} Δf_S`` (OR matching, v1 eq. 11).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from regionjax import subsets as subsets_lib
from regionjax import transforms


def or_components(u: jax.Array) -> jax.Array:
  """``Δf_S = I_or(S)`` for all ``S``; index 0 holds ``f0 = u(∅)`` (v2 eq. 6)."""
  return transforms.or_interactions(u)


def max_components(f0: jax.Array, delta: jax.Array, alpha_singletons: jax.Array) -> jax.Array:
  """Closed-form OR components of the max-composed minimal features.

  For ``u(S) = f0 + (max_{i∈S} α_i) ⊙ Δf`` (``regionjax.solver.compose_max``),
  sort the players of each element ``d`` by ``α_i[d]``, largest first:
  ``a_(1) ≥ … ≥ a_(n)``, ``a_(n+1) = 0``, and let ``P_k`` be the first ``k``
  of them. Then ``max_{i∈S} α_i[d] = Σ_k (a_(k) − a_(k+1)) · [S ∩ P_k ≠ ∅]``,
  a sum of OR-unanimity games, so (v2 eq. 6)

      Δf_{P_k}[d] = (a_(k) − a_(k+1)) · Δf[d],   every other Δf_S[d] = 0:

  at most ``n`` non-zero components per element, on nested fields. Equal to
  ``or_components`` of the composed ``u`` (tested); ``O(n log n · D)``.

  Args:
    f0: the baseline feature; ``delta``: ``f − f0``.
    alpha_singletons: ``(n, *feature_shape)``, player order.

  Returns:
    ``(2**n, *feature_shape)`` components, index 0 = ``f0``.
  """
  a = jnp.asarray(alpha_singletons)
  n = a.shape[0]
  flat = a.reshape(n, -1)
  order = jnp.argsort(-flat, axis=0)  # (n, D) players by α, largest first
  sorted_a = jnp.take_along_axis(flat, order, axis=0)
  steps = sorted_a - jnp.concatenate([sorted_a[1:], jnp.zeros_like(sorted_a[:1])], axis=0)
  prefix = jnp.cumsum(jnp.left_shift(1, order.astype(jnp.int32)), axis=0)  # bitmask of P_k
  values = steps * jnp.asarray(delta).reshape(1, -1)
  cols = jnp.broadcast_to(jnp.arange(flat.shape[1]), prefix.shape)
  out = jnp.zeros((1 << n, flat.shape[1]), values.dtype).at[prefix, cols].add(values)
  out = out.at[0].set(jnp.asarray(f0, values.dtype).reshape(-1))
  return out.reshape((1 << n,) + a.shape[1:])


def component_norms(components: jax.Array) -> np.ndarray:
  """``‖Δf_S‖₂`` for every ``S``; the entry of ``∅`` (the baseline) is 0."""
  c = np.asarray(components, np.float64).reshape(components.shape[0], -1)
  norms = np.sqrt((c**2).sum(-1))
  norms[0] = 0.0
  return norms


def rank(components: jax.Array) -> np.ndarray:
  """Non-empty subsets sorted by ``‖Δf_S‖₂``, strongest first (v1 §4)."""
  norms = component_norms(components)
  order = np.argsort(-norms[1:], kind="stable") + 1
  return order.astype(np.int64)


def top_k(components: jax.Array, k: int) -> np.ndarray:
  """The ``k`` strongest action fields (bitmasks)."""
  if k < 0:
    raise ValueError(f"k must be non-negative, got {k}")
  return rank(components)[:k]


def above(components: jax.Array, threshold: float) -> np.ndarray:
  """Action fields with ``‖Δf_S‖₂ > threshold``, strongest first."""
  norms = component_norms(components)
  order = rank(components)
  return order[norms[order] > threshold]


def top_fraction(components: jax.Array, fraction: float) -> np.ndarray:
  """The strongest ``fraction`` of the ``2**n − 1`` components (v1 App. H: 60%)."""
  if not 0.0 <= fraction <= 1.0:
    raise ValueError(f"fraction must be in [0, 1], got {fraction}")
  order = rank(components)
  return order[: int(round(fraction * order.size))]


def keep_mask(n: int, kept) -> np.ndarray:
  """Boolean ``(2**n,)`` from a list of bitmasks (``None``: all non-empty)."""
  keep = np.zeros(1 << n, dtype=bool)
  if kept is None:
    keep[1:] = True
  else:
    keep[np.asarray(kept, dtype=np.int64)] = True
    keep[0] = False
  return keep


def covering_weights(n: int, target_set: int, kept=None) -> np.ndarray:
  """1 for every kept component whose action field meets ``Ŝ`` (Algorithm 2)."""
  return (subsets_lib.meets(target_set, n) & keep_mask(n, kept)).astype(np.float32)


def combine(components: jax.Array, weights) -> jax.Array:
  """``f0 + Σ_S w_S · Δf_S`` for a weight vector (or a batch of them)."""
  weights = jnp.asarray(weights, components.dtype)
  weights = weights.at[..., 0].set(0.0)
  return components[0] + jnp.tensordot(weights, components, axes=(-1, 0))


def reconstruct_feature(components: jax.Array, target_set: int, kept=None) -> jax.Array:
  """Algorithm 2 (v1 App. E): ``f0 + Σ_{S kept, S∩Ŝ≠∅} Δf_S``."""
  n = subsets_lib.num_players_of(components.shape[0])
  return combine(components, covering_weights(n, target_set, kept))


def regional_pattern(decode: Callable[[jax.Array], jax.Array], f: jax.Array, component: jax.Array) -> jax.Array:
  """The pattern painted by a component: ``p_S = g(f) − g(f − Δf_S)`` (v2 §3.2.1)."""
  return decode(f) - decode(f - component)


def regional_patterns(decode, f: jax.Array, components: jax.Array, fields) -> jax.Array:
  """:func:`regional_pattern` for several action fields, batched with ``vmap``."""
  base = decode(f)
  fields = jnp.asarray(fields, jnp.int32)
  return base[None] - jax.vmap(lambda s: decode(f - components[s]))(fields)
