"""Shared helpers for the benchmark scripts (timing, tables, machine info)."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time

import jax


def block(x):
  return jax.block_until_ready(x)


def timeit(fn, *, repeats: int = 3, warmup: int = 1) -> float:
  """Median wall-clock seconds of ``fn()`` (its result is blocked on)."""
  for _ in range(warmup):
    block(fn())
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    block(fn())
    times.append(time.perf_counter() - t)
  times.sort()
  return times[len(times) // 2]


def peak_rss_mib() -> float:
  """Peak resident memory of this process so far (MiB)."""
  r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return r / 1024 if sys.platform != "darwin" else r / 2**20


def machine() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  devs = jax.devices()
  return (
    f"{cpu}; {os.cpu_count()} cores visible; jax {jax.__version__} on {len(devs)} × "
    f"{devs[0].platform}:{devs[0].device_kind}; python {platform.python_version()}"
  )


def table(headers, rows) -> str:
  cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
  widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
  line = lambda r: "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |"
  sep = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
  return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def fmt_s(t: float) -> str:
  if t < 1e-3:
    return f"{t * 1e6:.1f} µs"
  if t < 1:
    return f"{t * 1e3:.2f} ms"
  return f"{t:.2f} s"
