"""The benchmarks README quotes still run: each benchmark's ``main`` on tiny
settings (slow: they compile the BigGAN-deep architecture), with its table in
the output. A refactor of the solver that breaks a benchmark fails here."""

import re

import pytest

pytestmark = pytest.mark.slow


def _run(main, argv, capsys):
  main(argv)
  return capsys.readouterr().out


def test_torch_vs_jax_prints_an_interleaved_ratio(capsys):
  from benchmarks import torch_vs_jax

  out = _run(torch_vs_jax.main, ["--channel-width", "8", "--subsets", "2", "--steps", "2", "--repeats", "2"], capsys)
  m = re.search(r"speed-up = ratio of medians ([0-9.]+)×", out)
  assert m and float(m.group(1)) > 0, out
  assert "1 subset(s) per call: ratio of medians" in out, out


def test_memory_table_has_every_variant(capsys):
  from benchmarks import memory

  out = _run(memory.main, ["--channel-width", "8", "--chunk", "2", "--run-subsets", "1", "--steps", "2"], capsys)
  for name in ("float32 decode, remat=False", "bfloat16 decode, remat=nothing", "float32 per-block-remat decode"):
    assert name in out, out


def test_cpu_gap_table(capsys):
  from benchmarks import cpu_gap

  out = _run(cpu_gap.main, ["--channel-width", "8", "--images", "2", "--repeats", "1"], capsys)
  assert "JAX gradient, vmap over 2" in out and "PyTorch forward only, batch 2" in out, out


def test_jax_loop_and_transform(capsys):
  from benchmarks import jax_loop, transform

  out = _run(jax_loop.main, ["--channel-width", "8", "--subsets", "2", "--steps", "2", "--steps-per-call", "1"], capsys)
  assert "speed-up" in out, out
  out = _run(transform.main, ["--min-n", "4", "--max-n", "6", "--repeats", "1"], capsys)
  assert "dense" in out, out


def test_torch_bridge_prints_a_ratio(capsys):
  pytest.importorskip("torch", reason="the bridge runs the face GAN's PyTorch module")
  from benchmarks import torch_bridge

  tiny = ["baseline.num_codes=8", "baseline.batch_size=8", "patches.n=2", "solver.steps=2"]
  out = _run(torch_bridge.main, ["--mode", "solve", "--repeats", "2", *[a for s in tiny for a in ("--set", s)]], capsys)
  m = re.search(r"bridge / port = ratio of medians ([0-9.]+)×", out)
  assert m and float(m.group(1)) > 0, out
  same = re.search(r"max \|u_bridge − u_port\| = ([0-9.e+-]+) ", out)
  assert same and float(same.group(1)) <= 1e-5, out  # both sides solved the same problem
