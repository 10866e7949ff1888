"""What a user can rely on when things go wrong (issue 27): a run never deletes what it did not write, refuses a
foreign workdir, reports a full disk in one line with nothing half-written and no stale lock, and every bad
value ends in one ``error:`` line (exit 2) before any work, the workdir's prior files untouched.

Most cases run ``regionjax.cli`` in this process (what ``main.py`` does, flag parsing included) on the planted
config; one case starts ``main.py`` itself.
"""

import errno
import json
import os
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from regionjax import cli
from regionjax import io as io_lib
from regionjax.ports import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLANTED = os.path.join(ROOT, "configs", "planted.py")
CHEAP = [
  "--config.baseline.num_codes=20",
  "--config.baseline.batch_size=20",
  "--config.solver.steps=30",
  "--config.denoise.enabled=False",
  "--config.metrics.consistency_contexts=2",
  "--config.solver.shard=False",
  "--config.report.interactive=False",
]


def cli_run(*args, config=PLANTED, dry_run=False) -> int:
  """``python main.py --config=CONFIG ARGS`` (with ``--dry_run``) in this process; returns the exit code."""
  argv = cli.with_config_arg(["main.py", f"--config={config}", *args], config)
  fv = flags.FlagValues()
  holder = config_flags.DEFINE_config_file("config", config, flag_values=fv, sys_argv=argv)
  try:
    cli.parse_flags(argv, flag_values=fv)
  except SystemExit as e:
    return e.code
  return cli.run(lambda: holder.value, registry.build, argv, dry_run=dry_run)


def one_error(err: str) -> str:
  assert "Traceback" not in err, err[-3000:]
  lines = [line for line in err.splitlines() if line.strip()]
  errors = [line for line in lines if line.startswith("error:")]
  assert len(errors) == 1 and lines[-1] == errors[0], err[-3000:]
  return errors[0]


def snapshot(directory) -> dict:
  """Every file under ``directory`` with its bytes."""
  out = {}
  for root, _, files in os.walk(directory):
    for f in files:
      full = os.path.join(root, f)
      out[os.path.relpath(full, directory)] = open(full, "rb").read()
  return out


def user_dir(tmp_path):
  d = tmp_path / "mine"
  d.mkdir()
  (d / "report.html").write_text("<html>my own report</html>")
  (d / "metrics.json").write_text('{"mine": 1}')
  return str(d)


