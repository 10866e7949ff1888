"""Progress bars for long steps of a run, on stderr.

A tiny shared module so that the pipeline and the report draw their bars the
same way without importing each other (stdout stays free for the summary).
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def bar(**kw) -> tqdm:
  """A tqdm progress bar on stderr; ``kw`` go to ``tqdm`` (``total``, ``desc``, ``unit``, …).

  Defaults: ``file=sys.stderr``, ``dynamic_ncols=True``, ``mininterval=0.5``;
  any of them can be overridden through ``kw``.
  """
  options = dict(file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
  options.update(kw)
  return tqdm(**options)
