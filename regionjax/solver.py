"""Minimal features ``u(S)`` for all ``2**n`` subsets, as one batched solve.

Paper v2 eq. (5) and App. E; v1 §3.2 "Implementation details":

    u(S) = f0 + α_S ⊙ (f − f0),   α_S ∈ [0, 1]^D
    α_S = argmin_α ‖α ⊙ (f − f0)‖₁ + (λ / |S|) · ‖mask_S ⊙ (g(u(S)) − x)‖₂²

solved by projected gradient descent: an Adam step, then a clip to the box.
``α_N`` is solved first from ``α = 1``; it is the warm start of every other
subset (v1 §4.1). ``u(∅) = f0`` exactly. Subsets are solved in chunks: within
a chunk, one ``jit``-compiled, ``vmap``-ed computation whose steps run inside
``lax.scan``; chunks can be sharded over the devices of a mesh.

Memory knobs: ``chunk_size`` (or ``memory_budget``, from which
:func:`chunk_size_for_budget` derives it by compiling the chunk at two sizes),
``remat`` (rematerialise the decoder's intermediates in the backward pass) and
``decode_dtype`` (run the decoder in e.g. bfloat16 while α, the loss and
Adam's state stay in ``dtype``). Multi-process runs solve a share of the chunks
per process through :func:`solve_chunks` (see ``regionjax.distributed``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from regionjax import subsets as subsets_lib

Decode = Callable[[jax.Array], jax.Array]


@flax.struct.dataclass
class ChunkResult:
  """What one chunk of subsets produced (host arrays)."""
  subsets: np.ndarray   # (B,) bitmasks
  alpha: np.ndarray     # (B, *feature_shape)
  history: np.ndarray   # (B, steps) objective before each step
  error: np.ndarray     # (B,) RMSE of g(u(S)) vs x on the pixels of S


@flax.struct.dataclass
class SolverResult:
  """Minimal features of all subsets, indexed by bitmask on the first axis.

  ``error[S]`` is the root-mean-square error of ``g(u(S))`` against the target
  over the pixels (and channels) of the patches in ``S`` (0 for ``∅``);
  ``history[S, t]`` the objective before step ``t``; ``unmet`` flags subsets
  whose error stayed above ``tau`` (they are reported, never hidden).
  """
  alpha: jax.Array
  u: jax.Array
  error: jax.Array
  history: jax.Array
  tau: float = flax.struct.field(pytree_node=False, default=math.inf)
  solved: Any = None   # (2**n,) bool: optimised (True) or composed from the singletons (False)
  lam: Any = None      # (2**n,) the λ each solved subset ended with (λ continuation); NaN where composed

  @property
  def unmet(self) -> np.ndarray:
    return np.asarray(self.error) > self.tau

  @property
  def num_players(self) -> int:
    return subsets_lib.num_players_of(self.alpha.shape[0])


@dataclasses.dataclass(frozen=True)
class Problem:
  """The arrays and settings shared by every subset's optimisation."""
  decode: Decode
  f: jax.Array
  f0: jax.Array
  target: jax.Array
  masks: jax.Array   # (n, H, W) bool
  lam: float
  optimizer: optax.GradientTransformation
  steps: int
  remat: Any = False
  decode_dtype: Any = None

  @property
  def n(self) -> int:
    return int(self.masks.shape[0])


OPTIMIZERS = ("adam", "gd")
MAX_PLAYERS_EXPLICIT = 62  # an explicit subset list: bitmasks of up to 62 players (and their complements) fit int64
COMPOSITIONS = ("independent", "max")


def make_optimizer(learning_rate: float, steps: int, schedule: str = "constant",
                   optimizer: str = "adam") -> optax.GradientTransformation:
  """The step before the projection onto ``[0, 1]^D``.

  ``optimizer``: 'gd' is plain gradient descent, ``α ← α − η ∇L`` (the paper's
  "gradient descent", v2 App. E); 'adam' is Adam (our first design's choice: it
  moves every element by about ``η`` per step whatever its gradient).
  ``schedule``: 'constant' (the paper) or 'cosine' decay to 1% of ``η``.
  """
  if schedule == "constant":
    rate = learning_rate
  elif schedule == "cosine":
    rate = optax.cosine_decay_schedule(learning_rate, steps, alpha=0.01)
  else:
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; use 'constant' or 'cosine'")
  if optimizer == "adam":
    return optax.adam(rate)
  if optimizer == "gd":
    return optax.sgd(rate)
  raise ValueError(f"unknown optimizer {optimizer!r}; use one of {OPTIMIZERS}")