# ------------------------------------------------------------ 1. data loss
def test_foreign_workdir_is_refused_through_main_py(tmp_path):
  workdir = user_dir(tmp_path)
  before = snapshot(workdir)
  proc = subprocess.run(
    [sys.executable, os.path.join(ROOT, "main.py"), f"--config={PLANTED}", f"--config.workdir={workdir}"],
    cwd=ROOT,
    env=dict(os.environ, XLA_FLAGS=""),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 2, proc.stderr[-2000:]
  line = one_error(proc.stderr)
  assert "not empty and was not made by regionjax" in line and "--config.overwrite=True" in line, line
  assert "metrics.json" in line and "report.html" in line
  assert snapshot(workdir) == before  # nothing deleted, changed or added (no lock, no record)


@pytest.mark.slow  # three planted runs (solve, reuse, outputs rewritten): about 25 s on the shared 2-core CPU
def test_overwrite_writes_into_a_foreign_workdir_and_deletes_nothing_it_did_not_write(tmp_path, capsys):
  workdir = user_dir(tmp_path)
  (tmp_path / "mine" / "notes.txt").write_text("keep me")
  assert cli_run(f"--config.workdir={workdir}", "--config.overwrite=True", *CHEAP) == 0, capsys.readouterr().err
  assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
  ours = io_lib.read_outputs(workdir)
  assert {"report.html", "metrics.json", "config.json", "baseline.npz", "checkpoints"} <= ours
  assert "notes.txt" not in ours
  assert json.load(open(os.path.join(workdir, "metrics.json")))["summary"]  # replaced by the run's
  # a rerun needs no overwrite: the directory is now regionjax's (the record says so)
  capsys.readouterr()
  assert cli_run(f"--config.workdir={workdir}", *CHEAP) == 0
  assert "Finished earlier; nothing recomputed." in capsys.readouterr().out
  # a metrics.json of the wrong shape is reported and rewritten from the checkpoints, not a traceback
  with open(os.path.join(workdir, "metrics.json"), "w") as fh:
    json.dump({"summary": [1, 2], "solver": "x"}, fh)
  assert cli_run(f"--config.workdir={workdir}", *CHEAP) == 0
  out, err = capsys.readouterr()
  assert "Traceback" not in err and "metrics.json is damaged" in err, err[-2000:]
  assert isinstance(json.load(open(os.path.join(workdir, "metrics.json")))["summary"], dict)
  assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_baseline_of_the_wrong_shape_is_recomputed(tmp_path, capsys):
  import numpy as np

  from regionjax import pipeline

  path = str(tmp_path / "baseline.npz")
  io_lib.atomic_savez(path, f0=np.ones((2, 3), np.float32), fingerprint=np.asarray("fp"))
  assert pipeline._load_baseline(path, "fp", (4, 4, 8)) is None
  assert "f0 has shape (2, 3)" in capsys.readouterr().err
  np.testing.assert_array_equal(pipeline._load_baseline(path, "fp", (2, 3)), np.ones((2, 3)))


def test_a_run_removes_only_files_it_wrote(tmp_path):
  workdir = str(tmp_path)
  (tmp_path / "report.html").write_text("the user's")
  with io_lib.recording(workdir):
    io_lib.write_json(os.path.join(workdir, "metrics.json"), {"a": 1})
  assert io_lib.read_outputs(workdir) == {"metrics.json"}
  assert io_lib.remove_output(workdir, "report.html") is False  # not written by a run: kept
  assert (tmp_path / "report.html").read_text() == "the user's"
  assert io_lib.remove_output(workdir, "metrics.json") is True
  assert not (tmp_path / "metrics.json").exists()


def test_empty_or_new_workdir_is_accepted(tmp_path):
  io_lib.claim_workdir(str(tmp_path / "new"))
  io_lib.claim_workdir(str(tmp_path))  # empty
  (tmp_path / io_lib.LOCK_FILE).write_text("{}")  # a lock of a run killed before it wrote anything
  io_lib.claim_workdir(str(tmp_path))
  (tmp_path / "x.txt").write_text("")
  with pytest.raises(ValueError, match="not made by regionjax"):
    io_lib.claim_workdir(str(tmp_path))
  io_lib.claim_workdir(str(tmp_path), overwrite=True)


# ------------------------------------------------------------ 3. disk full
@pytest.fixture
def tiny_disk(tmp_path):
  """A tmpfs of 200 KB (root only: CI runs as root); ``remount(size)`` grows it, as freeing space would."""
  mnt = tmp_path / "disk"
  mnt.mkdir()
  if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)]).returncode:
    pytest.skip("needs root to mount a small tmpfs")

  def remount(size):
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mnt)], check=True)

  try:
    yield mnt, remount
  finally:
    subprocess.run(["umount", "-l", str(mnt)])


def _no_debris(workdir):
  for root, dirs, files in os.walk(workdir):
    for name in dirs + files:
      assert not name.startswith(".tmp-") and "orbax-checkpoint-tmp" not in name, os.path.join(root, name)
  assert not os.path.exists(os.path.join(workdir, io_lib.LOCK_FILE))


@pytest.mark.slow  # two planted runs: over 20 s on the shared 2-core CPU
def test_disk_full_while_a_chunk_is_saved_is_one_line_and_the_rerun_resumes(tiny_disk, capsys):
  mnt, remount = tiny_disk
  workdir = str(mnt / "run")
  assert cli_run(f"--config.workdir={workdir}", *CHEAP) == 2
  err = capsys.readouterr().err
  line = one_error(err)
  assert line.startswith("error: no space left on device (at least ") and " MB needed at " + workdir in line, line
  assert "Event loop" not in err and "RESOURCE_EXHAUSTED" not in err and len(err.splitlines()) < 20, err[-3000:]
  _no_debris(workdir)
  kept = sorted(os.listdir(os.path.join(workdir, "checkpoints", "image_000")))
  assert "chunk_00000" in kept and not os.path.exists(os.path.join(workdir, "report.html"))
  remount("4m")  # space freed: the same command resumes
  assert cli_run(f"--config.workdir={workdir}", *CHEAP) == 0, capsys.readouterr().err[-3000:]
  assert "does not restore" not in capsys.readouterr().err
  _no_debris(workdir)


