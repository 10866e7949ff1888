"""Dataset runs (``target.num_images`` > 1): images streamed to disk one by one, resumable per image.

Each image ``i`` is solved, evaluated and written under ``W/images/<iii>/`` (its
saved :class:`regionjax.Explanation`, ``metrics.json`` and ``report.html``,
written last) as soon as it is done, and then dropped: memory does not grow with
the number of images. A rerun keeps every image whose directory is complete
(:func:`finished`: ``report.html`` ends, ``metrics.json`` parses, ``rj.load``
checks the arrays' SHA-256) and solves only the others; a finished image's files
are never rewritten.

With ``P`` processes (``jax.distributed``), process ``p`` owns the images
``i ≡ p (mod P)`` and solves each on its own devices — nothing crosses
processes inside an image, so no collective runs in a chunk callback. After one
barrier that every process enters, process 0 alone writes the summary:
``metrics.json`` and ``report.html`` (the index, as before) and ``dataset.json``.
The workdir must be one filesystem every process sees (docs/pods.md).

Transferability (v2 §3.4) over M images compares each image with the next,
around a ring (M pairs for M > 2, each image in two of them): O(M) instead of
the M(M − 1)/2 pairs of all pairs, with the same size-matched chance per pair.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import jax
import numpy as np

from regionjax import evaluation
from regionjax import explainer
from regionjax import explanation as explanation_lib
from regionjax import io as io_lib
from regionjax import runsteps
from regionjax import results as results_lib

COMPARE_IMAGES = 8  # images in the index's one-field-across-images view (the first ones)


def file_sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as fh:
    for block in iter(lambda: fh.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def leaf_key(path) -> str:
  """A code leaf's name in a codes file: its dict keys / sequence indices joined by '/' (``z``, ``label``)."""
  parts = []
  for k in path:
    parts.append(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))))
  return "/".join(parts) or "codes"


def save_codes(path: str, codes) -> None:
  """Writes a code pytree (leading image axis) as :func:`load_codes` reads it."""
  leaves = jax.tree_util.tree_flatten_with_path(codes)[0]
  io_lib.atomic_savez(path, **{leaf_key(p): np.asarray(a) for p, a in leaves})


def load_codes(path: str, gen, num: int):
  """The first ``num`` codes of an ``.npz`` holding one array per leaf of the generator's code pytree (named by
  :func:`leaf_key`), each with a leading image axis; leaves without an axis in the generator's own codes (a
  truncation) may be left out and are taken from them. ValueError (one line) for a missing or misshapen leaf."""
  nc = getattr(gen, "num_classes", None)
  reference = gen.sample_codes(jax.random.PRNGKey(0), 1, classes=np.zeros(1, np.int32) if nc else None)
  try:
    data = np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise ValueError(f"target.codes_file {path!r} does not read as an .npz ({io_lib.short_error(e)})") from None
  with data:
    leaves, treedef = jax.tree_util.tree_flatten_with_path(reference)
    out = []
    for p, ref in leaves:
      key, ref = leaf_key(p), np.asarray(ref)
      if key not in data.files:
        if ref.ndim == 0:
          out.append(ref)
          continue
        raise ValueError(f"target.codes_file {path!r} has no array {key!r} (it holds {sorted(data.files)})")
      a = np.asarray(data[key])
      if a.ndim != ref.ndim or a.shape[1:] != ref.shape[1:]:
        raise ValueError(
          f"target.codes_file {path!r}: {key!r} has shape {a.shape}, expected (images,) + {ref.shape[1:]}"
        )
      if a.shape[0] < num:
        raise ValueError(f"target.codes_file {path!r} holds {a.shape[0]} codes but target.num_images={num}")
      out.append(a[:num].astype(ref.dtype))
  return jax.tree.unflatten(jax.tree.structure(reference), out)


def image_dir(workdir: str, index: int) -> str:
  """``W/images/<index>/``, zero-padded to three digits."""
  return os.path.join(workdir, "images", f"{index:03d}")


def owned_images(num_images: int, process_index: int, num_processes: int) -> list[int]:
  """The images process ``process_index`` solves: ``i ≡ process_index (mod num_processes)``."""
  return [i for i in range(num_images) if i % num_processes == process_index]


