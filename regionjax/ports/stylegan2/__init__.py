"""StyleGAN2-ADA (NVlabs/stylegan2-ada-pytorch; AFHQ cat 512×512) in Flax, read
from the released NVlabs pickle without its authors' code.

    python -m regionjax.ports.stylegan2.convert --pickle afhqcat.pkl --out DIR
    import regionjax.ports.stylegan2 as sg2
    gen = sg2.load("DIR", truncation=0.7, truncation_cutoff=8)
    codes = gen.sample_codes(jax.random.PRNGKey(0), 4)
    x = gen.generate(codes)                          # (4, 512, 512, 3)
    f = gen.encode(codes, "b32"); x2 = gen.decode(codes, "b32", f)
"""

from regionjax.ports import checkpoint

from .config import RELEASED_CONFIGS, RELEASED_INIT_KWARGS, StyleGAN2Config
from .generator import StyleGAN2Generator
from .model import NOISE_MODES, StyleGAN2

# The converter's names load on first use (regionjax.ports.checkpoint.lazy_converter).
_CONVERT_NAMES = (
  "RELEASE_HINT",
  "RELEASED_FILE",
  "checkpoint_help",
  "load",
  "read_pickle",
  "save",
  "state_dict_to_variables",
)

__getattr__ = checkpoint.lazy_converter(__name__, _CONVERT_NAMES)


__all__ = [
  "NOISE_MODES",
  "RELEASED_CONFIGS",
  "RELEASED_INIT_KWARGS",
  "StyleGAN2",
  "StyleGAN2Config",
  "StyleGAN2Generator",
  *_CONVERT_NAMES,
]
