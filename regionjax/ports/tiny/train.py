"""Trains a tiny generator (seeded, CPU, about two minutes): ``python -m regionjax.ports.tiny.train --name digits``.

An autoencoder: the decoder of ``model.ARCHS[arch]`` and an encoder, trained on the images of ``data.DATASETS``
with ``‖dec(enc(x)) − x‖² + 1e-3·‖z‖²`` by Adam (lr 2e-3, batch 64) for a fixed number of steps. The generator
is the decoder; its codes are drawn from the Gaussian fitted to the encoded training images (mean and the
Cholesky factor of the covariance, stored with the weights). Same seed and steps ⇒ the same weights on one
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from regionjax.ports.tiny import data as data_lib
from regionjax.ports.tiny import model as model_lib

#: name → (dataset, decoder architecture, z_dim, steps).
RECIPES = {
  "digits": ("digits", "upconv", 16, 800),
  "photos": ("photos", "resbilinear", 32, 400),
}


def train(name: str, *, steps: int | None = None, seed: int = 0, batch: int = 64, log_every: int = 250) -> dict:
  """Trains ``RECIPES[name]``; returns ``{'variables', 'config', 'log'}`` (variables: params, z_mean, z_chol)."""
  dataset, arch, z_dim, default_steps = RECIPES[name]
  steps = default_steps if steps is None else int(steps)
  images = jnp.asarray(data_lib.DATASETS[dataset](seed))
  dec, enc = model_lib.Decoder(arch), model_lib.Encoder(z_dim)
  k_dec, k_enc, k_data = jax.random.split(jax.random.PRNGKey(seed), 3)
  params = {
    "dec": dec.init(k_dec, jnp.zeros((1, z_dim)))["params"],
    "enc": enc.init(k_enc, images[:1])["params"],
  }
  opt = optax.adam(2e-3)
  state = opt.init(params)

  def loss_fn(p, x):
    z = enc.apply({"params": p["enc"]}, x)
    y = dec.apply({"params": p["dec"]}, z)
    return jnp.mean((y - x) ** 2) + 1e-3 * jnp.mean(z**2)

  @jax.jit
  def step(p, s, key):
    x = images[jax.random.randint(key, (batch,), 0, images.shape[0])]
    loss, g = jax.value_and_grad(loss_fn)(p, x)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s, loss

  log, t0 = [], time.time()
  for t, key in enumerate(jax.random.split(k_data, steps)):
    params, state, loss = step(params, state, key)
    if (t + 1) % log_every == 0 or t + 1 == steps:
      log.append({"step": t + 1, "loss": float(loss), "seconds": time.time() - t0})
  z = np.concatenate(
    [np.asarray(enc.apply({"params": params["enc"]}, images[i : i + 512])) for i in range(0, len(images), 512)]
  )
  mean = z.mean(0)
  cov = np.cov(z, rowvar=False) + 1e-5 * np.eye(z_dim)
  variables = {"params": params["dec"], "z_mean": jnp.asarray(mean), "z_chol": jnp.asarray(np.linalg.cholesky(cov))}
  config = {
    "name": name,
    "dataset": dataset,
    "arch": arch,
    "z_dim": z_dim,
    "steps": steps,
    "seed": seed,
    "batch": batch,
  }
  return {"variables": variables, "config": config, "log": log}


def save(out: dict, directory: str) -> None:
  name = out["config"]["name"]
  with open(os.path.join(directory, f"{name}.msgpack"), "wb") as fh:
    fh.write(flax.serialization.to_bytes(out["variables"]))
  with open(os.path.join(directory, f"{name}.json"), "w") as fh:
    json.dump({**out["config"], "log": out["log"]}, fh, indent=1)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--name", choices=sorted(RECIPES), required=True)
  parser.add_argument("--steps", type=int, default=None)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
  a = parser.parse_args(argv)
  out = train(a.name, steps=a.steps, seed=a.seed)
  save(out, a.out)
  last = out["log"][-1]
  print(f"{a.name}: {last['step']} steps in {last['seconds']:.0f} s, final loss {last['loss']:.4f} -> {a.out}")


if __name__ == "__main__":
  main()
