"""Checkpoints and baselines are bound to a fingerprint of their inputs: a chunk checkpoint or a baseline.npz made
for other inputs (another image, model, layer, players or solver setting) is set aside and recomputed, never taken
for this run's (issue: silently wrong results when a checkpoint was copied in from another run)."""

import os
import shutil

import jax
import numpy as np
import pytest

import regionjax as rj
from regionjax import explainer
from regionjax import io as io_lib
from regionjax import pipeline, testing

OPTIONS = rj.SolverOptions(lam=200.0, learning_rate=0.02, steps=40, tau=0.05, chunk_size=4)
PLAYERS = rj.Players.grid_cells(3, 3, [0, 1, 2, 3]).resolve(12, 12)


@pytest.fixture(scope="module")
def setup():
  gen = testing.PlantedGenerator()
  f0 = rj.baseline(gen, "feature", num_codes=50, show_progress=False)
  codes = gen.sample_codes(jax.random.PRNGKey(0), 2)
  targets = [explainer.prepare_target(gen, codes, i, "feature", f0) for i in range(2)]
  return gen, f0, targets


def _explain(target, f0, ckpt, options=OPTIONS, saves=None):
  store = io_lib.ChunkStore(str(ckpt))
  if saves is not None:
    original = store.save
    store.save = lambda i, c: (saves.append(i), original(i, c))[1]
  return explainer.explain_target(target, f0, PLAYERS, options, layer="feature", store=store, show_progress=False)


def test_resume_reuses_chunks_made_for_the_same_inputs(setup, tmp_path):
  _, f0, (t0, _) = setup
  first = _explain(t0, f0, tmp_path / "ck")
  saves = []
  again = _explain(t0, f0, tmp_path / "ck", saves=saves)
  assert saves == []  # nothing solved again
  np.testing.assert_array_equal(again.components(), first.components())


@pytest.mark.parametrize("change", ["image", "options", "players"])
def test_chunks_of_other_inputs_are_set_aside_and_recomputed(setup, tmp_path, capsys, change):
  _, f0, (t0, t1) = setup
  ref = _explain(t0, f0, tmp_path / "ref")
  other_target, other_options = t0, OPTIONS
  if change == "image":
    other_target = t1
  elif change == "options":
    other_options = OPTIONS.replace(lam=50.0)
  other_dir = tmp_path / "other"
  if change == "players":  # the same chunks solved for other players: a checkpoint copied from another run
    store = io_lib.ChunkStore(str(other_dir))
    other_players = rj.Players.grid_cells(3, 3, [4, 5, 6, 7]).resolve(12, 12)
    explainer.explain_target(t0, f0, other_players, OPTIONS, layer="feature", store=store, show_progress=False)
  else:
    _explain(other_target, f0, other_dir, options=other_options)
  ckpt = tmp_path / "copied"
  shutil.copytree(other_dir, ckpt)
  capsys.readouterr()
  saves = []
  got = _explain(t0, f0, ckpt, saves=saves)
  err = capsys.readouterr().err
  assert "were made for other inputs" in err and "recomputing" in err, err
  assert sorted(saves) == list(range(5))  # every chunk solved again
  np.testing.assert_allclose(got.components(), ref.components(), rtol=0, atol=1e-6)
  assert len(os.listdir(ckpt / "stale")) == 1


def test_chunks_without_a_fingerprint_are_not_trusted(setup, tmp_path, capsys):
  _, f0, (t0, _) = setup
  _explain(t0, f0, tmp_path / "ck")
  os.unlink(tmp_path / "ck" / io_lib.FINGERPRINT)  # e.g. checkpoints of an older version
  saves = []
  _explain(t0, f0, tmp_path / "ck", saves=saves)
  assert "carry no fingerprint" in capsys.readouterr().err and sorted(saves) == list(range(5))


def test_baseline_of_another_model_or_setting_is_recomputed(tmp_path, capsys):
  path = str(tmp_path / "baseline.npz")
  io_lib.atomic_savez(path, f0=np.ones(3, np.float32), fingerprint=np.asarray("another model"))
  assert pipeline._load_baseline(path, "this model") is None
  assert "another model, layer or baseline setting" in capsys.readouterr().err
  io_lib.atomic_savez(path, f0=np.ones(3, np.float32), fingerprint=np.asarray("this model"))
  np.testing.assert_array_equal(pipeline._load_baseline(path, "this model"), np.ones(3))
  io_lib.atomic_savez(path, f0=np.ones(3, np.float32))  # no fingerprint: an older run's
  assert pipeline._load_baseline(path, "this model") is None


def test_generator_fingerprint_tells_weights_apart():
  a = testing.PlantedGenerator()
  b = testing.PlantedGenerator(testing.planted_generator(seed=1))
  fa = rj.explanation.generator_fingerprint(a, "feature")
  assert fa == rj.explanation.generator_fingerprint(testing.PlantedGenerator(), "feature")
  assert fa != rj.explanation.generator_fingerprint(b, "feature")


def test_baseline_fingerprint_covers_what_changes_f0():
  """The baseline's codes are drawn batch by batch (``fold_in(seed, start)``): another batch size gives another
  ``f0``, so it must give another fingerprint too (as must num_codes, seed and the precision)."""
  import ml_collections

  gen = testing.PlantedGenerator()
  a = pipeline.compute_baseline(gen, "feature", 40, 20, jax.random.PRNGKey(1), None)
  b = pipeline.compute_baseline(gen, "feature", 40, 8, jax.random.PRNGKey(1), None)
  assert not np.allclose(a, b)  # the batch size changes f0 ...
  base = ml_collections.ConfigDict({"num_codes": 40, "seed": 1, "batch_size": 20})
  fp = pipeline.baseline_fingerprint("g", base, "float32")
  for key, value in (("batch_size", 8), ("num_codes", 41), ("seed", 2)):
    other = ml_collections.ConfigDict(base.to_dict())
    other[key] = value
    assert pipeline.baseline_fingerprint("g", other, "float32") != fp, key  # ... and so its fingerprint
  assert pipeline.baseline_fingerprint("g", base, "float64") != fp
  assert pipeline.baseline_fingerprint("h", base, "float32") != fp
  assert pipeline.baseline_fingerprint("g", ml_collections.ConfigDict(base.to_dict()), "float32") == fp


def test_truncated_chunks_of_other_players_are_recomputed(setup, tmp_path, capsys):
  """The order-≤k path (solver.max_order > 0) binds its chunk checkpoints like the full solve."""
  from configs import planted
  from regionjax import truncated_report

  _, f0, (t0, _) = setup
  config = planted.get_config()
  config.solver.max_order = 1
  config.solver.steps = 20
  config.solver.shard = False
  cells = rj.Players.grid_cells(3, 3, list(range(9))).resolve(12, 12).masks
  ckpt = str(tmp_path / "ck")
  truncated_report.solve_target(config, t0, f0, cells, np.array([0, 1, 2]), ckpt)
  capsys.readouterr()
  truncated_report.solve_target(config, t0, f0, cells, np.array([0, 1, 2]), ckpt)
  assert "other inputs" not in capsys.readouterr().err  # the same inputs: reused
  truncated_report.solve_target(config, t0, f0, cells, np.array([3, 4, 5]), ckpt)
  assert "were made for other inputs" in capsys.readouterr().err
