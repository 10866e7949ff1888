"""The config schema: every knob of every config file has a check, and bad values name their knob."""

import importlib
import math
import os
import subprocess
import sys

import ml_collections
import pytest

from regionjax import config_check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(
  f[:-3] for f in os.listdir(os.path.join(ROOT, "configs")) if f.endswith(".py") and f != "__init__.py"
)


def _load(name):
  return importlib.import_module(f"configs.{name}").get_config()


def _loose(config):
  """A copy whose values may change type (ConfigDicts are type-safe)."""
  return ml_collections.ConfigDict(config.to_dict(), type_safe=False)


def _with(config, key, value):
  """``config`` with ``key`` set to ``value``, whatever its type (built from a dict: no conversion)."""
  d = config.to_dict()
  block, _, leaf = key.rpartition(".")
  (d[block] if block else d)[leaf] = value
  return ml_collections.ConfigDict(d, type_safe=False)


def test_config_files_are_found():
  assert {"default", "planted", "biggan"} <= set(CONFIG_FILES)


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_knob_has_a_check(name):
  """A knob added to a config file without a line in config_check.SCHEMA fails here, by name."""
  keys = [k for k, _ in config_check.leaves(_load(name))]
  assert len(keys) > 30
  missing = [k for k in keys if k not in config_check.SCHEMA]
  assert not missing, (
    f"configs/{name}.py has knobs without a check: {missing}; add one line each to regionjax/config_check.py SCHEMA"
  )


def test_no_check_for_a_knob_that_is_gone():
  keys = {k for k, _ in config_check.leaves(_load("default"))}
  stale = sorted(set(config_check.SCHEMA) - keys - config_check.OPTIONAL)
  assert not stale, f"SCHEMA checks knobs that configs/default.py no longer has: {stale}"


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_shipped_configs_are_valid(name):
  assert config_check.problems(_load(name)) == []
  config_check.validate(_load(name))


BAD_CANDIDATES = [
  None,
  "",
  "  ",
  "nonsense",
  -1,
  0,
  -0.5,
  1.5,
  math.nan,
  math.inf,
  -math.inf,
  10**12,
  1e300,
  True,
  (1, 2),
  (),
  "a\x00b",
]


@pytest.mark.parametrize("key", sorted(config_check.SCHEMA))
def test_each_knob_rejects_bad_values_by_name(key):
  """Every knob rejects some values, with one line that names it and what it must be."""
  check = config_check.SCHEMA[key]
  rejected = 0
  for bad in BAD_CANDIDATES:
    if check.ok(bad):
      continue
    config = _with(_load("planted"), key, bad)
    assert dict(config_check.leaves(config))[key] is bad or bad != bad
    with pytest.raises(config_check.ConfigError) as info:
      config_check.validate(config)
    msg = str(info.value)
    assert msg.startswith(f"{key} must be {check.expect}, got "), msg
    assert "\n" not in msg
    rejected += 1
  assert rejected >= 1, f"{key} accepts every candidate value"


@pytest.mark.parametrize(
  "key,value",
  [
    ("metrics.top_k", -3),
    ("solver.schedule", "linear"),
    ("denoise.tau_q_relative", -1.0),
    ("solver.learning_rate", math.inf),
    ("solver.tau", -1.0),
    ("solver.lam", math.nan),
    ("solver.steps", 0),
    ("solver.steps", 10**9),
    ("patches.n", 31),
    ("seed", -1),
    ("target.class_id", -2),
    ("solver.remat", "all"),
    ("solver.dtype", "float16"),
    ("workdir", ""),
    ("patches.foreground_fraction", 0.0),
  ],
)
def test_issue_values_are_rejected(key, value):
  config = _with(_load("planted"), key, value)
  with pytest.raises(ValueError, match=key.replace(".", r"\.")):
    config_check.validate(config)


