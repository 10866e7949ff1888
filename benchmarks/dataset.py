"""Images per hour of a dataset job: the one-by-one loop against images × problems batched, side by side.

    python -m benchmarks.dataset --images 8 --repeats 3                      # default face model, default settings
    python -m benchmarks.dataset --config configs/planted.py --images 4 --repeats 2 --set solver.steps=40

Both sides run ``python main.py --config.target.num_images=M`` on the same M
images (the same seeds, players and settings, so the same metrics and
reports), each in a fresh workdir, in subprocesses, interleaved (one by one,
batched, one by one, …):

* one by one: ``target.images_per_step=1`` — each image's chunks solved in
  turn, with chunk checkpoints (the loop of before);
* batched: ``target.images_per_step=K`` (``--per-step``, default 0: planned
  from ``solver.memory_budget_gb``, one image per local device without one) —
  every chunk solved for K images in one compiled program, the image axis
  sharded over the local devices.

Images per hour = ``3600 · M / wall`` with the wall time main.py reports after
start-up (generator, baseline, solve, metrics, report); medians over
``--repeats`` with min–max, and the ratio batched / one by one (``N.N×``).
``--devices D`` sets ``XLA_FLAGS=--xla_force_host_platform_device_count=D`` on
CPU (virtual devices share the same cores: on CPU it shows the program, not a
speed-up). On a GPU/TPU host the same command measures there.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

from benchmarks.common import machine, table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _overrides(settings: list[str]) -> list[str]:
  out = []
  for s in settings:
    if "=" not in s:
      raise SystemExit(f"error: --set takes key=value (a config knob), got {s!r}")
    out.append(f"--config.{s}")
  return out


def sides(per_step: int) -> list[tuple[str, list[str]]]:
  return [
    ("one by one (images_per_step=1)", ["--config.target.images_per_step=1"]),
    (f"batched (images_per_step={per_step or 'planned'})", [f"--config.target.images_per_step={per_step}"]),
  ]


def time_runs(config: str, images: int, repeats: int, per_step: int, devices: int | None, settings: list[str]):
  """``{side: [seconds after start-up]}`` of ``repeats`` interleaved main.py runs per side."""
  env = dict(os.environ)
  if devices:
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  out: dict[str, list[float]] = {name: [] for name, _ in sides(per_step)}
  with tempfile.TemporaryDirectory(prefix="dataset_bench_") as tmp:
    for r in range(repeats):
      for k, (name, extra) in enumerate(sides(per_step)):
        workdir = os.path.join(tmp, f"side{k}_{r}")
        cmd = [
          sys.executable,
          "main.py",
          f"--config={config}",
          f"--config.workdir={workdir}",
          f"--config.target.num_images={images}",
          *extra,
          *_overrides(settings),
        ]
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
          raise SystemExit(f"error: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        m = re.search(r"wall time ([0-9.]+) s \(after start-up", proc.stdout)
        out[name].append(float(m.group(1)) if m else wall)
        print(f"  repeat {r + 1}/{repeats} {name}: {out[name][-1]:.1f} s ({wall:.1f} s with start-up)", flush=True)
  return out


def images_per_hour(images: int, seconds: list[float]) -> tuple[float, float, float]:
  """(median, min, max) images per hour over repeats."""
  rates = sorted(3600.0 * images / s for s in seconds)
  return rates[len(rates) // 2], rates[0], rates[-1]


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--config", default="configs/default.py")
  ap.add_argument("--images", type=int, default=8)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--per-step", type=int, default=0, help="target.images_per_step of the batched side (0: planned)")
  ap.add_argument("--devices", type=int, default=None, help="virtual CPU devices (XLA_FLAGS) for both sides")
  ap.add_argument("--set", action="append", default=[], help="key=value config override, both sides (repeatable)")
  a = ap.parse_args(argv)
  print(machine())
  print(f"{a.config}, M = {a.images} images, {a.repeats} interleaved repeats, devices={a.devices or 'as found'}")
  times = time_runs(a.config, a.images, a.repeats, a.per_step, a.devices, a.set)
  rows, medians = [], []
  for name, secs in times.items():
    med, lo, hi = images_per_hour(a.images, secs)
    medians.append(med)
    rows.append([name, f"{sorted(secs)[len(secs) // 2]:.1f} s", f"{med:.0f}", f"{lo:.0f} – {hi:.0f}"])
  print(table(["side", "median wall (after start-up)", "images/hour (median)", "min – max"], rows))
  print(f"batched / one by one = ratio of medians {medians[1] / medians[0]:.1f}×")


if __name__ == "__main__":
  main()
