"""Workdir files: atomic writes, the config fingerprint, chunk checkpoints."""

from __future__ import annotations

import contextlib
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


def _mb(n: int) -> str:
  return f"{n / 1e6:.3g} MB"


def write_error(path: str, err: OSError, needed: int | None = None) -> WriteError:
  """A :class:`WriteError` naming ``path``, the reason and the space needed and free where known.

  A full disk (or quota) reads ``no space left on device (X MB needed at PATH, Y MB free); …``.
  """
  free = _free_bytes(os.path.dirname(os.path.abspath(path)) or ".")
  if err.errno in (errno.ENOSPC, errno.EDQUOT):
    what = "no space left on device" if err.errno == errno.ENOSPC else "disk quota exceeded"
    sizes = [f"{'at least ' + _mb(needed) if needed is not None else 'more space'} needed at {path}"]
    if free is not None:
      sizes.append(f"{_mb(free)} free")
    return WriteError(f"{what} ({', '.join(sizes)}); free some space and rerun the same command: finished work is kept")
  sizes = []
  if needed is not None:
    sizes.append(f"{needed} bytes needed")
  if free is not None:
    sizes.append(f"{free} free")
  return WriteError(
    f"could not write {path}: {err.strerror or err}{' (' + ', '.join(sizes) + ')' if sizes else ''}; check the "
    f"permissions and rerun the same command: finished work is kept"
  )


_TMP_RE = re.compile(r"^\.tmp-[0-9a-f]{12}-")  # the temporary files of atomic_write_bytes


def remove_debris(directory: str) -> list[str]:
  """Removes the temporary files an atomic write killed before its rename left in ``directory`` (only names of
  the form ``.tmp-<12 hex digits>-NAME``, which this module makes); returns their names."""
  gone = []
  try:
    names = os.listdir(directory)
  except OSError:
    return gone
  for name in names:
    if _TMP_RE.match(name) and os.path.isfile(os.path.join(directory, name)):
      with contextlib.suppress(OSError):
        os.unlink(os.path.join(directory, name))
        gone.append(name)
  return gone


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
  with the temporary file removed. Inside a workdir being recorded
  (:func:`recording`), ``path`` is listed in its record first.
  """
  note_output(path)
  _atomic_write(path, data)


def _atomic_write(path: str, data: bytes) -> None:
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

# ------------------------------------------------------- the run's own files
OUTPUTS_FILE = "regionjax_outputs.json"  # the top-level names a run wrote in its workdir (not the chunk manifest)
_RECORDS: dict[str, set[str]] = {}  # absolute workdir → names recorded, while a run writes there


def _debris(name: str) -> bool:
  """Names this package leaves in a workdir while it works (a lock, temporary files)."""
  return name == LOCK_FILE or name.startswith((".tmp-", ".probe-", LOCK_FILE + ".stale-"))


def read_outputs(workdir: str) -> set[str] | None:
  """The names listed in ``workdir``'s record of its own files, or None when it has no (readable) record."""
  try:
    with open(os.path.join(workdir, OUTPUTS_FILE)) as fh:
      names = json.load(fh).get("files")
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
      return set(names)
  except (OSError, ValueError, AttributeError):
    pass
  return None


#: What runs of regionjax wrote before the record existed: a workdir with config.json and a chunk directory
#: ``checkpoints/image_NNN`` is adopted (its record lists these names where present).
_LEGACY_NAMES = (
  CONFIG_FILE,
  "baseline.npz",
  "checkpoints",
  "metrics.json",
  "report.html",
  "explanation.json",
  "explanation.npz",
  "components.npz",
  "images",
)


def _legacy(workdir: str) -> bool:
  ckpt = os.path.join(workdir, "checkpoints")
  return (
    os.path.isfile(os.path.join(workdir, CONFIG_FILE))
    and os.path.isdir(ckpt)
    and any(re.match(r"^image_\d{3}$", n) for n in os.listdir(ckpt))
  )


def claim_workdir(workdir: str, overwrite: bool = False) -> None:
  """Refuses (ValueError, one line) a non-empty ``workdir`` that this package did not make, unless ``overwrite``.

  A workdir is this package's when it holds the record of its files (``regionjax_outputs.json``). Nothing is
  read but the directory listing and nothing is written: the refusal leaves the directory as it was.
  """
  if not os.path.isdir(workdir) or read_outputs(workdir) is not None or _legacy(workdir):
    return
  foreign = sorted(n for n in os.listdir(workdir) if not _debris(n))
  if foreign and not overwrite:
    shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    raise ValueError(
      f"workdir {workdir} is not empty and was not made by regionjax (it holds {shown}); nothing was written. "
      f"Use an empty or new --config.workdir, or pass --config.overwrite=True to write into it (files a run "
      f"did not write are never deleted)"
    )


@contextlib.contextmanager
def recording(workdir: str):
  """While active, every file written under ``workdir`` through this module is listed (by its top-level name)
  in ``workdir/regionjax_outputs.json`` before it is written; :func:`remove_output` removes only those."""
  key = os.path.abspath(workdir)
  names = read_outputs(workdir)
  if names is None and _legacy(workdir):  # a run of an older version: its files are its own
    _RECORDS[key] = {n for n in _LEGACY_NAMES if os.path.exists(os.path.join(workdir, n))}
  else:
    _RECORDS[key] = set() if names is None else names
  try:
    if names is None:
      _write_record(key)
    yield
  finally:
    _RECORDS.pop(key, None)


