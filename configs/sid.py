"""The paper's SiD experiment (v2 §3): SiD's one-step FFHQ 64×64 generator at dec/32x32_up.

    python -m regionjax.ports.sid.convert --pickle network-snapshot-1.200000-498176.pkl --out ckpt/sid-ffhq64
    python main.py --config=configs/sid.py --config.model.checkpoint=ckpt/sid-ffhq64

The released file is https://huggingface.co/UT-Austin-PML/SiD/resolve/main/ffhq64/alpha1.2/network-snapshot-1.200000-498176.pkl
(weights CC BY-NC-SA 4.0). Settings: v2 App. E Table 2 (SiD: learning rate 1e-3, 1e4 iterations,
λ = 200); v2 §3 (the layer "32x32up" in SiD's decoder; 512 = 2^9 components, i.e. 9 patches on the
foreground); v1 §4 (6×6 grid, f0 the mean feature over many codes).
"""

from configs import default


def get_config():
  c = default.get_config()
  c.workdir = "runs/sid"
  c.model.name = "sid"
  c.model.checkpoint = ""  # a directory written by `python -m regionjax.ports.sid.convert`
  c.model.layer = "dec/32x32_up"  # v2 §3; any tap of regionjax.ports.sid (enc/…, dec/…, layer{i})
  c.model.sigma_init = 2.5  # SiD's generator input noise level (run_sid.sh --init_sigma 2.5)

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
