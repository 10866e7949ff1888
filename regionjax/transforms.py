"""Möbius/zeta transforms and the AND/OR interactions, as subset butterflies.

All functions act on the leading subset axis (length ``2**n``, bitmask order)
and broadcast over any trailing shape. Each costs ``O(n · 2**n)`` additions per
trailing element: one pass per player, pairing every ``T`` without player ``i``
with ``T ∪ {i}``. No ``2**n × 2**n`` matrix is ever formed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from regionjax import subsets


def _butterfly(v: jax.Array, sign: int) -> jax.Array:
  """Applies ``v[T ∪ {i}] += sign · v[T]`` for every player ``i`` in turn."""
  v = jnp.asarray(v)
  n = subsets.num_players_of(v.shape[0], "the leading (subset) axis")
  rest = v.shape[1:]
  for i in range(n):
    # Index = high · 2^(i+1) + bit_i · 2^i + low: split that axis into three.
    w = v.reshape((1 << (n - 1 - i), 2, 1 << i) + rest)
    lo, hi = w[:, 0], w[:, 1]
    w = jnp.stack([lo, hi + sign * lo], axis=1)
    v = w.reshape(v.shape)
  return v


@jax.jit
def mobius(v: jax.Array) -> jax.Array:
  """Möbius transform: ``I[S] = Σ_{T⊆S} (−1)^{|S|−|T|} v[T]``."""
  return _butterfly(v, -1)


@jax.jit
def zeta(v: jax.Array) -> jax.Array:
  """Zeta transform (inverse of :func:`mobius`): ``F[S] = Σ_{T⊆S} v[T]``."""
  return _butterfly(v, +1)


def and_interactions(u: jax.Array) -> jax.Array:
  """Harsanyi AND interactions ``I_and(S) = Σ_{T⊆S} (−1)^{|S|−|T|} u(T)``.

  v1 eq. (1); the universal-matching property is ``u(S) = Σ_{T⊆S} I_and(T)``.
  """
  return mobius(u)


@jax.jit
def or_interactions(u: jax.Array) -> jax.Array:
  """OR interactions, the feature components ``Δf_S`` (v2 eq. 6, v1 eq. 10).

      I_or(S) = − Σ_{T⊆S} (−1)^{|S|−|T|} u(N \\ T),   S ≠ ∅
      I_or(∅) = u(∅)

  ``u(N \\ T)`` is ``u`` with its subset axis reversed, so this is minus the
  Möbius transform of the reversed array, with the empty-set entry replaced.
  """
  u = jnp.asarray(u)
  i_or = -mobius(u[::-1])
  return i_or.at[0].set(u[0])


@jax.jit
def or_matching(i_or: jax.Array) -> jax.Array:
  """OR surrogate ``h(Ŝ) = I(∅) + Σ_{T≠∅, T∩Ŝ≠∅} I(T)`` (v1 eq. 11).

  ``Σ_{T≠∅, T∩Ŝ≠∅} I(T) = Σ_{T≠∅} I(T) − Σ_{T≠∅, T⊆N\\Ŝ} I(T)``, and the
  last sum is the zeta transform of ``I`` (with ``I(∅)`` zeroed) read at the
  complement, i.e. reversed. ``or_matching(or_interactions(u)) == u``.
  """
  i_or = jnp.asarray(i_or)
  nonempty = i_or.at[0].set(0)
  z = zeta(nonempty)
  return i_or[0] + z[-1] - z[::-1]
