"""The paper's BigGAN experiment (v2 §3, v1 §4): biggan-deep-128 at layer6.

    python -m regionjax.ports.biggan.convert --weights pytorch_model.bin --config config.json --out ckpt/biggan-deep-128
    python main.py --config=configs/biggan.py --config.model.checkpoint=ckpt/biggan-deep-128

Settings from v2 App. E Table 2 (BigGAN: gradient descent, learning rate 1e-4,
1000 iterations, λ = 500) and v1 §4 (6×6 grid, 9 patches on the main part of the image, f0
the mean feature over images of many classes).
"""

from configs import scenes


def get_config():
  c = scenes.get_config()
  c.workdir = "runs/biggan"
  c.model.name = "biggan"
  c.model.checkpoint = ""  # a directory written by `python -m regionjax.ports.biggan.convert`
  c.model.layer = "layer6"  # "layer8" for the paper's second layer
  c.model.truncation = 0.4
  c.model.remat_blocks = False  # recompute each residual block in the backward pass (saved nothing on XLA:CPU)

  c.baseline.num_codes = 1000  # spread evenly over all 1000 ImageNet classes
  c.baseline.batch_size = 25

  c.target.class_id = 207  # golden retriever; any ImageNet class id
  c.target.seed = 0

  c.patches.rows = 6
  c.patches.cols = 6
  c.patches.n = 9
  c.patches.method = "random"

  c.solver.lam = 500.0  # v2 Table 2 (v1 used 10000)
  c.solver.optimizer = "gd"  # projected gradient descent, as the paper states it (v2 App. E)
  c.solver.learning_rate = 1e-4
  c.solver.steps = 1000
  c.solver.schedule = "constant"
  c.solver.tau = 0.1
  c.solver.chunk_size = 16
  return c