def test_disk_full_before_the_lock_leaves_no_lock(tiny_disk, capsys):
  mnt, remount = tiny_disk
  fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)  # the disk is full before the run starts
  with pytest.raises(OSError):
    while True:
      os.write(fd, b"\0" * 4096)
  os.close(fd)
  workdir = str(mnt / "run")
  assert cli_run(f"--config.workdir={workdir}", *CHEAP) == 2
  line = one_error(capsys.readouterr().err)
  assert line.startswith("error: no space left on device (") and "needed at" in line, line
  assert not os.path.exists(os.path.join(workdir, io_lib.LOCK_FILE))  # no empty lock blocks the rerun
  os.unlink(mnt / "filler")
  remount("4m")
  assert cli_run(f"--config.workdir={workdir}", *CHEAP) == 0, capsys.readouterr().err[-3000:]


def test_lock_that_cannot_be_written_is_removed(tmp_path, monkeypatch):
  """Without root: the lock file is created but its content does not fit (fsync fails with ENOSPC)."""

  def fsync(fd):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(os, "fsync", fsync)
  with pytest.raises(io_lib.WriteError, match=r"^no space left on device \(at least .* MB needed at .*\.lock"):
    io_lib.WorkdirLock(str(tmp_path)).acquire()
  assert not (tmp_path / io_lib.LOCK_FILE).exists()


def test_tensorstore_full_disk_message_is_recognised():
  e = ValueError('RESOURCE_EXHAUSTED: Error writing "alpha/.zarray" in OCDBT database: Failed writing: [OS error 28]')
  assert io_lib._os_error_in(e).errno == errno.ENOSPC
  assert io_lib._os_error_in(ValueError("shape mismatch")) is None


# ------------------------------------------------------ 4. memory bombs in configs
@pytest.mark.parametrize(
  "port,key,value",
  [("sid", "num_blocks", 10**9), ("stylegan2", "mapping_layers", 10**9), ("nvae", "num_groups_per_scale", 10**6)],
)
def test_converted_config_beyond_any_network_is_refused_before_building(tmp_path, port, key, value):
  import importlib
  import time

  config_mod = importlib.import_module(f"regionjax.ports.{port}.config")
  package = importlib.import_module(f"regionjax.ports.{port}")  # its load(DIR) reads a converted checkpoint
  cls = next(v for k, v in vars(config_mod).items() if k.endswith("Config") and isinstance(v, type))
  d = cls().to_dict()
  d[key] = value
  (tmp_path / "config.json").write_text(json.dumps(d))
  (tmp_path / "variables").mkdir()
  start = time.time()
  with pytest.raises(ValueError, match=f"{key}={value} is beyond any real network"):
    package.load(str(tmp_path))
  assert time.time() - start < 5


# ------------------------------------------------------ 5, 7. one line for every bad value
def _png_header(width, height) -> bytes:
  """A PNG that declares ``width × height`` pixels (what Pillow reads on open) with a token of data."""
  import struct
  import zlib

  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

  ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
  return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _mask_png(path, value):
  from PIL import Image

  Image.new("L", (12, 12), value).save(path)


