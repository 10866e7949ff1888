"""Makes tests/fixtures/stylegan2_*.npz by running the reference StyleGAN2-ADA code.

Run OUTSIDE the repository's test suite, with a checkout of the reference
(its code is not part of this project) and torch:

    git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/sg2ref   # commit d72cc7d0…
    PYTHONPATH=$PWD python scripts/make_stylegan2_fixtures.py --reference /tmp/sg2ref --out /tmp/sg2fix

For each config it writes random weights with our writer
(``regionjax.ports.stylegan2.testing.write_random_pickle``, the released pickle layout,
carrying the reference's networks.py as module_src), loads that file with the
reference's own ``pickle.load`` (its persistence module exec's the source, as
for the released file), and runs ``G_ema(z, c, truncation_psi, truncation_cutoff,
noise_mode=…, force_fp32=True)`` on CPU in float32 (its custom ops fall back to
their reference implementations off CUDA). Recorded (NHWC): the image, the w
vectors, every tap (each ``SynthesisLayer``'s output ``b{res}.conv0/conv1``
and each block's feature output ``b{res}``), the image at ψ = 0.7 with a
cutoff, with noise_mode 'none', and after a perturbed tap (a forward hook adds
a fixed δ to that layer's output). The tests rebuild the same weights with our
writer and compare.
"""

import argparse
import json
import os
import pickle
import subprocess
import sys

import numpy as np

from regionjax.ports.stylegan2 import testing
from regionjax.ports.stylegan2.config import RELEASED_CONFIGS, StyleGAN2Config

# 32×32, channels 32/32/16/8, a clamp (1.5) that clips part of every layer's output
SMALL = StyleGAN2Config(
  z_dim=32,
  w_dim=32,
  img_resolution=32,
  img_channels=3,
  mapping_layers=8,
  channel_base=256,
  channel_max=32,
  num_fp16_res=2,
  conv_clamp=1.5,
)
PERTURBED = ("b8.conv0", "b16", "b32.conv1")
PSI, CUTOFF = 0.7, 4
CROP = 64  # centre crop of the 512 image
POOL = 8  # and its 8×8 average pooling (64×64×3)


def _nhwc(t):
  return t.permute(0, 2, 3, 1).numpy().copy()


