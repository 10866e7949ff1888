"""BigGAN-deep in Flax, loaded from the released pytorch-pretrained-biggan checkpoints.

    import regionjax.ports.biggan as biggan
    gen = biggan.load_torch("pytorch_model.bin", "config.json")   # needs torch
    gen = biggan.load("checkpoints/biggan-deep-128")               # no torch
    codes = gen.sample_codes(jax.random.PRNGKey(0), 4, classes=[1, 2, 3, 4])
    x = gen.generate(codes)                     # (4, 128, 128, 3) in [-1, 1]
    f = gen.encode(codes, "layer6"); x2 = gen.decode(codes, "layer6", f)

Convert once: `python -m regionjax.ports.biggan.convert --weights pytorch_model.bin
--config config.json --out DIR`.
"""

from regionjax.ports import checkpoint

from .config import RELEASED_CONFIGS, BigGANConfig
from .model import BigGANDeep, StatsPosition, stats_position, tap_index
from .generator import BigGANGenerator, truncated_noise

# The converter's names load on first use (regionjax.ports.checkpoint.lazy_converter).
_CONVERT_NAMES = (
  "RELEASE_HINT",
  "checkpoint_help",
  "expected_state_dict_shapes",
  "load",
  "load_torch",
  "read_torch_state_dict",
  "save",
  "state_dict_to_variables",
)

__getattr__ = checkpoint.lazy_converter(__name__, _CONVERT_NAMES)


__all__ = [
  "BigGANConfig",
  "BigGANDeep",
  "BigGANGenerator",
  "RELEASED_CONFIGS",
  "StatsPosition",
  "stats_position",
  "tap_index",
  "truncated_noise",
  *_CONVERT_NAMES,
]
