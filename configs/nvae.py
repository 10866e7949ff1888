"""The paper's NVAE experiment (v2 §3): NVAE on CelebA 64×64 at layer44 (and layer66) of its decoder.

    python -m regionjax.ports.nvae.convert --checkpoint checkpoint.pt --out ckpt/nvae-celeba64
    python main.py --config=configs/nvae.py --config.model.checkpoint=ckpt/nvae-celeba64

The released file is the CelebA 64 checkpoint.pt linked from https://github.com/NVlabs/NVAE (NVIDIA Source
Code License for NVAE, non-commercial). Settings: v2 App. E Table 2 (NVAE: learning rate 1e-3, 1e4
iterations, λ = 200); v2 §3 ("layer44" and "layer66" of the decoder; this port counts dec_tower's modules
from 0, so layer44 is the up cell 16×16×256 → 32×32×128 and layer66 a normal cell at 32×32×128 — see
regionjax/ports/nvae/README.md); v2 §3.4 (transferability 88.0 %); v1 §4 (6×6 grid, 9 patches, f0 the mean feature
over many codes). The paper gives no sampling temperature: t = 0.7, NVAE evaluate.py's default --temp, and
the mixture's mean() as the image (train.py's sampling for FID); BN with the stored statistics
(model.readjust_bn=True re-estimates them as evaluate.py --readjust_bn does).
"""

from configs import default


def get_config():
  c = default.get_config()
  c.workdir = "runs/nvae"
  c.model.name = "nvae"
  c.model.checkpoint = ""  # a directory written by `python -m regionjax.ports.nvae.convert`
  c.model.layer = "layer44"  # v2 §3 (dec_tower[44], 32×32×128); "layer66" for the paper's second layer
  c.model.temperature = 0.7  # t of every latent group (evaluate.py --temp default)
  c.model.output = "mean"  # DiscMixLogistic.mean(); "sample" draws with noise held in the codes
  c.model.readjust_bn = False  # evaluate.py --readjust_bn: re-estimate BN statistics on samples
  c.model.readjust_bn_iters = 500  # evaluate.py set_bn(..., iter=500)
  c.model.readjust_bn_samples = 16  # evaluate.py's sampling mode: num_samples=16
  c.model.readjust_bn_seed = 0  # the PRNG key of the re-estimation's samples

  c.baseline.num_codes = 1000
  c.baseline.batch_size = 25

  c.target.class_id = -1  # unconditional: no classes
  c.target.seed = 0

  c.patches.rows = 6
  c.patches.cols = 6
  c.patches.n = 9
  c.patches.method = "random"

  c.solver.lam = 200.0  # v2 Table 2
  c.solver.optimizer = "gd"  # projected gradient descent, as the paper states it (v2 App. E)
  c.solver.composition = "independent"  # the paper's procedure: every subset solved
  c.solver.lam_max = None
  c.denoise.enabled = True
  c.solver.learning_rate = 1e-3
  c.solver.steps = 10000
  c.solver.schedule = "constant"
  c.solver.tau = 0.1
  c.solver.chunk_size = 16
  return c
