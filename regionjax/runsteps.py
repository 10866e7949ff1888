"""The steps of a run that the one-image pipeline and the dataset job share: players from the config,
one target explained with the run's options and chunk checkpoints, and SIGTERM/SIGINT turned into
:class:`Interrupted` at a safe point (:data:`STOP`)."""

from __future__ import annotations

import contextlib
import signal
import threading

import numpy as np

from regionjax import explainer
from regionjax import explanation as explanation_lib
from regionjax import io as io_lib
from regionjax import patches as patches_lib
from regionjax import solver as solver_lib
from regionjax.explainer import ImageResult, Target


def player_names(config, image_shape) -> tuple[list[str], np.ndarray] | None:
  """``(names, masks)`` of the named regions when ``patches.method = 'regions'``, else None."""
  p = config.patches
  if p.method != "regions":
    return None
  names, masks = patches_lib.load_regions(p.regions_path, image_shape[0], image_shape[1])
  if len(names) != p.n:
    raise ValueError(
      f"patches.regions_path {p.regions_path!r} names {len(names)} regions but patches.n={p.n}; "
      f"set --config.patches.n={len(names)}"
    )
  return names, masks


def grid_cells(config, image_shape) -> np.ndarray:
  """The grid cells, or the named regions' masks with ``patches.method = 'regions'``."""
  h, w = image_shape[:2]
  p = config.patches
  if p.method == "regions":
    return player_names(config, image_shape)[1]
  if p.rows > h or p.cols > w:
    raise ValueError(f"a {p.rows}×{p.cols} grid does not fit the {h}×{w} image; use fewer patches.rows/cols")
  return patches_lib.patch_masks(h, w, p.rows, p.cols)


def cell_scores(config, cells: np.ndarray, targets: list[Target]) -> np.ndarray:
  """Per-cell scores of ``patches.method`` (mean over ``targets``); higher = chosen first."""
  p = config.patches
  if p.method == "center":
    order = patches_lib.center_cells(p.rows, p.cols)
    scores = np.empty(order.size)
    scores[order] = -np.arange(order.size, dtype=float)
    return scores
  if p.method == "mask":
    return patches_lib.mask_scores(cells, patches_lib.load_mask_image(p.mask_path))
  if p.method == "saliency":
    return np.mean([patches_lib.saliency_scores(cells, t.image) for t in targets], axis=0)
  return np.mean([patches_lib.cell_scores(cells, t.image, t.baseline_image) for t in targets], axis=0)


def choose_players(config, cells: np.ndarray, targets: list[Target], seed_offset: int = 0, scores=None) -> np.ndarray:
  """Player cells by ``patches.method`` (scores are means over ``targets``, or ``scores`` given)."""
  p = config.patches
  if p.method == "regions":  # every named region is a player, in file order
    return np.arange(cells.shape[0])
  scores = cell_scores(config, cells, targets) if scores is None else scores
  return patches_lib.select_patches(
    p.method,
    p.n,
    cells.shape[0],
    indices=list(p.indices) or None,
    scores=scores,
    foreground_fraction=p.foreground_fraction,
    seed=p.seed + seed_offset,
  )


def players_of(config, cells: np.ndarray, players: np.ndarray, names=None) -> explanation_lib.Players:
  """The :class:`regionjax.Players` of a run: grid cells, or named regions (``patches.method = 'regions'``)."""
  p = config.patches
  if p.method == "regions":
    return explanation_lib.Players.from_masks(np.asarray(cells[players], bool), names=names)
  return explanation_lib.Players.grid_cells(p.rows, p.cols, players).resolve(*cells.shape[1:])


def solve_target(
  config, target: Target, f0: np.ndarray, cells: np.ndarray, players: np.ndarray, ckpt_dir: str, mesh=None, names=None
) -> ImageResult:
  """All minimal features and OR components of one target, checkpointed by chunk (bound to the image's
  fingerprint); the image's :class:`regionjax.Explanation` is ``result.explanation``."""
  exp = explain_config_target(config, target, f0, players_of(config, cells, players, names), ckpt_dir, mesh=mesh)
  res = explainer.bind(exp, 0, decode=target.decode)
  res.cells = cells
  return res


def explain_config_target(
  config, target: Target, f0, players, ckpt_dir: str, mesh=None, generator_fingerprint="", across_processes=True
):
  """:func:`regionjax.explainer.explain_target` with the run's options and chunk checkpoints."""
  return explainer.explain_target(
    target,
    f0,
    players,
    solver_lib.SolverOptions.from_config(config.solver),
    layer=config.model.layer,
    model=config.model.name,
    generator_fingerprint=generator_fingerprint,
    mesh=mesh,
    store=io_lib.ChunkStore(ckpt_dir),
    critical=STOP.critical,
    across_processes=across_processes,
  )


# ------------------------------------------------------------- interruption
class Interrupted(Exception):
  """SIGTERM or SIGINT stopped the run; every finished chunk is checkpointed."""

  def __init__(self, signame: str):
    super().__init__(signame)
    self.signame = signame
    self.workdir: str | None = None

  @property
  def exit_code(self) -> int:
    return 128 + int(getattr(signal, self.signame, signal.SIGTERM))


class _Stop:
  """Turns SIGTERM/SIGINT into :class:`Interrupted` at a safe point.

  Outside a critical section the signal raises at once (the chunk being
  solved is dropped: it was not checkpointed). Inside one (a checkpoint being
  written) it is held until the section ends, so the chunk is checkpointed
  completely first. The first signal restores the default handlers: a second
  one stops the process at once.
  """

  def __init__(self):
    self.pending: str | None = None
    self.depth = 0
    self._old: dict = {}

  def _handler(self, signum, frame):
    del frame
    self._restore()
    name = signal.Signals(signum).name
    if self.depth:
      self.pending = name
      return
    raise Interrupted(name)

  def _restore(self):
    for sig, old in self._old.items():
      signal.signal(sig, old)
    self._old = {}

  @contextlib.contextmanager
  def installed(self):
    if threading.current_thread() is not threading.main_thread():
      yield  # signal handlers can only be set from the main thread
      return
    self.pending, self.depth = None, 0
    for sig in (signal.SIGTERM, signal.SIGINT):
      self._old[sig] = signal.signal(sig, self._handler)
    try:
      yield
    finally:
      self._restore()

  @contextlib.contextmanager
  def critical(self):
    self.depth += 1
    try:
      yield
    finally:
      self.depth -= 1
    if not self.depth and self.pending:
      name, self.pending = self.pending, None
      raise Interrupted(name)


STOP = _Stop()
