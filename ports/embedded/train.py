"""Trains the embedded generator: a small BigGAN-deep on procedural scenes.

    python -m ports.embedded.train --out ports/embedded --minutes 15

A class-conditional GAN (hinge loss, Miyato & Koyama 2018 projection
discriminator with spectral norm, Adam β1 = 0, exponential moving average of
the generator's weights) on the scenes of ``ports.embedded.scenes`` at 32×32.
The generator is ``ports.biggan.BigGANDeep`` built from ``MODEL_CONFIG``
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

from ports.biggan import BigGANConfig, BigGANDeep
from ports.embedded import scenes

MODEL_CONFIG = BigGANConfig(
    output_dim=32, z_dim=32, class_embed_dim=16, channel_width=16, num_classes=scenes.NUM_CLASSES,
    # (up-sample, in, out) × channel_width: 4×4 → 8×8 → 16×16 (attention) → 32×32
    layers=((False, 4, 4), (True, 4, 4), (False, 4, 2), (True, 2, 2), (True, 2, 1)),
    attention_layer_position=4, eps=1e-4, n_stats=2)


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
    x, upd = gen.apply({"params": params, "batch_stats": stats}, z, _one_hot(labels), 1.0, train=True,
                       mutable=["batch_stats"])
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
    _, upd = gen.apply({"params": params, "batch_stats": stats}, _z(kz, batch), _one_hot(labels), 1.0,
                       train=True, mutable=["batch_stats"])
    return upd["batch_stats"]

  for i in range(batches):
    stats = one(stats, jax.random.fold_in(key, i))
  return stats


def train(out_dir: str, *, seed: int = 0, steps: int = 100_000, minutes: float = 15.0, batch: int = 32,
          lr_g: float = 5e-4, lr_d: float = 5e-4, ema_decay: float = 0.995, log_every: int = 100,
          dataset_size: int = 16384, adam_b2: float = 0.99) -> dict:
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
  data = np.concatenate([scenes.render(rng, data_labels[i:i + 1024]) for i in range(0, dataset_size, 1024)])
  data = np.round((data + 1) * 127.5).astype(np.uint8)
  state = {"g": g_vars["params"], "g_stats": g_vars["batch_stats"], "g_opt": g_opt.init(g_vars["params"]),
           "ema": g_vars["params"], "d": d_vars, "d_opt": d_opt.init(d_vars["params"])}
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
      print(f"step {step}  d {float(d_loss):.3f}  g {float(g_loss):.3f}  {step / el:.1f} step/s  "
            f"{el / 60:.1f}/{minutes:.0f} min", flush=True)
  stats = settle_stats(gen, state["ema"], state["g_stats"], jax.random.fold_in(key, 7))
  variables = {"params": state["ema"], "batch_stats": stats}
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "weights.msgpack"), "wb") as fh:
    fh.write(flax.serialization.to_bytes(jax.device_get(variables)))
  MODEL_CONFIG.to_json(os.path.join(out_dir, "config.json"))
  info = {"seed": seed, "steps": step, "minutes": (time.time() - start) / 60, "batch": batch, "lr_g": lr_g,
          "lr_d": lr_d, "ema_decay": ema_decay, "dataset_size": dataset_size, "adam_b2": adam_b2, "log": log[-5:], "jax": jax.__version__}
  with open(os.path.join(out_dir, "training.json"), "w") as fh:
    json.dump(info, fh, indent=1)
  return info


class Encoder(nn.Module):
  """q(z | x, class): a small conv net giving the mean and log-variance of z."""
  z_dim: int
  num_classes: int

  @nn.compact
  def __call__(self, x, labels):
    h = x
    for ch in (32, 64, 128):
      h = nn.relu(nn.Conv(ch, (4, 4), strides=2)(h))
    h = jnp.concatenate([h.reshape(h.shape[0], -1), jax.nn.one_hot(labels, self.num_classes)], -1)
    h = nn.relu(nn.Dense(256)(h))
    out = nn.Dense(2 * self.z_dim)(h)
    return out[:, : self.z_dim], jnp.clip(out[:, self.z_dim:], -8.0, 4.0)


def render_dataset(rng, size: int):
  labels = rng.integers(0, MODEL_CONFIG.num_classes, size)
  data = np.concatenate([scenes.render(rng, labels[i:i + 1024]) for i in range(0, size, 1024)])
  return np.round((data + 1) * 127.5).astype(np.uint8), labels


def train_vae(out_dir: str, *, seed: int = 0, steps: int = 3000, minutes: float = 25.0, batch: int = 32,
              lr: float = 1e-3, sigma: float = 0.18, kl_warmup: int = 300, log_every: int = 100,
              dataset_size: int = 12288) -> dict:
  """Conditional VAE: encoder q(z|x,c) + the BigGAN-deep generator as decoder p(x|z,c).

  loss = ‖x − G(z, c)‖² / (2σ²) + β·KL(q(z|x,c) ‖ N(0, I)),  z = μ + e^{logvar/2}·ε,
  β warmed up linearly from 0 to 1 over ``kl_warmup`` steps; Adam with cosine-decayed
  learning rate. Random codes z ~ TruncNormal(-2, 2) then decode to scenes.
  """
  key = jax.random.PRNGKey(seed)
  rng = np.random.default_rng(seed)
  gen = BigGANDeep(MODEL_CONFIG)
  enc = Encoder(MODEL_CONFIG.z_dim, MODEL_CONFIG.num_classes)
  kg, ke, key = jax.random.split(key, 3)
  labels0 = jnp.zeros((2,), jnp.int32)
  g_vars = gen.init(kg, _z(kg, 2), _one_hot(labels0), 1.0, train=True)
  e_params = enc.init(ke, jnp.zeros((2, 32, 32, 3)), labels0)["params"]
  params = {"g": g_vars["params"], "e": e_params}
  opt = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.1))
  t0 = time.time()
  data, data_labels = render_dataset(rng, dataset_size)
  print(f"rendered {dataset_size} scenes in {time.time() - t0:.0f} s", flush=True)

  @jax.jit
  def step_fn(params, stats, opt_state, x, labels, key, beta):
    def loss_fn(params):
      mu, logvar = enc.apply({"params": params["e"]}, x, labels)
      z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
      xh, upd = gen.apply({"params": params["g"], "batch_stats": stats}, z, _one_hot(labels), 1.0,
                          train=True, mutable=["batch_stats"])
      rec = jnp.mean(jnp.sum(jnp.square(xh - x), axis=(1, 2, 3))) / (2 * sigma ** 2)
      kl = jnp.mean(0.5 * jnp.sum(jnp.square(mu) + jnp.exp(logvar) - 1 - logvar, axis=-1))
      mse = jnp.mean(jnp.square(xh - x))
      return rec + beta * kl, (upd["batch_stats"], kl, mse)

    (loss, (stats, kl, mse)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), stats, opt_state, loss, kl, mse

  stats, opt_state = g_vars["batch_stats"], opt.init(params)
  start = time.time()
  log, step = [], 0
  while step < steps and time.time() - start < minutes * 60:
    idx = rng.integers(0, dataset_size, batch)
    real = data[idx].astype(np.float32) / 127.5 - 1.0
    flip = rng.random(batch) < 0.5
    real[flip] = real[flip, :, ::-1]  # horizontal flips keep every class valid
    key, k = jax.random.split(key)
    beta = min(1.0, (step + 1) / kl_warmup)
    params, stats, opt_state, loss, kl, mse = step_fn(params, stats, opt_state, jnp.asarray(real),
                                                     jnp.asarray(data_labels[idx]), k, beta)
    step += 1
    if step % log_every == 0 or step == steps:
      el = time.time() - start
      rate = step / el
      log.append({"step": step, "loss": float(loss), "kl": float(kl), "mse": float(mse), "seconds": el})
      print(f"step {step}/{steps}  loss {float(loss):.1f}  kl {float(kl):.1f}  mse {float(mse):.4f}  "
            f"{rate:.1f} step/s  eta {(steps - step) / rate / 60:.1f} min", flush=True)
  stats = settle_stats(gen, params["g"], stats, jax.random.fold_in(key, 7), batches=300)
  variables = {"params": params["g"], "batch_stats": stats}
  info = {"method": "vae", "seed": seed, "steps": step, "train_minutes": (time.time() - start) / 60,
          "total_minutes": (time.time() - t0) / 60, "batch": batch, "lr": lr, "sigma": sigma,
          "kl_warmup": kl_warmup, "dataset_size": dataset_size, "final": log[-1] if log else None,
          "log": log, "jax": jax.__version__}
  _save(out_dir, variables, info)
  return info


def _save(out_dir, variables, info):
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "weights.msgpack"), "wb") as fh:
    fh.write(flax.serialization.to_bytes(jax.device_get(variables)))
  MODEL_CONFIG.to_json(os.path.join(out_dir, "config.json"))
  with open(os.path.join(out_dir, "training.json"), "w") as fh:
    json.dump(info, fh, indent=1)
  try:  # a small sample grid, one row per class
    from ports import embedded
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
  p.add_argument("--method", choices=("vae", "gan"), default="gan")
  p.add_argument("--steps", type=int, default=None, help="default: 3000 (vae), 100000 (gan; the shipped weights: 4570)")
  p.add_argument("--minutes", type=float, default=20.0, help="wall-time cap on the training loop")
  p.add_argument("--batch", type=int, default=32)
  a = p.parse_args(argv)
  if a.method == "vae":
    info = train_vae(a.out, seed=a.seed, steps=a.steps or 3000, minutes=a.minutes, batch=a.batch)
  else:
    info = train(a.out, seed=a.seed, steps=a.steps or 100_000, minutes=a.minutes, batch=a.batch)
  print(json.dumps({k: v for k, v in info.items() if k != "log"}), file=sys.stderr)


if __name__ == "__main__":
  main()
