"""Workdir files: atomic writes, the config fingerprint, chunk checkpoints."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from typing import Any, Mapping

import numpy as np

from regionjax.solver import ChunkResult

CONFIG_FILE = "config.json"
_CHUNK_RE = re.compile(r"^chunk_(\d{5})$")


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes ``data`` to ``path`` through a temporary file and a rename."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
  try:
    with os.fdopen(fd, "wb") as fh:
      fh.write(data)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def atomic_write_text(path: str, text: str) -> None:
  atomic_write_bytes(path, text.encode("utf-8"))


def atomic_savez(path: str, **arrays) -> None:
  buf = io.BytesIO()
  np.savez_compressed(buf, **arrays)
  atomic_write_bytes(path, buf.getvalue())


def write_json(path: str, obj: Any) -> None:
  atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(x):
  if isinstance(x, np.generic):
    return x.item()
  if isinstance(x, np.ndarray):
    return x.tolist()
  if hasattr(x, "tolist"):
    return x.tolist()
  raise TypeError(f"not JSON serialisable: {type(x)}")


def ensure_writable(workdir: str) -> None:
  """Creates ``workdir`` or raises ValueError saying why it cannot be used."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = tempfile.NamedTemporaryFile(dir=workdir, prefix=".probe-", delete=True)
    probe.close()
  except OSError as e:
    raise ValueError(f"workdir {workdir!r} is not writable ({e.strerror}); pass --config.workdir=DIR with a "
                     f"directory you can write to") from None


def diff_configs(old: Mapping, new: Mapping, prefix: str = "") -> list[str]:
  """Dotted keys whose values differ between two nested dicts."""
  out = []
  for key in sorted(set(old) | set(new)):
    a, b = old.get(key, "<missing>"), new.get(key, "<missing>")
    name = f"{prefix}{key}"
    if isinstance(a, Mapping) and isinstance(b, Mapping):
      out += diff_configs(a, b, name + ".")
    elif a != b:
      out.append(f"{name}: {a!r} → {b!r}")
  return out


def check_workdir(workdir: str, fingerprint: Mapping) -> bool:
  """Checks that ``workdir`` holds no other config's run.

  Returns True if it already holds a run of this config. Raises ValueError
  if it holds another config's run: nothing is overwritten.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  fingerprint = json.loads(json.dumps(fingerprint, default=_json_default))
  if not os.path.exists(path):
    return False
  with open(path) as fh:
    old = json.load(fh)
  diff = diff_configs(old, fingerprint)
  if diff:
    raise ValueError(f"workdir {workdir} holds a run of a different config ({'; '.join(diff[:4])}"
                     f"{' …' if len(diff) > 4 else ''}); use another --config.workdir or delete it")
  return True


def record_config(workdir: str, fingerprint: Mapping) -> None:
  """Marks ``workdir`` as this config's, once the inputs proved usable."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    write_json(path, fingerprint)


class ChunkStore:
  """Solver chunks checkpointed with orbax, one directory per finished chunk.

  Orbax writes each checkpoint to a temporary directory and renames it when
  complete, so a run killed mid-write leaves no chunk that looks finished.
  """

  def __init__(self, directory: str):
    import orbax.checkpoint as ocp  # imported lazily: slow to import
    self.directory = directory
    os.makedirs(directory, exist_ok=True)
    self._ckpt = ocp.StandardCheckpointer()

  def _path(self, index: int) -> str:
    return os.path.join(self.directory, f"chunk_{index:05d}")

  def save(self, index: int, chunk: ChunkResult) -> None:
    tree = {"subsets": np.asarray(chunk.subsets), "alpha": np.asarray(chunk.alpha),
            "history": np.asarray(chunk.history), "error": np.asarray(chunk.error)}
    path = self._path(index)
    if os.path.exists(path):
      shutil.rmtree(path)
    self._ckpt.save(os.path.abspath(path), tree)
    self._ckpt.wait_until_finished()

  def load_all(self) -> dict[int, ChunkResult]:
    done = {}
    for name in sorted(os.listdir(self.directory)):
      m = _CHUNK_RE.match(name)
      if not m:
        continue
      tree = self._ckpt.restore(os.path.abspath(os.path.join(self.directory, name)))
      done[int(m.group(1))] = ChunkResult(subsets=np.asarray(tree["subsets"]), alpha=np.asarray(tree["alpha"]),
                                          history=np.asarray(tree["history"]), error=np.asarray(tree["error"]))
    return done