def subset_pixel_mask(masks: jax.Array, s: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(mask_S, |S|)`` for a traced bitmask ``s``: the union of member masks.

  ``s`` is an int32 bitmask (``n ≤ 31``) or a boolean ``(n,)`` membership
  vector (any ``n``; see :func:`encode_subsets`).
  """
  n = masks.shape[0]
  if jnp.ndim(s) == 1:
    members = s.astype(bool)
  else:
    members = ((s >> jnp.arange(n)) & 1).astype(bool)
  mask = jnp.any(masks & members[:, None, None], axis=0)
  return mask, members.sum()


REMAT_POLICIES = {
    # keep the outputs of matmuls/convolutions, recompute everything elementwise
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    # keep nothing: the backward pass re-runs the whole decoder
    "nothing": jax.checkpoint_policies.nothing_saveable,
}


def _decoder(problem: Problem) -> Decode:
  """``problem.decode`` wrapped for ``decode_dtype`` and ``remat``.

  With ``decode_dtype`` the feature is cast to it before decoding and the
  image cast back to the dtype of α, so the objective, its gradient w.r.t. α
  and Adam's state stay in ``dtype`` (mixed precision: the decoder should run
  its own weights in its input's dtype, e.g. close over bfloat16 parameters).
  ``remat`` (True = 'dots', 'nothing', or a ``jax.checkpoint`` policy)
  recomputes the decoder's intermediates in the backward pass instead of
  storing them.
  """
  decode = problem.decode
  if problem.decode_dtype is not None:
    inner, low = decode, problem.decode_dtype

    def decode(u):  # noqa: F811 - deliberate wrap
      return inner(u.astype(low)).astype(u.dtype)
  if problem.remat:
    policy = problem.remat
    if policy is True:
      policy = "dots"
    if isinstance(policy, str):
      if policy not in REMAT_POLICIES:
        raise ValueError(f"unknown remat policy {policy!r}; use True, one of {sorted(REMAT_POLICIES)} or a "
                         "jax.checkpoint_policies callable")
      policy = REMAT_POLICIES[policy]
    decode = jax.checkpoint(decode, policy=policy)
  return decode


def objective(problem: Problem, alpha: jax.Array, s: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``‖α⊙Δf‖₁ + (λ/|S|)·‖mask_S⊙(g(f0+α⊙Δf) − x)‖²`` and the RMSE on ``S``."""
  delta = problem.f - problem.f0
  u = problem.f0 + alpha * delta
  image = _decoder(problem)(u)
  mask, size = subset_pixel_mask(problem.masks, s)
  residual = (image - problem.target) * mask[..., None]
  sq = jnp.sum(residual ** 2)
  size = jnp.maximum(size, 1)
  loss = jnp.sum(jnp.abs(alpha * delta)) + problem.lam / size * sq
  count = jnp.maximum(mask.sum() * problem.target.shape[-1], 1)
  return loss, jnp.sqrt(sq / count)


def _step_fn(problem: Problem):
  """One projected-Adam step of one subset: ``(α, opt_state), s → (α', opt_state'), loss``."""

  def step(carry, s):
    alpha, opt_state = carry
    (loss, _), grad = jax.value_and_grad(objective, argnums=1, has_aux=True)(problem, alpha, s)
    updates, opt_state = problem.optimizer.update(grad, opt_state, alpha)
    alpha = jnp.clip(optax.apply_updates(alpha, updates), 0.0, 1.0)  # projection onto [0,1]^D
    return (alpha, opt_state), loss

  return step


def _run_steps(problem: Problem, carry, subset_ids: jax.Array, length: int, unroll: int = 1):
  """``length`` steps of a chunk inside ``lax.scan``, vmapped over subsets."""
  step = _step_fn(problem)

  def one(carry, s):
    return jax.lax.scan(lambda c, _: step(c, s), carry, None, length=length, unroll=unroll)

  return jax.vmap(one)(carry, subset_ids)


def _final_error(problem: Problem, alpha: jax.Array, subset_ids: jax.Array) -> jax.Array:
  return jax.vmap(lambda a, s: objective(problem, a, s)[1])(alpha, subset_ids)


def _run_chunk(problem: Problem, alpha0: jax.Array, subset_ids: jax.Array, unroll: int = 1):
  """Projected Adam for ``problem.steps`` steps on a chunk of subsets (one ``lax.scan``)."""
  carry = (alpha0, jax.vmap(problem.optimizer.init)(alpha0))
  (alpha, _), history = _run_steps(problem, carry, subset_ids, problem.steps, unroll=unroll)
  return alpha, history, _final_error(problem, alpha, subset_ids)


def default_steps_per_call() -> int:
  """0 (every step in one ``lax.scan``) on accelerators; 5 on CPU.

  XLA:CPU runs a convolutional decoder 3–5× slower inside a while loop
  (``lax.scan``/``fori_loop``) than as straight-line code (measured on the
  BigGAN-deep port, jax 0.10.2), so on CPU the steps run as compiled blocks of
  ``steps_per_call`` fully unrolled steps, a Python call per block.
  """
  return 5 if jax.default_backend() == "cpu" else 0


def make_chunk_runner(problem: Problem, steps_per_call: int = 0):
  """``run(alpha0, subset_ids) → (alpha, history, error)`` for a chunk.

  ``steps_per_call = 0``: one jitted call, all steps in ``lax.scan``. ``k > 0``:
  jitted blocks of ``k`` unrolled steps (and one of the remainder), called
  ``⌈steps / k⌉`` times; the same arithmetic, so the same result.
  """
  if steps_per_call <= 0:
    return jax.jit(lambda a, s: _run_chunk(problem, a, s))
  if steps_per_call >= problem.steps:  # one block: every step unrolled in one compiled call
    return jax.jit(lambda a, s: _run_chunk(problem, a, s, unroll=problem.steps))
  k = int(steps_per_call)
  init = jax.jit(lambda a: (a, jax.vmap(problem.optimizer.init)(a)))
  blocks = {length: jax.jit(lambda c, s, length=length: _run_steps(problem, c, s, length, unroll=length))
            for length in {k, problem.steps % k} if length}
  final = jax.jit(lambda a, s: _final_error(problem, a, s))

  def run(alpha0, subset_ids):
    carry, history, done = init(alpha0), [], 0
    while done < problem.steps:
      length = min(k, problem.steps - done)
      carry, h = blocks[length](carry, subset_ids)
      history.append(h)
      done += length
    alpha = carry[0]
    return alpha, jnp.concatenate(history, axis=1), final(alpha, subset_ids)

  return run


def chunk_plan(n: int, chunk_size: int, composition: str = "independent") -> list[np.ndarray]:
  """Chunk 0 is ``[N]``; then ``1 … 2**n − 2`` in order, ``chunk_size`` at a time.

  With ``composition='max'`` only the ``n`` singletons follow ``[N]`` (the
  rest is composed from them, :func:`compose_max`).
  """
  full = subsets_lib.full_set(n)
  if composition == "max":
    rest = np.array([1 << i for i in range(n) if (1 << i) != full], dtype=np.int64)
  elif composition == "independent":
    rest = np.arange(1, full, dtype=np.int64)
  else:
    raise ValueError(f"unknown composition {composition!r}; use one of {COMPOSITIONS}")
  plan = [np.array([full], dtype=np.int64)]
  plan += [rest[i:i + chunk_size] for i in range(0, rest.size, chunk_size)]
  return plan


def encode_subsets(n: int, ids: np.ndarray) -> jax.Array:
  """Bitmasks as the jitted solver reads them: int32 for ``n ≤ 30``, else a
  boolean ``(len(ids), n)`` membership matrix (int64 bitmasks do not survive
  JAX without x64)."""
  ids = np.asarray(ids, np.int64)
  if n <= subsets_lib.MAX_PLAYERS:
    return jnp.asarray(ids, jnp.int32)
  return jnp.asarray((ids[:, None] >> np.arange(n, dtype=np.int64)) & 1, bool)


def explicit_plan(n: int, ids, chunk_size: int) -> list[np.ndarray]:
  """Chunk 0 is ``[N]`` (every other chunk's warm start); then the subsets
  ``ids`` (``N`` and ``∅`` dropped, order kept), ``chunk_size`` at a time."""
  full = subsets_lib.full_set(n)
  ids = np.asarray(ids, np.int64).reshape(-1)
  rest = ids[(ids != full) & (ids != 0)]
  plan = [np.array([full], dtype=np.int64)]
  plan += [rest[i:i + chunk_size] for i in range(0, rest.size, chunk_size)]
  return plan


def _available_memory_bytes() -> int:
  try:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
  except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
    return 1 << 40


def validate(f, f0, target, masks, *, lam, learning_rate, steps, chunk_size, decode=None, allow_overlap=False,
             optimizer="adam", composition="independent", num_subsets=None):
  """Raises ValueError naming the argument for every inconsistent input.

  ``num_subsets``: with an explicit list of subsets (``prepare(subsets=…)``),
  how many are stored; ``n`` may then be up to 62 and memory is checked for
  those only.
  """
  f, f0, target, masks = np.shape(f), np.shape(f0), np.shape(target), np.asarray(masks)
  if f != f0:
    raise ValueError(f"f has shape {f} but f0 has shape {f0}; the baseline must match the feature")
  if len(target) != 3:
    raise ValueError(f"target must be one image (H, W, C), got shape {target}")
  if masks.ndim != 3 or masks.shape[1:] != target[:2]:
    raise ValueError(f"masks must be (n, H, W) = (n, {target[0]}, {target[1]}) to match the target image, got {masks.shape}")
  if masks.dtype != bool:
    raise ValueError(f"masks must be boolean, got dtype {masks.dtype}")
  n = subsets_lib.check_num_players(masks.shape[0], "n (the number of masks)",
                                   limit=subsets_lib.MAX_PLAYERS if num_subsets is None else MAX_PLAYERS_EXPLICIT)
  empty = [i for i in range(n) if not masks[i].any()]
  if empty:
    raise ValueError(f"masks {empty} are empty: every player patch must cover at least one pixel")
  if not allow_overlap:
    overlap = masks.sum(0) > 1
    if overlap.any():
      pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if (masks[i] & masks[j]).any()]
      raise ValueError(f"masks overlap (players {pairs[:5]}): player patches must be disjoint (pass allow_overlap=True if intended)")
  if not lam > 0:
    raise ValueError(f"lam (λ) must be > 0, got {lam}")
  if not (learning_rate > 0 and math.isfinite(learning_rate)):
    raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate}")
  if not math.isfinite(lam):
    raise ValueError(f"lam (λ) must be finite, got {lam}")
  if optimizer not in OPTIMIZERS:
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
  if composition not in COMPOSITIONS:
    raise ValueError(f"composition must be one of {COMPOSITIONS}, got {composition!r}")
  if int(steps) != steps or steps <= 0:
    raise ValueError(f"steps must be a positive integer, got {steps}")
  if int(chunk_size) != chunk_size or chunk_size <= 0:
    raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
  need = (1 << n) * (2 * math.prod(f) * 4 + steps * 4)
  if num_subsets is not None:  # only the listed subsets are stored
    need = int(num_subsets) * (2 * math.prod(f) * 4 + steps * 4)
  elif composition == "max":  # 2**n composed α and u, histories only for the n + 1 solved
    need = (1 << n) * 2 * math.prod(f) * 4 + (n + 1) * steps * 4
  have = _available_memory_bytes()
  if need > have // 2:
    raise ValueError(f"n={n} needs about {need / 2**30:.1f} GiB for α and u of all 2**{n} subsets, more than half "
                     f"of this machine's {have / 2**30:.1f} GiB; use fewer patches")
  if decode is not None:
    out = jax.eval_shape(decode, jax.ShapeDtypeStruct(f, jnp.float32))
    if tuple(out.shape) != tuple(target):
      raise ValueError(f"decode maps a feature {f} to shape {tuple(out.shape)}, but target has shape {target}")


