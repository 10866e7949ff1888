"""Trains the embedded generator: a small BigGAN-deep on procedural scenes.

    python -m regionjax.ports.embedded.train --out regionjax/ports/embedded --minutes 15

A class-conditional GAN (hinge loss, Miyato & Koyama 2018 projection
discriminator with spectral norm, Adam β1 = 0, exponential moving average of
the generator's weights) on the scenes of ``regionjax.ports.embedded.scenes`` at 32×32.
The generator is ``regionjax.ports.biggan.BigGANDeep`` built from ``MODEL_CONFIG``
(batch norm in training mode; afterwards its running statistics are settled
on the EMA weights, so every truncation reads the same statistics). Seeded:
the same seed and number of steps give the same weights on the same machine.
Writes ``weights.msgpack`` (flax serialization) and ``config.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from regionjax.ports.biggan import BigGANConfig, BigGANDeep
from regionjax.ports.embedded import scenes

MODEL_CONFIG = BigGANConfig(
  output_dim=32,
  z_dim=32,
  class_embed_dim=16,
  channel_width=16,
  num_classes=scenes.NUM_CLASSES,
  # (up-sample, in, out) × channel_width: 4×4 → 8×8 → 16×16 (attention) → 32×32
  layers=((False, 4, 4), (True, 4, 4), (False, 4, 2), (True, 2, 2), (True, 2, 1)),
  attention_layer_position=4,
  eps=1e-4,
  n_stats=2,
)


class Discriminator(nn.Module):
  """Projection discriminator with spectral-normalised convolutions."""

  num_classes: int
  width: int = 16

  @nn.compact
  def __call__(self, x, labels, update_stats: bool):
    sn = lambda layer: nn.SpectralNorm(layer)  # noqa: E731
    h = x
    for i, mult in enumerate((1, 2, 4)):
      h = sn(nn.Conv(self.width * mult, (3, 3)))(h, update_stats=update_stats)
      h = nn.leaky_relu(h, 0.1)
      h = sn(nn.Conv(self.width * mult, (4, 4), strides=2))(h, update_stats=update_stats)
      h = nn.leaky_relu(h, 0.1)
    h = jnp.sum(h, axis=(1, 2))
    out = sn(nn.Dense(1))(h, update_stats=update_stats)[:, 0]
    embed = nn.Embed(self.num_classes, h.shape[-1])(labels)
    return out + jnp.sum(embed * h, axis=-1)


def _one_hot(labels):
  return jax.nn.one_hot(labels, MODEL_CONFIG.num_classes, dtype=jnp.float32)


def _z(key, n):
  return jax.random.truncated_normal(key, -2.0, 2.0, (n, MODEL_CONFIG.z_dim), jnp.float32)


def make_steps(gen: BigGANDeep, disc: Discriminator, g_opt, d_opt, ema_decay: float):
  def g_apply(params, stats, z, labels):
    x, upd = gen.apply(
      {"params": params, "batch_stats": stats}, z, _one_hot(labels), 1.0, train=True, mutable=["batch_stats"]
    )
    return x, upd["batch_stats"]

  @jax.jit
  def d_step(state, real, labels, key):
    g_params, g_stats, d_vars, d_opt_state = state["g"], state["g_stats"], state["d"], state["d_opt"]
    fake, _ = g_apply(g_params, g_stats, _z(key, real.shape[0]), labels)
    fake = jax.lax.stop_gradient(fake)

    def loss_fn(d_params):
      v = {**d_vars, "params": d_params}
      out_real, upd = disc.apply(v, real, labels, True, mutable=["batch_stats"])
      out_fake, upd = disc.apply({**v, **upd}, fake, labels, True, mutable=["batch_stats"])
      loss = jnp.mean(nn.relu(1 - out_real)) + jnp.mean(nn.relu(1 + out_fake))
      return loss, upd

    (loss, upd), grads = jax.value_and_grad(loss_fn, has_aux=True)(d_vars["params"])
    updates, d_opt_state = d_opt.update(grads, d_opt_state, d_vars["params"])
    d_vars = {**d_vars, **upd, "params": optax.apply_updates(d_vars["params"], updates)}
    return {**state, "d": d_vars, "d_opt": d_opt_state}, loss

  @jax.jit
  def g_step(state, labels, key):
    def loss_fn(g_params):
      fake, stats = g_apply(g_params, state["g_stats"], _z(key, labels.shape[0]), labels)
      out = disc.apply(state["d"], fake, labels, False)
      return -jnp.mean(out), stats

    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["g"])
    updates, g_opt_state = g_opt.update(grads, state["g_opt"], state["g"])
    g_params = optax.apply_updates(state["g"], updates)
    ema = optax.incremental_update(g_params, state["ema"], 1 - ema_decay)
    return {**state, "g": g_params, "g_stats": stats, "g_opt": g_opt_state, "ema": ema}, loss

  return d_step, g_step


def settle_stats(gen: BigGANDeep, params, stats, key, batches: int = 200, batch: int = 64):
  """Running statistics of the EMA weights: batch-norm passes in training mode."""

  @jax.jit
  def one(stats, key):
    kz, kc = jax.random.split(key)
    labels = jax.random.randint(kc, (batch,), 0, MODEL_CONFIG.num_classes)
    _, upd = gen.apply(
      {"params": params, "batch_stats": stats},
      _z(kz, batch),
      _one_hot(labels),
      1.0,
      train=True,
      mutable=["batch_stats"],
    )
    return upd["batch_stats"]

  for i in range(batches):
    stats = one(stats, jax.random.fold_in(key, i))
  return stats


def train(
  out_dir: str,
  *,
  seed: int = 0,
  steps: int = 100_000,
  minutes: float = 15.0,
  batch: int = 32,
  lr_g: float = 5e-4,
  lr_d: float = 5e-4,
  ema_decay: float = 0.995,
  log_every: int = 100,
  dataset_size: int = 16384,
  adam_b2: float = 0.99,
) -> dict:
  """Trains for ``steps`` steps or ``minutes`` of wall time, whichever ends first."""
  key = jax.random.PRNGKey(seed)
  rng = np.random.default_rng(seed)
  gen = BigGANDeep(MODEL_CONFIG)
  disc = Discriminator(MODEL_CONFIG.num_classes)
  kg, kd, key = jax.random.split(key, 3)
  labels0 = jnp.zeros((2,), jnp.int32)
  g_vars = gen.init(kg, _z(kg, 2), _one_hot(labels0), 1.0, train=True)
  d_vars = disc.init(kd, jnp.zeros((2, 32, 32, 3)), labels0, True)
  # β1 = 0 as BigGAN (Brock et al. 2019); β2 = 0.99 is what the shipped weights used (0.999 with
  # lr_d = 4e-4 or lr = 2e-4 drove the discriminator's loss to 0 within 1500 steps here)
  g_opt = optax.adam(lr_g, b1=0.0, b2=adam_b2)
  d_opt = optax.adam(lr_d, b1=0.0, b2=adam_b2)
  # a fixed, seeded training set rendered once (rendering costs as much as a step)
  data_labels = rng.integers(0, MODEL_CONFIG.num_classes, dataset_size)
  data = np.concatenate([scenes.render(rng, data_labels[i : i + 1024]) for i in range(0, dataset_size, 1024)])
  data = np.round((data + 1) * 127.5).astype(np.uint8)
  state = {
    "g": g_vars["params"],
    "g_stats": g_vars["batch_stats"],
    "g_opt": g_opt.init(g_vars["params"]),
    "ema": g_vars["params"],
    "d": d_vars,
    "d_opt": d_opt.init(d_vars["params"]),
  }
  d_step, g_step = make_steps(gen, disc, g_opt, d_opt, ema_decay)
  start = time.time()
  log = []
  step = 0
  while step < steps and time.time() - start < minutes * 60:
    idx = rng.integers(0, dataset_size, batch)
    labels = data_labels[idx]
    real = data[idx].astype(np.float32) / 127.5 - 1.0
    key, k1, k2 = jax.random.split(key, 3)
    state, d_loss = d_step(state, jnp.asarray(real), jnp.asarray(labels), k1)
    state, g_loss = g_step(state, jnp.asarray(labels), k2)
    step += 1
    if step % log_every == 0:
      el = time.time() - start
      log.append({"step": step, "d_loss": float(d_loss), "g_loss": float(g_loss), "seconds": el})
      print(
        f"step {step}  d {float(d_loss):.3f}  g {float(g_loss):.3f}  {step / el:.1f} step/s  "
        f"{el / 60:.1f}/{minutes:.0f} min",
        flush=True,
      )
  stats = settle_stats(gen, state["ema"], state["g_stats"], jax.random.fold_in(key, 7))
  variables = {"params": state["ema"], "batch_stats": stats}
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "weights.msgpack"), "wb") as fh:
    fh.write(flax.serialization.to_bytes(jax.device_get(variables)))
  MODEL_CONFIG.to_json(os.path.join(out_dir, "config.json"))
  info = {
    "seed": seed,
    "steps": step,
    "minutes": (time.time() - start) / 60,
    "batch": batch,
    "lr_g": lr_g,
    "lr_d": lr_d,
    "ema_decay": ema_decay,
    "dataset_size": dataset_size,
    "adam_b2": adam_b2,
    "log": log[-5:],
    "jax": jax.__version__,
  }
  with open(os.path.join(out_dir, "training.json"), "w") as fh:
    json.dump(info, fh, indent=1)
  return info


def _save(out_dir, variables, info):
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "weights.msgpack"), "wb") as fh:
    fh.write(flax.serialization.to_bytes(jax.device_get(variables)))
  MODEL_CONFIG.to_json(os.path.join(out_dir, "config.json"))
  with open(os.path.join(out_dir, "training.json"), "w") as fh:
    json.dump(info, fh, indent=1)
  try:  # a small sample grid, one row per class
    from regionjax.ports import embedded

    g = embedded.load(directory=out_dir)
    classes = np.repeat(np.arange(MODEL_CONFIG.num_classes), 8)
    x = np.asarray(g.generate(g.sample_codes(jax.random.PRNGKey(0), classes.size, classes=classes)))
    grid = x.reshape(MODEL_CONFIG.num_classes, 8, 32, 32, 3).transpose(0, 2, 1, 3, 4)
    grid = grid.reshape(MODEL_CONFIG.num_classes * 32, 8 * 32, 3)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.imsave(os.path.join(out_dir, "samples.png"), np.kron((grid + 1) / 2, np.ones((2, 2, 1))).clip(0, 1))
  except Exception as e:  # noqa: BLE001 — the grid is a convenience
    print(f"could not write samples.png: {e}", file=sys.stderr)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--steps", type=int, default=100_000, help="the shipped weights ran 4570 (the wall-time cap)")
  p.add_argument("--minutes", type=float, default=20.0, help="wall-time cap on the training loop")
  p.add_argument("--batch", type=int, default=32)
  a = p.parse_args(argv)
  info = train(a.out, seed=a.seed, steps=a.steps, minutes=a.minutes, batch=a.batch)
  print(json.dumps({k: v for k, v in info.items() if k != "log"}), file=sys.stderr)


if __name__ == "__main__":
  main()
