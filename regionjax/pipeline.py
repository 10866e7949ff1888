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
import time
import zipfile
from typing import Callable

import jax
import numpy as np

from regionjax import cache as cache_lib
from regionjax import config_check
from regionjax import distributed
from regionjax import explainer
from regionjax import explanation as explanation_lib
from regionjax import io as io_lib
from regionjax import patches as patches_lib
from regionjax import progress
from regionjax import runsteps
from regionjax import timings
from regionjax import truncated
from regionjax.generator import check_layer


# --------------------------------------------------------------------- config
def validate_config(config) -> None:
  """Checks every knob before any work (:mod:`regionjax.config_check`);
  ConfigError (a ValueError) names the knob and says what it must be."""
  config_check.validate(config)
  truncated.validate_config(config)  # solver.max_order > 0: components up to order k only


PATH_KNOBS = ("workdir", "model.checkpoint", "patches.mask_path", "patches.regions_path")


def expand_paths(config) -> None:
  """``~`` and ``~user`` at the start of the path knobs (:data:`PATH_KNOBS`) expanded, as a shell would."""
  for key in PATH_KNOBS:
    block, _, name = key.rpartition(".")
    holder = config[block] if block else config
    value = holder.get(name) if hasattr(holder, "get") else None
    if isinstance(value, str) and value.startswith("~"):
      holder[name] = os.path.expanduser(value)


def check(config) -> str:
  """What ``main.py --dry_run`` does: the whole config checked (:func:`validate_config`), paths expanded, the
  input files and the workdir looked at; nothing is built, written or computed. Returns one line to print;
  raises ValueError (one line) on the first problem."""
  validate_config(config)
  expand_paths(config)
  p = config.patches
  for key, path in (("patches.mask_path", p.mask_path), ("patches.regions_path", p.get("regions_path", ""))):
    if path and not os.path.isfile(path):
      raise ValueError(f"{key} {path!r} does not exist")
  if config.model.checkpoint and not os.path.exists(config.model.checkpoint):
    raise ValueError(f"model.checkpoint {config.model.checkpoint!r} does not exist")
  io_lib.claim_workdir(config.workdir, bool(config.get("overwrite", False)))
  return f"ok: the config is valid; a run would write to {os.path.abspath(config.workdir)} (nothing was built)"


def fingerprint(config) -> dict:
  """The config values that determine the results: everything but the workdir, how the work is spread
  (``distributed``: each process has its own process_id, a resume may use another port) and
  ``target.images_per_step`` (the same results batched or one by one)."""
  d = json.loads(config.to_json_best_effort())
  # where the results go, whether a foreign workdir may be used, how the work is spread, where compiled programs
  # and baselines are cached: no result depends on them
  for key in ("workdir", "overwrite", "distributed", "cache"):
    d.pop(key, None)
  d.get("target", {}).pop("images_per_step", None)
  path = d.get("target", {}).get("codes_file")
  if path and os.path.isfile(path):  # the codes' content, not only their path, decides the results
    from regionjax import dataset

    d["target"]["codes_file_sha256"] = dataset.file_sha256(path)
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
    part = explainer.baseline_sum(gen, codes, layer, k)  # encoded in parts that fit in memory
    total = part if total is None else total + part
    bar.update(k)
  bar.close()
  return (total / num_codes).astype(np.float32)


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


def _load_baseline(path: str, fp: str, shape: tuple | None = None) -> np.ndarray | None:
  """``f0`` from ``baseline.npz`` when it was made for fingerprint ``fp`` (model, weights, layer and baseline
  settings) and has the feature's ``shape``; a damaged file, one of another shape or one made for other inputs
  is reported and recomputed."""
  if not os.path.exists(path):
    return None
  try:
    _check_npz_sizes(path, shape)
    with np.load(path, allow_pickle=False) as data:
      f0 = np.asarray(data["f0"])
      stored = str(data["fingerprint"]) if "fingerprint" in data.files else None
    if f0.dtype.kind not in "fiu" or not np.isfinite(f0).all():
      raise ValueError("non-finite or non-numeric values")
    if shape is not None and f0.shape != tuple(shape):
      raise ValueError(f"f0 has shape {f0.shape}, the feature {tuple(shape)}")
  except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
    io_lib.warn(f"{path} is damaged ({io_lib.short_error(e)}); recomputing it")
    return None
  if stored != fp:
    io_lib.warn(f"{path} was made for another model, layer or baseline setting; recomputing it")
    return None
  return f0