def _check_finite(chunk: ChunkResult) -> None:
  bad = ~np.isfinite(chunk.error) | ~np.isfinite(chunk.alpha.reshape(chunk.alpha.shape[0], -1)).all(-1)
  if bad.any():
    names = ", ".join(subsets_lib.format_subset(s) for s in chunk.subsets[bad][:8])
    raise ValueError(f"decode returned NaN or Inf while solving {int(bad.sum())} subset(s): {names}"
                     f"{' …' if bad.sum() > 8 else ''}; check the generator and the feature")


@dataclasses.dataclass(frozen=True)
class Setup:
  """A validated problem, its compiled chunk function and its chunk plan.

  ``width`` is the padded size of every chunk but chunk 0 (``[N]``); with a
  mesh it is a multiple of the device count.
  """
  problem: Problem
  run: Callable[[jax.Array, jax.Array], Any]
  plan: list
  width: int
  devices: int
  mesh: Mesh | None
  dtype: Any
  composition: str = "independent"
  steps_per_call: int = 0

  @property
  def num_chunks(self) -> int:
    return len(self.plan)


def chunk_width(n: int, chunk_size: int, devices: int = 1, composition: str = "independent") -> int:
  """The chunk size actually used: ``chunk_size`` capped by the subsets left
  to solve after ``N`` (``2**n − 2``, or the ``n`` singletons with
  ``composition='max'``), rounded up to a multiple of ``devices``."""
  solved = n if composition == "max" else (1 << n) - 2
  return devices * math.ceil(min(chunk_size, max(solved, 1)) / devices)


