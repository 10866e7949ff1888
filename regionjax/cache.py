"""The cache a run keeps between runs: XLA's compiled programs and baseline features.

Under one directory (config ``cache.dir``; ``"auto"`` = ``$XDG_CACHE_HOME/regionjax``, else
``~/.cache/regionjax``; ``""`` = no cache):

* ``jax/``: JAX's persistent compilation cache. A second run of the same
  shapes (another image, seed or workdir) reads its compiled programs instead
  of compiling them; the programs take the codes, features and components as
  arguments, so nothing of one image is baked into them.
* ``baselines/<fingerprint>.npz``: the baseline ``f0``, a pure function of the
  model, its weights, the layer, the number of codes and their seed (the
  fingerprint of :func:`baseline_fingerprint`).

A cache is a convenience, never a requirement: a directory that cannot be
created or written, a damaged entry or a full disk is reported with one
``warning:`` line and the run goes on without it (JAX itself warns on an entry
it cannot read or write).
"""

from __future__ import annotations

import os
import tempfile
import zipfile

import numpy as np

from regionjax import io as io_lib

#: Programs compiling faster than this are not written to the persistent cache (JAX's knob; its default, 1 s,
#: would leave out most of a run's programs, which compile in 0.05–1 s each on a CPU).
MIN_COMPILE_SECONDS = 0.0
AUTO = "auto"


def default_dir() -> str:
  """``$XDG_CACHE_HOME/regionjax``, else ``~/.cache/regionjax``."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "regionjax")


def resolve(value: str | None) -> str | None:
  """The cache directory of a ``cache.dir`` value: ``"auto"`` → :func:`default_dir`, ``""``/None → None (off)."""
  if value is None or str(value).strip() == "":
    return None
  value = str(value)
  return default_dir() if value == AUTO else os.path.abspath(os.path.expanduser(value))


def usable(path: str) -> bool:
  """Creates ``path`` and checks that a file can be written there; False (after one warning line) if not."""
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
      pass
    return True
  except OSError as e:
    io_lib.warn(
      f"cache directory {path} is not usable ({e.strerror or io_lib.short_error(e)}); running without the cache "
      f"(set --config.cache.dir=DIR to move it, or --config.cache.dir= to turn it off)"
    )
    return False


def use_compilation_cache(root: str | None) -> str | None:
  """Points JAX's persistent compilation cache at ``root/jax`` (None: turns it off); returns the directory used,
  or None when there is none (off, or not usable)."""
  import jax
  from jax.experimental.compilation_cache import compilation_cache as cc

  path = os.path.join(root, "jax") if root else None
  if path is not None and not usable(path):
    path = None
  same = jax.config.jax_compilation_cache_dir == path and bool(jax.config.jax_enable_compilation_cache) == bool(path)
  if not same:
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_enable_compilation_cache", bool(path))
    cc.reset_cache()  # JAX reads these settings once per process: again, with the new ones
  if path:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
  return path


# ------------------------------------------------------------------ baselines
def baseline_fingerprint(
  generator_fingerprint: str, num_codes: int, seed: int, batch_size: int, dtype: str = "float32"
) -> str:
  """What ``f0`` is a function of: the model, its weights and the layer (``generator_fingerprint``,
  :func:`regionjax.explanation.generator_fingerprint`), the number of codes, their seed, the batch size (the
  codes of a batch are drawn from ``fold_in(seed, start)``, so another batch size draws other codes) and the
  precision the features are computed in."""
  from regionjax import explanation as explanation_lib

  return explanation_lib.digest(
    "baseline", generator_fingerprint, int(num_codes), int(seed), int(batch_size), str(dtype)
  )


def baseline_path(root: str, fingerprint: str) -> str:
  return os.path.join(root, "baselines", f"{fingerprint}.npz")


def load_baseline(root: str | None, fingerprint: str) -> np.ndarray | None:
  """The cached ``f0`` of ``fingerprint``, or None (no cache, no entry, or a damaged one: warned and ignored)."""
  if not root:
    return None
  path = baseline_path(root, fingerprint)
  if not os.path.exists(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as data:
      f0 = np.asarray(data["f0"])
      stored = str(data["fingerprint"])
    if stored != fingerprint:
      raise ValueError("made for other inputs")
    if not np.isfinite(f0).all():
      raise ValueError("non-finite values")
  except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
    io_lib.warn(f"cached baseline {path} is damaged ({io_lib.short_error(e)}); computing f0 again")
    return None
  return f0


def save_baseline(root: str | None, fingerprint: str, f0: np.ndarray) -> bool:
  """Stores ``f0`` under ``fingerprint``; False (after one warning line) when it cannot be written."""
  if not root:
    return False
  path = baseline_path(root, fingerprint)
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    io_lib.atomic_savez(path, f0=np.asarray(f0), fingerprint=np.asarray(fingerprint))
    return True
  except (OSError, ValueError) as e:
    io_lib.warn(f"could not write the cached baseline {path} ({io_lib.short_error(e)}); the run goes on without it")
    return False
