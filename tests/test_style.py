"""House style: no unused imports or names and no undefined ones (pyflakes), 2-space indentation in regionjax/."""

import os
import subprocess
import sys
import tokenize

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREES = ["regionjax", "ports", "configs", "benchmarks", "scripts", "tests", "main.py"]


def test_pyflakes_clean():
  pytest.importorskip("pyflakes")
  proc = subprocess.run([sys.executable, "-m", "pyflakes", *TREES], cwd=ROOT, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stdout + proc.stderr


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
