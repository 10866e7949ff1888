"""Wall time of a run by stage: start-up, baseline, compile, solve, metrics, report.

A run is timed by one :class:`Stopwatch`. Code marks its stages with
``timings.stage(name)`` (a no-op when no stopwatch is running). Stages nest:
an inner stage's time is taken out of the stage around it, and every XLA
compilation (lowering plus compiling, or reading the persistent cache; JAX's
own duration events) is taken out of the stage it happened in and counted
under ``compile``. So the stages do not overlap, and their sum is at most the
wall time; what no stage covers is ``other``.

``start-up`` is the time from the process's start (``/proc/self/stat`` on
Linux, else the first import of this module) to :meth:`Stopwatch.start`:
the interpreter, the imports, the config and the generator's construction.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

#: The stages of a run in the order they are printed (``other``: what no stage covers).
STAGES = ("startup", "baseline", "compile", "solve", "metrics", "report", "other")
#: Their column heads in the printed table.
HEADS = {"startup": "start-up"}
#: JAX's duration events that make up a compilation (lowering to MLIR; compiling, or reading the persistent cache).
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_to_mlir_module_duration", "/jax/core/compile/backend_compile_duration")

_IMPORTED = time.time()
_ACTIVE: "Stopwatch | None" = None
_LISTENING = False
_LOCK = threading.Lock()


def process_start() -> float:
  """When this process started (seconds since the epoch): from ``/proc`` on Linux, else when this module was
  first imported."""
  try:
    with open("/proc/self/stat") as fh:
      fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as fh:
      uptime = float(fh.read().split()[0])
    started = time.time() - uptime + int(fields[19]) / ticks  # field 22 of stat: start time after boot
    return min(started, _IMPORTED) if started <= time.time() else _IMPORTED
  except (OSError, ValueError, IndexError):
    return _IMPORTED


def _on_duration(event: str, duration: float, **_) -> None:
  sw = _ACTIVE
  if sw is not None and event in COMPILE_EVENTS and sw._owner == threading.get_ident():
    sw.compile_seconds += float(duration)


def _listen() -> None:
  global _LISTENING
  with _LOCK:
    if _LISTENING:
      return
    import jax

    jax.monitoring.register_event_duration_secs_listener(_on_duration)
    _LISTENING = True


class Stopwatch:
  """Times the stages of one run (see the module docstring)."""

  def __init__(self, started: float | None = None):
    self.process_started = process_start() if started is None else float(started)
    self.started = self.process_started
    self.seconds = {k: 0.0 for k in STAGES}
    self.compile_seconds = 0.0
    self._stack: list[dict] = []
    self._owner = threading.get_ident()

  def start(self) -> "Stopwatch":
    """Ends start-up; compilations are counted from now on."""
    global _ACTIVE
    _listen()
    now = time.time()
    self.seconds["startup"] = max(0.0, now - self.process_started)
    self.started = now
    self._owner = threading.get_ident()
    _ACTIVE = self
    return self

  def stop(self) -> None:
    global _ACTIVE
    if _ACTIVE is self:
      _ACTIVE = None

  @contextlib.contextmanager
  def stage(self, name: str):
    """Times ``name`` (inner stages and compilations are taken out of it)."""
    if name not in self.seconds or name in ("startup", "compile", "other"):
      raise ValueError(f"unknown stage {name!r}; one of {', '.join(STAGES[1:-1])}")
    frame = {"start": time.perf_counter(), "compiled": self.compile_seconds, "inner": 0.0, "inner_compiled": 0.0}
    self._stack.append(frame)
    try:
      yield
    finally:
      self._stack.pop()
      total = time.perf_counter() - frame["start"]
      compiled = self.compile_seconds - frame["compiled"]
      own = total - frame["inner"] - (compiled - frame["inner_compiled"])
      self.seconds[name] += max(0.0, own)
      if self._stack:
        self._stack[-1]["inner"] += total
        self._stack[-1]["inner_compiled"] += compiled

  def table(self, wall: float | None = None) -> dict:
    """Seconds by stage (``other``: the wall time no stage covers) and ``total``, the wall time from the
    process's start."""
    wall = time.time() - self.process_started if wall is None else float(wall)
    out = dict(self.seconds)
    out["compile"] = self.compile_seconds
    covered = sum(v for k, v in out.items() if k != "other")
    out["other"] = max(0.0, wall - covered)
    out["total"] = max(wall, covered)
    return {k: round(float(v), 3) for k, v in out.items()}


@contextlib.contextmanager
def stage(name: str):
  """Marks a stage of the running :class:`Stopwatch` (nothing when none runs)."""
  sw = _ACTIVE
  if sw is None or sw._owner != threading.get_ident():
    yield
    return
  with sw.stage(name):
    yield


def format_table(timings: dict) -> str:
  """The stage table a run prints last: two lines, heads and seconds."""
  keys = [k for k in STAGES if k in timings] + (["total"] if "total" in timings else [])
  heads = [HEADS.get(k, k) for k in keys]
  cells = [f"{timings[k]:.1f}" for k in keys]
  widths = [max(len(h), len(c)) for h, c in zip(heads, cells)]
  line = lambda xs: "  ".join(x.rjust(w) for x, w in zip(xs, widths))  # noqa: E731
  return f"  seconds  {line(heads)}\n           {line(cells)}"


def summary_lines(metrics: dict, reused: bool = False) -> list[str]:
  """The stage table of a run's last lines (metrics.json ``timings``), labelled as the earlier run's when the
  outputs are reused; none when the metrics have no ``timings``."""
  t = metrics.get("timings")
  if not t:
    return []
  head = "  wall time by stage of the run that made these outputs:" if reused else "  wall time by stage:"
  return [head, format_table(t)]
