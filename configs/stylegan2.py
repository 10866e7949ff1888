"""The paper's StyleGAN2 experiment (v2 §3): StyleGAN2-ADA AFHQ cat 512×512 at layer3 (= b32).

    python -m regionjax.ports.stylegan2.convert --pickle afhqcat.pkl --out ckpt/stylegan2-afhqcat
    python main.py --config=configs/stylegan2.py --config.model.checkpoint=ckpt/stylegan2-afhqcat

The released file is https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/afhqcat.pkl
(NVIDIA Source Code License, non-commercial; AFHQ is CC BY-NC 4.0). Settings: v2 App. E Table 2
(StyleGAN: learning rate 1e-3, 1e4 iterations, λ = 500); v2 §3 ("layer3 and layer6 in the synthesis
network of StyleGAN2-512": layer{i} is the i-th synthesis block from b4, so layer3 = b32 (32×32×512)
and layer6 = b256 (256×256×128); see regionjax/ports/stylegan2/README.md for why layer3 is the default);
v1 §4 (6×6 grid, 9 patches on the foreground, f0 the mean feature over many codes). The paper gives
no truncation: ψ = 1 and constant noise, the defaults of the reference's generate.py.
"""

import ml_collections

from configs import default


def get_config():
  c = default.get_config()
  c.workdir = "runs/stylegan2"
  c.model.name = "stylegan2"
  c.model.checkpoint = ""  # a directory written by `python -m regionjax.ports.stylegan2.convert`
  c.model.layer = "layer3"  # = b32, 32×32×512 (v2 §3); "layer6" (= b256) for the paper's second layer
  c.model.truncation = 1.0  # ψ (generate.py's default; 0.7 gives more typical cats)
  c.model.truncation_cutoff = ml_collections.config_dict.placeholder(int)  # None: every w; e.g. 8: coarse layers only
  c.model.noise_mode = "const"  # the stored noise inputs (generate.py's default)

  c.baseline.num_codes = 1000
  c.baseline.batch_size = 8  # 512×512 images: small batches keep the baseline's memory low

  c.target.class_id = -1  # unconditional: no classes
  c.target.seed = 0

  c.patches.rows = 6
  c.patches.cols = 6
  c.patches.n = 9
  c.patches.method = "random"

  c.solver.lam = 500.0  # v2 Table 2
  c.solver.optimizer = "gd"  # projected gradient descent, as the paper states it (v2 App. E)
  c.solver.composition = "independent"  # the paper's procedure: every subset solved
  c.solver.lam_max = None
  c.denoise.enabled = True
  c.solver.learning_rate = 1e-3
  c.solver.steps = 10000
  c.solver.schedule = "constant"
  c.solver.tau = 0.1
  # XLA's memory analysis of the compiled chunk (CPU, float32, layer3 = b32, regionjax.solver.
  # chunk_memory_bytes): 0.07 GiB + 0.35 GiB per subset, so 16 subsets peak at 5.6 GiB; with α and u
  # of all 512 subsets (2 GiB) this fits 24 GiB with room. A 24 GiB GPU holds chunks of ~60, an
  # 80 GiB one ~200 (or set solver.memory_budget_gb and let the solver choose). regionjax/ports/stylegan2/README.md
  c.solver.chunk_size = 16
  c.metrics.decode_batch = 4  # 512×512 decodes in the metrics
  return c
