"""Many devices and many processes: meshes, ``jax.distributed`` and a multi-process solve.

Within a process, the subset axis of every chunk is sharded over the devices of
a :class:`jax.sharding.Mesh` (``solve_minimal_features(..., mesh=local_mesh())``).
Across processes (hosts of a pod or of a SLURM job), the chunks are split:

    chunk 0 ([N], the warm start of all others)  — solved by process 0, then
                                                   broadcast to every process
    chunk i ≥ 1                                  — solved by process (i − 1) mod P

Each process solves its share on its own devices (its mesh holds only local
devices; nothing crosses processes inside a chunk), then the chunk results are
exchanged with one ``multihost_utils.process_allgather`` so that *every*
process holds the full :class:`~regionjax.solver.SolverResult`; only process 0
(:func:`is_writer`) should write outputs. The same compiled chunk function and
chunk widths are used for any number of processes, so the result equals a
one-process run (bit-for-bit on identical hardware).

Why collectives and not files: ``process_allgather`` needs no shared
filesystem (TPU pods usually have none) and works on CPU too — jax 0.10 ships
Gloo-based CPU collectives, used automatically once ``jax.distributed`` is
initialised (the two-process test in ``tests/test_multihost.py`` runs on CPU).
The price is that the full α of all ``2**n`` subsets is materialised on every
host (512 × 32·32·512 float32 = 1 GiB for BigGAN-deep-128 at layer6).

Configuration (a dict or ``ml_collections.ConfigDict``, e.g. ``config.distributed``)::

    coordinator_address: 'host:port' or None   # explicit cluster
    num_processes:       int or None
    process_id:          int or None
    local_device_ids:    list of ints or None  # optional
    auto:                True                  # detect SLURM / TPU pod / env

``initialize(config)`` does nothing for a single process; with a coordinator
address it calls ``jax.distributed.initialize(coordinator_address,
num_processes, process_id)``; with none but ``auto`` and a detected cluster
(SLURM with more than one task, a multi-host Cloud TPU, or
``JAX_COORDINATOR_ADDRESS`` in the environment) it calls
``jax.distributed.initialize()`` and lets jax read the cluster's environment.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from regionjax import solver as solver_lib

SUBSET_AXIS = "subsets"

_DEFAULTS = dict(
  coordinator_address=None,
  num_processes=None,
  process_id=None,
  local_device_ids=None,
  auto=True,
  initialization_timeout=300,
)


def _as_dict(config: Any) -> dict:
  if config is None:
    return dict(_DEFAULTS)
  if hasattr(config, "to_dict"):
    config = config.to_dict()
  config = dict(config)
  unknown = sorted(set(config) - set(_DEFAULTS))
  if unknown:
    raise ValueError(f"unknown distributed config keys {unknown}; known: {sorted(_DEFAULTS)}")
  return {**_DEFAULTS, **config}


def detect_cluster(environ: Mapping[str, str] | None = None) -> str | None:
  """'slurm', 'tpu' or 'env' when this process is one of several in a
  cluster jax can initialise from its environment, else None."""
  env = os.environ if environ is None else environ
  if "SLURM_JOB_ID" in env and int(env.get("SLURM_NTASKS", env.get("SLURM_NPROCS", "1")) or 1) > 1:
    return "slurm"
  hosts = env.get("TPU_WORKER_HOSTNAMES", "")
  if hosts and len([h for h in hosts.split(",") if h]) > 1:
    return "tpu"
  if env.get("JAX_COORDINATOR_ADDRESS"):
    return "env"
  return None


def is_initialized() -> bool:
  """True once ``jax.distributed.initialize`` has run in this process."""
  return jax.distributed.is_initialized()


def initialize(config: Any = None) -> bool:
  """Initialises ``jax.distributed`` from ``config`` (see module docstring).

  Returns True when this process is now part of a multi-process run. Must be
  called before any other jax call that touches devices. Idempotent.
  """
  cfg = _as_dict(config)
  if is_initialized():
    return jax.process_count() > 1
  address = cfg["coordinator_address"]
  if address:
    nproc = cfg["num_processes"]
    if nproc is not None and int(nproc) < 1:
      raise ValueError(f"num_processes must be >= 1, got {nproc}")
    pid = cfg["process_id"]
    if nproc is not None and pid is not None and not 0 <= int(pid) < int(nproc):
      raise ValueError(f"process_id {pid} is outside 0 … {int(nproc) - 1}")
    jax.distributed.initialize(
      coordinator_address=str(address),
      num_processes=None if nproc is None else int(nproc),
      process_id=None if pid is None else int(pid),
      local_device_ids=cfg["local_device_ids"],
      initialization_timeout=int(cfg["initialization_timeout"]),
    )
    return jax.process_count() > 1
  if cfg["num_processes"] not in (None, 1):
    raise ValueError(f"num_processes={cfg['num_processes']} needs a coordinator_address (host:port of process 0)")
  if cfg["auto"] and detect_cluster() is not None:
    jax.distributed.initialize(
      local_device_ids=cfg["local_device_ids"], initialization_timeout=int(cfg["initialization_timeout"])
    )
    return jax.process_count() > 1
  return False


def is_writer() -> bool:
  """True on the one process that writes outputs (process 0)."""
  return jax.process_index() == 0


def local_mesh(axis_name: str = SUBSET_AXIS, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-d mesh over this process's devices (or ``devices``): the one to pass
  as ``mesh=`` to a solve, which shards each chunk's subset axis over it."""
  devices = list(jax.local_devices() if devices is None else devices)
  return Mesh(np.asarray(devices), (axis_name,))


