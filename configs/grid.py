"""The whole grid explained: all 36 cells of the face model, components up to order 2.

    python main.py --config=configs/grid.py

The face DCGAN of ``configs/default.py``, here at its 16×16×128 tap (layer2), with every cell
of the 6×6 grid a player (n = 36). The full method would need 2**36 minimal
features; ``solver.max_order = 2`` uses only the 667 sets that leave out at
most two cells (``regionjax.truncated``), and ``composition = 'max'`` composes
them from N and the 36 singletons, so 37 problems are optimised. What the
truncation leaves out is measured (``residual`` in metrics.json and the
report). Wall time on this project's 2-core CPU: see ``benchmarks/README.md``.
"""

from configs import default


def get_config():
  c = default.get_config()
  c.workdir = "runs/grid"
  c.model.layer = "layer2"  # 16×16×128, where the timings of benchmarks/README.md were measured
  c.patches.n = 36  # every cell of the 6×6 grid
  c.patches.method = "center"  # with n = rows·cols this is all cells
  c.solver.max_order = 2  # components of order ≤ 2: C(36, ≤2) = 667 minimal features
  c.solver.composition = "max"  # 37 problems optimised (N and the 36 singletons)
  c.solver.chunk_size = 16
  return c
