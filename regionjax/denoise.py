"""Removing noise from the minimal features (v1 App. G, eq. 16).

v1 App. G: the OR components are sensitive to small changes of the minimal
features that hardly change the image, so a bounded noise ``q_S`` is
subtracted from every minimal feature to make the components sparse:

    min_{q}  Σ_{S ⊆ N, S ≠ ∅} ‖I_or(S | u + q)‖₁,     q_S ∈ [−τ_q, τ_q]^D        (v1 eq. 16)

``I_or`` is linear in ``u`` (v2 eq. 6), so ``I_or(S | u + q) = I_or(S | u) +
I_or(S | q)`` and the objective is a convex, separable (per feature element)
L1 problem. We solve it by projected Adam — an Adam step, then a clip to the
box — with ``lax.scan`` over the steps inside one ``jit``, on chunks of
feature elements (the problem separates over elements, and Adam is
elementwise, so chunking does not change the answer).

Which ``q_S`` are free (App. G does not say): ``q_∅ = 0`` always, because
``u(∅) = f0`` is the baseline by definition and ``I_or(∅) = f0`` is not in the
sum. ``q_N`` is fixed to 0 by default (``fix_full=True``): then
``Σ_{S≠∅} Δf_S = u(N) − f0`` is unchanged, so completeness and the full
reconstruction are exactly as before denoising, and only the split among
components changes; ``fix_full=False`` frees it as well.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from regionjax import metrics as metrics_lib
from regionjax import solver as solver_lib
from regionjax import subsets as subsets_lib
from regionjax import transforms


@flax.struct.dataclass
class DenoiseResult:
  """Denoised minimal features and their components.

  ``u = u_in + q``; ``components = or_interactions(u)``; ``history[t]`` is
  ``Σ_{S≠∅} ‖I_or(S)‖₁`` before step ``t``; ``l1_before`` / ``l1_after`` the
  objective of eq. 16 at ``q = 0`` and at the returned ``q``.
  """

  u: jax.Array
  q: jax.Array
  components: jax.Array
  history: jax.Array
  l1_before: float = flax.struct.field(pytree_node=False, default=0.0)
  l1_after: float = flax.struct.field(pytree_node=False, default=0.0)
  tau_q: float = flax.struct.field(pytree_node=False, default=0.0)


def or_l1(u: jax.Array) -> jax.Array:
  """``Σ_{S≠∅} ‖I_or(S | u)‖₁`` (the objective of v1 eq. 16)."""
  return jnp.sum(jnp.abs(transforms.or_interactions(u)[1:]))


def free_mask(n: int, fix_full: bool = True) -> np.ndarray:
  """Boolean ``(2**n,)``: which ``q_S`` are optimised (never ∅; ``N`` unless ``fix_full``)."""
  free = np.ones(1 << n, bool)
  free[0] = False
  if fix_full:
    free[-1] = False
  return free


@functools.partial(jax.jit, static_argnames=("schedule", "steps"))
def _solve_chunk(u, free, tau_q, lr, *, schedule, steps):
  """Projected Adam on ``q`` for one chunk of columns ``u: (2**n, d)``. ``tau_q`` and the learning rate are
  arguments, not constants: one program serves every image (and JAX's persistent cache a second run)."""
  optimizer = solver_lib.build_optimizer(lr, steps, schedule, "adam")  # the solver's optimiser
  box = free.astype(u.dtype)[:, None] * tau_q

  def loss(q):
    return or_l1(u + q)

  def step(carry, _):
    q, state = carry
    value, grad = jax.value_and_grad(loss)(q)
    updates, state = optimizer.update(grad, state, q)
    q = jnp.clip(optax.apply_updates(q, updates), -box, box)  # projection onto the box (0 where fixed)
    return (q, state), value

  q0 = jnp.zeros_like(u)
  (q, _), history = jax.lax.scan(step, (q0, optimizer.init(q0)), None, length=steps)
  return q, history


def denoise(
  u,
  *,
  tau_q: float,
  steps: int = 300,
  learning_rate: float | None = None,
  fix_full: bool = True,
  chunk_size: int | None = 1 << 16,
  schedule: str = "cosine",
) -> DenoiseResult:
  """Solves v1 eq. 16 for ``q`` (see the module docstring).

  Args:
    u: minimal features ``(2**n, *feature_shape)``.
    tau_q: the bound ``τ_q ≥ 0`` of every noise element (v1 App. G "τ is a
      threshold to avoid large noise"; the paper gives no value — choose it
      small against ``|f − f0|``, and check the reconstruction with
      :func:`denoise_report`). ``0`` returns ``u`` unchanged.
    steps: Adam steps.
    learning_rate: Adam's step size; default ``τ_q / 20`` (Adam's steps are
      about the learning rate in size, so the box is crossed in ~40 steps).
    fix_full: keep ``q_N = 0`` (completeness unchanged); ``q_∅ = 0`` always.
    chunk_size: feature elements per compiled chunk (memory knob); ``None``:
      all at once.
    schedule: ``'cosine'`` (decays to 1% — the L1 objective is non-smooth,
      so a constant step keeps oscillating at about its own size) or
      ``'constant'``.

  Returns a :class:`DenoiseResult`.
  """
  u = jnp.asarray(u)
  n = subsets_lib.num_players_of(u.shape[0], "the leading (subset) axis of u")
  if not (tau_q >= 0 and math.isfinite(tau_q)):
    raise ValueError(f"tau_q must be a finite number >= 0, got {tau_q}")
  if int(steps) != steps or steps < 1:
    raise ValueError(f"steps must be a positive integer, got {steps}")
  if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
    raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size}")
  steps = int(steps)
  lr = tau_q / 20.0 if learning_rate is None else float(learning_rate)
  if not lr > 0 and tau_q > 0:
    raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
  free = free_mask(n, fix_full)
  flat = u.reshape(u.shape[0], -1)
  dim = flat.shape[1]
  before = float(or_l1(flat))
  if tau_q == 0 or not free.any() or dim == 0:
    comps = transforms.or_interactions(u)
    return DenoiseResult(
      u=u,
      q=jnp.zeros_like(u),
      components=comps,
      history=jnp.full((steps,), before, u.dtype),
      l1_before=before,
      l1_after=before,
      tau_q=float(tau_q),
    )
  if schedule not in ("cosine", "constant"):
    raise ValueError(f"unknown schedule {schedule!r}; use 'cosine' or 'constant'")
  width = dim if chunk_size is None else min(int(chunk_size), dim)
  free_j, tau_j, lr_j = jnp.asarray(free), jnp.asarray(tau_q, u.dtype), jnp.asarray(lr, u.dtype)

  def run(x):
    return _solve_chunk(x, free_j, tau_j, lr_j, schedule=schedule, steps=steps)

  qs, history = [], jnp.zeros((steps,), u.dtype)
  for start in range(0, dim, width):
    cols = flat[:, start : start + width]
    pad = width - cols.shape[1]
    if pad:  # padded columns are zero: their objective and gradient stay 0
      cols = jnp.pad(cols, ((0, 0), (0, pad)))
    q, h = run(cols)
    qs.append(q[:, : width - pad])
    history = history + h
  q = jnp.concatenate(qs, axis=1).reshape(u.shape)
  new_u = u + q
  comps = transforms.or_interactions(new_u)
  return DenoiseResult(
    u=new_u,
    q=q,
    components=comps,
    history=history,
    l1_before=before,
    l1_after=float(jnp.sum(jnp.abs(comps[1:]))),
    tau_q=float(tau_q),
  )