@pytest.mark.parametrize(
  "change,message",
  [
    (dict(n=10), "only 9 cells"),
    (dict(n=4, indices=(0, 1, 2, 9)), "out of range"),
    (dict(n=4, indices=(0, 1, 2)), "lists 3 cells but patches.n=4"),
    (dict(n=4, indices=(0, 1, 1, 2)), "lists a cell twice"),
  ],
)
def test_cross_checks(change, message):
  config = _loose(_load("planted"))
  for k, v in change.items():
    config.patches[k] = v
  with pytest.raises(config_check.ConfigError, match=message):
    config_check.validate(config)


def test_unknown_and_missing_keys():
  config = _loose(_load("planted"))
  config.solver.stepz = 5
  with pytest.raises(config_check.ConfigError, match="unknown config key 'solver.stepz'"):
    config_check.validate(config)
  config = _loose(_load("planted"))
  del config.solver["tau"]
  with pytest.raises(config_check.ConfigError, match="'solver.tau' is missing"):
    config_check.validate(config)


def test_all_problems_on_one_line():
  config = _loose(_load("planted"))
  config.solver.lam, config.metrics.top_k, config.solver.tau, config.denoise.steps, config.seed = -1.0, 0, 0.0, 0, -1
  msg = str(pytest.raises(config_check.ConfigError, config_check.validate, config).value)
  assert "\n" not in msg and "denoise.steps" in msg and msg.endswith("and 2 more")


def _main(*args):
  env = dict(os.environ, XLA_FLAGS="")
  return subprocess.run(
    [sys.executable, os.path.join(ROOT, "main.py"), *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=120,
  )


@pytest.mark.parametrize("config_arg", [[], [f"--config={os.path.join(ROOT, 'configs', 'planted.py')}"]])
def test_unknown_key_is_one_line_with_or_without_config_flag(tmp_path, config_arg):
  """Without --config=, ml_collections parsed the overrides of the default file at import: a traceback."""
  proc = _main(*config_arg, "--config.solver.stepz=5", f"--config.workdir={tmp_path / 'run'}")
  assert proc.returncode == 2
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: unknown config key") and "stepz" in lines[0], proc.stderr
  assert not (tmp_path / "run").exists()


def test_dtype_choices_match_the_pipeline():
  from regionjax import solver as solver_lib

  for key, table in (("solver.dtype", solver_lib.DTYPES), ("solver.decode_dtype", solver_lib.DECODE_DTYPES)):
    check = config_check.SCHEMA[key]
    assert all(check.ok(name) for name in table), key
    assert not check.ok("float8"), key


def test_optional_knobs_belong_to_some_config():
  """A port's own knob (absent from the default) is listed in OPTIONAL and used by some config file."""
  used = {k for name in CONFIG_FILES for k, _ in config_check.leaves(_load(name))}
  assert config_check.OPTIONAL <= used


def test_every_knob_has_one_line_of_help():
  from regionjax import config_help

  missing = sorted(set(config_check.SCHEMA) - set(config_help.HELP))
  assert not missing, f"knobs without a line in regionjax/config_help.py: {missing}"
  assert not sorted(set(config_help.HELP) - set(config_check.SCHEMA))  # no help for a knob that is gone
  assert all(text and "\n" not in text for text in config_help.HELP.values())


@pytest.mark.parametrize("entry", [["main.py", "--helpfull"], ["-m", "regionjax.check", "--help"]])
def test_help_lists_every_knob_with_its_default(entry):
  """Both entry points list each knob of the config with its default and its help (exit status 1, as absl's)."""
  from regionjax import config_help

  planted = os.path.join(ROOT, "configs", "planted.py")
  proc = subprocess.run(
    [sys.executable, *entry, f"--config={planted}"], cwd=ROOT, capture_output=True, text=True, timeout=120
  )
  assert proc.returncode == 1, proc.stderr[-2000:]
  config = _load("planted")
  for key, value in config_check.leaves(config):
    assert f"--config.{key}=" in proc.stdout, key
    assert config_help.HELP[key].split()[0] in proc.stdout
  assert "--config.solver.steps=200" in proc.stdout and "Traceback" not in proc.stderr