def process_chunks(num_chunks: int, process_index: int | None = None, num_processes: int | None = None) -> list[int]:
  """The chunks (≥ 1) one process solves: ``i`` with ``(i − 1) mod P == p``."""
  p = jax.process_index() if process_index is None else int(process_index)
  nproc = jax.process_count() if num_processes is None else int(num_processes)
  return [i for i in range(1, num_chunks) if (i - 1) % nproc == p]


def _pack(
  setup: solver_lib.Setup, results: Mapping[int, solver_lib.ChunkResult], indices: Sequence[int], slots: int
) -> dict:
  """This process's chunks as fixed-shape arrays (``slots`` chunks of width)."""
  width = setup.width
  fshape = setup.problem.f.shape
  subsets = np.full((slots, width), -1, np.int32)  # int32: no x64 needed
  alpha = np.zeros((slots, width) + fshape, np.dtype(setup.dtype))
  history = np.zeros((slots, width, setup.problem.steps), np.float32)
  error = np.zeros((slots, width), np.float32)
  for k, i in enumerate(indices):
    c = results[i]
    m = len(c.subsets)
    subsets[k, :m] = c.subsets
    alpha[k, :m] = c.alpha
    history[k, :m] = c.history
    error[k, :m] = c.error
  return dict(subsets=subsets, alpha=alpha, history=history, error=error)


def gather_chunks(
  setup: solver_lib.Setup, results: Mapping[int, solver_lib.ChunkResult]
) -> dict[int, solver_lib.ChunkResult]:
  """All processes' chunk results (≥ 1), on every process, via one allgather.

  Each process passes the chunks it solved (``process_chunks``); the chunk
  index of a gathered block is recovered from the plan.
  """
  nproc = jax.process_count()
  share = {p: process_chunks(setup.num_chunks, p, nproc) for p in range(nproc)}
  mine = share[jax.process_index()]
  missing = [i for i in mine if i not in results]
  if missing:
    raise ValueError(f"process {jax.process_index()} has no result for its chunks {missing}")
  slots = max(1, max(len(v) for v in share.values()))
  packed = _pack(setup, results, mine, slots)
  if nproc > 1:
    packed = multihost_utils.process_allgather(packed, tiled=False)
  else:
    packed = jax.tree.map(lambda a: a[None], packed)
  out: dict[int, solver_lib.ChunkResult] = {}
  for p, indices in share.items():
    for k, i in enumerate(indices):
      m = len(setup.plan[i])
      subsets = np.asarray(packed["subsets"][p, k, :m])
      if not np.array_equal(subsets, setup.plan[i]):
        raise RuntimeError(
          f"gathered chunk {i} from process {p} holds subsets {subsets[:4]}…, expected "
          f"{setup.plan[i][:4]}…: the processes planned different chunks"
        )
      out[i] = solver_lib.ChunkResult.from_dict({key: packed[key][p, k, :m] for key in solver_lib.ChunkResult.KEYS})
  return out


def _broadcast_chunk0(setup: solver_lib.Setup, chunk: solver_lib.ChunkResult | None) -> solver_lib.ChunkResult:
  fshape = setup.problem.f.shape
  if chunk is None:  # not process 0: a placeholder of the right shape
    chunk = solver_lib.ChunkResult(
      subsets=setup.plan[0],
      alpha=np.zeros((1,) + fshape, np.dtype(setup.dtype)),
      history=np.zeros((1, setup.problem.steps), np.float32),
      error=np.zeros((1,), np.float32),
    )
  tree = multihost_utils.broadcast_one_to_all(chunk.to_dict())
  return solver_lib.ChunkResult.from_dict({**tree, "subsets": setup.plan[0]})


def solve_minimal_features(
  decode,
  f,
  f0,
  target,
  masks,
  options: solver_lib.SolverOptions | None = None,
  *,
  mesh=None,
  done: Mapping[int, solver_lib.ChunkResult] | None = None,
  on_chunk: Callable[[int, int, solver_lib.ChunkResult], None] | None = None,
  **settings,
) -> solver_lib.SolverResult:
  """:func:`regionjax.solve_minimal_features`, split over all processes.

  Every process calls it with the same arguments (``mesh`` must hold only
  its own devices: :func:`local_mesh`); each solves its share of the chunks
  (``on_chunk`` and ``done`` concern that share, plus chunk 0 on process 0),
  and every process returns the full result. With one process it is exactly
  the single-process solve.
  """
  nproc = jax.process_count()
  options = solver_lib.resolve_options(options, settings)
  if mesh is not None and nproc > 1:
    foreign = [d for d in mesh.devices.flat if d.process_index != jax.process_index()]
    if foreign:
      raise ValueError(
        f"the mesh holds {len(foreign)} devices of other processes; each process solves its chunks "
        "on its own devices — pass regionjax.distributed.local_mesh()"
      )
  if nproc == 1:
    return solver_lib.solve_minimal_features(
      decode, f, f0, target, masks, options, mesh=mesh, done=done, on_chunk=on_chunk
    )
  setup = solver_lib.prepare(decode, f, f0, target, masks, options, mesh=mesh)
  done = dict(done or {})
  first = None
  if jax.process_index() == 0:
    first = solver_lib.solve_chunks(setup, [0], done=done, on_chunk=on_chunk)[0]
  first = _broadcast_chunk0(setup, first)
  mine = process_chunks(setup.num_chunks)
  results = solver_lib.solve_chunks(setup, mine, done={**done, 0: first}, on_chunk=on_chunk)
  gathered = gather_chunks(setup, results)
  gathered[0] = first
  multihost_utils.sync_global_devices("regionjax.solve_minimal_features")
  result = solver_lib.assemble(setup, gathered, options.tau)
  # every process runs the (small, deterministic) λ continuation itself
  result = solver_lib.continue_unmet(setup, result, lam_max=options.lam_max, growth=options.lam_growth)
  return solver_lib.refine(setup, result, options.refine_steps)
