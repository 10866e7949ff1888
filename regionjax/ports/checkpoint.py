"""The converted-checkpoint directory every port writes and reads: ``DIR/config.json`` (the port's
config dataclass, ``to_json``/``from_json``) and ``DIR/variables`` (an orbax checkpoint of the Flax
variables in float32). One writer and one reader, with the same errors for every port."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

CONFIG_NAME = "config.json"
VARIABLES_DIR = "variables"


def save(
  directory,
  config: Any,
  variables: Mapping,
  *,
  collections: Sequence[str] = ("params",),
  overwrite: bool = False,
) -> str:
  """Writes ``DIR/config.json`` and the orbax checkpoint ``DIR/variables`` (the given collections).

  Returns the absolute directory. An existing checkpoint is replaced only with ``overwrite``.
  """
  import jax  # noqa: PLC0415 - imported when used: the converters' --help stays fast
  import orbax.checkpoint as ocp  # noqa: PLC0415

  directory = os.path.abspath(os.fspath(directory))
  os.makedirs(directory, exist_ok=True)
  target = os.path.join(directory, VARIABLES_DIR)
  if os.path.exists(target):
    if not overwrite:
      raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
    shutil.rmtree(target)
  tree = jax.tree.map(lambda a: np.asarray(a, np.float32), {c: dict(variables[c]) for c in collections})
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(target, tree)
  config.to_json(os.path.join(directory, CONFIG_NAME))
  return directory


def load(directory, *, family: str, config_cls: Any, abstract: Callable[[Any], Any], help_text: str) -> tuple[Any, Any]:
  """Reads a directory written by :func:`save` -> ``(config, variables)``.

  Args:
    family: the generator's name in error messages ("SiD", "BigGAN", …).
    config_cls: the port's config dataclass (``from_json``).
    abstract: config -> the variables' ``jax.ShapeDtypeStruct`` tree to restore into.
    help_text: how to make the directory (appended to the missing-file error).

  Raises FileNotFoundError when a part is missing, ValueError when the variables do not match the config.
  """
  import jax  # noqa: PLC0415
  import orbax.checkpoint as ocp  # noqa: PLC0415

  directory = os.path.abspath(os.fspath(directory))
  cfg_path = os.path.join(directory, CONFIG_NAME)
  var_path = os.path.join(directory, VARIABLES_DIR)
  if not os.path.isfile(cfg_path) or not os.path.isdir(var_path):
    raise FileNotFoundError(
      f"{directory} is not a converted {family} checkpoint: it needs {CONFIG_NAME} and {VARIABLES_DIR}/ (orbax). "
      f"{help_text}"
    )
  config = config_cls.from_json(cfg_path)
  target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype), abstract(config))
  try:
    with ocp.StandardCheckpointer() as ckptr:
      variables = ckptr.restore(var_path, target)
  except Exception as e:  # noqa: BLE001 - orbax raises many kinds
    first = str(e).splitlines()[0] if str(e) else ""
    raise ValueError(
      f"{var_path} does not hold {family} variables matching {cfg_path}: {type(e).__name__}: {first}"
    ) from None
  return config, variables


#: Counts of repeated parts (``num_blocks``, ``mapping_layers``, tuple lengths) and sizes (channels, resolutions,
#: classes) beyond these are refused before a network is built from a config: a ``num_blocks = 10**9`` in a
#: converted config.json would otherwise build a billion blocks' shapes (many GB) before failing.
MAX_COUNT = 64
MAX_SIZE = 1 << 16


def _is_count(name: str) -> bool:
  return (name.startswith("num_") and "channels" not in name and name != "num_classes") or name.endswith("_layers")


def check_magnitudes(config) -> None:
  """Raises ValueError (one line) when a field of the port's config dataclass ``config`` is beyond any real
  network: a count above :data:`MAX_COUNT`, a size above :data:`MAX_SIZE`, a tuple longer than MAX_COUNT.
  Values of other types are left to the config's own checks."""
  import dataclasses  # noqa: PLC0415

  owner = type(config).__name__

  def check(name, v, depth):
    if isinstance(v, bool) or depth > 3:
      return
    if isinstance(v, int):
      bound = MAX_COUNT if _is_count(name) and depth == 0 else MAX_SIZE
      if not -MAX_SIZE <= v <= bound:
        raise ValueError(
          f"{owner}.{name}={v} is beyond any real network (at most {bound}); the config is corrupt or hostile, "
          f"refused before building anything"
        )
    elif isinstance(v, (tuple, list)):
      if len(v) > MAX_COUNT:
        raise ValueError(f"{owner}.{name} lists {len(v)} entries (at most {MAX_COUNT}); the config is corrupt")
      for item in v:
        check(name, item, depth + 1)

  for field in dataclasses.fields(config):
    check(field.name, getattr(config, field.name), 0)


