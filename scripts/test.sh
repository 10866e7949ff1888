#!/usr/bin/env bash
# Installs regionjax with its test extra and runs the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e '.[test]'
# 8 virtual CPU devices so the sharding tests run on one machine.
export XLA_FLAGS="${XLA_FLAGS:---xla_force_host_platform_device_count=8}"
python3 -m pytest -q "$@"