def _memory_of(compiled) -> int | None:
  mem = compiled.memory_analysis()
  if mem is None:  # pragma: no cover - backend without memory analysis
    return None
  return int(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
             - mem.alias_size_in_bytes)


def chunk_memory_bytes(decode: Decode, f, target, batch: int, *, steps: int = 2, dtype: Any = jnp.float32,
                       decode_dtype: Any = None, remat: Any = False) -> int | None:
  """Peak bytes (arguments + outputs + temporaries, from XLA's memory
  analysis of the compiled chunk) of solving ``batch`` subsets on one device.

  ``None`` where the backend reports no memory analysis.
  """
  fshape, tshape = tuple(np.shape(f)), tuple(np.shape(target))
  problem = Problem(decode=decode, f=jnp.zeros(fshape, dtype), f0=jnp.zeros(fshape, dtype),
                    target=jnp.zeros(tshape, dtype), masks=jnp.ones((1,) + tshape[:2], bool), lam=1.0,
                    optimizer=optax.adam(1e-3), steps=int(steps), remat=remat, decode_dtype=decode_dtype)
  run = jax.jit(lambda a, s: _run_chunk(problem, a, s))
  compiled = run.lower(jax.ShapeDtypeStruct((batch,) + fshape, dtype),
                       jax.ShapeDtypeStruct((batch,), jnp.int32)).compile()
  return _memory_of(compiled)