def num_parameters(tree) -> int:
  """The number of values in a nested mapping of arrays (what the converters print)."""
  if isinstance(tree, Mapping):
    return sum(num_parameters(v) for v in tree.values())
  return int(np.prod(np.shape(tree)))


def lazy_converter(package: str, names: tuple[str, ...]):
  """A module ``__getattr__`` for a port package that gives ``names`` from ``<package>.convert`` on first use, so
  that ``python -m <package>.convert`` does not find its module already imported by the package."""
  import importlib  # noqa: PLC0415

  def __getattr__(name):
    if name in names:
      return getattr(importlib.import_module(f"{package}.convert"), name)
    raise AttributeError(f"module {package!r} has no attribute {name!r}")

  return __getattr__


def assemble_params(entries, expected: Mapping[tuple, tuple], *, source: str, what: str) -> dict:
  """``{'params': …}`` from a converter's tensors, every one checked against the network's own shapes.

  Args:
    entries: ``(key, path, array)`` per tensor of the state dict: its name there, its Flax path (a tuple of names;
      None for a tensor the network has no place for) and the array in Flax's layout.
    expected: Flax path → shape, of the network the file's constructor arguments describe.
    source: the file, for messages.
    what: the network, for messages (e.g. "StyleGAN2 generator").

  Raises:
    ValueError: one line for a shape that differs, a tensor that is not finite floating point, or tensors
      missing or unexpected.
  """
  got, unexpected = {}, []
  for key, path, arr in entries:
    if path is None or path not in expected:
      unexpected.append(key)
      continue
    if tuple(arr.shape) != tuple(expected[path]):
      raise ValueError(
        f"{source}: {key} has shape {tuple(arr.shape)} in Flax's layout, but the {what} its constructor "
        f"arguments describe needs {tuple(expected[path])}"
      )
    if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)):
      raise ValueError(f"{source}: {key} is not a finite floating-point tensor")
    got[path] = np.array(arr, np.float32, order="C")  # (ascontiguousarray would make 0-d tensors 1-d)
  missing = [".".join(k) for k in expected if k not in got]
  if missing or unexpected:
    raise ValueError(
      f"{source} does not hold the {what} its constructor arguments describe: "
      + (f"{len(missing)} missing tensors, e.g. {missing[:3]}" if missing else "")
      + ("; " if missing and unexpected else "")
      + (f"{len(unexpected)} unexpected tensors, e.g. {unexpected[:3]}" if unexpected else "")
    )
  params: dict = {}
  for path, value in got.items():
    node = params
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[path[-1]] = value
  return {"params": params}


def convert_main(
  argv: Sequence[str] | None,
  *,
  prog: str,
  description: str,
  source_flag: str,
  source_help: str,
  read: Callable[[str], tuple[Any, Any]],
  write: Callable[..., str],
  summary: Callable[[Any], str],
  parameters: str = "parameters",
) -> int:
  """The command line of a port's converter: ``--<source_flag> FILE --out DIR [--overwrite]``.

  Args:
    argv: the arguments (None: ``sys.argv[1:]``).
    prog, description: for ``--help``.
    source_flag: the flag naming the released file (``'pickle'``, ``'checkpoint'``).
    source_help: its help text.
    read: the released file → ``(config, variables)``.
    write: ``(directory, config, variables, *, overwrite)`` → the directory (the port's ``save``).
    summary: ``config`` → what the last line says after the number of parameters.
    parameters: what those parameters are called in that line.

  Returns:
    0, or 2 after one ``error:`` line on stderr (a missing, foreign or damaged file, an existing ``--out``).
  """
  import argparse  # noqa: PLC0415
  import sys  # noqa: PLC0415

  parser = argparse.ArgumentParser(prog=prog, description=description)
  parser.add_argument(f"--{source_flag}", required=True, help=source_help)
  parser.add_argument("--out", required=True, help="output directory")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint in --out")
  args = parser.parse_args(argv)
  try:
    config, variables = read(getattr(args, source_flag))
    out = write(args.out, config, variables, overwrite=args.overwrite)
  except (ValueError, FileNotFoundError, FileExistsError) as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    return 2
  print(f"wrote {out} ({num_parameters(variables['params']):,} {parameters}, {summary(config)})")
  return 0
