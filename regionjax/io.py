"""Workdir files: atomic writes, the config fingerprint, chunk checkpoints."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import time
from typing import Any, Mapping

import numpy as np

from regionjax.solver import ChunkResult

CONFIG_FILE = "config.json"
_CHUNK_RE = re.compile(r"^chunk_(\d{5})$")


class WriteError(ValueError):
  """A file of the run could not be written (disk full, permissions); one line naming it."""


def _free_bytes(directory: str) -> int | None:
  try:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize
  except (OSError, AttributeError):
    return None


def write_error(path: str, err: OSError, needed: int | None = None) -> WriteError:
  """A :class:`WriteError` naming ``path``, the reason and the bytes needed and free where known."""
  what = err.strerror or str(err)
  sizes = []
  if needed is not None:
    sizes.append(f"{needed} bytes needed")
  free = _free_bytes(os.path.dirname(os.path.abspath(path)) or ".")
  if free is not None:
    sizes.append(f"{free} free")
  hint = "free some space" if err.errno in (errno.ENOSPC, errno.EDQUOT) else "check the permissions"
  return WriteError(
    f"could not write {path}: {what}{' (' + ', '.join(sizes) + ')' if sizes else ''}; {hint} and "
    f"rerun the same command: finished work is kept"
  )


def _open_temporary(directory: str, name: str) -> tuple[int, str]:
  """A new file next to ``name``, created with mode 0666 & ~umask (mkstemp's
  0600 would survive the rename and hide the outputs from collaborators)."""
  for _ in range(100):
    tmp = os.path.join(directory, f".tmp-{secrets.token_hex(6)}-{name}")
    try:
      return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
    except FileExistsError:
      continue
  raise FileExistsError(f"no free temporary name in {directory}")


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes ``data`` to ``path`` through a temporary file, fsync and a rename:
  ``path`` is either its old content or all of ``data``, never part of it.

  Raises :class:`WriteError` (naming ``path`` and the bytes needed) on OSError,
  with the temporary file removed.
  """
  directory = os.path.dirname(os.path.abspath(path))
  tmp = None
  try:
    fd, tmp = _open_temporary(directory, os.path.basename(path))
    with os.fdopen(fd, "wb") as fh:
      fh.write(data)
      fh.flush()
      os.fsync(fh.fileno())
    os.replace(tmp, path)
    tmp = None
  except OSError as e:
    raise write_error(path, e, len(data)) from None
  finally:
    if tmp is not None and os.path.exists(tmp):
      os.unlink(tmp)


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
    raise ValueError(
      f"workdir {workdir!r} is not writable ({e.strerror}); pass --config.workdir=DIR with a directory you can write to"
    ) from None


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


RESULT_FILES = ("metrics.json", "components.npz", "report.html")


def holds_results(workdir: str) -> bool:
  """True if ``workdir`` holds anything solved: an output file or a chunk checkpoint."""
  if any(os.path.exists(os.path.join(workdir, name)) for name in RESULT_FILES):
    return True
  ckpt = os.path.join(workdir, "checkpoints")
  if os.path.isdir(ckpt):
    for image in os.listdir(ckpt):
      sub = os.path.join(ckpt, image)
      if os.path.isdir(sub) and any(_CHUNK_RE.match(n) for n in os.listdir(sub)):
        return True
  return False


