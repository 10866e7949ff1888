"""Explains an image generator: ``python main.py --config=configs/default.py``.

Every config value can be overridden, e.g. ``--config.solver.steps=500``.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Experiment config (every knob).")


def _parse(argv):
  """absl flag parsing, with one clear line instead of a traceback."""
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # unknown config keys surface as AttributeError/KeyError
    text = " ".join(str(e).replace("\\n", " ").replace("\\'", "").split()).strip("'")
    what = "unknown config key" if isinstance(e, (AttributeError, KeyError)) else "bad command line"
    print(f"error: {what}: {text} (check the --config.* names against the config file)", file=sys.stderr)
    sys.exit(2)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint at INFO
  from ports import registry
  from regionjax import pipeline
  try:
    config = _CONFIG.value
    config.keys()  # the file is loaded lazily: fail here, with one line
  except OSError as e:  # the config file could not be loaded
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    sys.exit(2)
  try:
    pipeline.run(config, registry.build)
  except (ValueError, FileNotFoundError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse)
