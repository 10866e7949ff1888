"""Minimal features ``u(S)`` for all ``2**n`` subsets, as one batched solve.

Paper v2 eq. (5) and App. E; v1 §3.2 "Implementation details":

    u(S) = f0 + α_S ⊙ (f − f0),   α_S ∈ [0, 1]^D
    α_S = argmin_α ‖α ⊙ (f − f0)‖₁ + (λ / |S|) · ‖mask_S ⊙ (g(u(S)) − x)‖₂²

solved by projected gradient descent: an Adam step, then a clip to the box.

Two options change the objective (both off by default, which is the paper's):
``l1_distance_weight`` β > 0 weighs the L1 term by the distance from ``S``,
``‖w_S ⊙ α ⊙ (f − f0)‖₁`` with ``w_S = 1 + β · d_S`` (:func:`distance_maps`),
so a minimal feature pays more for keeping feature far from its patches;
``keep_outside`` adds the pixels under no player to ``mask_S`` in the
reconstruction term, so every minimal feature also keeps them at the target.
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
import functools
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

from regionjax.generator import Decode  # noqa: E402  (one definition, shared with the metrics)


@flax.struct.dataclass
class ChunkResult:
  """What one chunk of subsets produced (host arrays)."""

  subsets: np.ndarray  # (B,) bitmasks
  alpha: np.ndarray  # (B, *feature_shape)
  history: np.ndarray  # (B, steps) objective before each step
  error: np.ndarray  # (B,) RMSE of g(u(S)) vs x on the pixels of S

  KEYS = ("subsets", "alpha", "history", "error")  # the arrays, in the order checkpoints store them

  def to_dict(self) -> dict[str, np.ndarray]:
    """The arrays by name (host numpy): what checkpoints and all-gathers carry."""
    return {k: np.asarray(getattr(self, k)) for k in self.KEYS}

  @classmethod
  def from_dict(cls, tree: Mapping[str, Any]) -> "ChunkResult":
    return cls(**{k: np.asarray(tree[k]) for k in cls.KEYS})


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
  solved: Any = None  # (2**n,) bool: optimised (True) or composed from the singletons (False)
  lam: Any = None  # (2**n,) the λ each solved subset ended with (λ continuation); NaN where composed

  @property
  def unmet(self) -> np.ndarray:
    return np.asarray(self.error) > self.tau

  @property
  def num_players(self) -> int:
    return subsets_lib.num_players_of(self.alpha.shape[0])

  @property
  def steps_run(self) -> np.ndarray:
    """Steps each subset ran: ``steps`` unless early stopping (``stop_tol``)
    let it leave sooner (its history is NaN after that); 0 for composed ones."""
    run = np.isfinite(np.asarray(self.history)).sum(-1)
    if self.solved is not None:
      run = np.where(np.asarray(self.solved), run, 0)
    return run


@flax.struct.dataclass
class Problem:
  """The arrays and settings shared by every subset's optimisation.

  A pytree: the arrays (``f``, ``f0``, ``target``, ``masks``) and ``lam`` are
  its leaves, so they enter the compiled solver as arguments (one compiled
  function serves every λ of a continuation and every call with the same
  shapes); ``decode``, ``optimizer``, ``steps``, ``remat`` and
  ``decode_dtype`` are static (part of the compiled function's identity).
  ``decode`` is held as a ``jax.tree_util.Partial``: its function is static,
  the arrays bound to it (e.g. one image's codes, :func:`regionjax.pipeline.prepare_target`)
  are leaves, so images whose decoders differ only in those arrays share one
  compiled solver. A plain function is wrapped with nothing bound.
  """

  f: jax.Array
  f0: jax.Array
  target: jax.Array
  masks: jax.Array  # (n, H, W) bool
  lam: Any
  decode: Decode
  optimizer: optax.GradientTransformation = flax.struct.field(pytree_node=False)
  steps: int = flax.struct.field(pytree_node=False)
  remat: Any = flax.struct.field(pytree_node=False, default=False)
  decode_dtype: Any = flax.struct.field(pytree_node=False, default=None)
  l1_distance: Any = None  # (n, *f.shape) β·d_i (:func:`distance_maps`), or None: the paper's unweighted L1
  outside: Any = None  # (H, W) bool: pixels kept at the target in every subset (``keep_outside``), or None

  def __post_init__(self):
    if not isinstance(self.decode, jax.tree_util.Partial):
      object.__setattr__(self, "decode", jax.tree_util.Partial(self.decode))

  @property
  def n(self) -> int:
    return int(self.masks.shape[0])


OPTIMIZERS = ("adam", "gd")
MAX_PLAYERS_EXPLICIT = 62  # an explicit subset list: bitmasks of up to 62 players (and their complements) fit int64
COMPOSITIONS = ("independent", "max")
#: Beyond these λ and learning rates the objective overflows float32 (λ·‖α‖ or a step of 1e300); refused at once.
MAX_LAM = 1e9
MAX_LEARNING_RATE = 1e3


@functools.lru_cache(maxsize=64)
def make_optimizer(
  learning_rate: float, steps: int, schedule: str = "constant", optimizer: str = "adam"
) -> optax.GradientTransformation:
  """The step before the projection onto ``[0, 1]^D``.

  ``optimizer``: 'gd' is plain gradient descent, ``α ← α − η ∇L`` (the paper's
  "gradient descent", v2 App. E); 'adam' is Adam (our first design's choice: it
  moves every element by about ``η`` per step whatever its gradient).
  ``schedule``: 'constant' (the paper) or 'cosine' decay to 1% of ``η``.
  Cached: equal arguments give the same object, so compiled solvers that
  close over it are reused. :func:`build_optimizer` is the same without the
  cache, for a ``learning_rate`` that is traced (an argument of a compiled call).
  """
  return build_optimizer(learning_rate, steps, schedule, optimizer)


def build_optimizer(learning_rate, steps: int, schedule: str = "constant", optimizer: str = "adam"):
  """:func:`make_optimizer` uncached: ``learning_rate`` may be a traced scalar."""
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


def subset_members(n: int, s: jax.Array) -> jax.Array:
  """The ``(n,)`` boolean membership of a traced subset ``s``: an int32
  bitmask (``n ≤ 31``) or already a boolean ``(n,)`` vector (any ``n``; see
  :func:`encode_subsets`)."""
  if jnp.ndim(s) == 1:
    return s.astype(bool)
  return ((s >> jnp.arange(n)) & 1).astype(bool)


def subset_pixel_mask(masks: jax.Array, s: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(mask_S, |S|)`` for a traced bitmask ``s``: the union of member masks.

  ``s`` is an int32 bitmask (``n ≤ 31``) or a boolean ``(n,)`` membership
  vector (any ``n``; see :func:`encode_subsets`).
  """
  members = subset_members(masks.shape[0], s)
  mask = jnp.any(masks & members[:, None, None], axis=0)
  return mask, members.sum()


def distance_maps(masks, feature_shape: tuple[int, ...]) -> np.ndarray:
  """``d_i``: each feature element's distance from player ``i``'s patch, in feature-map coordinates.

  For a spatial feature ``(h, w, c)`` (channels last), position ``(r, q)``
  lies under patch ``i`` when the pixel at the centre of its footprint does
  (the naive receptive area, as :func:`regionjax.baselines.feature_owners`);

      d_i(r, q) = min_{(r', q') under i} ‖(r, q) − (r', q')‖₂ / max(h, w),

  0 under the patch, up to about √2 in the far corner, the same for every
  channel. The L1 weight of subset ``S`` is ``w_S = 1 + β · min_{i∈S} d_i``
  (:func:`objective`). A patch too small to cover any position's centre
  falls back to the position nearest to its own centre. Returns
  ``(n, *feature_shape)`` float32.
  """
  masks = np.asarray(masks, bool)
  if len(feature_shape) != 3:
    raise ValueError(
      f"l1_distance_weight needs a spatial feature (h, w, c), channels last; this layer's feature has shape "
      f"{tuple(feature_shape)}: choose a convolutional layer or set l1_distance_weight = 0"
    )
  h, w, c = feature_shape
  big_h, big_w = masks.shape[1:]
  rows = np.minimum(((np.arange(h) + 0.5) * big_h / h).astype(np.int64), big_h - 1)
  cols = np.minimum(((np.arange(w) + 0.5) * big_w / w).astype(np.int64), big_w - 1)
  under = masks[:, rows][:, :, cols]  # (n, h, w)
  rr, qq = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  grid = np.stack([rr.ravel(), qq.ravel()], -1).astype(np.float64)  # (h·w, 2)
  out = np.empty((masks.shape[0], h, w), np.float64)
  for i, cells in enumerate(under):
    if not cells.any():  # centre of the patch in feature coordinates
      ys, xs = np.nonzero(masks[i])
      cells = np.zeros((h, w), bool)
      cells[min(int(ys.mean() * h / big_h), h - 1), min(int(xs.mean() * w / big_w), w - 1)] = True
    inside = grid[cells.ravel()]
    d = np.sqrt(((grid[:, None, :] - inside[None]) ** 2).sum(-1)).min(1)
    out[i] = d.reshape(h, w) / max(h, w)
  return np.repeat(out[..., None], c, axis=-1).astype(np.float32)


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
        raise ValueError(
          f"unknown remat policy {policy!r}; use True, one of {sorted(REMAT_POLICIES)} or a "
          "jax.checkpoint_policies callable"
        )
      policy = REMAT_POLICIES[policy]
    decode = jax.checkpoint(decode, policy=policy)
  return decode


def objective(problem: Problem, alpha: jax.Array, s: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``‖w_S⊙α⊙Δf‖₁ + (λ/|S|)·‖mask'_S⊙(g(f0+α⊙Δf) − x)‖²`` and the RMSE on ``S``.

  The paper's objective (eq. 5) has ``w_S = 1`` and ``mask'_S = mask_S``.
  With ``problem.l1_distance`` (``β·d_i``, :func:`distance_maps`) the L1 term
  is weighted by ``w_S = 1 + min_{i∈S} β·d_i``: keeping feature far from the
  patches of ``S`` costs more. With ``problem.outside`` the pixels under no
  player join the reconstruction term, ``mask'_S = mask_S ∪ outside``; the
  RMSE returned (what ``τ`` bounds) stays the one on the pixels of ``S``.
  """
  delta = problem.f - problem.f0
  u = problem.f0 + alpha * delta
  image = _decoder(problem)(u)
  mask, size = subset_pixel_mask(problem.masks, s)
  sq = jnp.sum(((image - problem.target) * mask[..., None]) ** 2)
  fit = sq
  if problem.outside is not None:
    fit = jnp.sum(((image - problem.target) * (mask | problem.outside)[..., None]) ** 2)
  size = jnp.maximum(size, 1)
  l1 = jnp.abs(alpha * delta)
  if problem.l1_distance is not None:
    members = subset_members(problem.n, s).reshape((-1,) + (1,) * alpha.ndim)
    d_s = jnp.min(jnp.where(members, problem.l1_distance, jnp.inf), axis=0)
    l1 = l1 * (1.0 + jnp.where(jnp.any(members), d_s, 0.0))  # ∅ (never solved): unweighted
  loss = jnp.sum(l1) + problem.lam / size * fit
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


def run_steps(problem: Problem, carry, subset_ids: jax.Array, length: int, unroll: int = 1):
  """``length`` steps of a chunk inside ``lax.scan``, vmapped over subsets."""
  step = _step_fn(problem)

  def one(carry, s):
    return jax.lax.scan(lambda c, _: step(c, s), carry, None, length=length, unroll=unroll)

  return jax.vmap(one)(carry, subset_ids)


def final_error(problem: Problem, alpha: jax.Array, subset_ids: jax.Array) -> jax.Array:
  return jax.vmap(lambda a, s: objective(problem, a, s)[1])(alpha, subset_ids)


def run_chunk(problem: Problem, alpha0: jax.Array, subset_ids: jax.Array, unroll: int = 1):
  """Projected Adam for ``problem.steps`` steps on a chunk of subsets (one ``lax.scan``)."""
  carry = (alpha0, jax.vmap(problem.optimizer.init)(alpha0))
  (alpha, _), history = run_steps(problem, carry, subset_ids, problem.steps, unroll=unroll)
  return alpha, history, final_error(problem, alpha, subset_ids)


# The compiled solver. Module-level jitted functions that take the problem as
# an argument: jax caches one executable per (static settings, shapes), so a
# new λ, a new chunk or a new call with the same decoder and shapes reuses it.
_chunk_jit = jax.jit(run_chunk, static_argnames=("unroll",))
_steps_jit = jax.jit(run_steps, static_argnames=("length", "unroll"))
_final_jit = jax.jit(final_error)


@jax.jit
def _init_jit(problem: Problem, alpha0: jax.Array):
  return alpha0, jax.vmap(problem.optimizer.init)(alpha0)


def default_steps_per_call() -> int:
  """0 (every step in one ``lax.scan``) on accelerators; 5 on CPU.

  XLA:CPU runs a convolutional decoder 3–5× slower inside a while loop
  (``lax.scan``/``fori_loop``) than as straight-line code (measured on the
  BigGAN-deep port, jax 0.10.2), so on CPU the steps run as compiled blocks of
  ``steps_per_call`` fully unrolled steps, a Python call per block.
  """
  return 5 if jax.default_backend() == "cpu" else 0


def default_subsets_per_call() -> int:
  """1 (each subset its own compiled call) on CPU; 0 (the chunk in one vmap) on accelerators.

  On the 2-core CPU one subset per call ran a 5-step chunk 1.28× faster than
  the vmap of 8 for BigGAN-deep-128 at layer6 and 1.45× faster than the vmap
  of 64 for the face DCGAN at layer3 (interleaved medians, benchmarks/README
  §a): large batched convolutions cost more per image there than batch 1.
  """
  return 1 if jax.default_backend() == "cpu" else 0


def make_chunk_runner(problem: Problem, steps_per_call: int = 0, subsets_per_call: int = 0):
  """``run(alpha0, subset_ids) → (alpha, history, error)`` for a chunk.

  ``steps_per_call = 0``: one jitted call, all steps in ``lax.scan``. ``k > 0``:
  jitted blocks of ``k`` unrolled steps (and one of the remainder), called
  ``⌈steps / k⌉`` times; the same arithmetic, so the same result. Building a
  runner compiles nothing: the module's jitted functions are shared.

  ``subsets_per_call = k > 0`` runs the chunk's subsets ``k`` at a time, one
  compiled program of ``k`` subsets called ``⌈B / k⌉`` times (the last group
  padded by repeating its last subset); 0 runs the whole chunk in one vmapped
  program. Each subset's arithmetic is the same either way. On a 2-core CPU,
  one subset per call ran BigGAN-deep's layer6 chunk 1.3× faster than the
  vmap of 4 (benchmarks/README §a); accelerators want the vmap.
  """
  run = _steps_runner(problem, steps_per_call)
  if subsets_per_call <= 0:
    return run
  k = int(subsets_per_call)

  def grouped(alpha0, subset_ids):
    b = int(subset_ids.shape[0])
    if b <= k:
      return run(alpha0, subset_ids)
    pad = -b % k
    if pad:
      alpha0 = jnp.concatenate([alpha0, jnp.repeat(alpha0[-1:], pad, axis=0)])
      subset_ids = jnp.concatenate([subset_ids, jnp.repeat(subset_ids[-1:], pad)])
    parts = [run(alpha0[i : i + k], subset_ids[i : i + k]) for i in range(0, b + pad, k)]
    return tuple(jnp.concatenate([p[j] for p in parts])[:b] for j in range(3))

  return grouped


def _steps_runner(problem: Problem, steps_per_call: int = 0):
  """The runner of :func:`make_chunk_runner` for all subsets of a chunk at once."""
  if steps_per_call <= 0:
    return lambda a, s: _chunk_jit(problem, a, s)
  if steps_per_call >= problem.steps:  # one block: every step unrolled in one compiled call
    return lambda a, s: _chunk_jit(problem, a, s, unroll=problem.steps)
  k = int(steps_per_call)

  def run(alpha0, subset_ids):
    carry, history, done = _init_jit(problem, alpha0), [], 0
    while done < problem.steps:
      length = min(k, problem.steps - done)
      carry, h = _steps_jit(problem, carry, subset_ids, length=length, unroll=length)
      history.append(h)
      done += length
    alpha = carry[0]
    return alpha, jnp.concatenate(history, axis=1), _final_jit(problem, alpha, subset_ids)

  return run


def compile_chunk(setup: "Setup", alpha0, subset_ids):
  """The chunk function compiled ahead of time for these shapes (benchmarks:
  compile time apart from run time, XLA's memory analysis).

  Returns a ``jax.stages.Compiled``; call it as ``compiled(setup.problem,
  alpha0, subset_ids)``. Only for a setup whose chunk is one compiled call
  (``steps_per_call`` 0 or ≥ ``steps``).
  """
  p = setup.problem
  if setup.subsets_per_call:
    raise ValueError("subsets_per_call is set: the chunk is several calls")
  if 0 < setup.steps_per_call < p.steps:
    raise ValueError(f"steps_per_call={setup.steps_per_call} < steps={p.steps}: the chunk is several calls")
  kw = {"unroll": p.steps} if setup.steps_per_call else {}
  return _chunk_jit.lower(p, alpha0, subset_ids, **kw).compile()


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
  plan += [rest[i : i + chunk_size] for i in range(0, rest.size, chunk_size)]
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
  plan += [rest[i : i + chunk_size] for i in range(0, rest.size, chunk_size)]
  return plan


def _available_memory_bytes() -> int:
  try:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
  except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
    return 1 << 40


DTYPES = {"float32": jnp.float32, "float64": jnp.float64}
DECODE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass(frozen=True)
class SolverOptions:
  """Every setting of a solve, validated once (the fields of ``config.solver``).

  Args:
    lam: λ of eq. (5), > 0.
    learning_rate: the step size η, > 0.
    steps: optimisation steps per subset.
    tau: RMSE bound on the pixels of S; subsets above it are flagged (and, with
      ``lam_max``, solved again with a larger λ).
    chunk_size: subsets per compiled batch (the memory knob).
    dtype: dtype of α, the objective and the optimiser state.
    schedule: 'constant' (the paper) or 'cosine' learning rate.
    optimizer: 'gd' (projected gradient descent, the paper) or 'adam'.
    composition: 'independent' solves all ``2**n − 1`` problems; 'max' solves
      ``N`` and the ``n`` singletons and composes ``α_S = max_{i∈S} α_{i}``.
    allow_overlap: accept player masks that share pixels.
    remat: rematerialise the decoder in the backward pass: False, True (=
      'dots'), 'nothing' or a ``jax.checkpoint_policies`` policy.
    decode_dtype: run the decoder on ``u`` cast to this dtype (``None``: ``dtype``).
    memory_budget: bytes per device; when given, the chunk size is derived
      from it (:func:`chunk_size_for_budget`) and ``chunk_size`` is ignored.
    steps_per_call: 0 runs all steps in one ``lax.scan``; ``k > 0`` compiled
      blocks of ``k`` unrolled steps; ``None`` picks :func:`default_steps_per_call`.
    subsets_per_call: ``k``: a chunk runs as compiled groups of ``k`` subsets
      called one after the other (:func:`make_chunk_runner`; one device only,
      not with ``stop_tol``); 0: the whole chunk in one vmapped program;
      ``None`` picks :func:`default_subsets_per_call` (1 on one CPU device,
      else 0).
    lam_max, lam_growth: λ continuation (:func:`continue_unmet`); ``None``: off.
    refine_steps: with 'max', then this many steps of every composed subset
      from its composed α (:func:`refine`); 0 = off.
    stop_tol: early stopping: a subset leaves its batch once its objective
      changed by less than this fraction over the last block of
      ``steps_per_call`` steps, and waiting subsets take its place
      (:func:`solve_pool`); ``None``: every subset runs all ``steps``.
    l1_distance_weight: β ≥ 0 of the distance-weighted L1 (:func:`objective`,
      :func:`distance_maps`): ``‖(1 + β·d_S) ⊙ α ⊙ Δf‖₁``; 0 = the paper's
      objective. Needs an ``(h, w, c)`` feature, or explicit ``distances``.
    keep_outside: also keep the pixels under no player at the target in
      every subset's reconstruction term (not in its RMSE); False = the paper.
  """

  lam: float
  learning_rate: float
  steps: int
  tau: float = math.inf
  chunk_size: int = 64
  dtype: Any = jnp.float32
  schedule: str = "constant"
  optimizer: str = "adam"
  composition: str = "independent"
  allow_overlap: bool = False
  remat: Any = False
  decode_dtype: Any = None
  memory_budget: float | None = None
  steps_per_call: int | None = None
  subsets_per_call: int | None = None
  lam_max: float | None = None
  lam_growth: float = 4.0
  refine_steps: int = 0
  stop_tol: float | None = None
  l1_distance_weight: float = 0.0
  keep_outside: bool = False

  def __post_init__(self):
    lam, lr = self.lam, self.learning_rate
    if not (isinstance(lam, (int, float)) and 0 < lam <= MAX_LAM):
      raise ValueError(f"lam (λ) must be > 0 and at most {MAX_LAM:g} (the paper uses 200 … 1000), got {lam}")
    if not (isinstance(lr, (int, float)) and 0 < lr <= MAX_LEARNING_RATE):
      raise ValueError(f"learning_rate must be > 0 and at most {MAX_LEARNING_RATE:g}, got {lr}")
    if self.optimizer not in OPTIMIZERS:
      raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
    if self.composition not in COMPOSITIONS:
      raise ValueError(f"composition must be one of {COMPOSITIONS}, got {self.composition!r}")
    if self.schedule not in ("constant", "cosine"):
      raise ValueError(f"unknown learning-rate schedule {self.schedule!r}; use 'constant' or 'cosine'")
    for name in ("steps", "chunk_size"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, (int, float, np.integer)) or int(v) != v or v <= 0:
        raise ValueError(f"{name} must be a positive integer, got {v}")
      object.__setattr__(self, name, int(v))
    if not (self.tau > 0):
      raise ValueError(f"tau must be > 0 (math.inf: no bound), got {self.tau}")
    if self.steps_per_call is not None and (int(self.steps_per_call) != self.steps_per_call or self.steps_per_call < 0):
      raise ValueError(f"steps_per_call must be a non-negative integer, got {self.steps_per_call}")
    spc = self.subsets_per_call
    if spc is not None and (isinstance(spc, bool) or int(spc) != spc or spc < 0):
      raise ValueError(f"subsets_per_call must be None or an integer >= 0, got {spc}")
    if spc and self.stop_tol is not None:
      raise ValueError("subsets_per_call and stop_tol do not combine (early stopping re-packs one vmapped batch)")
    if self.memory_budget is not None and not self.memory_budget > 0:
      raise ValueError(f"memory budget must be > 0 bytes, got {self.memory_budget}")
    if self.lam_max is not None and not self.lam_growth > 1:
      raise ValueError(f"lam_growth must be > 1, got {self.lam_growth}")
    if int(self.refine_steps) != self.refine_steps or self.refine_steps < 0:
      raise ValueError(f"refine_steps must be a non-negative integer, got {self.refine_steps}")
    if self.stop_tol is not None and not (0 < self.stop_tol < 1):
      raise ValueError(f"stop_tol must be in (0, 1) (a relative change of the objective), got {self.stop_tol}")
    beta = self.l1_distance_weight
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not (0 <= beta < math.inf):
      raise ValueError(f"l1_distance_weight must be a finite number >= 0 (0 = the paper's L1), got {beta}")
    object.__setattr__(self, "l1_distance_weight", float(beta))
    if not isinstance(self.keep_outside, (bool, np.bool_)):
      raise ValueError(f"keep_outside must be True or False, got {self.keep_outside!r}")
    object.__setattr__(self, "keep_outside", bool(self.keep_outside))

  @classmethod
  def from_config(cls, s) -> "SolverOptions":
    """From ``config.solver`` (dtype names as strings, the budget in GiB; ``None`` = off)."""

    def get(name, default=None):
      return s.get(name, default) if hasattr(s, "get") else getattr(s, name, default)

    if get("dtype", "float32") not in DTYPES:
      raise ValueError(f"solver.dtype must be one of {sorted(DTYPES)}, got {get('dtype')!r}")
    dd = get("decode_dtype")
    if dd is not None and dd not in DECODE_DTYPES:
      raise ValueError(f"solver.decode_dtype must be None or one of {sorted(DECODE_DTYPES)}, got {dd!r}")
    budget = get("memory_budget_gb")
    return cls(
      lam=float(get("lam")),
      learning_rate=float(get("learning_rate")),
      steps=get("steps"),
      tau=float(get("tau", math.inf)),
      chunk_size=get("chunk_size", 64),
      dtype=DTYPES[get("dtype", "float32")],
      schedule=get("schedule", "constant"),
      optimizer=get("optimizer", "adam"),
      composition=get("composition", "independent"),
      remat=get("remat", False),
      decode_dtype=None if dd is None else DECODE_DTYPES[dd],
      memory_budget=None if budget is None else float(budget) * 2**30,
      steps_per_call=get("steps_per_call"),
      subsets_per_call=get("subsets_per_call"),
      lam_max=get("lam_max"),
      lam_growth=float(get("lam_growth", 4.0)),
      refine_steps=int(get("refine_steps", 0)),
      stop_tol=get("stop_tol"),
      l1_distance_weight=get("l1_distance_weight", 0.0),
      keep_outside=get("keep_outside", False),
    )

  def replace(self, **changes) -> "SolverOptions":
    return dataclasses.replace(self, **changes)


def resolve_options(options: SolverOptions | None, kwargs: dict) -> SolverOptions:
  """``options``, or one built from keyword arguments (not both)."""
  if options is None:
    return SolverOptions(**kwargs)
  if kwargs:
    raise TypeError(f"pass either a SolverOptions or keyword settings, not both (got {sorted(kwargs)})")
  if not isinstance(options, SolverOptions):
    raise TypeError(f"options must be a SolverOptions, got {type(options).__name__}")
  return options


def validate(f, f0, target, masks, options: SolverOptions, *, decode=None, num_subsets=None):
  """Raises ValueError naming the argument for every input inconsistent with
  the others or with ``options`` (whose own values are checked when it is built).

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
    raise ValueError(
      f"masks must be (n, H, W) = (n, {target[0]}, {target[1]}) to match the target image, got {masks.shape}"
    )
  if masks.dtype != bool:
    raise ValueError(f"masks must be boolean, got dtype {masks.dtype}")
  n = subsets_lib.check_num_players(
    masks.shape[0],
    "n (the number of masks)",
    limit=subsets_lib.MAX_PLAYERS if num_subsets is None else MAX_PLAYERS_EXPLICIT,
  )
  empty = [i for i in range(n) if not masks[i].any()]
  if empty:
    raise ValueError(f"masks {empty} are empty: every player patch must cover at least one pixel")
  if not options.allow_overlap:
    overlap = masks.sum(0) > 1
    if overlap.any():
      pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if (masks[i] & masks[j]).any()]
      raise ValueError(
        f"masks overlap (players {pairs[:5]}): player patches must be disjoint (pass allow_overlap=True if intended)"
      )
  steps = options.steps
  need = (1 << n) * (2 * math.prod(f) * 4 + steps * 4)
  if num_subsets is not None:  # only the listed subsets are stored
    need = int(num_subsets) * (2 * math.prod(f) * 4 + steps * 4)
  elif options.composition == "max":  # 2**n composed α and u, histories only for the n + 1 solved
    need = (1 << n) * 2 * math.prod(f) * 4 + (n + 1) * steps * 4
  have = _available_memory_bytes()
  if need > have // 2:
    raise ValueError(
      f"n={n} needs about {need / 2**30:.1f} GiB for α and u of all 2**{n} subsets, more than half "
      f"of this machine's {have / 2**30:.1f} GiB; use fewer patches"
    )
  if decode is not None:
    out = jax.eval_shape(decode, jax.ShapeDtypeStruct(f, jnp.float32))
    if tuple(out.shape) != tuple(target):
      raise ValueError(f"decode maps a feature {f} to shape {tuple(out.shape)}, but target has shape {target}")


def check_finite(chunk: ChunkResult) -> None:
  bad = ~np.isfinite(chunk.error) | ~np.isfinite(chunk.alpha.reshape(chunk.alpha.shape[0], -1)).all(-1)
  if bad.any():
    names = ", ".join(subsets_lib.format_subset(s) for s in chunk.subsets[bad][:8])
    raise ValueError(
      f"decode returned NaN or Inf while solving {int(bad.sum())} subset(s): {names}"
      f"{' …' if bad.sum() > 8 else ''}; check the generator and the feature"
    )


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
  options: SolverOptions | None = None
  subsets_per_call: int = 0

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
  return int(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes - mem.alias_size_in_bytes)


def chunk_memory_bytes(
  decode: Decode,
  f,
  target,
  batch: int,
  *,
  steps: int = 2,
  dtype: Any = jnp.float32,
  decode_dtype: Any = None,
  remat: Any = False,
) -> int | None:
  """Peak bytes (arguments + outputs + temporaries, from XLA's memory
  analysis of the compiled chunk) of solving ``batch`` subsets on one device.

  ``None`` where the backend reports no memory analysis.
  """
  fshape, tshape = tuple(np.shape(f)), tuple(np.shape(target))
  problem = Problem(
    decode=decode,
    f=jnp.zeros(fshape, dtype),
    f0=jnp.zeros(fshape, dtype),
    target=jnp.zeros(tshape, dtype),
    masks=jnp.ones((1,) + tshape[:2], bool),
    lam=1.0,
    optimizer=optax.adam(1e-3),
    steps=int(steps),
    remat=remat,
    decode_dtype=decode_dtype,
  )
  compiled = _chunk_jit.lower(
    problem, jax.ShapeDtypeStruct((batch,) + fshape, dtype), jax.ShapeDtypeStruct((batch,), jnp.int32)
  ).compile()
  return _memory_of(compiled)


def chunk_size_for_budget(
  decode: Decode,
  f,
  target,
  *,
  budget_bytes: float,
  devices: int = 1,
  dtype: Any = jnp.float32,
  decode_dtype: Any = None,
  remat: Any = False,
  max_chunk: int | None = None,
) -> int:
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
    raise ValueError(
      f"a memory budget of {budget_bytes / 2**20:.1f} MiB per device does not hold one subset: "
      f"the chunk needs {fixed / 2**20:.1f} MiB + {per / 2**20:.1f} MiB per subset"
    )
  chunk = devices * fit
  return chunk if max_chunk is None else max(1, min(chunk, int(max_chunk)))


def prepare(
  decode: Decode,
  f,
  f0,
  target,
  masks,
  options: SolverOptions | None = None,
  *,
  mesh: Mesh | None = None,
  subsets=None,
  distances=None,
  **settings,
) -> Setup:
  """Validates the inputs and builds the :class:`Setup` of a solve.

  ``distances``: with ``l1_distance_weight`` β > 0, each feature element's
  distance from each player, ``(n, *f.shape)``, for a feature that is not
  ``(h, w, c)``; default :func:`distance_maps`.
  ``options``: a :class:`SolverOptions`, or its fields as keyword ``settings``.
  ``subsets``: an explicit list of bitmasks to solve instead of the plan of
  ``options.composition`` (:func:`explicit_plan`: ``[N]`` first, then these);
  used by ``regionjax.truncated``, which stores only these, so ``n`` may be up
  to 62.
  """
  o = resolve_options(options, settings)
  num_subsets = None if subsets is None else int(np.asarray(subsets).size) + 1
  validate(f, f0, target, masks, o, decode=decode, num_subsets=num_subsets)
  n = masks.shape[0]
  devices = 1 if mesh is None else mesh.devices.size
  chunk_size = o.chunk_size
  if o.memory_budget is not None:
    chunk_size = chunk_size_for_budget(
      decode,
      f,
      target,
      budget_bytes=o.memory_budget,
      devices=devices,
      dtype=o.dtype,
      decode_dtype=o.decode_dtype,
      remat=o.remat,
    )
  arrays = dict(
    f=jnp.asarray(f, o.dtype),
    f0=jnp.asarray(f0, o.dtype),
    target=jnp.asarray(target, o.dtype),
    masks=jnp.asarray(masks, bool),
  )
  if o.l1_distance_weight > 0:
    d = distance_maps(masks, np.shape(f)) if distances is None else np.asarray(distances, np.float32)
    if d.shape != (n,) + tuple(np.shape(f)) or not np.all(np.isfinite(d)) or (d < 0).any():
      raise ValueError(f"distances must be finite, >= 0 and of shape (n, *f.shape) = {(n,) + np.shape(f)}")
    arrays["l1_distance"] = jnp.asarray(o.l1_distance_weight * d, o.dtype)
  if o.keep_outside:
    arrays["outside"] = ~jnp.any(arrays["masks"], axis=0)
  if mesh is not None:  # replicated on the mesh, beside the sharded subsets
    arrays = jax.device_put(arrays, NamedSharding(mesh, P()))
  problem = Problem(
    **arrays,
    lam=float(o.lam),
    decode=decode,
    optimizer=make_optimizer(float(o.learning_rate), o.steps, o.schedule, o.optimizer),
    steps=o.steps,
    remat=o.remat,
    decode_dtype=o.decode_dtype,
  )
  if mesh is not None:  # the arrays bound to the decoder (an image's codes) replicated too
    problem = problem.replace(decode=jax.device_put(problem.decode, NamedSharding(mesh, P())))
  _decoder(problem)  # validates remat
  steps_per_call = default_steps_per_call() if o.steps_per_call is None else int(o.steps_per_call)
  if o.subsets_per_call is None:  # the default: per subset on one CPU device, unless early stopping re-packs a batch
    subsets_per_call = default_subsets_per_call() if mesh is None and o.stop_tol is None else 0
  else:
    subsets_per_call = int(o.subsets_per_call)
  if subsets_per_call and mesh is not None:
    raise ValueError("subsets_per_call runs groups of subsets one after the other on one device; drop it with a mesh")
  run = make_chunk_runner(problem, steps_per_call, subsets_per_call)
  if subsets is None:
    width = chunk_width(n, chunk_size, devices, o.composition)
    plan = chunk_plan(n, width, o.composition)
  else:
    rest = explicit_plan(n, subsets, 1 << 62)[1:]
    count = rest[0].size if rest else 0
    width = devices * math.ceil(min(chunk_size, max(count, 1)) / devices)
    plan = explicit_plan(n, subsets, width)
  return Setup(
    problem=problem,
    run=run,
    plan=plan,
    width=width,
    devices=devices,
    mesh=mesh,
    dtype=o.dtype,
    composition=o.composition,
    steps_per_call=steps_per_call,
    options=o,
    subsets_per_call=subsets_per_call,
  )


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
  chunk = ChunkResult(
    subsets=ids, alpha=np.asarray(alpha[:k]), history=np.asarray(history[:k]), error=np.asarray(error[:k])
  )
  check_finite(chunk)
  return chunk


def warm_start(setup: Setup, results: Mapping[int, ChunkResult], index: int) -> jax.Array:
  """α at the start of chunk ``index``: ones for ``[N]``, else ``α_N``."""
  if index == 0:
    return jnp.ones(setup.problem.f.shape, setup.dtype)
  return jnp.asarray(np.asarray(results[0].alpha)[0], setup.dtype)


def check_resumed(setup: Setup, index: int, chunk: ChunkResult) -> None:
  if not np.array_equal(np.asarray(chunk.subsets), setup.plan[index]):
    raise ValueError(
      f"resumed chunk {index} holds other subsets than this run plans; the checkpoint is from another setting"
    )
  check_finite(chunk)


def solve_chunks(
  setup: Setup,
  indices,
  *,
  done: Mapping[int, ChunkResult] | None = None,
  on_chunk: Callable[[int, int, ChunkResult], None] | None = None,
) -> dict[int, ChunkResult]:
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
    raise ValueError(
      "chunk 0 (the full set N) is the warm start of every other chunk: solve it first or pass it in done"
    )
  if setup.options is not None and setup.options.stop_tol is not None:
    return _solve_chunks_pooled(setup, todo, done, results, on_chunk)
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


# ------------------------------------------------------------ early stopping
def pool_block(steps: int, steps_per_call: int) -> int:
  """The block length of the pooled solver: the largest divisor of ``steps``
  not above ``steps_per_call`` (10 when it is 0), so every subset's blocks
  line up with every other's and only one block function is compiled."""
  k = int(steps_per_call) or 10
  return max(d for d in range(1, min(k, steps) + 1) if steps % d == 0)


def _converged(prev: np.ndarray, last: np.ndarray, tol: float) -> np.ndarray:
  """``|L_prev − L_now| ≤ tol · |L_now|``: the objective stopped moving over one block."""
  return np.abs(prev - last) <= tol * np.maximum(np.abs(last), 1e-12)


@jax.jit
def _refill_jit(problem: Problem, carry, alpha_new: jax.Array, fresh: jax.Array):
  """Slots flagged ``fresh`` restart from ``alpha_new`` with a new optimiser state."""
  new = (alpha_new, jax.vmap(problem.optimizer.init)(alpha_new))

  def pick(a, b):
    return jnp.where(fresh.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)

  return jax.tree_util.tree_map(pick, new, carry)


def solve_pool(
  setup: Setup,
  ids: np.ndarray,
  alpha_start,
  *,
  tol: float | None,
  on_finished: Callable[[np.ndarray], None] | None = None,
) -> ChunkResult:
  """Solves the subsets ``ids`` in a pool of ``setup.width`` slots; a subset
  leaves when it has run all ``steps`` or its objective changed by at most
  ``tol`` (relative) over the last block, and the next waiting subset takes its
  slot (a fresh warm start and optimiser state). Once nothing waits, the pool
  halves its width while the running subsets fit, so the compute follows the
  hard subsets.

  Every slot advances in blocks of :func:`pool_block` steps; each subset's
  optimiser state is its own, so its arithmetic is that of
  :func:`solve_chunk` until it stops. ``history`` holds NaN after a subset's
  last step (``SolverResult.steps_run`` counts the steps). ``alpha_start``:
  one feature-shaped α for all, or one per subset (in ``ids`` order).
  ``on_finished(rows, out)`` is told the rows of ``ids`` finished after each
  block, with ``out`` the :class:`ChunkResult` being filled (those rows final).
  """
  problem = setup.problem
  ids = np.asarray(ids, np.int64)
  total, steps = ids.size, problem.steps
  k = pool_block(steps, setup.steps_per_call)
  unroll = k if setup.steps_per_call > 0 else 1
  fshape = problem.f.shape
  start = np.asarray(alpha_start, np.dtype(setup.dtype))
  per_subset = start.shape != fshape
  out_alpha = np.zeros((total,) + fshape, np.dtype(setup.dtype))
  out_hist = np.full((total, steps), np.nan, np.float32)
  out_err = np.zeros(total, np.float32)
  devices = setup.devices
  width = min(setup.width, devices * math.ceil(total / devices))
  spec = None if setup.mesh is None else NamedSharding(setup.mesh, P(setup.mesh.axis_names))

  def put(x):
    x = jnp.asarray(x)
    return x if spec is None else jax.device_put(x, spec)

  row = np.full(width, -1)  # which row of ids each slot holds (-1: idle)
  done_steps = np.zeros(width, int)
  prev = np.full(width, np.nan)
  queue = 0
  carry = None

  def start_of(r):
    return start[r] if per_subset else start

  while True:
    # fill idle slots from the queue
    idle = np.nonzero(row < 0)[0]
    fill = idle[: max(0, total - queue)]
    if fill.size or carry is None:
      alpha_new = np.zeros((width,) + fshape, out_alpha.dtype)
      fresh = np.zeros(width, bool)
      for slot in fill:
        row[slot], done_steps[slot], prev[slot] = queue, 0, np.nan
        alpha_new[slot] = start_of(queue)
        fresh[slot] = True
        queue += 1
      if carry is None:
        carry = _init_jit(problem, put(alpha_new))
      else:
        carry = _refill_jit(problem, carry, put(alpha_new), put(fresh))
    active = row >= 0
    if not active.any():
      break
    # an idle slot repeats an active one (its result is dropped)
    sid_rows = np.where(active, row, row[np.argmax(active)])
    sid = put(encode_subsets(problem.n, ids[sid_rows]))
    carry, h = _steps_jit(problem, carry, sid, length=k, unroll=unroll)
    h = np.asarray(h)
    for slot in np.nonzero(active)[0]:
      out_hist[row[slot], done_steps[slot] : done_steps[slot] + k] = h[slot]
    done_steps[active] += k
    last = h[:, -1]
    finished = active & ((done_steps >= steps) | (_converged(prev, last, tol) if tol is not None else False))
    prev = np.where(active, last, np.nan)
    if finished.any():
      alpha_now = np.asarray(carry[0])
      err = np.asarray(_final_jit(problem, carry[0], sid))
      rows = row[finished]
      out_alpha[rows], out_err[rows] = alpha_now[finished], err[finished]
      row[finished] = -1
      if on_finished is not None:
        on_finished(rows, ChunkResult(subsets=ids, alpha=out_alpha, history=out_hist, error=out_err))
    # nothing waits: halve the pool while the running subsets fit
    running = int((row >= 0).sum())
    if queue >= total and running:
      new_width = width
      while new_width // 2 >= running and (new_width // 2) % devices == 0 and new_width // 2 >= devices:
        new_width //= 2
      if new_width < width:
        keep = np.nonzero(row >= 0)[0]
        keep = np.concatenate([keep, np.repeat(keep[-1:], new_width - keep.size)])
        carry = jax.tree_util.tree_map(lambda x: put(np.asarray(x)[keep]), carry)
        row = np.concatenate([row[keep[:running]], np.full(new_width - running, -1)])
        done_steps, prev = done_steps[keep], prev[keep]
        width = new_width
  chunk = ChunkResult(subsets=ids, alpha=out_alpha, history=out_hist, error=out_err)
  check_finite(chunk)
  return chunk


def _solve_chunks_pooled(setup: Setup, todo, done, results, on_chunk) -> dict[int, ChunkResult]:
  """:func:`solve_chunks` with early stopping: chunk 0 (``N``) alone, then
  every other chunk to do through one :func:`solve_pool`; a chunk is reported
  to ``on_chunk`` (checkpointed) as soon as all its subsets have finished."""
  tol = setup.options.stop_tol
  if 0 in todo and 0 not in results:
    results[0] = solve_pool(setup, setup.plan[0], warm_start(setup, results, 0), tol=tol)
    if on_chunk is not None:
      on_chunk(0, setup.num_chunks, results[0])
  pending = []
  for index in todo:
    if index in results:
      continue
    if index in done:
      check_resumed(setup, index, done[index])
      results[index] = done[index]
    else:
      pending.append(index)
  if not pending:
    return results
  ids = np.concatenate([setup.plan[i] for i in pending])
  bounds = np.cumsum([0] + [setup.plan[i].size for i in pending])
  owner = np.repeat(np.arange(len(pending)), np.diff(bounds))
  left = np.diff(bounds)

  def on_finished(rows, out: ChunkResult):
    np.subtract.at(left, owner[rows], 1)
    for j in np.nonzero(left == 0)[0]:
      left[j] = -1  # reported
      lo, hi = bounds[j], bounds[j + 1]
      chunk = ChunkResult(
        subsets=ids[lo:hi],
        alpha=out.alpha[lo:hi].copy(),
        history=out.history[lo:hi].copy(),
        error=out.error[lo:hi].copy(),
      )
      check_finite(chunk)
      results[pending[j]] = chunk
      if on_chunk is not None:
        on_chunk(pending[j], setup.num_chunks, chunk)

  solve_pool(setup, ids, warm_start(setup, results, 1), tol=tol, on_finished=on_finished)
  return results


def solve_minimal_features(
  decode: Decode,
  f: jax.Array,
  f0: jax.Array,
  target: jax.Array,
  masks: np.ndarray,
  options: SolverOptions | None = None,
  *,
  mesh: Mesh | None = None,
  done: Mapping[int, ChunkResult] | None = None,
  on_chunk: Callable[[int, int, ChunkResult], None] | None = None,
  distances=None,
  **settings,
) -> SolverResult:
  """Solves ``u(S)`` for all ``2**n`` subsets (see module docstring).

  Args:
    decode: pure function, one feature (``f.shape``) → one image (``target.shape``).
    f, f0: the feature of the target and the baseline feature.
    target: the image ``x = g(f)`` to regenerate, ``(H, W, C)``.
    masks: boolean ``(n, H, W)``, one per player, in player order.
    options: a :class:`SolverOptions` (every setting: λ, steps, composition,
      continuation, …), or pass its fields as keyword ``settings``.
    mesh: optional mesh; the subset axis of each chunk is sharded over all of
      its devices (chunks are padded to a multiple of the device count).
    done: chunk results already computed (resume); chunk indices as in
      :func:`chunk_plan`.
    on_chunk: called as ``on_chunk(index, num_chunks, result)`` after each
      chunk is computed (progress, checkpoints).
    distances: per-player distances of the feature elements for
      ``l1_distance_weight`` (:func:`prepare`); default :func:`distance_maps`.

  Returns:
    A :class:`SolverResult` in bitmask order.
  """
  setup = prepare(decode, f, f0, target, masks, resolve_options(options, settings), mesh=mesh, distances=distances)
  o = setup.options
  results = solve_chunks(setup, range(setup.num_chunks), done=done, on_chunk=on_chunk)
  result = continue_unmet(setup, assemble(setup, results, o.tau), lam_max=o.lam_max, growth=o.lam_growth)
  return refine(setup, result, o.refine_steps)


@jax.jit  # one compiled program instead of 2·n eager ops (max and concatenate are exact: the same values)
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
  ids = np.asarray(ids, np.int64)
  out = np.zeros(len(ids), np.float32)
  w = setup.width
  for k in range(0, len(ids), w):
    rows = np.arange(k, min(k + w, len(ids)))
    pad = np.concatenate([rows, np.repeat(rows[-1:], w - rows.size)])
    err = _final_jit(problem, jnp.asarray(alpha_rows(pad), setup.dtype), encode_subsets(problem.n, ids[pad]))
    out[k : k + rows.size] = np.asarray(err)[: rows.size]
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
  return SolverResult(
    alpha=alpha,
    u=u,
    error=jnp.asarray(error),
    history=jnp.asarray(history),
    tau=float(tau),
    solved=np.asarray(solved),
    lam=np.asarray(lam, np.float64),
  )


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
  setup = dataclasses.replace(
    setup, problem=problem, run=make_chunk_runner(problem, setup.steps_per_call, setup.subsets_per_call)
  )
  alpha, error = np.array(result.alpha), np.array(result.error)
  solved = np.array(result.solved)
  ids = np.nonzero(~solved)[0]
  ids = ids[ids > 0]
  for k in range(0, ids.size, setup.width):
    part = ids[k : k + setup.width]
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
    setup = dataclasses.replace(
      setup, problem=problem, run=make_chunk_runner(problem, setup.steps_per_call, setup.subsets_per_call)
    )
    for k in range(0, ids.size, setup.width):
      part = ids[k : k + setup.width]
      chunk = solve_chunk(setup, 1, alpha[part], ids=part)
      alpha[part], history[part], error[part] = chunk.alpha, chunk.history, chunk.error
      lam_used[part] = lam
    result = _finish(setup, alpha, history, error, solved, lam_used, result.tau)
