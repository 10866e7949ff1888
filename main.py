"""Explains an image generator: ``python main.py --config=configs/default.py``.

Every config value can be overridden, e.g. ``--config.solver.steps=500``;
``--dry_run`` only checks the config and exits.
Exit codes: 0 done, 2 bad input (one ``error:`` line), 128 + signal after
SIGTERM/SIGINT (rerun the same command to resume).
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from regionjax import cli

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py")
sys.argv = cli.with_config_arg(sys.argv, DEFAULT_CONFIG)
if cli.wants_help(sys.argv):  # absl prints this module's docstring: every knob with its default and help
  __doc__ = cli.help_text(sys.argv, __doc__)
_CONFIG = config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Experiment config (every knob).")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Only check the config (every knob, input files, the workdir); exit.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint at INFO
  from regionjax.ports import registry

  sys.exit(cli.run(lambda: _CONFIG.value, registry.build, dry_run=_DRY_RUN.value))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