def denoise_report(
  decode: Callable[[jax.Array], jax.Array],
  u_before,
  u_after,
  image,
  masks,
  *,
  eps: float = 1e-2,
  batch_size: int | None = None,
) -> dict:
  """Sparsity and reconstruction quality before and after denoising (v1 App. G).

  For each of ``before`` / ``after``: ``l1`` (eq. 16 objective),
  ``near_zero_share`` and ``shares`` (:func:`regionjax.metrics.sparsity`,
  same ``eps``; the threshold is relative to each side's own max, so the
  report also gives ``near_zero_share_common``, the share below ``eps`` times
  the *before* max, comparable across both), ``recon_rmse`` ``(2**n,)``
  (RMSE of ``g(u(S))`` vs ``image`` on the pixels of ``S``) with
  ``recon_rmse_mean/max``, and ``full_rmse`` (``S = N``).
  """
  u_before, u_after = jnp.asarray(u_before), jnp.asarray(u_after)
  if u_before.shape != u_after.shape:
    raise ValueError(f"u_before {u_before.shape} and u_after {u_after.shape} differ in shape")
  comps_before = transforms.or_interactions(u_before)
  ref_max = float(jnp.max(jnp.abs(comps_before[1:]))) if comps_before.shape[0] > 1 else 0.0
  out = {}
  for name, u in (("before", u_before), ("after", u_after)):
    comps = transforms.or_interactions(u)
    sp = metrics_lib.sparsity(comps, eps=eps)
    rec = metrics_lib.reconstruction_errors(decode, u, image, masks, batch_size=batch_size)
    x = np.abs(np.asarray(comps[1:], np.float64)).reshape(-1)
    common = float(np.mean(x < eps * ref_max)) if ref_max > 0 else 1.0
    out[name] = {
      "l1": sp["l1"],
      "near_zero_share": sp["near_zero_share"],
      "shares": sp["shares"],
      "near_zero_share_common": common,
      "recon_rmse": rec,
      "recon_rmse_mean": float(rec[1:].mean()) if rec.size > 1 else 0.0,
      "recon_rmse_max": float(rec[1:].max()) if rec.size > 1 else 0.0,
      "full_rmse": float(rec[-1]),
      "sparsity_curve": sp["curve"],
      "sparsity_curve_rank": sp["curve_rank"],
    }
  out["eps"] = float(eps)
  return out
