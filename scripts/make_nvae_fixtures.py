"""Makes tests/fixtures/nvae_*.npz by running the reference NVAE code (NVlabs/NVAE) on CPU.

Run OUTSIDE the repository's test suite, with a checkout of the reference (its code is not part
of this project) and torch:

    git clone https://github.com/NVlabs/NVAE /tmp/ref_nvae     # commit 9fc1a288…
    PYTHONPATH=$PWD python scripts/make_nvae_fixtures.py --reference /tmp/ref_nvae --out /tmp/nvae_fixtures

For each config it builds the reference ``AutoEncoder(args)``, loads random decoder weights from
``regionjax.ports.nvae.testing.random_state_dict(config, seed)`` (checking that our layout names exactly the
reference's decoder tensors), calibrates the batch-norm statistics with the reference in training
mode (momentum 1: the statistics of one batch of 16 samples at t = 1), rounds them to float16 and
loads them back, then runs ``AutoEncoder.sample(B, t)`` in eval mode with the ε of every latent
group injected (``distributions.Normal.sample`` replaced by ``sample_given_eps``) and records the
logits, ``DiscMixLogistic.mean()`` and ``.sample()`` (its uniforms drawn from a seeded generator and
stored), every ``dec_tower[i]`` output (forward hooks, NHWC) and the image when a fixed δ is added
to a tap's output. CPU patches (outside the reference's files): ``Tensor.cuda`` is the identity and
NVAE's two synchronised batch norms call ``F.batch_norm`` (one process: what they do without
synchronisation); tensorboardX is stubbed.
"""

import argparse
import json
import os
import subprocess
import sys
import types

import numpy as np

from regionjax.ports.nvae import testing
from regionjax.ports.nvae.config import CELEBA64, NVAEConfig
from regionjax.ports.nvae.layout import DECODER_PREFIXES

SMALL = NVAEConfig(
  dataset="celeba_16",
  num_channels_dec=8,
  num_latent_scales=2,
  num_groups_per_scale=4,
  num_latent_per_group=4,
  num_cell_per_cond_dec=2,
  num_preprocess_blocks=1,
  num_postprocess_blocks=1,
  num_postprocess_cells=2,
  num_mixture_dec=10,
  ada_groups=True,
  use_se=True,
  num_nf=1,
)
T = 0.8


def _reference(ref_dir):
  import torch  # noqa: PLC0415
  import torch.nn.functional as F  # noqa: PLC0415

  tbx = types.ModuleType("tensorboardX")
  tbx.SummaryWriter = object
  sys.modules.setdefault("tensorboardX", tbx)
  sys.path.insert(0, ref_dir)
  torch.Tensor.cuda = lambda self, *a, **k: self
  import distributions  # noqa: PLC0415
  import model  # noqa: PLC0415
  import neural_operations as no  # noqa: PLC0415
  import utils  # noqa: PLC0415
  from thirdparty import inplaced_sync_batchnorm as isb  # noqa: PLC0415

  def sync_bn(self, x):
    bn = self.bn
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.training, bn.momentum, bn.eps)

  def sync_bn_swish(self, x):
    out = F.batch_norm(
      x, self.running_mean, self.running_var, self.weight, self.bias, self.training, self.momentum, self.eps
    )
    return isb.swish.apply(out)

  no.SyncBatchNorm.forward = sync_bn
  isb.SyncBatchNormSwish.forward = sync_bn_swish
  queue = []

  def sample(self):
    eps = queue.pop(0) if queue else torch.randn_like(self.mu)
    return self.sample_given_eps(eps), eps

  distributions.Normal.sample = sample
  return torch, model, utils, queue


def _build(ref, cfg, seed):
  torch, model, utils, _ = ref
  args = testing.train_args(cfg)
  net = model.AutoEncoder(args, None, utils.get_arch_cells(args.arch_instance))
  ref_sd = net.state_dict()
  sd = testing.random_state_dict(cfg, seed)
  # (a conv without weight norm registers its weight a second time as 'weight_normalized')
  ref_dec = [k for k in ref_sd if k.split(".")[0] in DECODER_PREFIXES and not k.endswith(".weight_normalized")]
  assert sorted(ref_dec) == sorted(sd), set(ref_dec) ^ set(sd)
  for k, v in sd.items():
    assert tuple(ref_sd[k].shape) == v.shape, (k, ref_sd[k].shape, v.shape)
  net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()}, strict=False)
  # calibrate the batch norms: training mode, momentum 1, one batch of samples at t = 1
  bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
  for m in bns:
    m.momentum = 1.0
  net.train()
  with torch.no_grad():
    torch.manual_seed(seed)
    net.sample(16, 1.0)
  net.eval()
  stats = {
    k: v.numpy().astype(np.float16)
    for k, v in net.state_dict().items()
    if k.split(".")[0] in DECODER_PREFIXES and (k.endswith("running_mean") or k.endswith("running_var"))
  }
  net.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in stats.items()}, strict=False)
  return net, stats


def _nhwc(t):
  return t.detach().numpy().transpose(0, 2, 3, 1).astype(np.float32)


