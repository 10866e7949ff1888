"""The cache kept between runs (regionjax.cache): where it lives, that an unusable or damaged cache only warns,
and that the baseline f0 is reused by its fingerprint and recomputed for another one."""

import os

import numpy as np
import pytest

from regionjax import cache as cache_lib
from regionjax import explanation as explanation_lib
from regionjax import pipeline
from regionjax.ports import registry

from configs import planted


def test_where_the_cache_lives(monkeypatch, tmp_path):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert cache_lib.resolve("auto") == str(tmp_path / "xdg" / "regionjax")
  monkeypatch.delenv("XDG_CACHE_HOME")
  assert cache_lib.resolve("auto") == os.path.join(os.path.expanduser("~"), ".cache", "regionjax")
  assert cache_lib.resolve("") is None and cache_lib.resolve(None) is None
  assert cache_lib.resolve(str(tmp_path / "c")) == str(tmp_path / "c")


def test_unusable_directory_warns(tmp_path, capsys):
  blocker = tmp_path / "a-file"
  blocker.write_text("not a directory")
  assert not cache_lib.usable(str(blocker / "cache"))  # even root cannot make a directory under a file
  assert "warning: cache directory" in capsys.readouterr().err
  assert cache_lib.usable(str(tmp_path / "ok"))


def test_baseline_round_trip_and_damage(tmp_path, capsys):
  f0 = np.arange(12, dtype=np.float32).reshape(3, 4)
  root = str(tmp_path)
  assert cache_lib.save_baseline(root, "abc", f0)
  np.testing.assert_array_equal(cache_lib.load_baseline(root, "abc"), f0)
  assert cache_lib.load_baseline(root, "other") is None
  assert cache_lib.load_baseline(None, "abc") is None and not cache_lib.save_baseline(None, "abc", f0)
  with open(cache_lib.baseline_path(root, "abc"), "wb") as fh:
    fh.write(b"garbage" * 10)
  assert cache_lib.load_baseline(root, "abc") is None
  assert "warning: cached baseline" in capsys.readouterr().err
  os.rename(cache_lib.baseline_path(root, "abc"), cache_lib.baseline_path(root, "xyz"))
  os.makedirs(cache_lib.baseline_path(root, "abc"))  # a directory where the file should be: still a warning
  assert not cache_lib.save_baseline(root, "abc", f0)


@pytest.fixture
def computed(monkeypatch):
  """How many times f0 was computed (not read back) while the test runs."""
  calls = []
  original = pipeline.compute_baseline

  def compute(*args, **kw):
    calls.append(args[2])
    return original(*args, **kw)

  monkeypatch.setattr(pipeline, "compute_baseline", compute)
  return calls


def test_baseline_is_reused_by_fingerprint(tmp_path, computed):
  config = planted.get_config()
  config.baseline.num_codes = 40
  config.baseline.batch_size = 20
  gen = registry.build(config.model)
  layer = config.model.layer
  gfp = explanation_lib.generator_fingerprint(gen, layer)
  root = str(tmp_path / "cache")

  def f0_in(workdir, **baseline):
    config.workdir = str(tmp_path / workdir)
    os.makedirs(config.workdir, exist_ok=True)
    for k, v in baseline.items():
      config.baseline[k] = v
    return pipeline.baseline_f0(config, gen, layer, gfp, root)

  first = f0_in("run1")
  assert computed == [40]
  again = f0_in("run2")  # a new workdir: read from the cache
  assert computed == [40]
  np.testing.assert_array_equal(again, first)
  assert os.path.exists(tmp_path / "run2" / "baseline.npz")  # and kept in the workdir too
  f0_in("run3", num_codes=60)  # another fingerprint: computed
  assert computed == [40, 60]
  f0_in("run4", seed=2)
  assert computed == [40, 60, 60]
  other = explanation_lib.generator_fingerprint(gen, layer) + "-other-weights"
  config.workdir = str(tmp_path / "run5")
  os.makedirs(config.workdir)
  pipeline.baseline_f0(config, gen, layer, other, root)
  assert len(computed) == 4
  pipeline.baseline_f0(config, gen, layer, gfp, None)  # no cache: computed (run5 holds the other one)
  assert len(computed) == 5
