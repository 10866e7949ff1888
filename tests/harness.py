"""Runs the project's entry points the way a user does: ``python main.py …`` or ``python -m MODULE …`` from the
repository root, in a fresh process with one CPU device (``XLA_FLAGS=""``)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env(*paths: str, **extra: str) -> dict:
  """The environment of a run: the caller's, one CPU device, ``paths`` and the repository on ``PYTHONPATH``."""
  return dict(os.environ, XLA_FLAGS="", PYTHONPATH=os.pathsep.join([*map(str, paths), ROOT]), **extra)


def run(*args: str, module: str | None = None, ok: bool = True, timeout: float = 1500, environ: dict | None = None):
  """``python main.py ARGS`` (or ``python -m MODULE ARGS``); with ``ok`` asserts exit status 0 and shows stderr.

  Returns:
    The ``subprocess.CompletedProcess`` (text stdout and stderr).
  """
  head = ["-m", module] if module else ["main.py"]
  proc = subprocess.run(
    [sys.executable, *head, *map(str, args)],
    cwd=ROOT,
    env=environ or env(),
    capture_output=True,
    text=True,
    timeout=timeout,
  )
  if ok:
    assert proc.returncode == 0, f"{head} {args}\n{proc.stderr[-3000:]}"
  return proc


def error_line(proc) -> str:
  """The one ``error:`` line a refused run printed last (asserts exit status 2)."""
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2 and lines and lines[-1].startswith("error: "), proc.stderr[-3000:]
  return lines[-1]


#: Overrides that make a port's config run in seconds on random weights (two players, two steps, four codes).
SMALL = (
  "--config.patches.n=2",
  "--config.solver.steps=2",
  "--config.baseline.num_codes=4",
  "--config.baseline.batch_size=4",
  "--config.metrics.decode_batch=8",
)
#: The metrics that run their own short optimisations, kept short too (ports without class labels).
SMALL_METRICS = ("--config.denoise.steps=2", "--config.metrics.consistency_contexts=2")


def run_converted(config: str, checkpoint, workdir, *overrides: str) -> dict:
  """``python main.py --config=CONFIG`` on a converted checkpoint; the saved explanation's first image and
  metrics.json, after checking that the run wrote its report.

  Returns:
    ``{'f', 'u', 'image', 'metrics'}``: the feature, the minimal features of every subset, the target image.
  """
  import json

  import numpy as np

  import regionjax as rj

  run(f"--config={config}", f"--config.workdir={workdir}", f"--config.model.checkpoint={checkpoint}", *overrides)
  exp = rj.load(workdir)
  assert os.path.exists(os.path.join(workdir, "report.html"))
  with open(os.path.join(workdir, "metrics.json")) as fh:
    metrics = json.load(fh)
  return {
    "f": np.asarray(exp.f)[0],
    "u": np.asarray(exp.minimal_features())[0],
    "image": np.asarray(exp.image)[0],
    "metrics": metrics,
  }
