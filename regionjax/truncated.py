"""Components up to order ``k`` from the minimal features that leave out ≤ k players.

The OR component of ``S`` (v2 eq. 6; v1 eq. 10),

    Δf_S = − Σ_{T⊆S} (−1)^{|S|−|T|} u(N \\ T),     Δf_∅ := u(∅) = f0,

needs only ``u(N \\ T)`` for ``T ⊆ S``. Every component of order ``|S| ≤ k``
therefore needs only the ``C(n, ≤k) = Σ_{j≤k} C(n, j)`` minimal features of
the sets that leave out at most ``k`` players: for all 36 cells of a 6×6 grid
at ``k = 2``, 667 problems instead of ``2**36``.

The *family* of a truncation is the list of bitmasks ``S`` with ``|S| ≤ k``
(:func:`family`: by size, then in lexicographic order of the members; row 0 is
``∅``). It is closed under taking subsets, so the Möbius/zeta butterfly of
``regionjax.transforms`` restricted to it is exact: one pass per player ``i``
updates the rows that contain ``i`` from the rows without it,
``O(C(n, ≤k) · k)`` additions per feature element. Row ``m`` of every array
here belongs to the set ``S_m`` of the family: ``components[m] = Δf_{S_m}``
and ``u[m] = u(N \\ S_m)`` (so ``u[0] = u(N)``).

What is left out is measured (:func:`residual_measures`): the residual
``u(N) − f0 − Σ_{0<|S|≤k} Δf_S`` (the sum of all components of order > k)
and the OR-matching error of every solved ``u(N \\ T)`` rebuilt from the
truncated components. Because the family is closed under subsets, the
rebuilt ``h(N \\ T) = f0 + Σ_{0<|S|≤k, S ⊄ T} Δf_S`` differs from
``u(N \\ T)`` by exactly minus the residual, for every ``T``: the matching
error is the residual seen relative to each ``u(N \\ T) − f0``. With
``composition='max'`` the solved singletons are a held-out check
(``h({i}) = f0 + Σ_{S∋i, |S|≤k} Δf_S`` against the solved ``u({i})``).

Bitmasks are int64: ``n`` is capped at :data:`MAX_PLAYERS` = 62.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import time
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from regionjax import solver as solver_lib
from regionjax import subsets as subsets_lib

MAX_PLAYERS = solver_lib.MAX_PLAYERS_EXPLICIT  # 62: N \ T and its complement fit an int64


# ------------------------------------------------------------------ family
@dataclasses.dataclass(frozen=True)
class Family:
  """The sets of at most ``k`` of ``n`` players and the butterfly's index pairs."""

  n: int
  k: int
  sets: np.ndarray  # (M,) int64 bitmasks, row 0 = ∅
  passes: tuple  # per player i: (rows containing i, rows of the same set without i)

  @property
  def size(self) -> int:
    return int(self.sets.size)

  @property
  def orders(self) -> np.ndarray:
    return np.array([subsets_lib.size(s) for s in self.sets], np.int64)

  def members(self) -> np.ndarray:
    """Boolean ``(M, n)``: player ``i`` in ``S_m``."""
    return ((self.sets[:, None] >> np.arange(self.n, dtype=np.int64)) & 1).astype(bool)

  def index(self, s: int) -> int:
    """The row of bitmask ``s`` (KeyError if ``|s| > k``)."""
    return self._rows[int(s)]

  @functools.cached_property
  def _rows(self) -> dict:
    return {int(s): m for m, s in enumerate(self.sets)}


def check_order(n: int, k: int) -> tuple[int, int]:
  """``(n, k)`` as ints, or ValueError: ``1 ≤ n ≤ 62``, ``k ≥ 1`` (``k > n`` is cut to ``n``)."""
  n = subsets_lib.check_num_players(n, "n (the number of players)", limit=MAX_PLAYERS)
  if isinstance(k, (bool, np.bool_)) or int(k) != k or k < 1:
    raise ValueError(f"max_order (k) must be an integer >= 1, got {k!r}")
  return n, min(int(k), n)


def num_sets(n: int, k: int) -> int:
  """``C(n, ≤k) = Σ_{j≤k} C(n, j)``: the minimal features (and components) of a truncation."""
  return sum(math.comb(n, j) for j in range(min(k, n) + 1))


