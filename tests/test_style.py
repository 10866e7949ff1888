"""House style (docs/layout.md §Conventions): one formatter and one linter for the whole repository, both
ruff as configured in pyproject.toml — `ruff format` (2-space indentation, 120 columns) and `ruff check`
(pyflakes' unused/undefined names, `X | None` instead of Optional) — and 2-space blocks in regionjax/."""

import os
import subprocess
import sys
import tokenize

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREES = ["regionjax", "configs", "benchmarks", "scripts", "tests", "main.py"]


def _ruff(*args):
  pytest.importorskip("ruff")
  return subprocess.run([sys.executable, "-m", "ruff", *args, *TREES], cwd=ROOT, capture_output=True, text=True)


def test_ruff_check_clean():
  proc = _ruff("check", "--no-cache")
  assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_formatted():
  proc = _ruff("format", "--check", "--no-cache")
  assert proc.returncode == 0, "run `ruff format .`:\n" + proc.stdout + proc.stderr


def _indent_steps(path: str) -> set[int]:
  """The widths by which blocks indent (from the tokenizer: continuation lines do not count)."""
  steps, stack = set(), [0]
  with open(path, "rb") as fh:
    for tok in tokenize.tokenize(fh.readline):
      if tok.type == tokenize.INDENT:
        steps.add(len(tok.string) - stack[-1])
        stack.append(len(tok.string))
      elif tok.type == tokenize.DEDENT:
        stack.pop()
  return steps


def test_regionjax_indents_by_two():
  bad = {}
  for root, _, files in os.walk(os.path.join(ROOT, "regionjax")):
    for name in files:
      if name.endswith(".py"):
        steps = _indent_steps(os.path.join(root, name))
        if steps - {2}:
          bad[name] = sorted(steps)
  assert not bad, bad
