"""What ``main.py`` does around :func:`regionjax.pipeline.run`: flags in, one
line out for every failure a user can cause.

Exit codes: 0 done; 2 a bad config, a busy workdir or a file that could not be
written (one ``error:`` line on stderr); 128 + signal number after SIGTERM or
SIGINT (one ``interrupted:`` line saying how to resume).
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Callable


def _one_line(text: str) -> str:
  text = " ".join(str(text).replace("\\n", " ").replace("\\'", "").split())
  return text[1:-1] if len(text) > 1 and text[0] == text[-1] == "'" else text


def _close_progress_bars() -> None:
  """Ends open progress bars so that a message starts on a line of its own."""
  try:
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
      bar.close()
  except Exception:  # never let a progress bar hide the message
    pass


def error(message: str) -> int:
  """Prints one ``error:`` line on stderr; returns the exit code 2."""
  _close_progress_bars()
  print(f"error: {_one_line(message)}", file=sys.stderr, flush=True)
  return 2


def with_config_arg(argv: list[str], default_path: str, name: str = "config") -> list[str]:
  """``argv`` with ``--config=default_path`` inserted when it names no config file.

  ml_collections parses ``--config.*`` overrides of a flag's *default* file
  when the flag is defined (at import, outside any error handling); an
  explicit ``--config=`` moves that parse into the flag parser, where a bad
  key becomes one line like every other bad flag.
  """
  flag = f"--{name}"
  if any(a == flag or a.startswith(flag + "=") or a == f"-{name}" or a.startswith(f"-{name}=") for a in argv[1:]):
    return list(argv)
  return [argv[0], f"{flag}={default_path}", *argv[1:]]


HELP_FLAGS = ("--help", "--helpfull", "--helpshort", "-?", "-h", "--helpxml")


def wants_help(argv: list[str]) -> bool:
  return any(a in HELP_FLAGS or a.startswith("--help") for a in argv[1:])


def load_config_file(path: str):
  """``get_config()`` of a config file, loaded by path as absl's config_flags does (None if it fails)."""
  import importlib.util

  try:
    path, _, arg = path.partition(":")
    spec = importlib.util.spec_from_file_location("regionjax_help_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()
  except Exception:  # noqa: BLE001 - help must never fail: the knobs are listed without defaults
    return None


def help_text(argv: list[str], intro: str, name: str = "config") -> str:
  """``intro`` and every config knob with its default (from the ``--config=`` file of ``argv``) and one line of
  help: the usage text of main.py and of ``python -m regionjax.check``."""
  from regionjax import config_help

  path = next((a.split("=", 1)[1] for a in argv[1:] if a.startswith(f"--{name}=")), None)
  return config_help.usage(load_config_file(path) if path else None, intro)


def parse_flags(argv: list[str], flag_values=None):
  """absl flag parsing, with one clear line (exit 2) instead of a traceback."""
  from absl import flags

  try:
    return (flags.FLAGS if flag_values is None else flag_values)(argv)
  except Exception as e:  # unknown config keys surface as AttributeError/KeyError, bad values as flags errors
    if "<class 'NoneType'>" in str(e):  # overrides applied to what get_config() returned: nothing
      sys.exit(error("the config file's get_config() returned None, not an ml_collections.ConfigDict"))
    what = "unknown config key" if isinstance(e, (AttributeError, KeyError)) else "bad command line"
    sys.exit(error(f"{what}: {_one_line(e)} (check the --config.* names and values against the config file)"))


def resume_command(argv: list[str] | None = None) -> str:
  argv = sys.argv if argv is None else argv
  return shlex.join([os.path.basename(sys.executable) if sys.executable else "python", *argv])


def run(get_config: Callable, make_generator: Callable, argv: list[str] | None = None, dry_run: bool = False) -> int:
  """Loads the config, runs the pipeline (with ``dry_run``: only checks it, :func:`regionjax.pipeline.check`);
  returns the exit code (see module docstring)."""
  from regionjax import pipeline
  from regionjax import runsteps
  from regionjax import timings

  try:
    config = get_config()
    if not hasattr(config, "keys") or not hasattr(config, "to_json_best_effort"):
      return error(
        f"the config file's get_config() returned {type(config).__name__}, not an ml_collections.ConfigDict; "
        f"start it from configs/default.py"
      )
    config.keys()  # the file is loaded lazily: fail here, with one line
  except OSError as e:  # the config file could not be loaded
    return error(str(e))
  try:
    if dry_run:
      print(pipeline.check(config), flush=True)
    else:
      pipeline.run(config, make_generator, started=timings.process_start())
  except runsteps.Interrupted as e:
    _close_progress_bars()
    where = f" in {os.path.abspath(e.workdir)}" if e.workdir else ""
    print(
      f"interrupted: {e.signame}; every finished chunk is checkpointed{where}; resume with the same command: "
      f"{resume_command(argv)}",
      file=sys.stderr,
      flush=True,
    )
    return e.exit_code
  except (ValueError, FileNotFoundError) as e:  # config checks, busy workdir, WriteError, missing inputs
    return error(str(e))
  except OSError as e:  # reading an input failed
    name = f"{e.filename}: " if getattr(e, "filename", None) else ""
    return error(f"{name}{e.strerror or e}")
  except KeyboardInterrupt:  # Ctrl-C before the run's own handler was installed (imports, config loading)
    _close_progress_bars()
    print(f"interrupted: SIGINT before any work; rerun with: {resume_command(argv)}", file=sys.stderr, flush=True)
    return 130
  return 0
