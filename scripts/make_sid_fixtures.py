"""Makes tests/fixtures/sid_*.npz by running the reference SiD/EDM code.

Run OUTSIDE the repository's test suite, with a checkout of the reference
(its code is not part of this project) and torch:

    git clone https://github.com/mingyuanzhou/SiD /tmp/ref/sid   # commit 01fbb13c…
    PYTHONPATH=$PWD python scripts/make_sid_fixtures.py --reference /tmp/ref/sid --out /tmp/sid_fixtures

For each config it writes random weights with our writer
(``regionjax.ports.sid.testing.write_random_pickle``, the released pickle format,
carrying the reference's networks.py as module_src), loads that file with the
reference's own ``pickle.load`` (its persistence module exec's the source,
exactly as for the released file), runs ``net(2.5·z, 2.5)`` on CPU in float32
and records the image, every encoder/decoder module's output (NHWC), and the
image after a perturbed tap (a forward hook adds a fixed δ to that module's
output). The tests rebuild the same weights with our writer and compare.
"""

import argparse
import json
import os
import pickle
import subprocess
import sys

import numpy as np

from regionjax.ports.sid.config import RELEASED_CONFIGS, SiDConfig
from regionjax.ports.sid import testing

SMALL = SiDConfig(
  img_resolution=16,
  img_channels=3,
  model_channels=8,
  channel_mult=(1, 2, 2),
  channel_mult_emb=4,
  num_blocks=2,
  attn_resolutions=(8,),
  channel_mult_noise=1,
  augment_dim=9,
  use_fp16=True,
)
PERTURBED = ("enc/8x8_block1", "dec/8x8_up", "dec/16x16_block0")


def _run(ref_dir, cfg, seed, batch, taps_wanted, perturb, pkl):
  import torch  # noqa: PLC0415

  sys.path.insert(0, ref_dir)
  src = open(os.path.join(ref_dir, "training", "networks.py"), encoding="utf-8").read()
  testing.write_random_pickle(pkl, cfg, seed=seed, module_src=src)
  with open(pkl, "rb") as f:
    net = pickle.load(f)["ema"]  # the reference's loader (exec's module_src)
  net = net.eval().requires_grad_(False)
  assert net.model.training is False
  z = (
    np.random.RandomState(seed + 1000)
    .standard_normal((batch, cfg.img_resolution, cfg.img_resolution, cfg.img_channels))
    .astype(np.float32)
  )
  zt = torch.from_numpy(z.transpose(0, 3, 1, 2).copy())
  sigma = 2.5 * torch.ones(batch, 1, 1, 1)
  mods = {f"{p}/{n}": m for p in ("enc", "dec") for n, m in getattr(net.model, p).items() if "aux" not in n}
  assert list(mods) == list(cfg.tap_names), (list(mods), cfg.tap_names)
  taps = {}
  hooks = [
    m.register_forward_hook(lambda mod, i, o, k=k: taps.__setitem__(k, o.permute(0, 2, 3, 1).numpy().copy()))
    for k, m in mods.items()
    if k in taps_wanted
  ]
  with torch.no_grad():
    x = net(2.5 * zt.to(torch.float64), sigma).permute(0, 2, 3, 1).numpy()  # generate_onestep.py's call
  for h in hooks:
    h.remove()
  out = {"z": z, "image": x}
  out.update({f"tap:{k}": v for k, v in taps.items()})
  for k in perturb:
    rs = np.random.RandomState(seed + 2000 + cfg.tap_names.index(k))
    delta = (0.5 * rs.standard_normal(taps[k].shape)).astype(np.float32)
    h = mods[k].register_forward_hook(lambda mod, i, o, d=torch.from_numpy(delta.transpose(0, 3, 1, 2).copy()): o + d)
    with torch.no_grad():
      xp = net(2.5 * zt, sigma).permute(0, 2, 3, 1).numpy()
    h.remove()
    out[f"delta:{k}"] = delta
    out[f"perturbed:{k}"] = xp
  return out


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--reference", required=True, help="a checkout of github.com/mingyuanzhou/SiD")
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
    "repository": "https://github.com/mingyuanzhou/SiD",
    "commit": commit,
    "command": "PYTHONPATH=$PWD python scripts/make_sid_fixtures.py --reference SID_CHECKOUT --out DIR",
    "torch": torch.__version__,
    "device": "cpu float32",
  }
  jobs = [("sid_small_parity.npz", SMALL, 0, 2, SMALL.tap_names, PERTURBED)]
  if not a.skip_full:
    jobs.append(("sid_ffhq64_image.npz", RELEASED_CONFIGS["sid-ffhq64"], 0, 1, (), ()))
  for name, cfg, seed, batch, taps, perturb in jobs:
    out = _run(a.reference, cfg, seed, batch, taps, perturb, os.path.join(a.out, name + ".pkl"))
    out.update({k: np.array(v) for k, v in meta.items()})
    out["config"] = np.array(json.dumps(cfg.to_dict()))
    out["seed"] = np.array(seed)
    np.savez_compressed(os.path.join(a.out, name), **out)
    print(name, {k: v.shape for k, v in out.items() if v.ndim}, os.path.getsize(os.path.join(a.out, name)))


if __name__ == "__main__":
  main()