def chunk_size_for_budget(decode: Decode, f, target, *, budget_bytes: float, devices: int = 1,
                          dtype: Any = jnp.float32, decode_dtype: Any = None, remat: Any = False,
                          max_chunk: int | None = None) -> int:
  """The largest chunk whose per-device peak memory fits ``budget_bytes``.

  The chunk function is compiled (not run) for 1 and 3 subsets per device;
  XLA's memory analysis gives ``peak(b) ≈ fixed + b · per_subset``, so the
  chunk is ``devices · ⌊(budget − fixed) / per_subset⌋`` subsets (capped at
  ``max_chunk``). Raises ValueError when not even one subset per device fits.
  Where the backend has no memory analysis (none known), the estimate is 6
  feature-sized arrays per subset plus the decoder's output.
  """
  if not budget_bytes > 0:
    raise ValueError(f"memory budget must be > 0 bytes, got {budget_bytes}")
  kw = dict(dtype=dtype, decode_dtype=decode_dtype, remat=remat)
  m1 = chunk_memory_bytes(decode, f, target, 1, **kw)
  m3 = chunk_memory_bytes(decode, f, target, 3, **kw) if m1 is not None else None
  if m1 is None or m3 is None:  # pragma: no cover - fallback estimate
    per = (6 * math.prod(np.shape(f)) + math.prod(np.shape(target))) * jnp.dtype(dtype).itemsize
    fixed = 0
  else:
    per = max((m3 - m1) / 2, 1)
    fixed = max(m1 - per, 0)
  fit = int((budget_bytes - fixed) // per)
  if fit < 1:
    raise ValueError(f"a memory budget of {budget_bytes / 2**20:.1f} MiB per device does not hold one subset: "
                     f"the chunk needs {fixed / 2**20:.1f} MiB + {per / 2**20:.1f} MiB per subset")
  chunk = devices * fit
  return chunk if max_chunk is None else max(1, min(chunk, int(max_chunk)))


def prepare(
    decode: Decode, f, f0, target, masks, *, lam: float, learning_rate: float, steps: int,
    chunk_size: int = 64, dtype: Any = jnp.float32, schedule: str = "constant", allow_overlap: bool = False,
    mesh: Mesh | None = None, remat: Any = False, decode_dtype: Any = None,
    memory_budget: float | None = None, steps_per_call: int | None = None, optimizer: str = "adam",
    composition: str = "independent", subsets=None) -> Setup:
  """Validates the inputs and builds the :class:`Setup` of a solve.

  ``subsets``: an explicit list of bitmasks to solve instead of the plan of
  ``composition`` (:func:`explicit_plan`: ``[N]`` first, then these); used by
  ``regionjax.truncated``, which stores only these, so ``n`` may be up to 62.
  """
  num_subsets = None if subsets is None else int(np.asarray(subsets).size) + 1
  validate(f, f0, target, masks, lam=lam, learning_rate=learning_rate, steps=steps,
           chunk_size=chunk_size, decode=decode, allow_overlap=allow_overlap, optimizer=optimizer,
           composition=composition, num_subsets=num_subsets)
  n = masks.shape[0]
  devices = 1 if mesh is None else mesh.devices.size
  if memory_budget is not None:
    chunk_size = chunk_size_for_budget(decode, f, target, budget_bytes=memory_budget, devices=devices,
                                       dtype=dtype, decode_dtype=decode_dtype, remat=remat)
  problem = Problem(
      decode=decode, f=jnp.asarray(f, dtype), f0=jnp.asarray(f0, dtype),
      target=jnp.asarray(target, dtype), masks=jnp.asarray(masks, bool), lam=float(lam),
      optimizer=make_optimizer(learning_rate, int(steps), schedule, optimizer), steps=int(steps),
      remat=remat, decode_dtype=decode_dtype)
  _decoder(problem)  # validates remat
  if steps_per_call is None:
    steps_per_call = default_steps_per_call()
  if int(steps_per_call) != steps_per_call or steps_per_call < 0:
    raise ValueError(f"steps_per_call must be a non-negative integer, got {steps_per_call}")
  run = make_chunk_runner(problem, int(steps_per_call))
  if subsets is None:
    width = chunk_width(n, chunk_size, devices, composition)
    plan = chunk_plan(n, width, composition)
  else:
    rest = explicit_plan(n, subsets, 1 << 62)[1:]
    count = rest[0].size if rest else 0
    width = devices * math.ceil(min(chunk_size, max(count, 1)) / devices)
    plan = explicit_plan(n, subsets, width)
  return Setup(problem=problem, run=run, plan=plan, width=width, devices=devices,
               mesh=mesh, dtype=dtype, composition=composition, steps_per_call=int(steps_per_call))


def solve_chunk(setup: Setup, index: int, alpha_start: jax.Array, ids: np.ndarray | None = None) -> ChunkResult:
  """Solves chunk ``index`` of ``setup.plan`` from the warm start ``alpha_start``.

  ``alpha_start`` is one feature-shaped α for all subsets, or one per subset.
  ``ids`` replaces the plan's subsets (at most ``setup.width`` of them; used
  by the λ continuation, :func:`continue_unmet`).

  The chunk is padded (repeating its last subset) to ``setup.width`` (chunk 0:
  to a multiple of the device count) and, with a mesh, its subset axis is
  sharded over all of the mesh's devices; padding is dropped from the result.
  """
  ids = setup.plan[index] if ids is None else np.asarray(ids, np.int64)
  devices = setup.devices
  pad_to = devices * math.ceil(ids.size / devices) if index == 0 else setup.width
  padded = np.concatenate([ids, np.repeat(ids[-1:], pad_to - ids.size)])
  alpha_start = jnp.asarray(alpha_start, setup.dtype)
  if alpha_start.shape == setup.problem.f.shape:  # one warm start for the whole chunk
    alpha0 = jnp.broadcast_to(alpha_start, (pad_to,) + alpha_start.shape)
  else:  # one per subset
    alpha0 = jnp.concatenate([alpha_start, jnp.repeat(alpha_start[-1:], pad_to - ids.size, axis=0)])
  sid = encode_subsets(setup.problem.n, padded)
  if setup.mesh is not None:
    spec = NamedSharding(setup.mesh, P(setup.mesh.axis_names))
    alpha0, sid = jax.device_put(alpha0, spec), jax.device_put(sid, spec)
  alpha, history, error = setup.run(alpha0, sid)
  k = ids.size
  chunk = ChunkResult(subsets=ids, alpha=np.asarray(alpha[:k]), history=np.asarray(history[:k]),
                      error=np.asarray(error[:k]))
  _check_finite(chunk)
  return chunk


def warm_start(setup: Setup, results: Mapping[int, ChunkResult], index: int) -> jax.Array:
  """α at the start of chunk ``index``: ones for ``[N]``, else ``α_N``."""
  if index == 0:
    return jnp.ones(setup.problem.f.shape, setup.dtype)
  return jnp.asarray(np.asarray(results[0].alpha)[0], setup.dtype)


def check_resumed(setup: Setup, index: int, chunk: ChunkResult) -> None:
  if not np.array_equal(np.asarray(chunk.subsets), setup.plan[index]):
    raise ValueError(f"resumed chunk {index} holds other subsets than this run plans; the checkpoint is from "
                     "another setting")
  _check_finite(chunk)


def solve_chunks(setup: Setup, indices, *, done: Mapping[int, ChunkResult] | None = None,
                 on_chunk: Callable[[int, int, ChunkResult], None] | None = None) -> dict[int, ChunkResult]:
  """Solves the chunks ``indices`` (chunk 0, ``[N]``, must be among them or in
  ``done``: it is every other chunk's warm start). Chunks in ``done`` are
  checked and reused, not recomputed; ``on_chunk`` sees only new ones."""
  done = dict(done or {})
  results: dict[int, ChunkResult] = {}
  if 0 in done:
    check_resumed(setup, 0, done[0])
    results[0] = done[0]
  todo = sorted(set(int(i) for i in indices))
  if todo and 0 not in results and todo[0] != 0:
    raise ValueError("chunk 0 (the full set N) is the warm start of every other chunk: solve it first or pass it "
                     "in done")
  for index in todo:
    if index in results:
      continue
    if index in done:
      check_resumed(setup, index, done[index])
      results[index] = done[index]
      continue
    chunk = solve_chunk(setup, index, warm_start(setup, results, index))
    results[index] = chunk
    if on_chunk is not None:
      on_chunk(index, setup.num_chunks, chunk)
  return results


def solve_minimal_features(
    decode: Decode,
    f: jax.Array,
    f0: jax.Array,
    target: jax.Array,
    masks: np.ndarray,
    *,
    lam: float,
    learning_rate: float,
    steps: int,
    tau: float = math.inf,
    chunk_size: int = 64,
    dtype: Any = jnp.float32,
    schedule: str = "constant",
    allow_overlap: bool = False,
    mesh: Mesh | None = None,
    done: Mapping[int, ChunkResult] | None = None,
    on_chunk: Callable[[int, int, ChunkResult], None] | None = None,
    remat: Any = False,
    decode_dtype: Any = None,
    memory_budget: float | None = None,
    steps_per_call: int | None = None,
    optimizer: str = "adam",
    composition: str = "independent",
    lam_max: float | None = None,
    lam_growth: float = 4.0,
    refine_steps: int = 0,
) -> SolverResult:
  """Solves ``u(S)`` for all ``2**n`` subsets (see module docstring).

  Args:
    decode: pure function, one feature (``f.shape``) → one image (``target.shape``).
    f, f0: the feature of the target and the baseline feature.
    target: the image ``x = g(f)`` to regenerate, ``(H, W, C)``.
    masks: boolean ``(n, H, W)``, one per player, in player order.
    lam, learning_rate, steps: λ, the step size and the number of steps.
    tau: error bound; subsets above it are flagged in ``result.unmet``.
    chunk_size: subsets per compiled batch (memory knob).
    dtype: dtype of α, the objective and the optimizer state.
    schedule: 'constant' (the paper) or 'cosine' learning rate.
    allow_overlap: accept player masks that share pixels.
    mesh: optional mesh; the subset axis of each chunk is sharded over all of
      its devices (chunks are padded to a multiple of the device count).
    done: chunk results already computed (resume); chunk indices as in
      :func:`chunk_plan`.
    on_chunk: called as ``on_chunk(index, num_chunks, result)`` after each
      chunk is computed (progress, checkpoints).
    remat: rematerialise the decoder in the backward pass: False, True (=
      'dots': keep matmul/conv outputs, recompute elementwise ops), 'nothing'
      or a ``jax.checkpoint_policies`` policy. Same result, less memory, more
      compute.
    decode_dtype: run the decoder on ``u`` cast to this dtype (e.g.
      ``jnp.bfloat16``), its image cast back; α, the loss and Adam's state stay
      in ``dtype``. The decoder should compute in its input dtype (close over
      parameters cast to it).
    memory_budget: bytes per device; when given, the chunk size is
      :func:`chunk_size_for_budget` of it and ``chunk_size`` is ignored.
    steps_per_call: 0 runs all steps in one ``lax.scan``; ``k > 0`` runs
      compiled blocks of ``k`` unrolled steps (faster on XLA:CPU); ``None``
      picks :func:`default_steps_per_call`.
    optimizer: 'gd' (projected gradient descent, the paper) or 'adam'.
    composition: 'independent' solves all ``2**n − 1`` problems; 'max' solves
      ``N`` (the singletons' warm start) and the ``n`` singletons and composes
      ``α_S = max_{i∈S} α_{i}`` (:func:`compose_max`).
    lam_max, lam_growth: λ continuation (τ as a constraint): a solved subset
      that misses ``tau`` — with 'max', a singleton that belongs to a composed
      subset that misses it — is solved again from where it stopped with λ
      multiplied by ``lam_growth``, while λ stays ≤ ``lam_max`` (``None``: no
      continuation).
    refine_steps: with 'max', then solve every composed subset independently
      for this many steps from its composed α (a feasible warm start), to
      lower its L1; 0 = off.
  """
  setup = prepare(decode, f, f0, target, masks, lam=lam, learning_rate=learning_rate, steps=steps,
                  chunk_size=chunk_size, dtype=dtype, schedule=schedule, allow_overlap=allow_overlap, mesh=mesh,
                  remat=remat, decode_dtype=decode_dtype, memory_budget=memory_budget,
                  steps_per_call=steps_per_call, optimizer=optimizer, composition=composition)
  results = solve_chunks(setup, range(setup.num_chunks), done=done, on_chunk=on_chunk)
  result = continue_unmet(setup, assemble(setup, results, tau), lam_max=lam_max, growth=lam_growth)
  return refine(setup, result, refine_steps)


def compose_max(alpha_singletons: jax.Array) -> jax.Array:
  """``α_S = max_{i∈S} α_{i}`` element-wise for every bitmask ``S``; ``α_∅ = 0``.

  ``alpha_singletons``: ``(n, *feature_shape)`` in player order. A butterfly
  over the players, ``O(2**n · D)``. The composed minimal features
  ``u(S) = f0 + α_S ⊙ Δf`` are an element-wise max game: their OR components
  are :func:`regionjax.components.max_components` in closed form.
  """
  a = jnp.asarray(alpha_singletons)
  out = jnp.zeros((1,) + a.shape[1:], a.dtype)
  for i in range(a.shape[0]):
    out = jnp.concatenate([out, jnp.maximum(out, a[i])], axis=0)
  return out


def subset_errors(setup: Setup, alpha: np.ndarray, ids: np.ndarray) -> np.ndarray:
  """RMSE of ``g(f0 + α_S ⊙ Δf)`` against the target on the pixels of ``S``
  (``alpha`` in bitmask order), decoded in compiled batches of ``setup.width``."""
  ids = np.asarray(ids, np.int64)
  return errors_of(setup, lambda rows: np.asarray(alpha)[ids[rows]], ids)


def errors_of(setup: Setup, alpha_rows: Callable[[np.ndarray], np.ndarray], ids: np.ndarray) -> np.ndarray:
  """Like :func:`subset_errors` with ``alpha_rows(rows)`` giving the α of
  ``ids[rows]`` (so the α of all subsets need never be stored at once)."""
  problem = setup.problem
  fn = jax.jit(lambda a, s: _final_error(problem, a, s))
  ids = np.asarray(ids, np.int64)
  out = np.zeros(len(ids), np.float32)
  w = setup.width
  for k in range(0, len(ids), w):
    rows = np.arange(k, min(k + w, len(ids)))
    pad = np.concatenate([rows, np.repeat(rows[-1:], w - rows.size)])
    err = fn(jnp.asarray(alpha_rows(pad), setup.dtype), encode_subsets(problem.n, ids[pad]))
    out[k:k + rows.size] = np.asarray(err)[:rows.size]
  return out


def _solved_ids(setup: Setup) -> np.ndarray:
  return np.concatenate(setup.plan)


def assemble(setup: Setup, results: Mapping[int, ChunkResult], tau: float) -> SolverResult:
  """Stacks chunk results into bitmask order, with ``u(∅) = f0`` exactly.

  With ``composition='max'`` every non-empty subset (``N`` too) is composed
  from the solved singletons and its error is measured by decoding it.
  """
  problem = setup.problem
  size = 1 << problem.n
  fshape = problem.f.shape
  alpha = np.zeros((size,) + fshape, np.asarray(results[0].alpha).dtype)
  history = np.zeros((size, problem.steps), np.float32)
  error = np.zeros((size,), np.float32)
  for chunk in results.values():
    alpha[chunk.subsets] = chunk.alpha
    history[chunk.subsets] = chunk.history
    error[chunk.subsets] = chunk.error
  solved = np.zeros(size, bool)
  solved[_solved_ids(setup)] = True
  if setup.composition == "max" and problem.n > 1:
    solved[size - 1] = False  # α_N was only the singletons' warm start; u(N) is composed
  lam = np.where(solved, problem.lam, np.nan)
  return _finish(setup, alpha, history, error, solved, lam, tau)


def _finish(setup: Setup, alpha, history, error, solved, lam, tau) -> SolverResult:
  problem = setup.problem
  n = problem.n
  alpha = np.array(alpha)
  error = np.array(error)
  if setup.composition == "max":
    singles = alpha[[1 << i for i in range(n)]]
    alpha = np.array(compose_max(singles))
    composed = np.array([s for s in range(1, 1 << n) if s & (s - 1)], np.int64)  # |S| ≥ 2, N included
    if composed.size:
      error[composed] = subset_errors(setup, alpha, composed)
  return _result(problem, alpha, error, history, tau, solved, lam)


def _result(problem: Problem, alpha, error, history, tau, solved, lam) -> SolverResult:
  """``u = f0 + α ⊙ Δf`` with ``α_∅ = 0`` and ``u(∅) = f0`` exactly, packed as a :class:`SolverResult`."""
  alpha = np.array(alpha)
  alpha[0] = 0.0
  alpha = jnp.asarray(alpha)
  u = problem.f0 + alpha * (problem.f - problem.f0)
  u = u.at[0].set(problem.f0)
  return SolverResult(alpha=alpha, u=u, error=jnp.asarray(error), history=jnp.asarray(history), tau=float(tau),
                      solved=np.asarray(solved), lam=np.asarray(lam, np.float64))


def _to_resolve(setup: Setup, result: SolverResult) -> np.ndarray:
  """The solved subsets a λ continuation round takes up (see :func:`continue_unmet`)."""
  unmet = np.nonzero(np.asarray(result.unmet))[0]
  unmet = unmet[unmet > 0]
  if setup.composition != "max":
    return unmet
  n = setup.problem.n
  members = np.zeros(n, bool)
  for s in unmet:
    members |= ((int(s) >> np.arange(n)) & 1).astype(bool)
  return np.array([1 << i for i in range(n) if members[i]], np.int64)


def refine(setup: Setup, result: SolverResult, steps: int) -> SolverResult:
  """Solves every composed subset for ``steps`` more steps from its composed α.

  The composed α_S already regenerates S (where it meets τ), so this is a warm
  start inside the feasible region; the objective is eq. 5's, so the L1 can
  only be traded against the image term. The refined subsets count as solved.
  """
  if steps <= 0 or setup.composition != "max":
    return result
  # the same optimizer, restarted: its schedule (if any) runs from its start for these steps
  problem = dataclasses.replace(setup.problem, steps=int(steps))
  setup = dataclasses.replace(setup, problem=problem, run=make_chunk_runner(problem, setup.steps_per_call))
  alpha, error = np.array(result.alpha), np.array(result.error)
  solved = np.array(result.solved)
  ids = np.nonzero(~solved)[0]
  ids = ids[ids > 0]
  for k in range(0, ids.size, setup.width):
    part = ids[k:k + setup.width]
    chunk = solve_chunk(setup, 1, alpha[part], ids=part)
    alpha[part], error[part] = chunk.alpha, chunk.error
  solved[ids] = True
  lam = np.where(solved, np.nan_to_num(np.asarray(result.lam), nan=setup.problem.lam), np.nan)
  return _result(problem, alpha, error, result.history, result.tau, solved, lam)


def continue_unmet(setup: Setup, result: SolverResult, *, lam_max: float | None, growth: float = 4.0) -> SolverResult:
  """λ continuation: τ as the paper's constraint, not only a flag.

  While some subset misses ``τ`` and ``λ · growth ≤ lam_max``, the subsets
  :func:`_to_resolve` names are solved again for ``steps`` steps from their
  current α with λ multiplied by ``growth`` (a larger weight on the image
  term: eq. 5's constrained problem approached by penalties). Composed
  subsets are recomposed after each round. What still misses τ stays in
  ``result.unmet`` and is reported.
  """
  if lam_max is None or not np.asarray(result.unmet).any():
    return result
  if not growth > 1:
    raise ValueError(f"lam_growth must be > 1, got {growth}")
  alpha = np.array(result.alpha)
  history, error = np.array(result.history), np.array(result.error)
  lam_used, solved = np.array(result.lam), np.asarray(result.solved)
  lam = setup.problem.lam
  while True:
    ids = _to_resolve(setup, result)
    if ids.size == 0 or lam * growth > lam_max * (1 + 1e-9):
      return result
    lam *= growth
    problem = dataclasses.replace(setup.problem, lam=float(lam))
    setup = dataclasses.replace(setup, problem=problem, run=make_chunk_runner(problem, setup.steps_per_call))
    for k in range(0, ids.size, setup.width):
      part = ids[k:k + setup.width]
      chunk = solve_chunk(setup, 1, alpha[part], ids=part)
      alpha[part], history[part], error[part] = chunk.alpha, chunk.history, chunk.error
      lam_used[part] = lam
    result = _finish(setup, alpha, history, error, solved, lam_used, result.tau)