def _setup(case, tmp_path):
  """Files a case needs; returns extra command-line arguments."""
  if case == "config_none":
    cfg = tmp_path / "none_config.py"
    cfg.write_text("def get_config():\n  return None\n")
    return {"config": str(cfg)}
  if case in ("mask_bomb", "mask_big"):
    side = 20_000 if case == "mask_bomb" else 12_000  # 400 MP (Pillow refuses) and 144 MP (Pillow only warns)
    (tmp_path / "mask.png").write_bytes(_png_header(side, side))
    return {"args": ["--config.patches.method=mask", f"--config.patches.mask_path={tmp_path / 'mask.png'}"]}
  if case == "mask_empty":
    _mask_png(tmp_path / "mask.png", 0)
    return {"args": ["--config.patches.method=mask", f"--config.patches.mask_path={tmp_path / 'mask.png'}"]}
  if case.startswith("polygon_"):
    bad = {"polygon_nan": float("nan"), "polygon_inf": float("inf"), "polygon_huge": 1e300}[case]
    regions = {"regions": [{"name": "a", "polygon": [[0, 0], [bad, 0], [0.5, 0.5]]}]}
    (tmp_path / "regions.json").write_text(json.dumps(regions))
    return {
      "args": [
        "--config.patches.method=regions",
        "--config.patches.n=1",
        f"--config.patches.regions_path={tmp_path / 'regions.json'}",
      ]
    }
  return {}