@functools.lru_cache(maxsize=32)
def family(n: int, k: int) -> Family:
  """All ``S`` with ``|S| ≤ k``: by size, then lexicographic in the members; row 0 is ``∅``."""
  n, k = check_order(n, k)
  sets = [0]
  for j in range(1, k + 1):
    sets += [sum(1 << i for i in c) for c in itertools.combinations(range(n), j)]
  sets = np.array(sets, np.int64)
  rows = {int(s): m for m, s in enumerate(sets)}
  passes = []
  for i in range(n):
    bit = np.int64(1) << np.int64(i)
    has = np.nonzero(sets & bit)[0]
    parents = np.array([rows[int(s) ^ (1 << i)] for s in sets[has]], np.int64)
    passes.append((has.astype(np.int32), parents.astype(np.int32)))
  return Family(n=n, k=k, sets=sets, passes=tuple(passes))


def _butterfly(v: jax.Array, fam: Family, sign: int) -> jax.Array:
  """``v[T] += sign · v[T \\ {i}]`` for every ``T ∋ i`` of the family, player by player."""
  v = jnp.asarray(v)
  if v.shape[0] != fam.size:
    raise ValueError(
      f"the leading axis has length {v.shape[0]}, but the family of n={fam.n}, k={fam.k} has {fam.size} sets"
    )
  for rows, parents in fam.passes:
    if rows.size:
      v = v.at[rows].add(sign * v[parents])  # rows hold i, parents do not: no read-after-write in one pass
  return v


@functools.partial(jax.jit, static_argnames=("n", "k"))
def restricted_mobius(v: jax.Array, n: int, k: int) -> jax.Array:
  """``Σ_{T⊆S} (−1)^{|S|−|T|} v[T]`` for every ``S`` of :func:`family` ``(n, k)`` (rows in its order)."""
  return _butterfly(v, family(n, k), -1)


@functools.partial(jax.jit, static_argnames=("n", "k"))
def restricted_zeta(v: jax.Array, n: int, k: int) -> jax.Array:
  """``Σ_{T⊆S} v[T]`` on the family; the inverse of :func:`restricted_mobius`."""
  return _butterfly(v, family(n, k), +1)


@functools.partial(jax.jit, static_argnames=("n", "k"))
def or_components(u_missing: jax.Array, f0: jax.Array, n: int, k: int) -> jax.Array:
  """``Δf_S`` for ``|S| ≤ k`` from ``u_missing[m] = u(N \\ S_m)``; row 0 holds ``f0``.

  ``Δf_S = −Σ_{T⊆S} (−1)^{|S|−|T|} u(N \\ T)`` (v2 eq. 6), the rows of
  ``transforms.or_interactions`` of order ≤ k.
  """
  comps = -restricted_mobius(jnp.asarray(u_missing), n, k)
  return comps.at[0].set(jnp.asarray(f0, comps.dtype))


@functools.partial(jax.jit, static_argnames=("n", "k"))
def or_matching_missing(components: jax.Array, n: int, k: int) -> jax.Array:
  """``h(N \\ T) = f0 + Σ_{0<|S|≤k, S∩(N\\T)≠∅} Δf_S`` for every ``T`` of the family.

  ``S`` meets ``N \\ T`` iff ``S ⊄ T``: all non-empty components minus the
  restricted zeta transform at ``T``. Equals ``u(N \\ T)`` when no component
  of order > k is non-zero.
  """
  c = jnp.asarray(components)
  nonempty = c.at[0].set(0)
  return c[0] + nonempty.sum(0) - restricted_zeta(nonempty, n, k)


def from_dense(u: jax.Array, k: int) -> jax.Array:
  """``u(N \\ S_m)`` for the family rows, read from a dense ``(2**n, …)`` array."""
  n = subsets_lib.num_players_of(np.shape(u)[0])
  sets = family(n, k).sets
  return jnp.asarray(u)[subsets_lib.full_set(n) ^ sets]