def _run(ref_dir, cfg, seed, batch, small, pkl):
  import torch  # noqa: PLC0415

  sys.path.insert(0, ref_dir)
  src = open(
    os.path.join(ref_dir, "training", "networks.py"), encoding="utf-8-sig"
  ).read()  # as inspect.getsource reads it (no BOM)
  testing.write_random_pickle(pkl, cfg, seed=seed, module_src=src)
  with open(pkl, "rb") as f:
    G = pickle.load(f)["G_ema"]  # the reference's loader (exec's module_src)
  G = G.eval().requires_grad_(False)
  z = np.random.RandomState(seed + 1000).standard_normal((batch, cfg.z_dim)).astype(np.float32)
  zt = torch.from_numpy(z)
  c = torch.zeros([batch, 0])
  kw = dict(noise_mode="const", force_fp32=True)
  out = {"z": z}
  layers = {}
  for res in cfg.resolutions:
    blk = getattr(G.synthesis, f"b{res}")
    if res != 4:
      layers[f"b{res}.conv0"] = blk.conv0
    layers[f"b{res}.conv1"] = blk.conv1
  taps = {}
  hooks = []
  if small:
    hooks = [m.register_forward_hook(lambda mod, i, o, k=k: taps.__setitem__(k, _nhwc(o))) for k, m in layers.items()]
    hooks += [
      getattr(G.synthesis, f"b{r}").register_forward_hook(lambda mod, i, o, k=f"b{r}": taps.__setitem__(k, _nhwc(o[0])))
      for r in cfg.resolutions
    ]
  with torch.no_grad():
    x = G(zt, c, **kw)
  for h in hooks:
    h.remove()
  x = _nhwc(x)
  if not small:
    h0 = (x.shape[1] - CROP) // 2
    out["image_crop"] = x[:, h0 : h0 + CROP, h0 : h0 + CROP]
    b, hh, ww, ch = x.shape
    out["image_pool"] = x.reshape(b, hh // POOL, POOL, ww // POOL, POOL, ch).mean((2, 4))
    out["image_stats"] = np.array([x.mean(), x.std(), np.abs(x).max()], np.float64)
    out["crop_offset"] = np.array(h0)
    return out
  out["image"] = x
  assert list(taps) == list(k for k in cfg.tap_names if k in taps)
  out.update({f"tap:{k}": taps[k] for k in cfg.tap_names})
  with torch.no_grad():
    out["ws"] = G.mapping(zt, c).numpy()
    out["ws_trunc"] = G.mapping(zt, c, truncation_psi=PSI, truncation_cutoff=CUTOFF).numpy()
    out["image_trunc"] = _nhwc(G(zt, c, truncation_psi=PSI, truncation_cutoff=CUTOFF, **kw))
    out["image_trunc_all"] = _nhwc(G(zt, c, truncation_psi=PSI, noise_mode="const", force_fp32=True))
    out["image_nonoise"] = _nhwc(G(zt, c, noise_mode="none", force_fp32=True))
  clamp = cfg.conv_clamp
  frac = {k: float((np.abs(v) >= clamp - 1e-6).mean()) for k, v in taps.items()}
  print("fraction clamped per tap:", {k: round(v, 3) for k, v in frac.items()})
  out["clamped_fraction"] = np.array([frac[k] for k in cfg.tap_names])
  for k in PERTURBED:
    rs = np.random.RandomState(seed + 2000 + cfg.tap_names.index(k))
    delta = (0.5 * rs.standard_normal(taps[k].shape)).astype(np.float32)
    d = torch.from_numpy(delta.transpose(0, 3, 1, 2).copy())
    mod = layers[k if "." in k else k + ".conv1"]  # a block's feature output is its conv1's
    h = mod.register_forward_hook(lambda m, i, o, d=d: o + d)
    with torch.no_grad():
      xp = _nhwc(G(zt, c, **kw))
    h.remove()
    out[f"delta:{k}"] = delta
    out[f"perturbed:{k}"] = xp
  return out


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--reference", required=True, help="a checkout of github.com/NVlabs/stylegan2-ada-pytorch")
  p.add_argument("--out", required=True)
  p.add_argument("--skip-full", action="store_true")
  a = p.parse_args()
  import torch  # noqa: PLC0415

  torch.set_num_threads(2)
  commit = (
    subprocess.run(["git", "-C", a.reference, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    or open(os.path.join(a.reference, "COMMIT")).read().strip()
  )
  os.makedirs(a.out, exist_ok=True)
  meta = {
    "repository": "https://github.com/NVlabs/stylegan2-ada-pytorch",
    "commit": commit,
    "command": "PYTHONPATH=$PWD python scripts/make_stylegan2_fixtures.py --reference SG2ADA_CHECKOUT --out DIR",
    "torch": torch.__version__,
    "device": "cpu float32 (force_fp32=True, noise_mode='const')",
  }
  jobs = [("stylegan2_small_parity.npz", SMALL, 0, 2, True)]
  if not a.skip_full:
    jobs.append(("stylegan2_afhqcat512_image.npz", RELEASED_CONFIGS["afhqcat"], 0, 1, False))
  for name, cfg, seed, batch, small in jobs:
    out = _run(a.reference, cfg, seed, batch, small, os.path.join(a.out, name + ".pkl"))
    out.update({k: np.array(v) for k, v in meta.items()})
    out["config"] = np.array(json.dumps(cfg.to_dict()))
    out["seed"] = np.array(seed)
    out["truncation"] = np.array([PSI, CUTOFF], np.float64)
    np.savez_compressed(os.path.join(a.out, name), **out)
    print(name, {k: v.shape for k, v in out.items() if v.ndim}, os.path.getsize(os.path.join(a.out, name)))


if __name__ == "__main__":
  main()
