"""Images × problems in one compiled program: an image axis beside the subset axis.

:func:`regionjax.solve_minimal_features` solves the ``2**n − 1`` (or ``n + 1``)
problems of ONE image, chunk by chunk. For a dataset the same compiled chunk is
run for ``B`` images at once: every image's :class:`~regionjax.solver.Problem`
(its ``f``, target, λ and the codes bound to its decoder) is stacked along a
leading image axis, and the chunk program is ``vmap``-ed over it::

    α[b, s] ← argmin_α ‖α ⊙ Δf_b‖₁ + λ/|S_s| · ‖mask_{S_s} ⊙ (g_b(f0 + α ⊙ Δf_b) − x_b)‖²

for images ``b`` of the step and subsets ``s`` of the chunk (v2 eq. 9, the same
objective per image as :func:`regionjax.solver.objective`). Each image's
arithmetic is unchanged, so its result equals its own solve up to floating-point
reassociation in the batched kernels (``tests/test_dataset.py`` checks).

With a mesh the image axis is sharded over its devices (``images per step`` is
a multiple of the device count; a short last step is padded by repeating its
last image, and the padding dropped). The images per step are planned from the
memory budget (:func:`images_per_step`), never from the number of images.

The chunk plan, warm starts (``α_N`` for every other chunk), assembly, λ
continuation and refinement are those of the one-image solver; only the chunks
run batched. Early stopping (``stop_tol``) re-packs subsets per image and is not
batched.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from regionjax import solver as solver_lib

IMAGE_AXIS = "images"


@functools.partial(jax.jit, static_argnames=("length", "unroll"))
def _steps(problems, carry, subset_ids, length: int, unroll: int):
  return jax.vmap(lambda p, c: solver_lib.run_steps(p, c, subset_ids, length, unroll))(problems, carry)


@jax.jit
def _init(problems, alpha0):
  return jax.vmap(lambda p, a: (a, jax.vmap(p.optimizer.init)(a)))(problems, alpha0)


@jax.jit
def _final(problems, alpha, subset_ids):
  return jax.vmap(lambda p, a: solver_lib.final_error(p, a, subset_ids))(problems, alpha)


def run_chunk(problems, alpha0, subset_ids, steps: int, steps_per_call: int):
  """``(α, history, error)`` of one chunk for a stack of problems: ``alpha0`` is ``(B, W, *F)``, ``subset_ids``
  the chunk's ``W`` encoded subsets, shared by the images. Steps run in compiled blocks of ``steps_per_call``
  (all in one ``lax.scan`` for 0), as the one-image solver does."""
  k = steps if steps_per_call <= 0 else int(steps_per_call)
  carry, history, done = _init(problems, alpha0), [], 0
  while done < steps:
    length = min(k, steps - done)
    carry, h = _steps(problems, carry, subset_ids, length=length, unroll=length if steps_per_call > 0 else 1)
    history.append(h)
    done += length
  alpha = carry[0]
  return alpha, jnp.concatenate(history, axis=2), _final(problems, alpha, subset_ids)


def stack_problems(problems: Sequence[solver_lib.Problem]) -> solver_lib.Problem:
  """One problem whose array leaves (``f``, ``f0``, target, masks, λ, the decoder's bound codes) carry a leading
  image axis. The decoders must be the same function (a ``jax.tree_util.Partial`` over each image's codes,
  :func:`regionjax.explainer.codes_decoder`), and the static settings equal."""
  first = jax.tree.structure(problems[0])
  for p in problems[1:]:
    if jax.tree.structure(p) != first:
      raise ValueError(
        "the images' decoders differ in more than their codes' arrays (e.g. a generator that needs concrete "
        "codes): they cannot share one compiled program; use target.images_per_step=1"
      )
  return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *problems)


def images_per_step(
  options: solver_lib.SolverOptions, chunk_bytes: int | None, devices: int = 1, requested: int = 0
) -> int:
  """Images per compiled step: ``requested`` when > 0 (rounded up to a multiple of ``devices``); else as many
  as fit ``options.memory_budget`` per device next to one image's chunk (``chunk_bytes``, XLA's memory
  analysis, :func:`regionjax.solver.chunk_memory_bytes`), times the devices; one per device without a budget.
  Depends on the budget and the devices only, never on the number of images."""
  if requested > 0:
    return devices * math.ceil(requested / devices)
  per_device = 1
  if options.memory_budget is not None and chunk_bytes:
    per_device = max(1, int(options.memory_budget // chunk_bytes))
  return devices * per_device


def solve_images(
  targets: Sequence[tuple],
  f0,
  masks,
  options: solver_lib.SolverOptions,
  *,
  mesh: Mesh | None = None,
) -> list[solver_lib.SolverResult]:
  """:func:`regionjax.solve_minimal_features` of several images in one compiled program per chunk.

  ``targets``: ``(decode, f, image)`` per image (all with the same feature and image shapes); ``masks``: the
  players' ``(n, H, W)`` masks, shared by the images, or a list of one per image (same ``n``). With ``mesh`` (one axis) the image axis is sharded over its devices: pass
  a multiple of its size, or the last image is repeated to fill it (dropped from the result). Returns one
  :class:`~regionjax.solver.SolverResult` per image, as its own solve would (the λ continuation and
  refinement of ``options`` run per image afterwards).
  """
  if options.stop_tol is not None:
    raise ValueError("early stopping (solver.stop_tol) re-packs each image's subsets: it is not batched over images")
  count = len(targets)
  if count == 0:
    return []
  devices = 1 if mesh is None else mesh.devices.size
  masks = list(masks) if isinstance(masks, (list, tuple)) else [masks] * count
  if len(masks) != count:
    raise ValueError(f"{len(masks)} player masks for {count} images")
  extra = -count % devices
  padded = list(zip(targets, masks)) + [(targets[-1], masks[-1])] * extra
  one = options.replace(memory_budget=None, subsets_per_call=0)  # the chunk width of the options, no budget probe
  setups = [solver_lib.prepare(d, f, f0, x, m, one) for (d, f, x), m in padded]
  s0 = setups[0]
  stacked = stack_problems([s.problem for s in setups])
  put = lambda a: a  # noqa: E731
  if mesh is not None:
    spec = NamedSharding(mesh, P(mesh.axis_names[0]))
    stacked = jax.device_put(stacked, spec)
    put = lambda a: jax.device_put(a, spec)  # noqa: E731
  n = s0.problem.n
  fshape = s0.problem.f.shape
  b = len(padded)
  results: list[dict[int, solver_lib.ChunkResult]] = [{} for _ in padded]
  for index, ids in enumerate(s0.plan):
    width = ids.size if index == 0 else s0.width
    ids_padded = np.concatenate([ids, np.repeat(ids[-1:], width - ids.size)])
    if index == 0:
      alpha0 = jnp.ones((b, width) + fshape, s0.dtype)
    else:
      start = np.stack([np.asarray(r[0].alpha)[0] for r in results])
      alpha0 = jnp.broadcast_to(jnp.asarray(start, s0.dtype)[:, None], (b, width) + fshape)
    alpha, history, error = run_chunk(
      stacked, put(alpha0), solver_lib.encode_subsets(n, ids_padded), s0.problem.steps, s0.steps_per_call
    )
    alpha, history, error = np.asarray(alpha), np.asarray(history), np.asarray(error)
    k = ids.size
    for i in range(b):
      chunk = solver_lib.ChunkResult(subsets=ids, alpha=alpha[i, :k], history=history[i, :k], error=error[i, :k])
      solver_lib.check_finite(chunk)
      results[i][index] = chunk
  out = []
  for i in range(count):
    setup = setups[i]
    result = solver_lib.assemble(setup, results[i], options.tau)
    result = solver_lib.continue_unmet(setup, result, lam_max=options.lam_max, growth=options.lam_growth)
    out.append(solver_lib.refine(setup, result, options.refine_steps))
  return out


def image_mesh(devices=None) -> Mesh:
  """A 1-d mesh over this process's devices whose axis is the image axis."""
  devices = list(jax.local_devices() if devices is None else devices)
  return Mesh(np.asarray(devices), (IMAGE_AXIS,))