@functools.partial(jax.jit, static_argnames=("n", "k"))
def compose_missing(alpha_singletons: jax.Array, n: int, k: int) -> jax.Array:
  """``α_{N\\T} = max_{i∉T} α_{i}`` for every ``T`` of the family (``0`` for ``∅``).

  The max composition of ``solver.compose_max`` for only the sets needed.
  """
  a = jnp.asarray(alpha_singletons)
  absent = ~jnp.asarray(family(n, k).members())  # (M, n): i ∈ N \ T
  out = jnp.zeros((absent.shape[0],) + a.shape[1:], a.dtype)
  shape = (absent.shape[0],) + (1,) * (a.ndim - 1)
  for i in range(n):
    out = jnp.maximum(out, jnp.where(absent[:, i].reshape(shape), a[i], 0))
  return out


# ------------------------------------------------------------------ results
@dataclasses.dataclass(frozen=True)
class SparseComponents:
  """Components of a sparse set of fields: ``values[m] = Δf_{fields[m]}``.

  ``fields`` are int64 bitmasks; a field ``0`` (``∅``) holds ``f0``, as
  ``components[0]`` does in the dense layout.
  """

  fields: np.ndarray  # (M,) int64
  values: np.ndarray  # (M, *feature_shape)
  n: int

  @property
  def orders(self) -> np.ndarray:
    return np.array([subsets_lib.size(s) for s in self.fields], np.int64)

  def norms(self) -> np.ndarray:
    """``‖Δf_S‖₂`` per row; 0 for ``∅`` (the baseline), as ``components.component_norms``."""
    v = np.asarray(self.values, np.float64).reshape(len(self.fields), -1)
    out = np.sqrt((v**2).sum(-1))
    out[np.asarray(self.fields) == 0] = 0.0
    return out

  def rank(self) -> np.ndarray:
    """Rows of non-empty fields, strongest first."""
    norms = self.norms()
    rows = np.nonzero(np.asarray(self.fields) != 0)[0]
    return rows[np.argsort(-norms[rows], kind="stable")]

  def get(self, s: int) -> np.ndarray:
    hit = np.nonzero(np.asarray(self.fields) == int(s))[0]
    if not hit.size:
      raise KeyError(f"field {subsets_lib.format_subset(s)} is not among the stored components")
    return np.asarray(self.values[hit[0]])

  def to_dense(self) -> np.ndarray:
    """``(2**n, …)`` in bitmask order, zeros where no field is stored (``n ≤ 20``),
    so the dense functions of ``regionjax.components`` read it."""
    if self.n > 20:
      raise ValueError(f"n={self.n}: a dense array of 2**{self.n} components does not fit; use the sparse fields")
    out = np.zeros((1 << self.n,) + np.shape(self.values)[1:], np.asarray(self.values).dtype)
    out[np.asarray(self.fields)] = np.asarray(self.values)
    return out


@dataclasses.dataclass(frozen=True)
class TruncatedResult:
  """Minimal features of the sets ``N \\ S_m`` and the components ``Δf_{S_m}``, ``|S_m| ≤ k``.

  Row ``m`` of ``u``, ``alpha``, ``error``, ``solved`` and ``lam`` belongs to
  ``N \\ family.sets[m]``; ``components`` holds ``Δf_{family.sets[m]}``.
  ``problems`` lists what was optimised (``N`` first; with 'max' the
  singletons), with their ``problem_error`` and ``history``.
  """

  family: Family
  components: SparseComponents
  u: np.ndarray
  alpha: np.ndarray
  error: np.ndarray  # (M,) RMSE of g(u(N \ S_m)) on the pixels of N \ S_m
  solved: np.ndarray  # (M,) bool: optimised (not composed)
  lam: np.ndarray  # (M,) λ each solved row ended with; NaN where composed
  problems: np.ndarray  # (P,) bitmasks optimised
  problem_error: np.ndarray  # (P,)
  problem_alpha: np.ndarray  # (P, *feature_shape)
  history: np.ndarray  # (P, steps)
  residual: dict
  composition: str
  tau: float = math.inf
  seconds: float = 0.0

  @property
  def n(self) -> int:
    return self.family.n

  @property
  def max_order(self) -> int:
    return self.family.k

  @property
  def missing(self) -> np.ndarray:
    """``N \\ S_m`` for every row (int64 bitmasks)."""
    return subsets_lib.full_set(self.n) ^ self.family.sets

  @property
  def unmet(self) -> np.ndarray:
    return np.asarray(self.error) > self.tau


def _rel(num, den) -> float:
  den = float(den)
  return float(num) / den if den > 0 else (0.0 if float(num) == 0 else math.inf)