BAD = {  # case → (overrides, words the error line must hold)
  "coordinator_no_port": (["--config.distributed.coordinator_address=localhost"], "host:port"),
  "coordinator_bad_port": (["--config.distributed.coordinator_address=localhost:99999"], "host:port"),
  "not_a_factory": (["--config.model.name=math:sqrt"], "math:sqrt"),
  "factory_not_callable": (["--config.model.name=math:pi"], "math:pi"),
  "config_none": ([], "get_config"),
  "mask_bomb": ([], "pixels"),
  "mask_big": ([], "pixels"),
  "mask_empty": ([], "no white pixel"),
  "polygon_nan": ([], "finite"),
  "polygon_inf": ([], "finite"),
  "polygon_huge": ([], "finite"),
  "tau_q_huge": (["--config.denoise.enabled=True", "--config.denoise.tau_q_relative=1e300"], "denoise.tau_q_relative"),
  "lr_huge": (["--config.solver.learning_rate=1e300"], "solver.learning_rate"),
  "lam_huge": (["--config.solver.lam=1e300"], "solver.lam"),
  "lam_max_huge": (["--config.solver.lam_max=1e300"], "solver.lam_max"),
  "checkpoint_ignored": (["--config.model.checkpoint=/tmp"], "is not used by model.name 'planted'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_error_line_before_any_work(case, tmp_path, capsys):
  overrides, words = BAD[case]
  extra = _setup(case, tmp_path)
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "notes.txt").write_text("mine")  # prior files of the workdir are untouched
  args = [f"--config.workdir={workdir}", "--config.overwrite=True", *CHEAP, *extra.get("args", []), *overrides]
  code = cli_run(*args, config=extra.get("config", PLANTED))
  err = capsys.readouterr().err
  assert code == 2, err[-2000:]
  line = one_error(err)
  assert words in line, line
  assert len(line) < 1000
  assert not any(n in os.listdir(workdir) for n in ("report.html", "metrics.json", "baseline.npz", "checkpoints"))
  assert (workdir / "notes.txt").read_text() == "mine"


# ------------------------------------------------------- --dry_run and the config fuzz
def test_dry_run_checks_without_building_or_writing(tmp_path, capsys, monkeypatch):
  def no_build(_):
    raise AssertionError("--dry_run built the generator")

  monkeypatch.setattr(registry, "build", no_build)
  workdir = tmp_path / "run"
  assert cli_run(f"--config.workdir={workdir}", "--config.solver.remat=dots", dry_run=True) == 0
  assert capsys.readouterr().out.startswith("ok: the config is valid")
  assert not workdir.exists()  # nothing written
  assert cli_run(f"--config.workdir={workdir}", "--config.patches.method=mask", dry_run=True) == 2
  assert "patches.method='mask' needs" in one_error(capsys.readouterr().err)
  mine = user_dir(tmp_path)
  assert cli_run(f"--config.workdir={mine}", dry_run=True) == 2
  assert "not made by regionjax" in one_error(capsys.readouterr().err)


def test_tilde_in_paths_is_expanded(tmp_path, capsys, monkeypatch):
  monkeypatch.setenv("HOME", str(tmp_path))
  assert cli_run("--config.workdir=~/run", dry_run=True) == 0
  assert f"write to {tmp_path / 'run'} " in capsys.readouterr().out
  (tmp_path / "regions.json").write_text(json.dumps({"regions": [{"name": "a", "polygon": [[0, 0], [1, 0], [0, 1]]}]}))
  args = ["--config.patches.method=regions", "--config.patches.n=1", "--config.patches.regions_path=~/regions.json"]
  assert cli_run(f"--config.workdir={tmp_path / 'r2'}", *args, dry_run=True) == 0, capsys.readouterr().err


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from test_reliability import OVERRIDES as _BASE_OVERRIDES  # noqa: E402

FUZZ = dict(
  _BASE_OVERRIDES,
  **{
    "overwrite": st.sampled_from(["True", "False", "yes", "", "1"]),
    "solver.remat": st.sampled_from(["True", "False", "dots", "nothing", "yes", "", "1"]),
    "distributed.coordinator_address": st.sampled_from(
      ["", "localhost", "localhost:1234", "h:0", ":80", "[::1]:80", "a b:1", "h:65536", "h:x"]
    ),
    "solver.lam_max": st.sampled_from(["None", "1e300", "nan", "-1", "5000", "x"]),
    "denoise.tau_q_relative": st.sampled_from(["1e300", "0.5", "1", "1.5", "0", "nan"]),
    "denoise.steps": st.sampled_from(["0", "-1", "10", "1e9", "x"]),
    "report.thumbnail_size": st.sampled_from(["0", "7", "64", "100000", "x"]),
    "patches.mask_path": st.sampled_from(["", "~/no-such-mask.png", "/dev/null"]),
    "model.checkpoint": st.sampled_from(["", "~/no-such-dir", "/"]),
    "workdir": st.sampled_from(["", " ", "~/regionjax-fuzz-never-created"]),
  },
)
_FUZZ_DRAWS = st.dictionaries(st.sampled_from(sorted(FUZZ)), st.just(None), min_size=1, max_size=4).flatmap(
  lambda keys: st.fixed_dictionaries({k: FUZZ[k] for k in keys})
)


@pytest.mark.parametrize("config", ["planted", "default"])
def test_300_random_overrides_through_dry_run_are_accepted_or_one_error_line(config, tmp_path_factory):
  """Every seeded draw of up to 4 overrides: exit 0 with the ``ok:`` line, or exit 2 with one ``error:`` line;
  never a traceback. Through ``--dry_run``, so 300 draws per config take seconds."""
  path = os.path.join(ROOT, "configs", f"{config}.py")
  workdir = str(tmp_path_factory.mktemp("fuzz") / "run")
  outcomes = {0: 0, 2: 0}

  @settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
  @given(draw=_FUZZ_DRAWS)
  def check(draw):
    import contextlib
    import io as io_mod

    out, err = io_mod.StringIO(), io_mod.StringIO()
    args = [f"--config.workdir={workdir}", *[f"--config.{k}={v}" for k, v in draw.items()]]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      code = cli_run(*args, config=path, dry_run=True)
    out, err = out.getvalue(), err.getvalue()
    assert code in (0, 2), (draw, code, err[-2000:])
    outcomes[code] += 1
    if code == 0:
      assert out.startswith("ok: the config is valid") and "error" not in err, (draw, err)
    else:
      one_error(err)
    assert not os.path.exists(workdir), draw  # a dry run writes nothing

  check()
  assert outcomes[0] >= 5 and outcomes[2] >= 100, outcomes  # both outcomes are exercised


# ------------------------------------------------------- 8. what a kill -9 leaves
def test_temporary_files_of_a_killed_write_are_removed(tmp_path):
  import numpy as np

  from regionjax import solver as solver_lib

  store = io_lib.ChunkStore(str(tmp_path / "ck"))
  chunk = solver_lib.ChunkResult(
    subsets=np.arange(2), alpha=np.ones((2, 3), np.float32), history=np.zeros((2, 4), np.float32), error=np.zeros(2)
  )
  store.save(0, chunk)
  # a kill -9 between writing the chunk's file list (or any file) and its rename
  debris = [
    tmp_path / "ck" / "chunk_00000" / f".tmp-0123456789ab-{io_lib.MANIFEST}",
    tmp_path / "ck" / ".tmp-ba9876543210-fingerprint.json",
  ]
  for p in debris:
    p.write_text("{")
  (tmp_path / "ck" / ".tmp-notes").write_text("not ours: another name pattern")
  assert sorted(store.load_all()) == [0]  # the chunk still restores
  assert not any(p.exists() for p in debris)
  assert (tmp_path / "ck" / ".tmp-notes").exists()


def test_a_peer_that_never_starts_is_one_line_after_the_timeout(tmp_path):
  """A two-process run whose process 1 never starts: process 0 gives up after distributed.timeout_s."""
  import socket
  import time

  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  start = time.time()
  proc = subprocess.run(
    [
      sys.executable,
      os.path.join(ROOT, "main.py"),
      f"--config={PLANTED}",
      f"--config.workdir={tmp_path / 'run'}",
      f"--config.distributed.coordinator_address=localhost:{port}",
      "--config.distributed.num_processes=2",
      "--config.distributed.process_id=0",
      "--config.distributed.timeout_s=3",
    ],
    cwd=ROOT,
    env=dict(os.environ, XLA_FLAGS=""),
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 2, proc.stderr[-2000:]
  line = one_error(proc.stderr)
  assert "process 1" in line and "did not join within 3 s" in line, line
  assert time.time() - start < 60


# ------------------------------------------------------- 9. smaller
def test_a_huge_baseline_batch_is_planned_down_and_f0_does_not_change(monkeypatch):
  import jax
  import numpy as np

  from regionjax import explainer, pipeline, testing

  gen = testing.PlantedGenerator()
  ref = pipeline.compute_baseline(gen, "feature", 60, 60, jax.random.PRNGKey(1), None)
  sizes = []
  real = gen.encode

  def encode(codes, layer):
    out = real(codes, layer)
    sizes.append(np.shape(out)[0])
    return out

  monkeypatch.setattr(gen, "encode", encode)
  per_code = 16 * 4 * np.asarray(real(gen.sample_codes(jax.random.PRNGKey(0), 1), "feature"))[0].size
  monkeypatch.setattr(explainer, "BASELINE_PART_BYTES", 7 * per_code)  # room for 7 codes per call
  got = pipeline.compute_baseline(gen, "feature", 60, 60, jax.random.PRNGKey(1), None)
  assert max(sizes) == 7 and sum(s for s in sizes if s != 1) >= 56  # 60 codes, 7 at a time (plus the probe)
  np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)  # the same codes: the same f0


def test_workdir_of_an_older_version_is_adopted(tmp_path):
  """A workdir written before regionjax_outputs.json existed (config.json and checkpoints/image_NNN) is resumed."""
  (tmp_path / "config.json").write_text("{}")
  (tmp_path / "checkpoints" / "image_000").mkdir(parents=True)
  (tmp_path / "report.html").write_text("old")
  (tmp_path / "notes.txt").write_text("mine")
  io_lib.claim_workdir(str(tmp_path))  # not refused
  with io_lib.recording(str(tmp_path)):
    pass
  assert io_lib.read_outputs(str(tmp_path)) == {"config.json", "checkpoints", "report.html"}
  (tmp_path / "checkpoints" / "image_000").rmdir()
  other = tmp_path / "other"
  other.mkdir()
  (other / "config.json").write_text("{}")  # a config.json alone is not enough
  with pytest.raises(ValueError, match="not made by regionjax"):
    io_lib.claim_workdir(str(other))


def test_zip_bomb_as_baseline_npz_is_not_inflated(tmp_path, capsys, monkeypatch):
  import zipfile

  import numpy as np

  from regionjax import pipeline

  path = tmp_path / "baseline.npz"
  with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
    zf.writestr("f0.npy", bytes(50_000_000))  # 50 MB of zeros in about 50 KB
  inflated = []
  monkeypatch.setattr(np, "load", lambda *a, **k: inflated.append(a) or (_ for _ in ()).throw(AssertionError))
  assert pipeline._load_baseline(str(path), "fp", (4, 4, 8)) is None
  assert inflated == [] and "declares 50000000 bytes" in capsys.readouterr().err