def _check_npz_sizes(path: str, shape: tuple | None) -> None:
  """Raises ValueError before inflating when a member of the npz at ``path`` declares more bytes than ``f0`` of
  the feature's ``shape`` (float64 at most) can take: a foreign file (a zip bomb) is never decompressed."""
  limit = 8 * int(np.prod(shape)) + 4096 if shape is not None else 16 * 2**30
  with zipfile.ZipFile(path) as zf:
    for info in zf.infolist():
      if info.file_size > limit:
        raise ValueError(f"its member {info.filename} declares {info.file_size} bytes, more than f0 can take")


def baseline_fingerprint(generator_fp: str, baseline, dtype: str) -> str:
  """What ``f0`` depends on (:func:`regionjax.cache.baseline_fingerprint`), from the config's baseline block."""
  return cache_lib.baseline_fingerprint(generator_fp, baseline.num_codes, baseline.seed, baseline.batch_size, dtype)


def baseline_f0(
  config, gen, layer: str, gfp: str, cache_root: str | None, *, feature_shape: tuple | None = None, writer: bool = True
) -> np.ndarray:
  """The run's ``f0``: from the workdir's ``baseline.npz``, else from the cache (``cache.dir``), else computed
  (:func:`compute_baseline`) and stored in both. Both are keyed by :func:`baseline_fingerprint`."""
  b = config.baseline
  base_fp = baseline_fingerprint(gfp, b, config.solver.dtype)
  base_path = os.path.join(config.workdir, "baseline.npz")
  f0 = _load_baseline(base_path, base_fp, feature_shape)
  if f0 is not None:
    return f0
  f0 = cache_lib.load_baseline(cache_root, base_fp)
  if f0 is not None and feature_shape is not None and tuple(f0.shape) != tuple(feature_shape):
    f0 = None
  if f0 is None:
    f0 = compute_baseline(gen, layer, b.num_codes, b.batch_size, jax.random.PRNGKey(b.seed), gen.num_classes)
    if writer:
      cache_lib.save_baseline(cache_root, base_fp, f0)
  if writer:
    io_lib.atomic_savez(base_path, f0=f0, fingerprint=np.asarray(base_fp))
  return f0


def run(config, make_generator: Callable, started: float | None = None) -> dict:
  """Runs (or resumes, or re-reports) the experiment of ``config``.

  ``started``: when the process started (seconds since the epoch; the CLI passes
  :func:`regionjax.timings.process_start`), the beginning of the ``start-up`` stage;
  default: now.

  The whole config is validated first; then the workdir is locked for this
  run (:class:`regionjax.io.WorkdirLock`) and SIGTERM/SIGINT raise
  :class:`runsteps.Interrupted` once the chunk being checkpointed is complete.
  Returns the summary dict that is also printed and stored in metrics.json.
  """
  validate_config(config)
  expand_paths(config)
  workdir = config.workdir
  io_lib.claim_workdir(workdir, bool(config.get("overwrite", False)))  # a foreign directory: refused, untouched
  io_lib.ensure_writable(workdir)
  dist = config.distributed
  distributed.initialize(
    {
      "coordinator_address": dist.coordinator_address or None,
      "num_processes": dist.num_processes,
      "process_id": dist.process_id,
      "auto": dist.auto,
      "initialization_timeout": int(dist.get("timeout_s", 120)),
    }
  )
  # process 0 owns the workdir for a multi-process run; the others write only their own chunks
  writer = distributed.is_writer()
  lock = io_lib.WorkdirLock(workdir) if writer else contextlib.nullcontext()
  try:  # the writer lists every file it writes (regionjax_outputs.json): a run removes only those
    with lock, io_lib.recording(workdir) if writer else contextlib.nullcontext(), runsteps.STOP.installed():
      return _run(config, make_generator, time.time() if started is None else started)
  except runsteps.Interrupted as e:
    e.workdir = workdir
    raise