def check_workdir(workdir: str, fingerprint: Mapping) -> bool:
  """Checks that ``workdir`` holds no other config's run.

  Returns True if it already holds a run of this config. Raises ValueError
  if it holds another config's results: nothing is overwritten. A record of
  another config with no result behind it (a run that stopped before its
  first chunk) is not worth protecting: it is removed with a warning, so a
  corrected rerun is never refused.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  fingerprint = json.loads(json.dumps(fingerprint, default=_json_default))
  if not os.path.exists(path):
    return False
  try:
    with open(path) as fh:
      old = json.load(fh)
    if not isinstance(old, dict):
      raise ValueError("not a JSON object")
  except (OSError, ValueError) as e:
    old = None
    reason = f"unreadable ({e})"
  diff = diff_configs(old, fingerprint) if old is not None else [reason]
  if not diff:
    return True
  if holds_results(workdir):
    raise ValueError(
      f"workdir {workdir} holds a run of a different config ({'; '.join(diff[:4])}"
      f"{' …' if len(diff) > 4 else ''}); use another --config.workdir or delete it"
    )
  warn(
    f"workdir {workdir} held the record of another config's run with no results ({'; '.join(diff[:2])}"
    f"{' …' if len(diff) > 2 else ''}); starting over"
  )
  for name in (CONFIG_FILE, "baseline.npz"):
    if os.path.exists(os.path.join(workdir, name)):
      os.unlink(os.path.join(workdir, name))
  return False


def record_config(workdir: str, fingerprint: Mapping) -> None:
  """Marks ``workdir`` as this config's, once the inputs proved usable."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    write_json(path, fingerprint)