def finished(outdir: str) -> bool:
  """True when ``outdir`` holds a complete image: ``report.html`` (written last) ends with ``</html>``,
  ``metrics.json`` reads as this project's metrics and the explanation loads (manifest and SHA-256)."""
  report = os.path.join(outdir, "report.html")
  try:
    with open(report, "rb") as fh:
      fh.seek(max(0, os.path.getsize(report) - 64))
      if b"</html>" not in fh.read():
        return False
    with open(os.path.join(outdir, "metrics.json")) as fh:
      results_lib.ImageMetrics.from_json_dict(json.load(fh))
    explanation_lib.load(outdir)
  except Exception:  # noqa: BLE001 - anything unreadable: recompute the image
    return False
  return True


def _shared_scores(config, gen, codes, layer, f0, cells, num_images):
  """Per-cell scores averaged over all images, one image in memory at a time (``patches.shared`` with a method
  that looks at the images); None when the method does not."""
  if config.patches.method in ("regions", "indices", "center", "mask"):
    return None
  total = None
  for i in range(num_images):
    t = explainer.prepare_target(gen, codes, i, layer, f0)
    s = np.asarray(runsteps.cell_scores(config, cells, [t]), np.float64)
    total = s if total is None else total + s
  return total / num_images


def run_images(config, gen, codes, f0, layer: str, gfp: str, *, mesh, started: float, report_lib) -> dict:
  """Solves, evaluates and writes this process's unfinished images one by one, then (process 0) the summary.

  Returns the summary dict (empty on processes other than 0)."""
  from jax.experimental import multihost_utils

  workdir = config.workdir
  num = int(config.target.num_images)
  nproc, pid = jax.process_count(), jax.process_index()
  first = explainer.prepare_target(gen, codes, 0, layer, f0)
  cells = runsteps.grid_cells(config, first.image.shape)
  named = runsteps.player_names(config, first.image.shape)
  names = list(named[0]) if named else None
  shared = None
  if config.patches.shared:  # one set of players for all images, so action fields compare across images
    scores = _shared_scores(config, gen, codes, layer, f0, cells, num)
    shared = runsteps.choose_players(config, cells, [first], scores=scores)
  del first
  if pid == 0 and os.path.exists(os.path.join(workdir, "dataset.json")):  # a summary of images being redone
    os.unlink(os.path.join(workdir, "dataset.json"))
  mine = owned_images(num, pid, nproc)
  todo = [i for i in mine if not finished(image_dir(workdir, i))]
  kept = len(mine) - len(todo)
  if kept:
    print(f"{kept} of {len(mine)} images finished earlier (verified), kept: solving {len(todo)}", flush=True)
  samples_png = report_lib.sample_grid_png(config, gen) if todo else None
  features = report_lib.baseline_features(config, gen) if todo else None

  def write(i, exp, decode, t0):
    res = explainer.bind(exp, 0, decode=decode)
    res.cells = cells
    header = {
      "model": config.model.name,
      "layer": config.model.layer,
      "seconds_total": 0.0,
      "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with runsteps.STOP.critical():  # a SIGTERM now waits until the image's files are complete
      report_lib.write_image(config, res, image_dir(workdir, i), samples_png, header, features)
    print(f"image {i:03d} written to {image_dir(workdir, i)} ({time.time() - t0:.1f} s)", flush=True)

  def players_for(target):
    chosen = (
      shared if shared is not None else runsteps.choose_players(config, cells, [target], seed_offset=target.index)
    )
    return runsteps.players_of(config, cells, chosen, names)

  if int(config.target.get("images_per_step", 1)) != 1:  # images × problems, one compiled program per chunk
    _run_batched(config, gen, codes, f0, layer, gfp, todo, players_for, write)
    todo = []
  for i in todo:  # one by one, with chunk checkpoints
    t0 = time.time()
    target = explainer.prepare_target(gen, codes, i, layer, f0)
    ckpt = os.path.join(workdir, "checkpoints", f"image_{i:03d}")
    exp = runsteps.explain_config_target(
      config, target, f0, players_for(target), ckpt, mesh, gfp, across_processes=False
    )
    write(i, exp, target.decode, t0)
    del target, exp
  if nproc > 1:
    multihost_utils.sync_global_devices("regionjax.dataset.images")  # every process enters: all images written
  if pid != 0:
    return {}
  missing = [i for i in range(num) if not finished(image_dir(workdir, i))]
  if missing:
    raise ValueError(f"images {missing[:8]} are not complete after every process finished; rerun the same command")
  return write_summary(config, gen, workdir, num, elapsed=time.time() - started, report_lib=report_lib)


def _run_batched(config, gen, codes, f0, layer: str, gfp: str, todo, players_for, write) -> None:
  """Solves ``todo`` in steps of :func:`regionjax.batched.images_per_step` images, each step one compiled
  program per chunk with the image axis sharded over the local devices; each image is written as its step ends."""
  from regionjax import batched
  from regionjax import solver as solver_lib

  options = solver_lib.SolverOptions.from_config(config.solver)
  shard = config.solver.shard and jax.local_device_count() > 1
  mesh = batched.image_mesh() if shard else None
  devices = 1 if mesh is None else mesh.devices.size
  requested = int(config.target.images_per_step)
  chunk_bytes = None
  if requested == 0 and options.memory_budget is not None:  # one image's chunk, compiled (not run) to measure it
    t = explainer.prepare_target(gen, codes, todo[0], layer, f0)
    n = int(np.asarray(players_for(t).masks).shape[0])
    width = solver_lib.chunk_width(n, options.chunk_size, 1, options.composition)
    chunk_bytes = solver_lib.chunk_memory_bytes(
      t.decode, t.f, t.image, width, dtype=options.dtype, decode_dtype=options.decode_dtype, remat=options.remat
    )
  step = batched.images_per_step(options, chunk_bytes, devices, requested)
  print(f"{step} images per compiled step on {devices} device(s), {len(todo)} to solve", flush=True)
  for start in range(0, len(todo), step):
    t0 = time.time()
    targets = [explainer.prepare_target(gen, codes, i, layer, f0) for i in todo[start : start + step]]
    players = [players_for(t) for t in targets]
    masks = [np.asarray(p.masks, bool) for p in players]
    solutions = batched.solve_images([(t.decode, t.f, t.image) for t in targets], f0, masks, options, mesh=mesh)
    seconds = (time.time() - t0) / len(targets)
    for t, p, m, sol in zip(targets, players, masks, solutions):
      fp = explanation_lib.solve_fingerprint(
        layer=config.model.layer, f=t.f, f0=f0, image=t.image, masks=m, options=options, model=config.model.name
      )
      exp = explainer.from_solution(
        sol,
        t,
        f0,
        p,
        options,
        layer=config.model.layer,
        model=config.model.name,
        fingerprint=fp,
        generator_fingerprint=gfp,
        seconds=seconds,
      )
      write(t.index, exp, t.decode, t0)
    del targets, solutions


def ring_pairs(items):
  """``(a, b)`` for consecutive items of an iterable, and (last, first) to close the ring when there are more
  than two: each item is in two pairs, M pairs in all, one item held besides the first."""
  it = iter(items)
  try:
    head = prev = next(it)
  except StopIteration:
    return
  count = 1
  for cur in it:
    yield prev, cur
    prev = cur
    count += 1
  if count > 2:
    yield prev, head


def write_summary(config, gen, workdir: str, num: int, *, elapsed: float, report_lib) -> dict:
  """``metrics.json``, ``report.html`` (the index) and ``dataset.json`` from the images on disk.

  Reads one image at a time (its metrics, its explanation for the thumbnail and the ring of transferability
  pairs); the comparison view holds the first :data:`COMPARE_IMAGES` images."""
  from regionjax import figures

  per_image = []
  for i in range(num):
    with open(os.path.join(image_dir(workdir, i), "metrics.json")) as fh:
      per_image.append(results_lib.ImageMetrics.from_json_dict(json.load(fh)))
  thumbs, compare = [], []

  def loaded():
    for i in range(num):
      r = explainer.bind(explanation_lib.load(image_dir(workdir, i)), 0, gen)
      thumbs.append(figures.data_uri(figures.target_with_grid(r.image, r.cells, r.players)))
      if len(compare) < COMPARE_IMAGES:
        compare.append(r)
      yield r

  transfer = evaluation.transfer_pairs(None, config.metrics.transfer_k, pairs=ring_pairs(loaded()))
  transfer["sampling"] = "ring: each image with the next (and the last with the first), M pairs for M > 2"
  agg = evaluation.aggregate(per_image)
  first = per_image[0].summary
  header = {
    "model": config.model.name,
    "layer": config.model.layer,
    "seconds_total": float(elapsed),
    "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
  }
  summary = dict(header, num_images=num, n=first.n, players=first.players, feature_shape=first.feature_shape)
  rows = [
    {
      "image": m.summary.image,
      "class_id": m.summary.class_id,
      "report": f"images/{m.summary.image:03d}/report.html",
      **{k: v for k, v in m.to_json_dict().items() if k != "summary"},
    }
    for m in per_image
  ]
  metrics = {
    "summary": summary,
    "aggregate": agg,
    "transferability": transfer,
    "per_image": rows,
    "solver": {
      "met_tau": int(sum(m.solver.met_tau for m in per_image)),
      "subsets": int(sum(m.solver.subsets for m in per_image)),
      "median_error": float(np.median([m.solver.median_error for m in per_image])),
      "problems_solved": int(sum(m.solver.problems_solved or 0 for m in per_image)),
    },
    "completeness": {"feature_error": agg["completeness.feature_error"]["mean"]},
    "additivity": {"k": per_image[0].additivity.k, "error_mean": agg["additivity.error_mean"]["mean"]},
    "faithfulness": evaluation.mean_faithfulness([m.faithfulness for m in per_image]),
    "top_components": results_lib.to_json(per_image[0].top_components),
  }
  from regionjax import metrics as metrics_lib

  io_lib.write_json(os.path.join(workdir, "dataset.json"), dataset_json(metrics, per_image))
  io_lib.write_json(os.path.join(workdir, "metrics.json"), metrics_lib.summary(metrics))
  html = report_lib.render(
    "index.html.j2",
    config=config,
    summary=summary,
    aggregate=agg,
    transfer=transfer,
    per_image=rows,
    thumbs=thumbs,
    samples=figures.data_uri(samples) if (samples := report_lib.sample_grid_png(config, gen)) else None,
    compare=report_lib.comparison_view(config, compare, [r["report"] for r in rows[: len(compare)]]),
  )
  io_lib.atomic_write_text(os.path.join(workdir, "report.html"), html)
  return metrics_lib.summary(metrics)


def dataset_json(metrics: dict, per_image: list) -> dict:
  """The dataset summary: per image its headline figures and directory; over images each figure's
  mean, std, quantiles and how many images meet its target; transferability on the ring of pairs."""
  faith = [m.faithfulness for m in per_image]
  figures_ = {}
  for name in ("rho_image_top10", "additivity_top30"):
    vals = np.asarray([np.nan if getattr(f, name).value is None else getattr(f, name).value for f in faith])
    ok = [bool(getattr(f, name).met) for f in faith]
    finite = vals[np.isfinite(vals)]
    figures_[name] = {
      "mean": float(finite.mean()) if finite.size else None,
      "std": float(finite.std()) if finite.size else None,
      "quantiles": {q: float(np.quantile(finite, float(q))) for q in ("0.1", "0.5", "0.9")} if finite.size else None,
      "histogram": dict(zip(("counts", "edges"), (a.tolist() for a in np.histogram(finite, bins=10))))
      if finite.size
      else None,
      "images_meeting_target": int(sum(ok)),
      "target": getattr(faith[0], name).target,
    }
  images = [
    {
      "image": m.summary.image,
      "class_id": m.summary.class_id,
      "dir": f"images/{m.summary.image:03d}",
      "rho_image_top10": m.faithfulness.rho_image_top10.value,
      "additivity_top30": m.faithfulness.additivity_top30.value,
      "subsets_meeting_tau": m.faithfulness.subsets_meeting_tau.value,
      "subsets": m.faithfulness.subsets_meeting_tau.of,
    }
    for m in per_image
  ]
  return {
    "num_images": len(per_image),
    "summary": metrics["summary"],
    "figures": figures_,
    "transferability": {k: v for k, v in metrics["transferability"].items()},
    "images": images,
  }