def _run(config, make_generator: Callable, started: float) -> dict:
  from regionjax import truncated_report  # matplotlib/jinja only when running

  truncated_mode = bool(truncated_report.max_order(config))  # components up to order k (regionjax.truncated)
  if truncated_mode:
    report_lib = truncated_report
  else:
    from regionjax import report as report_lib

  workdir = config.workdir
  if distributed.is_writer():
    io_lib.remove_debris(workdir)  # temporary files of a run killed mid-write (under the lock: not a live run's)
  report_path = os.path.join(workdir, "report.html")
  metrics_path = os.path.join(workdir, "metrics.json")
  seen = io_lib.check_workdir(workdir, fingerprint(config))
  if seen:
    result_file = "components.npz" if truncated_mode else explanation_lib.ARRAYS
    metrics = _finished_outputs(workdir, config.target.num_images, result_file)
    text = None
    if metrics is not None:
      try:
        text = report_lib.summary_text(metrics, report_path, reused=True)
      except (TypeError, KeyError, AttributeError, ValueError, IndexError) as e:  # of the wrong shape
        io_lib.warn(
          f"{metrics_path} is damaged ({io_lib.short_error(e)}); recomputing the outputs from the checkpoints"
        )
    if text is not None:
      print(text)
      return metrics
  for stale in ("report.html", "metrics.json"):  # nothing half-written may look like a result; a file
    io_lib.remove_output(workdir, stale)  # no run wrote (the user's own) is left alone

  watch = timings.Stopwatch(started)
  cache_root = cache_lib.resolve(config.cache.dir)
  if cache_lib.use_compilation_cache(cache_root) is None:  # an unusable directory was reported: no cache
    cache_root = None
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
  num_images = config.target.num_images
  classes = None
  if num_classes:
    classes = (
      np.full(num_images, class_id)
      if class_id is not None and class_id >= 0
      else (np.asarray(jax.random.randint(jax.random.PRNGKey(config.target.seed + 1), (num_images,), 0, num_classes)))
    )
  if config.target.get("codes_file"):  # the user's codes (regionjax.dataset.load_codes)
    from regionjax import dataset

    codes = dataset.load_codes(config.target.codes_file, gen, num_images)
  else:
    codes = _sample(gen, jax.random.PRNGKey(config.target.seed), num_images, classes)
  explainer.check_codes(codes)
  # the inputs (grid, mask, regions) are checked on the first image's shape before anything is written
  first = explainer.slice_codes(codes, 0, 1)
  image_shape = np.shape(gen.generate(first))[1:]
  feature_shape = tuple(np.shape(gen.encode(first, layer))[1:])
  cells = runsteps.grid_cells(config, image_shape)
  named = runsteps.player_names(config, image_shape)
  if config.patches.method == "mask":
    patches_lib.mask_scores(cells, patches_lib.load_mask_image(config.patches.mask_path))
  if writer:
    io_lib.record_config(workdir, fingerprint(config))
  watch.start()  # start-up ends: interpreter, imports, config, generator (a later run's start replaces it)

  gfp = explanation_lib.generator_fingerprint(gen, layer)
  with timings.stage("baseline"):
    f0 = baseline_f0(config, gen, layer, gfp, cache_root, feature_shape=feature_shape, writer=writer)

  if num_images > 1 and not truncated_mode:  # dataset run: images streamed to disk one by one, resumable per image
    from regionjax import dataset

    metrics = dataset.run_images(config, gen, codes, f0, layer, gfp, mesh=mesh, started=started, report_lib=report_lib)
    if metrics:
      metrics["summary"]["seconds_total"] = time.time() - started
      print(report_lib.summary_text(metrics, report_path, reused=False))
    return metrics

  with timings.stage("solve"):  # the targets x = g(f), their features and decoders: what the solver reads
    targets = [prepare_target(gen, codes, i, layer, f0) for i in range(num_images)]
  names = list(named[0]) if named else None
  if config.patches.shared:  # one set of players for all images, so action fields compare across images
    shared = runsteps.choose_players(config, cells, targets)
  results = []
  for t in targets:
    players = shared if config.patches.shared else runsteps.choose_players(config, cells, [t], seed_offset=t.index)
    ckpt = os.path.join(workdir, "checkpoints", f"image_{t.index:03d}")
    with timings.stage("solve"):
      if truncated_mode:
        res = truncated_report.solve_target(config, t, f0, cells, players, ckpt, mesh=mesh)
        res.names = names
      else:
        exp = runsteps.explain_config_target(
          config, t, f0, runsteps.players_of(config, cells, players, names), ckpt, mesh, gfp
        )
        res = explainer.bind(exp, 0, decode=t.decode)
        res.cells = cells
    results.append(res)

  if not writer:  # process 0 writes the outputs once
    return {}
  with timings.stage("report"):  # the metrics inside are their own stage
    metrics = report_lib.write_outputs(config, gen, results, workdir, elapsed=time.time() - watch.started)
  metrics["summary"]["seconds_total"] = time.time() - watch.started  # printed: metrics and report included
  metrics["timings"] = watch.table()
  _add_timings(os.path.join(workdir, "metrics.json"), metrics["timings"])
  watch.stop()
  print(report_lib.summary_text(metrics, report_path, reused=False))
  return metrics


def _add_timings(path: str, table: dict) -> None:
  """metrics.json with the run's stage table (``timings``, seconds; written once the report is done)."""
  with open(path) as fh:
    m = json.load(fh)
  m["timings"] = table
  io_lib.write_json(path, m)