def residual_measures(u_missing, components, n: int, k: int, f0, *, singletons=None, u_singletons=None) -> dict:
  """What the truncation leaves out, measured.

  * ``relative``: ``‖u(N) − f0 − Σ_{0<|S|≤k} Δf_S‖ / ‖u(N) − f0‖`` — the
    relative norm of the sum of all components of order > k;
  * ``or_matching``: for every row, ``‖h(N\\T) − u(N\\T)‖ / ‖u(N\\T) − f0‖``
    with ``h`` rebuilt from the truncated components (max, mean, median,
    and the ``T`` of the max); rows with ``u(N\\T) = f0`` are left out;
  * ``by_order``: ``‖Σ_{|S|=j} Δf_S‖ / ‖u(N) − f0‖`` for ``j = 1 … k``;
  * ``heldout_singletons`` (when given): ``‖h({i}) − u({i})‖ / ‖u(N) − f0‖``
    on the solved ``u({i})``, which no truncated row contains (a held-out
    check; relative to the full change because ``u({i}) − f0`` may be ~0).
  """
  fam = family(n, k)
  u_missing = jnp.asarray(u_missing)
  comps = jnp.asarray(components)
  f0 = jnp.asarray(f0)
  full = u_missing[0] - f0
  res = full - comps[1:].sum(0)
  base = float(jnp.linalg.norm(full))
  h = or_matching_missing(comps, n, k)
  flat = lambda a: a.reshape(a.shape[0], -1)  # noqa: E731
  num = np.asarray(jnp.linalg.norm(flat(h - u_missing), axis=1), np.float64)
  den = np.asarray(jnp.linalg.norm(flat(u_missing - f0), axis=1), np.float64)
  ok = den > 0
  match = num[ok] / den[ok]
  worst = int(np.nonzero(ok)[0][np.argmax(match)]) if match.size else 0
  orders = fam.orders
  by_order = {str(j): _rel(jnp.linalg.norm(comps[orders == j].sum(0)), base) for j in range(1, k + 1)}
  out = {
    "relative": _rel(jnp.linalg.norm(res), base),
    "norm": float(jnp.linalg.norm(res)),
    "full_norm": base,
    "max_order": int(k),
    "components": int(fam.size - 1),
    "or_matching": {
      "max": float(match.max()) if match.size else 0.0,
      "mean": float(match.mean()) if match.size else 0.0,
      "median": float(np.median(match)) if match.size else 0.0,
      "worst_left_out": subsets_lib.format_subset(int(fam.sets[worst])),
      "count": int(match.size),
    },
    "by_order": by_order,
  }
  if singletons is not None and len(singletons):
    members = jnp.asarray(fam.members()[:, np.asarray(singletons)].T, comps.dtype)  # (P, M)
    nonempty = comps.at[0].set(0)
    hs = f0 + jnp.tensordot(members, nonempty, axes=1)
    us = jnp.asarray(u_singletons)
    # relative to ‖u(N) − f0‖: a singleton's own u({i}) − f0 may be ~0 (a cell no component paints)
    e = np.asarray(jnp.linalg.norm(flat(hs - us), axis=1), np.float64) / max(base, 1e-30)
    out["heldout_singletons"] = {
      "max": float(e.max()),
      "mean": float(e.mean()),
      "count": int(e.size),
      "worst": subsets_lib.format_subset(1 << int(np.asarray(singletons)[np.argmax(e)])),
    }
  return out


# ------------------------------------------------------------------ solving
def _singletons(n: int) -> np.ndarray:
  return np.array([1 << i for i in range(n)], np.int64)


