"""Compares two finished workdirs: every number of metrics.json and every array of the saved explanations
(explanation.npz, and components.npz where a run wrote one).

Used to check that a refactoring changes no behaviour, e.g.::

    python main.py --config=configs/default.py --config.workdir=/tmp/before   # on the old commit
    python main.py --config=configs/default.py --config.workdir=/tmp/after    # on the new one
    python scripts/compare_runs.py /tmp/before /tmp/after

Timings and timestamps are skipped. Exit status 1 when anything differs by
more than ``--rtol``/``--atol`` (NaN equals NaN only where both are NaN).
"""

import argparse
import json
import math
import os
import sys

import numpy as np

SKIP = ("seconds", "elapsed", "time", "wall", "finished", "started", "version", "workdir", "path")


def _flat(d, prefix=""):
  if isinstance(d, dict):
    return {k2: v2 for k, v in d.items() for k2, v2 in _flat(v, f"{prefix}.{k}" if prefix else k).items()}
  if isinstance(d, list):
    return {k2: v2 for i, v in enumerate(d) for k2, v2 in _flat(v, f"{prefix}[{i}]").items()}
  return {prefix: d}


def _close(x, y, rtol, atol) -> bool:
  if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
    if math.isnan(x) or math.isnan(y):
      return math.isnan(x) and math.isnan(y)
    return abs(x - y) <= atol + rtol * abs(x)
  return x == y


def compare(a: str, b: str, rtol: float, atol: float) -> list[str]:
  diffs = []
  for root, _, files in os.walk(a):
    for name in sorted(files):
      pa = os.path.join(root, name)
      pb = os.path.join(b, os.path.relpath(pa, a))
      if name == "metrics.json":
        x, y = _flat(json.load(open(pa))), _flat(json.load(open(pb)))
        for k in sorted(set(x) | set(y)):
          if any(s in k.lower() for s in SKIP):
            continue
          if k not in x or k not in y or not _close(x[k], y[k], rtol, atol):
            diffs.append(f"{pb}: {k}: {x.get(k, 'missing')!r} vs {y.get(k, 'missing')!r}")
      elif name in ("components.npz", "explanation.npz"):
        x, y = np.load(pa, allow_pickle=False), np.load(pb, allow_pickle=False)
        for k in sorted(set(x.files) | set(y.files)):
          if k not in x.files or k not in y.files or x[k].shape != y[k].shape:
            diffs.append(f"{pb}: {k}: missing or shape differs")
          elif not np.issubdtype(x[k].dtype, np.number) or not np.issubdtype(y[k].dtype, np.number):
            if not np.array_equal(x[k], y[k]):  # e.g. player_names
              diffs.append(f"{pb}: {k}: differs")
          elif not np.allclose(x[k], y[k], rtol=rtol, atol=atol, equal_nan=True):
            diffs.append(f"{pb}: {k}: max |Δ| {np.nanmax(np.abs(x[k].astype(float) - y[k])):.3g}")
  return diffs


def main() -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("before")
  ap.add_argument("after")
  ap.add_argument("--rtol", type=float, default=1e-4)
  ap.add_argument("--atol", type=float, default=1e-4)
  args = ap.parse_args()
  diffs = compare(args.before, args.after, args.rtol, args.atol)
  print("\n".join(diffs) if diffs else f"same: every metric and array of {args.before} and {args.after}")
  return 1 if diffs else 0


if __name__ == "__main__":
  sys.exit(main())
