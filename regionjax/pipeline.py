"""The whole method driven by a config: ``run(config, make_generator)``.

generator → baseline ``f0`` over many codes → target image(s) from seeded
codes → patch selection → all ``2**n`` minimal features (checkpointed by
chunk) → OR components → metrics → figures and ``report.html``. Outputs go to
``config.workdir`` (docs/layout.md §Outputs): ``report.html``, ``metrics.json``,
``components.npz``, ``config.json`` and ``checkpoints/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import zipfile
from typing import Callable

import jax
import numpy as np

from regionjax import config_check
from regionjax import distributed
from regionjax import explainer
from regionjax import explanation as explanation_lib
from regionjax import io as io_lib
from regionjax import patches as patches_lib
from regionjax import progress
from regionjax import solver as solver_lib
from regionjax import truncated
from regionjax.generator import check_layer


# --------------------------------------------------------------------- config
def validate_config(config) -> None:
  """Checks every knob before any work (:mod:`regionjax.config_check`);
  ConfigError (a ValueError) names the knob and says what it must be."""
  config_check.validate(config)
  truncated.validate_config(config)  # solver.max_order > 0: components up to order k only


def fingerprint(config) -> dict:
  """The config values that determine the results (everything but the workdir)."""
  d = json.loads(config.to_json_best_effort())
  d.pop("workdir", None)
  return d


# ------------------------------------------------------------------ utilities
# The library's pieces a run is made of (regionjax.explainer); kept here under their old names.
Target = explainer.Target
ImageResult = explainer.ImageResult
prepare_target = explainer.prepare_target
codes_decoder = explainer.codes_decoder
_slice_codes = explainer.slice_codes


def _sample(gen, rng, num: int, classes):
  return gen.sample_codes(rng, num, classes=classes)


def compute_baseline(gen, layer: str, num_codes: int, batch_size: int, rng, num_classes: int | None):
  """``f0``: the mean feature at ``layer`` over ``num_codes`` codes (v1 §4; :func:`regionjax.explainer.baseline`
  with the codes drawn from ``rng``)."""
  del num_classes  # the generator's own
  total = None
  bar = progress.bar(total=num_codes, desc="baseline f0", unit="code")
  nc = getattr(gen, "num_classes", None)
  for start in range(0, num_codes, batch_size):
    k = min(batch_size, num_codes - start)
    classes = None if not nc else (np.arange(start, start + k) % nc)
    codes = _sample(gen, jax.random.fold_in(rng, start), k, classes)
    feat = np.asarray(gen.encode(codes, layer), np.float64)
    explainer.check_finite("the baseline features", feat)
    total = feat.sum(0) if total is None else total + feat.sum(0)
    bar.update(k)
  bar.close()
  return (total / num_codes).astype(np.float32)


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


def choose_players(config, cells: np.ndarray, targets: list[Target], seed_offset: int = 0) -> np.ndarray:
  """Player cells by ``patches.method`` (scores are means over ``targets``)."""
  p = config.patches
  if p.method == "regions":  # every named region is a player, in file order
    return np.arange(cells.shape[0])
  scores = cell_scores(config, cells, targets)
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


def explain_config_target(config, target: Target, f0, players, ckpt_dir: str, mesh=None, generator_fingerprint=""):
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


# ---------------------------------------------------------------- the run
def _finished_outputs(workdir: str, num_images: int, result_file: str = explanation_lib.ARRAYS) -> dict | None:
  """metrics.json of a finished run if all its output files are intact, else None
  (a damaged file is reported and the outputs are recomputed from the checkpoints)."""
  dirs = [workdir] if num_images <= 1 else explanation_lib.image_dirs(workdir)
  if num_images > 1:
    if len(dirs) != num_images:
      return None
    dirs = [workdir] + dirs
  metrics = None
  for d in dirs:
    names = (
      ("metrics.json", "report.html")
      if d == workdir and num_images > 1
      else ("metrics.json", result_file, "report.html")
    )
    for name in names:
      path = os.path.join(d, name)
      if not os.path.exists(path):
        return None
      try:
        if name == "metrics.json":
          with open(path) as fh:
            m = json.load(fh)
          if not isinstance(m, dict) or "summary" not in m or "solver" not in m:
            raise ValueError("not a metrics file of this project")
          metrics = m if d == workdir else metrics
        elif name == explanation_lib.ARRAYS:
          explanation_lib.load(d)  # checks the manifest, the arrays' digest and shapes
        elif name.endswith(".npz"):
          with np.load(path) as data:
            for key in data.files:  # reads (and CRC-checks) every array
              data[key]
            if "components" not in data.files:
              raise ValueError("no 'components' array")
        else:
          with open(path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(path) - 64))
            if b"</html>" not in fh.read():
              raise ValueError("cut off before </html>")
      except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        io_lib.warn(f"{path} is damaged ({io_lib.short_error(e)}); recomputing the outputs from the checkpoints")
        return None
  return metrics


def _load_baseline(path: str, fp: str) -> np.ndarray | None:
  """``f0`` from ``baseline.npz`` when it was made for fingerprint ``fp`` (model, weights, layer and baseline
  settings); a damaged file or one made for other inputs is reported and recomputed."""
  if not os.path.exists(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as data:
      f0 = np.asarray(data["f0"])
      stored = str(data["fingerprint"]) if "fingerprint" in data.files else None
    if not np.isfinite(f0).all():
      raise ValueError("non-finite values")
  except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
    io_lib.warn(f"{path} is damaged ({io_lib.short_error(e)}); recomputing it")
    return None
  if stored != fp:
    io_lib.warn(f"{path} was made for another model, layer or baseline setting; recomputing it")
    return None
  return f0


def run(config, make_generator: Callable) -> dict:
  """Runs (or resumes, or re-reports) the experiment of ``config``.

  The whole config is validated first; then the workdir is locked for this
  run (:class:`regionjax.io.WorkdirLock`) and SIGTERM/SIGINT raise
  :class:`Interrupted` once the chunk being checkpointed is complete.
  Returns the summary dict that is also printed and stored in metrics.json.
  """
  validate_config(config)
  workdir = config.workdir
  io_lib.ensure_writable(workdir)
  dist = config.distributed
  distributed.initialize(
    {
      "coordinator_address": dist.coordinator_address or None,
      "num_processes": dist.num_processes,
      "process_id": dist.process_id,
      "auto": dist.auto,
    }
  )
  # process 0 owns the workdir for a multi-process run; the others write only their own chunks
  lock = io_lib.WorkdirLock(workdir) if distributed.is_writer() else contextlib.nullcontext()
  try:
    with lock, STOP.installed():
      return _run(config, make_generator)
  except Interrupted as e:
    e.workdir = workdir
    raise


def _run(config, make_generator: Callable) -> dict:
  from regionjax import truncated_report  # matplotlib/jinja only when running

  truncated_mode = bool(truncated_report.max_order(config))  # components up to order k (regionjax.truncated)
  if truncated_mode:
    report_lib = truncated_report
  else:
    from regionjax import report as report_lib

  workdir = config.workdir
  metrics_path = os.path.join(workdir, "metrics.json")
  report_path = os.path.join(workdir, "report.html")
  seen = io_lib.check_workdir(workdir, fingerprint(config))
  if seen:
    result_file = "components.npz" if truncated_mode else explanation_lib.ARRAYS
    metrics = _finished_outputs(workdir, config.target.num_images, result_file)
    if metrics is not None:
      print(report_lib.summary_text(metrics, report_path, reused=True))
      return metrics
  for stale in (report_path, metrics_path):  # nothing half-written may look like a result
    if os.path.exists(stale):
      os.unlink(stale)

  started = time.time()
  if config.solver.dtype == "float64":
    jax.config.update("jax_enable_x64", True)
  writer = distributed.is_writer()
  mesh = distributed.local_mesh() if config.solver.shard and jax.local_device_count() > 1 else None
  gen = make_generator(config.model)
  explainer.check_generator(gen)
  layer = check_layer(gen, config.model.layer)
  num_classes = gen.num_classes
  class_id = config.target.class_id
  if class_id is not None and class_id >= 0 and num_classes is not None and not class_id < num_classes:
    raise ValueError(f"target.class_id={class_id} is out of range: the model has classes 0 … {num_classes - 1}")
  if writer:
    io_lib.record_config(workdir, fingerprint(config))

  gfp = explanation_lib.generator_fingerprint(gen, layer)
  b = config.baseline
  base_fp = explanation_lib.digest("baseline", gfp, int(b.num_codes), int(b.seed))
  base_path = os.path.join(workdir, "baseline.npz")
  f0 = _load_baseline(base_path, base_fp)
  if f0 is None:
    f0 = compute_baseline(gen, layer, b.num_codes, b.batch_size, jax.random.PRNGKey(b.seed), num_classes)
    if writer:
      io_lib.atomic_savez(base_path, f0=f0, fingerprint=np.asarray(base_fp))
  num_images = config.target.num_images
  classes = None
  if num_classes:
    classes = (
      np.full(num_images, class_id)
      if class_id is not None and class_id >= 0
      else (np.asarray(jax.random.randint(jax.random.PRNGKey(config.target.seed + 1), (num_images,), 0, num_classes)))
    )
  codes = _sample(gen, jax.random.PRNGKey(config.target.seed), num_images, classes)
  explainer.check_codes(codes)

  targets = [prepare_target(gen, codes, i, layer, f0) for i in range(num_images)]
  cells = grid_cells(config, targets[0].image.shape)
  named = player_names(config, targets[0].image.shape)
  names = list(named[0]) if named else None
  if config.patches.shared:  # one set of players for all images, so action fields compare across images
    shared = choose_players(config, cells, targets)
  results = []
  for t in targets:
    players = shared if config.patches.shared else choose_players(config, cells, [t], seed_offset=t.index)
    ckpt = os.path.join(workdir, "checkpoints", f"image_{t.index:03d}")
    if truncated_mode:
      res = truncated_report.solve_target(config, t, f0, cells, players, ckpt, mesh=mesh)
      res.names = names
    else:
      exp = explain_config_target(config, t, f0, players_of(config, cells, players, names), ckpt, mesh, gfp)
      res = explainer.bind(exp, 0, decode=t.decode)
      res.cells = cells
    results.append(res)

  if not writer:  # process 0 writes the outputs once
    return {}
  metrics = report_lib.write_outputs(config, gen, results, workdir, elapsed=time.time() - started)
  metrics["summary"]["seconds_total"] = time.time() - started  # printed: metrics and report included
  print(report_lib.summary_text(metrics, report_path, reused=False))
  return metrics