def solve_truncated(
  decode,
  f,
  f0,
  target,
  masks,
  options: solver_lib.SolverOptions | None = None,
  *,
  max_order: int,
  mesh=None,
  done: Mapping[int, solver_lib.ChunkResult] | None = None,
  on_chunk: Callable | None = None,
  **settings,
) -> TruncatedResult:
  """The components of order ≤ ``max_order`` from exactly the minimal features they need.

  ``composition='independent'`` optimises ``u(N \\ T)`` for every ``|T| ≤ k``
  (``C(n, ≤k)`` problems; ``N`` first from ``α = 1``, the others from
  ``α_N``, as ``solver.solve_minimal_features``); ``'max'`` optimises ``N``
  and the ``n`` singletons and composes ``α_{N\\T} = max_{i∉T} α_{i}``
  (``n + 1`` problems; the errors of the composed sets are measured by
  decoding them). Chunks, sharding over ``mesh``, resume (``done``) and
  ``on_chunk`` are those of ``regionjax.solver`` with an explicit plan
  (``solver.prepare(subsets=…)``). ``options.lam_max``/``lam_growth``: the
  λ continuation of ``solver.continue_unmet`` (``refine_steps`` and
  ``stop_tol`` do not apply here). Other arguments as
  :func:`regionjax.solver.solve_minimal_features`; ``n ≤ 62``.
  """
  o = solver_lib.resolve_options(options, settings)
  composition, lam, steps, tau = o.composition, o.lam, o.steps, o.tau
  lam_max, lam_growth = o.lam_max, o.lam_growth
  t0 = time.time()
  n, k = check_order(np.shape(masks)[0], max_order)
  fam = family(n, k)
  full = subsets_lib.full_set(n)
  missing = full ^ fam.sets
  if composition == "independent":
    wanted = missing[(missing != full) & (missing != 0)]
  elif composition == "max":
    wanted = _singletons(n) if n > 1 else np.zeros(0, np.int64)
  else:
    raise ValueError(f"composition must be one of {solver_lib.COMPOSITIONS}, got {composition!r}")
  setup = solver_lib.prepare(decode, f, f0, target, masks, o, mesh=mesh, subsets=wanted)
  chunks = solver_lib.solve_chunks(setup, range(setup.num_chunks), done=done, on_chunk=on_chunk)
  problems = np.concatenate(setup.plan)
  row = {int(s): p for p, s in enumerate(problems)}
  p_alpha = np.zeros((problems.size,) + tuple(np.shape(f)), np.float32)
  p_hist = np.zeros((problems.size, int(steps)), np.float32)
  p_err = np.zeros(problems.size, np.float32)
  for chunk in chunks.values():
    rows = [row[int(s)] for s in chunk.subsets]
    p_alpha[rows], p_hist[rows], p_err[rows] = chunk.alpha, chunk.history, chunk.error
  p_lam = np.full(problems.size, float(lam))

  def materialize():
    if composition == "max":
      singles = p_alpha[[row[int(s)] for s in _singletons(n)]] if n > 1 else p_alpha[:1]
      alpha = np.array(compose_missing(jnp.asarray(singles), n, k))
      err = solver_lib.errors_of(setup, lambda r: alpha[r], missing)
      err[missing == 0] = 0.0
      solved = np.zeros(fam.size, bool)
      if n == 1:
        solved[0] = True
      lam_rows = np.where(solved, lam, np.nan)
    else:
      alpha = np.zeros((fam.size,) + tuple(np.shape(f)), np.float32)
      err = np.zeros(fam.size, np.float32)
      lam_rows = np.full(fam.size, np.nan)
      solved = missing != 0
      for m in np.nonzero(solved)[0]:
        p = row[int(missing[m])]
        alpha[m], err[m], lam_rows[m] = p_alpha[p], p_err[p], p_lam[p]
    alpha[missing == 0] = 0.0
    return alpha, err, solved, lam_rows

  alpha, err, solved, lam_rows = materialize()
  # λ continuation (solver.continue_unmet): re-solve what misses τ with a larger λ
  current = float(lam)
  while lam_max is not None and (err > tau).any() and current * lam_growth <= lam_max * (1 + 1e-9):
    bad = missing[err > tau]
    if composition == "max":
      members = np.zeros(n, bool)
      for s in bad:
        members |= ((int(s) >> np.arange(n)) & 1).astype(bool)
      ids = _singletons(n)[members] if n > 1 else np.array([full], np.int64)
    else:
      ids = bad
    if ids.size == 0:
      break
    current *= lam_growth
    problem = dataclasses.replace(setup.problem, lam=current)
    setup = dataclasses.replace(setup, problem=problem, run=solver_lib.make_chunk_runner(problem, setup.steps_per_call))
    for j in range(0, ids.size, setup.width):
      part = ids[j : j + setup.width]
      rows = [row[int(s)] for s in part]
      chunk = solver_lib.solve_chunk(setup, 1, p_alpha[rows], ids=part)
      p_alpha[rows], p_hist[rows], p_err[rows] = chunk.alpha, chunk.history, chunk.error
      p_lam[rows] = current
    alpha, err, solved, lam_rows = materialize()

  f0j, fj = jnp.asarray(f0, jnp.float32), jnp.asarray(f, jnp.float32)
  u = f0j + jnp.asarray(alpha) * (fj - f0j)
  u = jnp.where(jnp.asarray(missing == 0).reshape((-1,) + (1,) * np.ndim(f)), f0j, u)
  comps = or_components(u, f0j, n, k)
  singles = _singletons(n) if composition == "max" and n > k + 1 else None
  u_single = None
  if singles is not None:
    u_single = f0j + jnp.asarray(p_alpha[[row[int(s)] for s in singles]]) * (fj - f0j)
  residual = residual_measures(
    u, comps, n, k, f0j, singletons=None if singles is None else np.arange(n), u_singletons=u_single
  )
  return TruncatedResult(
    family=fam,
    components=SparseComponents(fields=fam.sets, values=np.asarray(comps), n=n),
    u=np.asarray(u),
    alpha=alpha,
    error=err,
    solved=solved,
    lam=lam_rows,
    problems=problems,
    problem_error=p_err,
    problem_alpha=p_alpha,
    history=p_hist,
    residual=residual,
    composition=composition,
    tau=float(tau),
    seconds=time.time() - t0,
  )


