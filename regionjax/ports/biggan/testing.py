"""Test helpers: the reference BigGAN (pytorch-pretrained-biggan) with random
weights that make a parity check meaningful. Needs torch; imported by tests only.

A freshly constructed reference is degenerate for testing: attention's γ is 0,
the running statistics are 0/1 for every truncation, the output norm's affine
parameters are uninitialised memory, and spectral norm's stored u, v are
random vectors (σ = u·Wv ≈ 0, so activations overflow). `randomized_reference`
therefore sets

* weights ~ N(0, 1) and u, v to the top singular pair of each matrix found by
  power iteration (15 steps), u then perturbed (so the stored u, v — not the exact σ —
  are what parity depends on);
* γ ~ U(0.5, 1), biases ~ N(0, 0.1²), output-norm weight ~ 1 + N(0, 0.1²);
* every norm's `n_stats` rows of running statistics to the batch statistics
  seen on a calibration batch, each row perturbed differently, so activations
  stay O(1) through the network (tanh unsaturated) and every truncation reads
  different statistics.
"""

from __future__ import annotations

import numpy as np

from .config import BigGANConfig


def reference_config(config: BigGANConfig):
  from pytorch_pretrained_biggan import BigGANConfig as TorchConfig  # noqa: PLC0415

  return TorchConfig.from_dict(config.to_dict())


def randomized_reference(config: BigGANConfig, seed: int = 0, calibration_batch: int = 4):
  """Reference `BigGAN(config)` in eval mode with meaningful random weights."""
  import torch  # noqa: PLC0415
  from pytorch_pretrained_biggan import BigGAN  # noqa: PLC0415
  from pytorch_pretrained_biggan.model import BigGANBatchNorm  # noqa: PLC0415

  torch.manual_seed(seed)
  g = torch.Generator().manual_seed(seed)
  model = BigGAN(reference_config(config)).eval()
  with torch.no_grad():
    for name, p in list(model.named_parameters()):
      if name.endswith("gamma"):
        p.copy_(0.5 + 0.5 * torch.rand(p.shape, generator=g))
      elif name.endswith("bn.weight"):
        p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
      elif name.endswith("bias"):
        p.copy_(0.1 * torch.randn(p.shape, generator=g))
      else:
        p.copy_(torch.randn(p.shape, generator=g))
    rs = np.random.RandomState(seed)
    for m in model.modules():
      if hasattr(m, "weight_orig"):
        w = m.weight_orig.reshape(m.weight_orig.shape[0], -1).numpy()
        wt = np.ascontiguousarray(w.T)
        v = rs.standard_normal(w.shape[1]).astype(np.float32)
        for _ in range(15):
          u = w @ v
          u /= np.linalg.norm(u)
          v = wt @ u
          v /= np.linalg.norm(v)
        u = u + 0.05 * rs.standard_normal(u.shape).astype(np.float32) / np.sqrt(u.size)
        m.weight_u.copy_(torch.from_numpy(u / np.linalg.norm(u)))
        m.weight_v.copy_(torch.from_numpy(v))

  def calibrate(m, args):
    x = args[0]
    mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3))
    n = m.running_means.shape[0]
    m.running_means.copy_(mean + 0.1 * var.sqrt() * torch.randn(n, mean.numel(), generator=g))
    m.running_vars.copy_(var * torch.exp(0.2 * torch.randn(n, var.numel(), generator=g)))

  hooks = [m.register_forward_pre_hook(calibrate) for m in model.modules() if isinstance(m, BigGANBatchNorm)]
  try:
    rs = np.random.RandomState(seed)
    z = torch.tensor(rs.standard_normal((calibration_batch, config.z_dim)).clip(-2, 2), dtype=torch.float32)
    c = torch.eye(config.num_classes)[rs.randint(0, config.num_classes, calibration_batch)]
    with torch.no_grad():
      model(z, c, 1.0)
  finally:
    for h in hooks:
      h.remove()
  return model


def reference_forward(model, z, class_vector, truncation):
  """(image NHWC numpy, [tap_i NHWC numpy]) of the reference in eval mode."""
  import torch  # noqa: PLC0415

  taps = {}
  hooks = [
    layer.register_forward_hook(
      lambda mod, inp, out, k=k: taps.__setitem__(k, out.detach().permute(0, 2, 3, 1).numpy().copy())
    )
    for k, layer in enumerate(model.generator.layers)
  ]
  try:
    with torch.no_grad():
      x = model(
        torch.from_numpy(np.array(z, np.float32)),
        torch.from_numpy(np.array(class_vector, np.float32)),
        float(truncation),
      )
  finally:
    for h in hooks:
      h.remove()
  return x.permute(0, 2, 3, 1).numpy(), [taps[k] for k in range(len(model.generator.layers))]


def legacy_state_dict(model) -> dict:
  """The model's state dict in the torch < 1.1 spectral-norm layout
  (`weight`, `weight_orig`, `weight_u`; no `weight_v`, no metadata), with
  `weight` the eval-mode normalised weight."""
  import torch  # noqa: PLC0415

  sd = dict(model.state_dict())  # plain dict: drops the version metadata
  out = {}
  for k, v in sd.items():
    if k.endswith(".weight_v"):
      continue
    out[k] = v.clone()
    if k.endswith(".weight_orig"):
      base = k[: -len("_orig")]
      w = v.reshape(v.shape[0], -1)
      sigma = torch.dot(sd[base + "_u"], w @ sd[base + "_v"])
      out[base] = v / sigma
  return out
