"""Converter: pytorch-pretrained-biggan `pytorch_model.bin` -> Flax variables.

    python -m regionjax.ports.biggan.convert --weights pytorch_model.bin \
        --config config.json --out checkpoints/biggan-deep-128

writes an orbax checkpoint of the Flax variables (`DIR/variables`) and the
config (`DIR/config.json`); `regionjax.ports.biggan.load(DIR)` reads them back without
torch. Only `load_torch`/`read_torch_state_dict` import torch, lazily.

Spectral norm. The reference wraps every linear/conv but the class embedding
and the final norm in `torch.nn.utils.spectral_norm`, whose state dict holds
`weight_orig`, `weight_u`, `weight_v`. In eval mode it uses
`W = weight_orig / σ`, `σ = u · (W_mat v)` with the *stored* u, v (W_mat is
weight_orig reshaped to (out, -1)); that W is what is stored here. (In train
mode — the reference's default state right after `from_pretrained` — each
forward first runs one power iteration and updates u, v in place; for the
released weights, whose u, v were converged at export, the difference is
negligible, but parity is defined against `model.eval()`.) State dicts
written by torch < 1.1 hold `weight_orig`, `weight`, `weight_u` instead; as
torch's own loading hook does, σ is then `mean(weight_orig / weight)`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Mapping

import numpy as np

from regionjax.ports import checkpoint
from .config import BigGANConfig

__all__ = [
  "checkpoint_help",
  "expected_state_dict_shapes",
  "state_dict_to_variables",
  "read_torch_state_dict",
  "load_torch",
  "save",
  "load",
  "main",
]

from regionjax.ports.checkpoint import CONFIG_NAME, VARIABLES_DIR  # noqa: E402,F401 - the directory layout, re-exported

RELEASE_URL = "https://s3.amazonaws.com/models.huggingface.co/biggan/"
RELEASE_HINT = (
  "The released BigGAN-deep checkpoints are published by pytorch-pretrained-biggan "
  "(https://github.com/huggingface/pytorch-pretrained-BigGAN) at "
  + RELEASE_URL
  + "biggan-deep-{128,256,512}-pytorch_model.bin and "
  + RELEASE_URL
  + "biggan-deep-{128,256,512}-config.json"
)


def checkpoint_help(model: str = "biggan-deep-128", out: str = "checkpoints/biggan-deep-128") -> str:
  """What to download and the one command that converts it (for error messages)."""
  return (
    f"This needs the released {model} generator converted to Flax: download "
    f"{RELEASE_URL}{model}-pytorch_model.bin and {RELEASE_URL}{model}-config.json "
    f"(published by pytorch-pretrained-biggan, https://github.com/huggingface/pytorch-pretrained-BigGAN), "
    f"then run once, with torch installed: python -m regionjax.ports.biggan.convert "
    f"--weights {model}-pytorch_model.bin --config {model}-config.json --out {out}"
  )


# ----------------------------------------------------------------- key layout
def _sn(prefix: str, shape) -> dict[str, tuple]:
  """A spectral-normed weight: torch stores weight_orig/u/v."""
  out = shape[0]
  rest = int(np.prod(shape[1:]))
  return {prefix + ".weight_orig": tuple(shape), prefix + ".weight_u": (out,), prefix + ".weight_v": (rest,)}


def _bn(prefix: str, c: int, cfg: BigGANConfig, conditional: bool) -> dict[str, tuple]:
  d = {prefix + ".running_means": (cfg.n_stats, c), prefix + ".running_vars": (cfg.n_stats, c)}
  if conditional:
    d.update(_sn(prefix + ".scale", (c, cfg.condition_dim)))
    d.update(_sn(prefix + ".offset", (c, cfg.condition_dim)))
  else:
    d.update({prefix + ".weight": (c,), prefix + ".bias": (c,)})
  return d


def expected_state_dict_shapes(cfg: BigGANConfig) -> dict[str, tuple]:
  """Every key of the reference `BigGAN(cfg).state_dict()` with its shape
  (spectral norm in the torch >= 1.1 layout: weight_orig, weight_u, weight_v)."""
  ch = cfg.channel_width
  seed = ch * cfg.layers[0][1]
  d = {"embeddings.weight": (cfg.class_embed_dim, cfg.num_classes)}
  d.update(_sn("generator.gen_z", (4 * 4 * seed, cfg.condition_dim)))
  d["generator.gen_z.bias"] = (4 * 4 * seed,)
  for i, (kind, arg) in enumerate(cfg.stages()):
    p = f"generator.layers.{i}"
    if kind == "attention":
      c = arg
      d.update(_sn(p + ".snconv1x1_theta", (c // 8, c, 1, 1)))
      d.update(_sn(p + ".snconv1x1_phi", (c // 8, c, 1, 1)))
      d.update(_sn(p + ".snconv1x1_g", (c // 2, c, 1, 1)))
      d.update(_sn(p + ".snconv1x1_o_conv", (c, c // 2, 1, 1)))
      d[p + ".gamma"] = (1,)
    else:
      _, cin, cout = arg
      mid = cin // 4
      for j, (a, b, k) in enumerate([(cin, mid, 1), (mid, mid, 3), (mid, mid, 3), (mid, cout, 1)]):
        d.update(_bn(f"{p}.bn_{j}", a, cfg, True))
        d.update(_sn(f"{p}.conv_{j}", (b, a, k, k)))
        d[f"{p}.conv_{j}.bias"] = (b,)
  out_ch = ch * cfg.layers[-1][2]
  d.update(_bn("generator.bn", out_ch, cfg, False))
  d.update(_sn("generator.conv_to_rgb", (out_ch, out_ch, 3, 3)))
  d["generator.conv_to_rgb.bias"] = (out_ch,)
  return d


# ------------------------------------------------------------------ checking
def _describe_mismatch(sd: Mapping[str, np.ndarray], cfg: BigGANConfig, source: str, config_source: str):
  expected = expected_state_dict_shapes(cfg)
  have = dict(sd)
  # torch < 1.1 layout: weight + weight_orig + weight_u (no weight_v)
  for k in list(expected):
    if k.endswith(".weight_v") and k not in have:
      base = k[: -len("_v")]
      if base in have and base + "_orig" in have:
        expected.pop(k)
        expected[base] = expected[base + "_orig"]
  missing = [k for k in expected if k not in have]
  unexpected = [k for k in have if k not in expected and not k.endswith("num_batches_tracked")]
  wrong = [
    (k, tuple(np.shape(have[k])), expected[k])
    for k in expected
    if k in have and tuple(np.shape(have[k])) != expected[k]
  ]
  if not (missing or unexpected or wrong):
    return None
  looks_biggan = any(k.startswith("generator.") for k in have) and "embeddings.weight" in have
  lines = []
  if not looks_biggan:
    lines.append(
      f"{source} is not a pytorch-pretrained-biggan BigGAN-deep checkpoint "
      f"(no 'embeddings.weight' / 'generator.*' tensors; it has {len(have)} entries"
      + (f", e.g. {sorted(have)[:3]}" if have else "")
      + ")."
    )
  else:
    lines.append(
      f"the weights in {source} do not match the config {config_source} "
      f"(output_dim={cfg.output_dim}, {len(cfg.layers)} blocks, channel_width="
      f"{cfg.channel_width}, num_classes={cfg.num_classes}):"
    )
    if wrong:
      lines.append(
        f"  {len(wrong)} shape mismatches, e.g. " + "; ".join(f"{k}: file {a} vs config {b}" for k, a, b in wrong[:4])
      )
    if missing:
      lines.append(f"  {len(missing)} missing tensors, e.g. {missing[:4]}")
    if unexpected:
      lines.append(f"  {len(unexpected)} unexpected tensors, e.g. {unexpected[:4]}")
    lines.append("  Use the config.json published beside these weights.")
  return "\n".join(lines)


# ---------------------------------------------------------------- conversion
def _sn_weight(sd: Mapping[str, np.ndarray], prefix: str) -> np.ndarray:
  """Eval-mode spectral-normalised weight (see module docstring)."""
  w = np.asarray(sd[prefix + ".weight_orig"], np.float64)
  if prefix + ".weight_v" in sd:
    u = np.asarray(sd[prefix + ".weight_u"], np.float64)
    v = np.asarray(sd[prefix + ".weight_v"], np.float64)
    sigma = float(u @ (w.reshape(w.shape[0], -1) @ v))
  else:  # torch < 1.1 state dict; torch's SpectralNormLoadStateDictPreHook
    sigma = float(np.mean(w / np.asarray(sd[prefix + ".weight"], np.float64)))
  if not np.isfinite(sigma) or sigma == 0:
    raise ValueError(f"spectral norm of {prefix} is {sigma}; the checkpoint is corrupt")
  return (w / sigma).astype(np.float32)


def _dense(sd, prefix, sn=True, bias=False):
  w = _sn_weight(sd, prefix) if sn else np.asarray(sd[prefix + ".weight"], np.float32)
  d = {"kernel": np.ascontiguousarray(w.T)}
  if bias:
    d["bias"] = np.asarray(sd[prefix + ".bias"], np.float32)
  return d


def _conv(sd, prefix, bias=True):
  w = _sn_weight(sd, prefix)  # (out, in, kh, kw) -> (kh, kw, in, out)
  d = {"kernel": np.ascontiguousarray(w.transpose(2, 3, 1, 0))}
  if bias:
    d["bias"] = np.asarray(sd[prefix + ".bias"], np.float32)
  return d


def _bn_vars(sd, prefix, conditional):
  stats = {
    "running_means": np.asarray(sd[prefix + ".running_means"], np.float32),
    "running_vars": np.asarray(sd[prefix + ".running_vars"], np.float32),
  }
  if conditional:
    params = {"scale": _dense(sd, prefix + ".scale"), "offset": _dense(sd, prefix + ".offset")}
  else:
    params = {
      "weight": np.asarray(sd[prefix + ".weight"], np.float32),
      "bias": np.asarray(sd[prefix + ".bias"], np.float32),
    }
  return params, stats


def state_dict_to_variables(
  state_dict: Mapping[str, Any], config: BigGANConfig, *, source: str = "state dict", config_source: str = "config"
) -> dict:
  """Reference state dict (tensors or arrays) -> {'params', 'batch_stats'} of
  `BigGANDeep(config)`, as numpy float32. Raises ValueError naming `source`
  when the keys/shapes are not those of a BigGAN-deep with this config."""
  if not isinstance(state_dict, Mapping):
    raise ValueError(f"{source} is not a BigGAN checkpoint: it holds a {type(state_dict).__name__}, not a state dict")
  sd = {}
  for k, v in state_dict.items():
    if hasattr(v, "detach"):  # torch tensor
      v = v.detach().cpu().float().numpy()
    try:
      sd[str(k)] = np.asarray(v, np.float32)
    except (TypeError, ValueError) as e:
      raise ValueError(f"{source} is not a BigGAN checkpoint: entry {k!r} is not a numeric array") from e
  problem = _describe_mismatch(sd, config, source, config_source)
  if problem:
    raise ValueError(problem)

  params: dict[str, Any] = {
    "embeddings": _dense(sd, "embeddings", sn=False),
    "gen_z": _dense(sd, "generator.gen_z", bias=True),
  }
  stats: dict[str, Any] = {}
  for i, (kind, _) in enumerate(config.stages()):
    p = f"generator.layers.{i}"
    name = f"layers_{i}"
    if kind == "attention":
      params[name] = {
        n: _conv(sd, f"{p}.{n}", bias=False)
        for n in ("snconv1x1_theta", "snconv1x1_phi", "snconv1x1_g", "snconv1x1_o_conv")
      }
      params[name]["gamma"] = np.asarray(sd[p + ".gamma"], np.float32).reshape(1)
    else:
      params[name], stats[name] = {}, {}
      for j in range(4):
        params[name][f"bn_{j}"], stats[name][f"bn_{j}"] = _bn_vars(sd, f"{p}.bn_{j}", True)
        params[name][f"conv_{j}"] = _conv(sd, f"{p}.conv_{j}")
  params["bn"], stats["bn"] = _bn_vars(sd, "generator.bn", False)
  params["conv_to_rgb"] = _conv(sd, "generator.conv_to_rgb")
  bad = [k for k, v in sd.items() if v.dtype.kind == "f" and not np.all(np.isfinite(v))]
  if bad:
    raise ValueError(f"{source} holds non-finite values in {bad[:4]}")
  return {"params": params, "batch_stats": stats}


def read_torch_state_dict(weights_path: str | os.PathLike) -> dict:
  """torch.load the file (CPU, weights only) -> {key: float32 numpy}."""
  weights_path = os.fspath(weights_path)
  if not os.path.isfile(weights_path):
    raise FileNotFoundError(f"BigGAN weights file not found: {weights_path}. {RELEASE_HINT}")
  try:
    import torch  # noqa: PLC0415 - torch is optional, needed only here
  except ImportError as e:
    raise ImportError(
      "reading a PyTorch BigGAN checkpoint needs torch (pip install 'torch==2.13.0'); "
      "convert once with `python -m regionjax.ports.biggan.convert` and use regionjax.ports.biggan.load(DIR) "
      "where torch is absent"
    ) from e
  try:
    sd = torch.load(weights_path, map_location="cpu", weights_only=True)
  except Exception as e:  # noqa: BLE001 - torch raises many kinds for garbage
    raise ValueError(
      f"{weights_path} is not a BigGAN checkpoint: torch.load failed "
      f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    ) from e
  if isinstance(sd, Mapping) and "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
    sd = sd["state_dict"]
  if not isinstance(sd, Mapping):
    raise ValueError(f"{weights_path} is not a BigGAN checkpoint: it holds a {type(sd).__name__}, not a state dict")
  out = {}
  for k, v in sd.items():
    if not isinstance(v, torch.Tensor):
      raise ValueError(f"{weights_path} is not a BigGAN checkpoint: entry {k!r} is a {type(v).__name__}, not a tensor")
    out[k] = v.detach().cpu().float().numpy()
  return out


def load_torch(weights_path: str | os.PathLike, config_path: str | os.PathLike, **generator_kwargs):
  """Released `pytorch_model.bin` + `config.json` -> `BigGANGenerator`."""
  from .generator import BigGANGenerator  # noqa: PLC0415

  config = BigGANConfig.from_json(config_path)
  sd = read_torch_state_dict(weights_path)
  variables = state_dict_to_variables(sd, config, source=os.fspath(weights_path), config_source=os.fspath(config_path))
  return BigGANGenerator(config, variables, **generator_kwargs)


# -------------------------------------------------------------------- orbax
def save(directory: str | os.PathLike, config: BigGANConfig, variables: Mapping, *, overwrite: bool = False) -> str:
  """Writes DIR/config.json and the orbax checkpoint DIR/variables (regionjax.ports.checkpoint)."""
  return checkpoint.save(directory, config, variables, collections=("params", "batch_stats"), overwrite=overwrite)


def _abstract(config: BigGANConfig):
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  from .model import BigGANDeep  # noqa: PLC0415

  shapes = jax.eval_shape(
    lambda: BigGANDeep(config).init(
      jax.random.PRNGKey(0), jnp.zeros((1, config.z_dim)), jnp.zeros((1, config.num_classes)), 1.0
    )
  )
  return {"params": shapes["params"], "batch_stats": shapes["batch_stats"]}


def load(directory: str | os.PathLike, **generator_kwargs):
  """Reads a directory written by `save` / the converter CLI -> `BigGANGenerator` (no torch needed)."""
  from .generator import BigGANGenerator  # noqa: PLC0415

  help_text = (
    f"It is written by `python -m regionjax.ports.biggan.convert --weights pytorch_model.bin --config config.json "
    f"--out {os.path.abspath(os.fspath(directory))}`. {RELEASE_HINT}"
  )
  config, variables = checkpoint.load(
    directory, family="BigGAN", config_cls=BigGANConfig, abstract=_abstract, help_text=help_text
  )
  return BigGANGenerator(config, variables, **generator_kwargs)


# ---------------------------------------------------------------------- CLI
def main(argv: list | None = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m regionjax.ports.biggan.convert",
    description="Convert a pytorch-pretrained-biggan BigGAN-deep checkpoint to a Flax/orbax "
    "checkpoint readable by regionjax.ports.biggan.load(DIR) without torch. " + RELEASE_HINT,
  )
  parser.add_argument("--weights", required=True, help="pytorch_model.bin (e.g. biggan-deep-128-pytorch_model.bin)")
  parser.add_argument("--config", required=True, help="config.json (e.g. biggan-deep-128-config.json)")
  parser.add_argument("--out", required=True, help="output directory")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint in --out")
  args = parser.parse_args(argv)
  try:
    config = BigGANConfig.from_json(args.config)
    sd = read_torch_state_dict(args.weights)
    variables = state_dict_to_variables(sd, config, source=args.weights, config_source=args.config)
    out = save(args.out, config, variables, overwrite=args.overwrite)
  except (ValueError, FileNotFoundError, FileExistsError, ImportError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  n = checkpoint.num_parameters(variables["params"])
  print(f"wrote {out} ({n:,} parameters; {json.dumps({'output_dim': config.output_dim})})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
