"""One line of help per config knob: what ``python main.py --helpfull`` and ``python -m regionjax.check --help``
list (``tests/test_config_check.py`` names any knob of ``config_check.SCHEMA`` without a line here)."""

from __future__ import annotations

import textwrap

HELP: dict[str, str] = {
  "workdir": "directory of the run's outputs and checkpoints (rerun the same command to resume)",
  "seed": "seed of the metrics' random choices (contexts, target sets)",
  "overwrite": "True: use a non-empty workdir that regionjax did not make (False refuses it); files a run did not "
  "write are never deleted, files of the names it writes are replaced",
  "model.name": "the generator: dcgan (shipped face GAN), embedded, biggan, sid, stylegan2, nvae, planted, "
  "module:factory, or torch:module:factory (a PyTorch module, docs/torch.md)",
  "model.checkpoint": "converted checkpoint directory or file ('' = the weights shipped with the port)",
  "model.layer": "the tap whose feature f is split into components (python -m regionjax.check lists them)",
  "model.truncation": "truncation of the latent codes (BigGAN-style models; 1 = none)",
  "model.sigma_init": "SiD: the input noise level σ_init of the one-step generator",
  "model.truncation_cutoff": "StyleGAN2: how many w vectors to truncate (None = all)",
  "model.noise_mode": "StyleGAN2: per-layer noise 'const', 'none' or 'random'",
  "model.remat_blocks": "BigGAN: rematerialise each block in the backward pass (memory for compute)",
  "model.temperature": "NVAE: sampling temperature t of the latent groups",
  "model.output": "NVAE: the image is the logistic mixture's 'mean' or a 'sample'",
  "model.readjust_bn": "NVAE: re-estimate batch-norm statistics before explaining (evaluate.py --readjust_bn)",
  "model.readjust_bn_iters": "NVAE: iterations of the batch-norm re-estimation",
  "model.readjust_bn_samples": "NVAE: samples per iteration of the batch-norm re-estimation",
  "model.readjust_bn_seed": "NVAE: seed of the batch-norm re-estimation",
  "model.input_shape": "torch:module:factory: the shape of one input code z ~ N(0, I), without the batch axis",
  "baseline.num_codes": "codes averaged into the baseline feature f0 (v1 §4)",
  "baseline.batch_size": "codes encoded per call while computing f0 (memory knob)",
  "baseline.seed": "seed of the baseline's codes",
  "target.seed": "seed of the target images' codes",
  "target.class_id": "class of the target images (class-conditional models); -1 = a random class per image",
  "target.num_images": "images explained; > 1 writes one directory per image under images/ and an index",
  "target.codes_file": (
    ".npz holding the generator's codes instead of seeded ones: one array per code leaf, named by its path "
    "('z', 'label'; nested 'a/b'), each with a leading image axis; the first target.num_images are explained"
  ),
  "target.images_per_step": (
    "batch mode: images solved in one compiled program (image axis beside the subset axis, sharded over the "
    "local devices); 1 = one by one with chunk checkpoints, 0 = planned from solver.memory_budget_gb"
  ),
  "patches.rows": "rows of the grid of patches (6 in the paper)",
  "patches.cols": "columns of the grid of patches",
  "patches.n": "number of players (grid cells or named regions); 2**n subsets",
  "patches.method": "how players are chosen: center, saliency, difference, random, mask, indices or regions",
  "patches.indices": "the player cells for method 'indices' (row-major grid indices)",
  "patches.mask_path": "PNG mask (white = object) for method 'mask'",
  "patches.regions_path": "JSON of named polygons or masks for method 'regions' (one player each)",
  "patches.foreground_fraction": "method 'random': draw among this top share of cells by difference",
  "patches.seed": "seed of method 'random'",
  "patches.shared": "batch mode: the same players for every image, so action fields compare across images",
  "solver.lam": "λ of eq. (5): weight of the reconstruction term against ‖α⊙(f−f0)‖₁",
  "solver.optimizer": "'adam' or 'gd' (projected gradient descent, the paper's)",
  "solver.learning_rate": "step size η of the optimizer",
  "solver.steps": "optimisation steps per problem",
  "solver.tau": "RMSE bound on the pixels of S; subsets above it are reported (and solved again with lam_max)",
  "solver.chunk_size": "problems per compiled batch (memory knob)",
  "solver.schedule": "learning rate 'constant' (the paper) or 'cosine' decay",
  "solver.dtype": "dtype of α, the objective and the optimizer state: float32 or float64",
  "solver.decode_dtype": "run the decoder in this dtype (None = solver.dtype; 'bfloat16' on accelerators)",
  "solver.remat": "rematerialise the decoder in the backward pass: False, True/'dots' or 'nothing'",
  "solver.memory_budget_gb": "GiB per device: the chunk size is fit to it from XLA's memory analysis (None = chunk_size)",
  "solver.steps_per_call": "steps per compiled call (None = 5 on CPU, all on accelerators)",
  "solver.subsets_per_call": "problems per compiled call within a chunk (None = 1 on one CPU device, else the chunk)",
  "solver.stop_tol": "early stopping: a problem stops when its objective changes by less than this share (None = off)",
  "solver.shard": "shard each chunk's problems over all local devices",
  "solver.composition": "'independent' (all 2**n − 1 problems, the paper) or 'max' (n + 1 problems, composed)",
  "solver.lam_max": "λ continuation: subsets missing τ are solved again with λ × lam_growth up to this (None = off)",
  "solver.lam_growth": "factor of the λ continuation",
  "solver.l1_distance_weight": (
    "β of the distance-weighted L1: keeping feature at distance d from S's patches (feature-map units / side) "
    "costs 1 + β·d; 0 = the paper's objective (README 'Faithful by default?')"
  ),
  "solver.keep_outside": "also keep the pixels under no player at the target in every minimal feature (not the paper)",
  "solver.refine_steps": "'max' composition: then this many steps of every composed subset (0 = off)",
  "solver.max_order": "k > 0: only components of order ≤ k, from the C(n, ≤k) problems (n up to 62); 0 = all",
  "distributed.coordinator_address": "'host:port' of process 0 for a multi-process run ('' = single process or auto)",
  "distributed.num_processes": "number of processes of a multi-process run",
  "distributed.process_id": "this process's index in a multi-process run",
  "distributed.timeout_s": "seconds to wait for every process of a multi-process run to join; then one error line "
  "naming the missing process(es)",
  "distributed.auto": "detect SLURM, Cloud TPU pods or JAX_COORDINATOR_ADDRESS",
  "metrics.top_k": "K of the additivity with the top-K components (v2 Fig. 4)",
  "metrics.salient_fraction": "share of components kept as the salient set (v1 App. H: 0.6)",
  "metrics.salient_rel_tol": "salient set: 'like the baseline' means RMSE to g(f0) ≤ this share of the start",
  "metrics.sparsity_eps": "near zero means |x| < eps · max|x| (sparsity)",
  "metrics.consistency_contexts": "contexts per component in the consistency metric (v2 §3.3)",
  "metrics.consistency_top": "components tested for consistency",
  "metrics.transfer_k": "top-K action fields compared between images (transferability, v2 §3.4)",
  "metrics.decode_batch": "decodes per compiled call in the metrics (memory knob)",
  "denoise.enabled": "also denoise the components (v1 App. G) and report both",
  "denoise.tau_q_relative": "denoising bound τ_q as a share of max|f − f0|",
  "denoise.steps": "optimisation steps of the denoising",
  "report.interactive": "embed the clickable view in report.html (players → g(u(Ŝ)), components, Algorithm 2)",
  "report.thumbnail_size": "longest side of the view's thumbnails in pixels",
  "report.thumbnail_format": "'jpeg' (small) or 'png' (lossless) thumbnails",
  "report.baselines": "add the Baselines section (units, directions, spatial cells vs ours)",
  "report.baselines_codes": "codes whose features give the Baselines section's principal directions",
  "report.dense_components": "also write components.npz (u and every component, 2**n feature-sized arrays per image)",
  "cache.dir": "compiled programs and baselines kept between runs: 'auto' = $XDG_CACHE_HOME/regionjax or "
  "~/.cache/regionjax, a directory, or '' (none); an unusable cache only warns",
}


def _show(value) -> str:
  return repr(value) if isinstance(value, str) else str(value)


def knob_lines(config=None, width: int = 110) -> list[str]:
  """One entry per knob: ``--config.KEY (default VALUE)`` and its help, wrapped (defaults from ``config``)."""
  from regionjax import config_check

  defaults = dict(config_check.leaves(config)) if config is not None else {}
  out = []
  for key in config_check.SCHEMA:
    if config is not None and key not in defaults:
      continue  # a port's own knob that this config does not have
    head = f"  --config.{key}" + (f"={_show(defaults[key])}" if key in defaults else "")
    text = HELP.get(key, "")
    out.append(head)
    out.extend(textwrap.wrap(text, width, initial_indent="      ", subsequent_indent="      "))
  return out


def usage(config=None, intro: str = "") -> str:
  """``intro`` followed by every knob of ``config`` with its default and one line of help."""
  lines = [intro.rstrip(), "", "Config knobs (override any with --config.KEY=VALUE):", *knob_lines(config)]
  return "\n".join(lines).lstrip("\n") + "\n"
