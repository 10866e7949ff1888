#!/usr/bin/env bash
# Installs regionjax with its test extra and runs the default (fast) test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the slow tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -c constraints.txt -e '.[test]'
# The face GAN's PyTorch module for tests/test_torch_bridge.py, without the requirements of the package's
# scripts (torchvision, wandb[media] and 26 more, an older pillow): docs/torch.md §Installing.
python3 -m pip install -q --no-deps gan-face-generate==1.1.1
# 8 virtual CPU devices so the sharding tests run on one machine.
export XLA_FLAGS="${XLA_FLAGS:---xla_force_host_platform_device_count=8}"
if [ "$#" -eq 0 ]; then set -- -m "not slow"; fi
python3 -m pytest -q "$@"