def warn(message: str) -> None:
  """One ``warning:`` line on stderr."""
  print(f"warning: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------- workdir lock
LOCK_FILE = ".lock"


class WorkdirBusy(ValueError):
  """Another live run holds the workdir."""


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by someone else
    return True
  except (OSError, OverflowError, ValueError):
    return False
  return True


class WorkdirLock:
  """One workdir, one run: ``WORKDIR/.lock`` holds the pid, host and start
  time of the run that owns it.

  Taken with ``O_CREAT | O_EXCL`` (atomic on local and NFSv3+ filesystems).
  A lock left by a dead process on this host is taken over with a warning; a
  lock of a live process, or of another host (whose processes cannot be
  checked from here), raises :class:`WorkdirBusy` naming the holder.
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_FILE)
    self.info = {
      "pid": os.getpid(),
      "host": socket.gethostname(),
      "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
      "argv": list(sys.argv),
    }
    self.held = False

  def _read(self) -> dict | None:
    try:
      with open(self.path) as fh:
        info = json.load(fh)
      return info if isinstance(info, dict) else {}
    except FileNotFoundError:
      return None
    except (OSError, ValueError):
      return {}  # being written, or damaged

  def _create(self) -> bool:
    try:
      fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
      return False
    except OSError as e:
      raise write_error(self.path, e) from None
    with os.fdopen(fd, "w") as fh:
      json.dump(self.info, fh)
    return True

  def acquire(self) -> "WorkdirLock":
    for _ in range(5):
      if self._create():
        self.held = True
        return self
      holder = self._read()
      if holder is None:  # released in the meantime
        continue
      pid, host = holder.get("pid"), holder.get("host")
      who = f"pid {pid} on {host}, started {holder.get('started', '?')}"
      if not isinstance(pid, int) or not holder:
        age = time.time() - os.path.getmtime(self.path) if os.path.exists(self.path) else 0
        if age < 10:  # probably being written right now
          time.sleep(0.2)
          continue
        who = "an unreadable lock file"
      elif host != socket.gethostname():
        raise WorkdirBusy(
          f"workdir {os.path.dirname(self.path)} is in use by {who}; wait for that run or use "
          f"another --config.workdir (if that run is dead, delete {self.path})"
        )
      elif _alive(pid) and pid != os.getpid():
        raise WorkdirBusy(
          f"workdir {os.path.dirname(self.path)} is in use by {who}; wait for it to finish or "
          f"use another --config.workdir"
        )
      # stale: move it aside atomically (only one of several takers wins the rename), then retry
      stale = f"{self.path}.stale-{secrets.token_hex(4)}"
      try:
        os.replace(self.path, stale)
      except FileNotFoundError:
        continue
      os.unlink(stale)
      warn(f"took over the lock of a run that is gone ({who}); resuming its work")
    raise WorkdirBusy(f"could not take the lock {self.path}; another run keeps taking it")

  def release(self) -> None:
    if self.held:
      holder = self._read()
      if holder and holder.get("pid") == os.getpid():
        os.unlink(self.path)
      self.held = False

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()
    return False


# ------------------------------------------------------------- checkpoints
_CHUNK_KEYS = ChunkResult.KEYS


def _digest(tree: Mapping[str, np.ndarray]) -> np.ndarray:
  h = hashlib.sha256()
  for key in _CHUNK_KEYS:
    a = np.ascontiguousarray(tree[key])
    h.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
    h.update(a.tobytes())
  return np.frombuffer(h.digest(), np.uint8).copy()


class ChunkStore:
  """Solver chunks checkpointed with orbax, one directory per finished chunk.

  Orbax writes each checkpoint to a temporary directory and renames it when
  complete, so a run killed mid-write leaves no chunk that looks finished.
  Each chunk also stores a SHA-256 digest of its arrays. A chunk that does not
  restore, or whose arrays do not match their digest, is logged, moved to
  ``DIR/corrupt/`` and left out of :meth:`load_all` (so it is recomputed).
  """

  def __init__(self, directory: str):
    import orbax.checkpoint as ocp  # imported lazily: slow to import

    self.directory = directory
    try:
      os.makedirs(directory, exist_ok=True)
    except OSError as e:
      raise write_error(directory, e) from None
    self._ckpt = ocp.StandardCheckpointer()

  def _path(self, index: int) -> str:
    return os.path.join(self.directory, f"chunk_{index:05d}")

  def bind(self, fingerprint: str) -> None:
    """Binds this directory's chunks to ``fingerprint`` (what they were solved for: model, layer, image,
    players, result-changing options; :func:`regionjax.explanation.solve_fingerprint`).

    Chunks made for another fingerprint, or without one, are set aside in ``stale/`` with a warning and
    recomputed: a checkpoint copied in from another run is never taken for this run's.
    """
    path = os.path.join(self.directory, FINGERPRINT)
    old = None
    try:
      with open(path) as fh:
        old = json.load(fh).get("fingerprint")
    except (OSError, ValueError, AttributeError):
      old = None
    if old == fingerprint:
      return
    chunks = [name for name in sorted(os.listdir(self.directory)) if _CHUNK_RE.match(name)]
    if chunks:
      aside = os.path.join(self.directory, "stale", f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}")
      os.makedirs(aside, exist_ok=True)
      for name in chunks:
        os.replace(os.path.join(self.directory, name), os.path.join(aside, name))
      why = "were made for other inputs" if old else "carry no fingerprint of their inputs"
      warn(
        f"{len(chunks)} checkpoint(s) in {self.directory} {why} (model, layer, image, players or solver "
        f"options); moved to {aside}, recomputing"
      )
    atomic_write_text(path, json.dumps({"fingerprint": fingerprint}) + "\n")

  def save(self, index: int, chunk: ChunkResult) -> None:
    tree = chunk.to_dict()
    tree["digest"] = _digest(tree)
    path = self._path(index)
    try:
      if os.path.exists(path):
        shutil.rmtree(path)
      self._ckpt.save(os.path.abspath(path), tree)
      self._ckpt.wait_until_finished()
      atomic_write_text(self._manifest_path(path), json.dumps(_file_digests(path), sort_keys=True))
    except OSError as e:
      self._clean_partial(index)
      raise write_error(path, e, sum(a.nbytes for a in tree.values())) from None
    except Exception as e:  # orbax wraps I/O errors of its writer threads
      self._clean_partial(index)
      cause = _os_error_in(e)
      if cause is None:
        raise
      raise write_error(path, cause, sum(a.nbytes for a in tree.values())) from None

  def _clean_partial(self, index: int) -> None:
    name = os.path.basename(self._path(index))
    for entry in os.listdir(self.directory):
      if entry == name or (entry.startswith(name) and "tmp" in entry):
        shutil.rmtree(os.path.join(self.directory, entry), ignore_errors=True)

  @staticmethod
  def _manifest_path(path: str) -> str:
    """Inside the orbax directory (orbax ignores it): the SHA-256 of every file the checkpoint wrote."""
    return os.path.join(path, MANIFEST)

  def _set_aside(self, name: str, reason: str) -> None:
    aside = os.path.join(self.directory, "corrupt")
    os.makedirs(aside, exist_ok=True)
    dest = os.path.join(aside, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}")
    os.replace(os.path.join(self.directory, name), dest)
    warn(
      f"checkpoint {os.path.join(self.directory, name)} does not restore ({reason}); moved to {dest}, recomputing it"
    )

  def _check_files(self, name: str) -> None:
    """Compares the chunk's files with the digests written after its save, so that a damaged file is
    found before tensorstore reads it (whose failures leave asyncio tracebacks on stderr). A chunk
    without the file list (cut off right after its save, or older) is left to orbax's own checks."""
    path = os.path.join(self.directory, name)
    try:
      with open(self._manifest_path(path)) as fh:
        want = json.load(fh)
    except FileNotFoundError:
      return
    except (OSError, ValueError) as e:
      raise ValueError(f"its file list is unreadable ({short_error(e)})") from None
    got = _file_digests(path)
    bad = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    if bad:
      raise ValueError(f"{len(bad)} file(s) differ from what was written, e.g. {bad[0]}")

  def _restore(self, name: str) -> ChunkResult:
    self._check_files(name)
    tree = self._ckpt.restore(os.path.abspath(os.path.join(self.directory, name)))
    missing = [k for k in _CHUNK_KEYS if k not in tree]
    if missing:
      raise ValueError(f"missing arrays {missing}")
    arrays = {k: np.asarray(tree[k]) for k in _CHUNK_KEYS}
    if "digest" in tree and not np.array_equal(np.asarray(tree["digest"]), _digest(arrays)):
      raise ValueError("its arrays do not match their SHA-256 digest")
    k = arrays["subsets"].shape[0] if arrays["subsets"].ndim == 1 else -1
    if k < 1 or any(arrays[key].shape[:1] != (k,) for key in _CHUNK_KEYS):
      raise ValueError("inconsistent array shapes")
    if not all(np.isfinite(arrays[key]).all() for key in ("alpha", "error")):
      raise ValueError("non-finite values")
    return ChunkResult(**arrays)

  def load_all(self) -> dict[int, ChunkResult]:
    """Every finished chunk that restores intact; damaged ones are set aside."""
    done = {}
    for name in sorted(os.listdir(self.directory)):
      m = _CHUNK_RE.match(name)
      if not m:
        if name.startswith("chunk_") and "tmp" in name:  # a save that was cut off
          shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
        continue
      try:
        done[int(m.group(1))] = self._restore(name)
      except Exception as e:  # orbax/tensorstore raise many types; the message can be kilobytes of spec
        self._set_aside(name, short_error(e))
    return done


MANIFEST = "regionjax_files.json"
FINGERPRINT = "fingerprint.json"  # what the chunks of a ChunkStore were solved for (ChunkStore.bind)


def _file_digests(directory: str) -> dict[str, str]:
  """SHA-256 of every file under ``directory`` (but the manifest itself), by relative path."""
  out = {}
  for root, _, files in os.walk(directory):
    for f in files:
      if root == directory and f == MANIFEST:
        continue
      full = os.path.join(root, f)
      h = hashlib.sha256()
      with open(full, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
          h.update(block)
      out[os.path.relpath(full, directory)] = h.hexdigest()
  return out


def _os_error_in(e: BaseException) -> OSError | None:
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError):
      return e
    e = e.__cause__ or e.__context__
  return None


def short_error(e: BaseException, limit: int = 160) -> str:
  text = " ".join(str(e).split())
  text = f"{type(e).__name__}: {text}" if text else type(e).__name__
  return text if len(text) <= limit else text[: limit - 1] + "…"
