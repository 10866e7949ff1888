"""Default experiment: a real pretrained face GAN, no downloads (``python main.py``).

The generator is the 64×64 DCGAN of ``gan-face-generate`` 1.1.1 (MIT licence;
trained on DigiFace-1M, non-commercial research use; ``regionjax/ports/dcgan``),
explained at its 32×32×64 tap on the 9 central cells of a 6×6 grid. The
minimal features are composed from n + 1 solves (``solver.composition =
'max'``): see README "Which solver" and ``benchmarks/README.md`` for the
variant table that chose these settings.
"""

from configs import scenes


def get_config():
  c = scenes.get_config()
  c.workdir = "runs/default"

  c.model.name = "dcgan"  # regionjax.ports.dcgan: the shipped face generator
  c.model.checkpoint = ""  # "" = the weights shipped in regionjax/ports/dcgan; or a converted .msgpack
  c.model.layer = "layer3"  # 32×32×64, the best of the variant table (benchmarks/README.md);
  # layer2 (16×16×128) misses the ρ target: 0.74 vs ≥ 0.8

  c.baseline.num_codes = 1000  # f0 = mean feature over many codes (v1 §4)
  c.baseline.batch_size = 250

  c.target.class_id = -1  # unconditional model: no classes
  c.target.seed = 0

  c.patches.rows = 6
  c.patches.cols = 6
  c.patches.n = 9
  c.patches.method = "center"  # the 9 central cells: where the face is

  c.solver.lam = 200.0  # v2 Table 2 (SiD/NVAE on 64×64 faces: λ = 200)
  c.solver.optimizer = "adam"
  c.solver.learning_rate = 0.01
  c.solver.schedule = "cosine"
  c.solver.steps = 200
  c.solver.tau = 0.1
  c.solver.composition = "max"  # N and the 9 singletons solved, the other 502 subsets composed
  c.solver.lam_max = 3200.0  # subsets that miss τ are solved again with λ × 4 up to this
  c.solver.chunk_size = 16

  c.denoise.enabled = False  # see benchmarks/README.md: composed components are already sparse

  c.cache.dir = "auto"  # compiled programs and f0 kept between runs in ~/.cache/regionjax; "" = none
  return c
