"""The embedded toy generator (procedural scenes), with the solver of the first design.

    python main.py --config=configs/scenes.py

Every knob of ``configs/default.py`` is here too; this file sets them all.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.workdir = "runs/scenes"
  c.seed = 0
  c.overwrite = False  # True: write into a non-empty directory regionjax did not make (its files are never deleted)

  c.model = ml_collections.ConfigDict()
  c.model.name = "embedded"  # regionjax.ports.embedded: small BigGAN-deep trained on procedural scenes
  c.model.checkpoint = ""  # the embedded weights ship with the package
  c.model.layer = "layer2"
  c.model.truncation = 1.0

  c.baseline = ml_collections.ConfigDict()
  c.baseline.num_codes = 1000  # f0 = mean feature over many codes, classes spread evenly (v1 §4)
  c.baseline.batch_size = 250
  c.baseline.seed = 1

  c.target = ml_collections.ConfigDict()
  c.target.seed = 0
  c.target.class_id = 0  # -1: a random class per image
  c.target.num_images = 1  # > 1: batch mode, one report per image and an index page
  c.target.codes_file = ""  # .npz of the code pytree's leaves (leading image axis); "" = codes from target.seed
  c.target.images_per_step = 1  # batch mode: images per compiled solve (1 = one by one, with chunk checkpoints;
  # 0 = as many as solver.memory_budget_gb holds per device, times the local devices)

  c.patches = ml_collections.ConfigDict()
  c.patches.rows = 6  # 6×6 grid, 9 foreground patches (v1 §4)
  c.patches.cols = 6
  c.patches.n = 9
  c.patches.method = "random"  # 'random' among the foreground, 'difference', 'saliency', 'center' (top-n),
  # 'mask' (cells most covered by patches.mask_path), 'indices', or 'regions'
  # (named players of patches.regions_path instead of grid cells)
  c.patches.indices = ()
  c.patches.mask_path = ""  # PNG, white = object (method 'mask')
  c.patches.regions_path = ""  # JSON of named polygons or mask images, one player each (method 'regions')
  c.patches.foreground_fraction = 0.5
  c.patches.seed = 0
  c.patches.shared = True  # batch mode: the same cells for all images (chosen on their mean difference),
  # so action fields are comparable (transferability, v2 §3.4)

  c.solver = ml_collections.ConfigDict()
  c.solver.lam = 500.0  # λ (v2 Table 2: BigGAN 500)
  c.solver.optimizer = "adam"  # 'adam' or 'gd' (projected gradient descent, v2 App. E)
  c.solver.learning_rate = 0.01
  c.solver.steps = 200
  c.solver.tau = 0.1  # RMSE bound on the pixels of S; subsets above are reported
  c.solver.chunk_size = 128
  c.solver.schedule = "cosine"
  c.solver.dtype = "float32"  # α, the objective and Adam's state
  c.solver.decode_dtype = ml_collections.config_dict.placeholder(str)  # None = dtype; "bfloat16" decodes in bf16
  # rematerialise the decoder in the backward pass (memory for compute): False, True, 'dots' or 'nothing'
  # (a field of any type, so that --config.solver.remat=dots parses as well as =True)
  c.solver.remat = ml_collections.FieldReference(False, field_type=object)
  c.solver.memory_budget_gb = ml_collections.config_dict.placeholder(float)  # GiB per device: chunk size fit to it
  c.solver.steps_per_call = ml_collections.config_dict.placeholder(int)  # None: 5 on CPU, all steps in one call else
  # None: 1 on one CPU device (faster there), 0 (the chunk in one vmap) on accelerators
  c.solver.subsets_per_call = ml_collections.config_dict.placeholder(int)
  c.solver.stop_tol = ml_collections.config_dict.placeholder(float)  # early stopping: relative objective change
  c.solver.shard = True  # shard each chunk's subsets over all local devices
  c.solver.composition = "independent"  # 'independent' (2**n solves) or 'max' (n + 1 solves, composed)
  c.solver.lam_max = ml_collections.config_dict.placeholder(float)  # λ continuation cap (None: off)
  c.solver.lam_growth = 4.0  # λ ← λ·growth for subsets that miss τ, while λ ≤ lam_max
  c.solver.refine_steps = 0  # 'max': then this many steps of every composed subset from its composed α
  c.solver.l1_distance_weight = 0.0  # β: L1 weighted by 1 + β·(distance from S); 0 = the paper's objective
  c.solver.keep_outside = False  # also keep the pixels under no player at the target in every subset
  c.solver.max_order = 0  # k > 0: only the C(n, ≤k) minimal features u(N∖T), |T| ≤ k, and the components
  # of order ≤ k (regionjax.truncated; n up to 62); 0 = all 2**n subsets

  c.distributed = ml_collections.ConfigDict()  # multi-host runs (regionjax.distributed)
  c.distributed.coordinator_address = ""  # "host:port" of process 0; "" = single process or auto
  c.distributed.num_processes = 1
  c.distributed.process_id = 0
  c.distributed.timeout_s = 120  # seconds to wait for every process to join; then one error line naming who is missing
  c.distributed.auto = True  # detect SLURM / Cloud TPU pods / JAX_COORDINATOR_ADDRESS

  c.metrics = ml_collections.ConfigDict()
  c.metrics.top_k = 30  # additivity with the top-K components (v2 Fig. 4)
  c.metrics.salient_fraction = 0.6  # v1 App. H
  c.metrics.salient_rel_tol = 0.05  # "similar to the baseline": RMSE to g(f0) ≤ 5% of the start (ours)
  c.metrics.sparsity_eps = 0.01  # near zero: |x| < eps · max|x| (ours; the paper gives none)
  c.metrics.consistency_contexts = 8
  c.metrics.consistency_top = 10
  c.metrics.transfer_k = 30  # top-K action fields compared between images (v2 §3.4)
  c.metrics.decode_batch = 64  # decodes per batched call in the metrics (memory knob)

  c.denoise = ml_collections.ConfigDict()
  c.denoise.enabled = True  # v1 App. G: bounded noise on u that makes the components sparse
  c.denoise.tau_q_relative = 0.02  # τ_q as a fraction of max|f − f0| (the paper gives no value)
  c.denoise.steps = 300

  c.report = ml_collections.ConfigDict()
  # report.html: click players, see g(u(Ŝ)), components, Algorithm 2 (regionjax.interactive)
  c.report.interactive = True
  c.report.thumbnail_size = 64  # longest side of its embedded thumbnails (scaled down, never up)
  c.report.thumbnail_format = "jpeg"  # 'jpeg' (small) or 'png' (lossless)
  c.report.baselines = False  # a "Baselines" section: units, directions, spatial cells vs ours on the axioms
  c.report.baselines_codes = 500  # codes whose features give the principal directions of that section
  c.report.dense_components = False  # also write components.npz (u and every Δf_S: 2**n feature-sized arrays)

  c.cache = ml_collections.ConfigDict()  # kept between runs (regionjax.cache): compiled programs, baselines f0
  c.cache.dir = "auto"  # $XDG_CACHE_HOME/regionjax or ~/.cache/regionjax; a directory; "" = no cache
  return c