def _write_record(key: str) -> None:
  data = json.dumps({"files": sorted(_RECORDS[key]), "about": "files written by regionjax runs"}, indent=1)
  _atomic_write(os.path.join(key, OUTPUTS_FILE), (data + "\n").encode())


def note_output(path: str) -> None:
  """Lists ``path`` in the record of the workdir being recorded that holds it (if any)."""
  full = os.path.abspath(path)
  for key, names in _RECORDS.items():
    if full.startswith(key + os.sep):
      top = os.path.relpath(full, key).split(os.sep)[0]
      if top not in names and top != OUTPUTS_FILE and not _debris(top):
        names.add(top)
        _write_record(key)


def remove_output(workdir: str, name: str) -> bool:
  """Removes ``workdir/name`` only when a run of this package wrote it (listed in the record); returns
  whether it was removed. A file the record does not list is left alone."""
  path = os.path.join(workdir, name)
  if not os.path.exists(path) or name not in (read_outputs(workdir) or ()):
    return False
  os.unlink(path)
  return True


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
  ours = read_outputs(workdir)
  if not os.path.exists(path) or (ours is not None and CONFIG_FILE not in ours):  # absent, or not a run's record
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
    remove_output(workdir, name)  # only what a run wrote
  return False


def record_config(workdir: str, fingerprint: Mapping) -> None:
  """Marks ``workdir`` as this config's, once the inputs proved usable."""
  path = os.path.join(workdir, CONFIG_FILE)
  ours = read_outputs(workdir)
  if not os.path.exists(path) or (ours is not None and CONFIG_FILE not in ours):  # a file of the same name
    write_json(path, fingerprint)  # in a workdir written into with overwrite=True is replaced


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
    try:
      with os.fdopen(fd, "w") as fh:
        json.dump(self.info, fh)
        fh.flush()
        os.fsync(fh.fileno())
    except OSError as e:  # a full disk: no empty lock may be left to block the rerun
      with contextlib.suppress(OSError):
        os.unlink(self.path)
      raise write_error(self.path, e, len(json.dumps(self.info))) from None
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


def _local_checkpointer(ocp):
  """A StandardCheckpointer that involves only this process.

  By default orbax treats every save as a collective: ``save`` ends in
  ``sync_global_processes``, a barrier every process of a ``jax.distributed``
  run must enter. Chunks are saved from the solver's chunk callback, which only
  the process that solved the chunk runs, so with two processes the writer
  waited forever for a peer that never came (issue 25). Here each process is its
  own primary host and the only active process: the barrier has one member and
  the chunk directory is written by the process that owns the chunk.
  """
  import jax

  pid = jax.process_index()
  if jax.process_count() == 1:
    return ocp.StandardCheckpointer()
  options = ocp.options.MultiprocessingOptions(
    primary_host=pid, active_processes={pid}, barrier_sync_key_prefix=f"regionjax-chunks-p{pid}"
  )
  return ocp.StandardCheckpointer(multiprocessing_options=options)


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
    self._ckpt = _local_checkpointer(ocp)
    _drop_closed_loop_callbacks()

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
      with _quiet_orbax():  # its writer threads log each failure with tracebacks; the one line is ours
        self._ckpt.save(os.path.abspath(path), tree)
        self._ckpt.wait_until_finished()
      atomic_write_text(self._manifest_path(path), json.dumps(_file_digests(path), sort_keys=True))
    except WriteError:
      self._clean_partial(index)
      raise
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
    remove_debris(os.path.join(self.directory, name))  # a file list whose write was cut off by a kill
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
    remove_debris(self.directory)  # a kill -9 during a write leaves its temporary file
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


def _drop_closed_loop_callbacks() -> None:
  """Installs (once) an unraisable-exception hook that drops ``RuntimeError('Event loop is closed')``.

  When a checkpoint write fails (a full disk), tensorstore's threads may still call back into the asyncio
  loop that orbax already closed; Python reports each such callback as an unraisable exception with a
  traceback, after the failure was already reported in one line. Everything else goes to the previous hook.
  """
  previous = sys.unraisablehook
  if getattr(previous, "_regionjax", False):
    return

  def hook(unraisable):
    if isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed":
      return
    previous(unraisable)

  hook._regionjax = True
  sys.unraisablehook = hook


@contextlib.contextmanager
def _quiet_orbax():
  """absl's logger (orbax logs there) silenced but for fatal errors while a checkpoint is written."""
  import logging

  logger = logging.getLogger("absl")
  old = logger.level
  logger.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    logger.setLevel(old)


_NO_SPACE = ("RESOURCE_EXHAUSTED", "No space left on device", "[Errno 28]")


def _os_error_in(e: BaseException) -> OSError | None:
  """The OSError behind ``e`` (its cause chain), or a full disk reported in words by tensorstore."""
  seen = set()
  first = e
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError):
      return e
    e = e.__cause__ or e.__context__
  text = str(first)
  if any(word in text for word in _NO_SPACE) and "quota" not in text.lower():
    return OSError(errno.ENOSPC, "No space left on device")
  return None


def short_error(e: BaseException, limit: int = 160) -> str:
  text = " ".join(str(e).split())
  text = f"{type(e).__name__}: {text}" if text else type(e).__name__
  return text if len(text) <= limit else text[: limit - 1] + "…"
