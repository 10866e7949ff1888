"""A seconds-long run on the planted generator (tests and smoke checks)."""

from configs import scenes


def get_config():
  c = scenes.get_config()
  c.workdir = "runs/planted"
  c.model.name = "planted"
  c.model.layer = "feature"
  c.baseline.num_codes = 200
  c.baseline.batch_size = 100
  c.patches.rows = 3
  c.patches.cols = 3
  c.patches.n = 4
  c.patches.method = "indices"
  c.patches.indices = (0, 1, 2, 3)
  c.solver.lam = 200.0
  c.solver.learning_rate = 0.02
  c.solver.steps = 200
  c.solver.chunk_size = 4
  c.solver.tau = 0.05
  c.metrics.top_k = 6
  c.metrics.transfer_k = 6
  c.report.thumbnail_format = "png"  # lossless thumbnails: the browser test compares them pixel for pixel
  return c