def _run(ref, net, cfg, batch, seed, perturb, all_taps):
  torch, _, _, queue = ref
  rs = np.random.RandomState(seed + 1)
  eps = [rs.standard_normal((batch,) + s).astype(np.float32) for s in cfg.group_shapes()]  # NHWC
  out = {f"eps{g}": e for g, e in enumerate(eps)}
  taps = {}
  hooks = [
    m.register_forward_hook(lambda mod, inp, o, i=i: taps.__setitem__(i, _nhwc(o))) for i, m in enumerate(net.dec_tower)
  ]

  def sample():
    queue[:] = [torch.from_numpy(e.transpose(0, 3, 1, 2).copy()) for e in eps]
    with torch.no_grad():
      logits = net.sample(batch, T)
    assert not queue
    return logits

  logits = sample()
  for h in hooks:
    h.remove()
  # net.decoder_output(logits) for the datasets it lists (celeba_64, …): DiscMixLogistic(logits, M, num_bits)
  mix = lambda lg: sys.modules["distributions"].DiscMixLogistic(lg, cfg.num_mixture_dec, num_bits=cfg.num_x_bits)
  dist = mix(logits)
  out["logits"] = _nhwc(logits)
  out["image"] = _nhwc(dist.mean() * 2 - 1)
  torch.manual_seed(seed + 2)
  m = cfg.num_mixture_dec
  size = logits.shape
  u_mix = torch.Tensor(size[0], m, size[2], size[3]).uniform_(1e-5, 1.0 - 1e-5)
  u_log = torch.Tensor(size[0], 3, size[2], size[3]).uniform_(1e-5, 1.0 - 1e-5)
  torch.manual_seed(seed + 2)
  out["image_sample"] = _nhwc(dist.sample() * 2 - 1)
  out["u_mix"], out["u_logistic"] = _nhwc(u_mix), _nhwc(u_log)
  for i in range(len(net.dec_tower)) if all_taps is True else all_taps or ():
    out[f"tap:layer{i}"] = taps[i]
  for i in perturb:
    delta = (0.5 * rs.standard_normal(taps[i].shape)).astype(np.float32)
    h = net.dec_tower[i].register_forward_hook(
      lambda mod, inp, o, d=torch.from_numpy(delta.transpose(0, 3, 1, 2).copy()): o + d
    )
    pl = sample()
    h.remove()
    out[f"delta:layer{i}"] = delta
    out[f"perturbed:layer{i}"] = _nhwc(mix(pl).mean() * 2 - 1)
  return out


def _readjust_step(ref, net, cfg, batch, seed):
  """One step of evaluate.py's set_bn(bn_eval_mode=False): sample in training mode (momentum 0.05) with the
  ε given; returns the ε and the running statistics after the step."""
  torch, _, _, queue = ref
  rs = np.random.RandomState(seed + 3)
  eps = [rs.standard_normal((batch,) + s).astype(np.float32) for s in cfg.group_shapes()]
  for m in net.modules():
    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
      m.momentum = 0.05
  net.train()
  queue[:] = [torch.from_numpy(e.transpose(0, 3, 1, 2).copy()) for e in eps]
  with torch.no_grad():
    net.sample(batch, 1.0)
  net.eval()
  out = {f"readjust_eps{g}": e for g, e in enumerate(eps)}
  for k, v in net.state_dict().items():
    if k.split(".")[0] in DECODER_PREFIXES and (k.endswith("running_mean") or k.endswith("running_var")):
      out[f"readjust:{k}"] = v.numpy().astype(np.float32)
  return out


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--reference", required=True)
  ap.add_argument("--out", required=True)
  ap.add_argument("--which", default="small,full")
  a = ap.parse_args()
  ref = _reference(os.path.abspath(a.reference))
  torch = ref[0]
  torch.set_num_threads(2)
  commit = subprocess.run(
    ["git", "-C", a.reference, "rev-parse", "HEAD"], capture_output=True, text=True
  ).stdout.strip()
  commit = commit or "9fc1a288fb831c87d93a4e2663bc30ccf9225b29"
  os.makedirs(a.out, exist_ok=True)
  jobs = {
    "small": ("nvae_small_parity.npz", SMALL, 0, 2, (3, 4, 10), True),
    "full": ("nvae_celeba64_image.npz", CELEBA64, 1, 1, (), (44, 66)),
  }
  for which in a.which.split(","):
    name, cfg, seed, batch, perturb, all_taps = jobs[which]
    net, stats = _build(ref, cfg, seed)
    out = _run(ref, net, cfg, batch, seed, perturb, all_taps)
    if which == "small":
      out.update(_readjust_step(ref, net, cfg, 4, seed))
    if which == "full":  # keep the file small: the image, logits statistics and the paper's two taps pooled
      for g in range(cfg.num_groups):  # 1.9 MB: the test redraws them (np.random.RandomState(seed + 1))
        out.pop(f"eps{g}")
      lg = out.pop("logits")
      out["logits_crop"] = lg[:, 24:40, 24:40]
      out["logits_stats"] = np.array([lg.mean(), lg.std(), np.abs(lg).max()], np.float32)
      for i in (44, 66):  # the paper's taps, pooled over 4×4 cells (the whole tap would be 0.5 MB)
        tap = out.pop(f"tap:layer{i}")
        b, h, w, c = tap.shape
        out[f"tap_pool:layer{i}"] = tap.reshape(b, h // 4, 4, w // 4, 4, c).mean((2, 4))
    for k, v in stats.items():
      out[f"bn:{k}"] = v
    out.update(
      repository="https://github.com/NVlabs/NVAE",
      commit=commit,
      command=f"PYTHONPATH=$PWD python scripts/make_nvae_fixtures.py --reference NVAE_CHECKOUT --out DIR "
      f"--which {which}",
      torch=torch.__version__,
      device="cpu",
      config=json.dumps(cfg.to_dict()),
      seed=np.int64(seed),
      t=np.float32(T),
      delta_seed=np.int64(seed + 1),
    )
    np.savez_compressed(os.path.join(a.out, name), **out)
    print(
      name,
      os.path.getsize(os.path.join(a.out, name)),
      "bytes",
      "image range",
      float(out["image"].min()),
      float(out["image"].max()),
    )


if __name__ == "__main__":
  main()