# ------------------------------------------------------------------ config (pipeline)
def config_max_order(config) -> int:
  """``config.solver.max_order`` (0 when the config has no such key: the full ``2**n`` solve)."""
  return int(config.solver.get("max_order", 0) or 0)


def validate_config(config) -> None:
  """The checks of this mode; ValueError says how to fix."""
  s, p = config.solver, config.patches
  k = s.get("max_order", 0)
  if isinstance(k, bool) or int(k) != k or k < 0:
    raise ValueError(f"solver.max_order must be an integer >= 0 (0 = all 2**n subsets), got {k!r}")
  if not k:
    return
  if p.n > MAX_PLAYERS:
    raise ValueError(
      f"patches.n={p.n}: with solver.max_order > 0 bitmasks of up to {MAX_PLAYERS} players fit "
      f"an int64; use patches.n <= {MAX_PLAYERS}"
    )
  if s.refine_steps:
    raise ValueError("solver.refine_steps > 0 is not supported with solver.max_order > 0; set it to 0")
  if config.distributed.num_processes > 1:
    raise ValueError(
      "solver.max_order > 0 runs in one process (its chunks are sharded over local devices); "
      "set distributed.num_processes=1"
    )


# ------------------------------------------------------------------ explained pixels
def explained_by_order(decode, components, orders, target, baseline_image, cells, batch: int = 8) -> np.ndarray:
  """How much of each grid cell's pixels the components of order ≤ j explain, ``j = 0 … k``.

  ``share[j, c] = 1 − ‖g(f0 + Σ_{0<|S|≤j} Δf_S) − x‖²_c / ‖g(f0) − x‖²_c`` over
  the pixels and channels of cell ``c`` (1: the cell is redrawn as in the
  target; 0: no better than the baseline; NaN where ``g(f0)`` already equals
  ``x`` on the cell). Returns ``(k + 1, num_cells)``; row 0 is 0 by definition.
  """
  comps = jnp.asarray(components)
  orders = np.asarray(orders)
  k = int(orders.max())
  feats = [
    comps[0] + sum((comps[orders == i].sum(0) for i in range(1, j + 1)), jnp.zeros_like(comps[0])) for j in range(k + 1)
  ]
  dec = jax.jit(jax.vmap(decode))
  images = np.concatenate([np.asarray(dec(jnp.stack(feats[i : i + batch]))) for i in range(0, k + 1, batch)])
  cells = np.asarray(cells, bool)
  x = np.asarray(target, np.float64)
  base = ((np.asarray(baseline_image, np.float64) - x) ** 2).sum(-1)  # (H, W)
  den = np.array([base[c].sum() for c in cells])
  out = np.zeros((k + 1, cells.shape[0]))
  for j, img in enumerate(images):
    sq = ((img.astype(np.float64) - x) ** 2).sum(-1)
    num = np.array([sq[c].sum() for c in cells])
    with np.errstate(divide="ignore", invalid="ignore"):
      out[j] = np.where(den > 0, 1.0 - num / den, np.nan)
  return out
