"""SiD's one-step generator (EDM DDPM++ U-Net, FFHQ 64×64) in Flax, read from
the released NVlabs pickle without its authors' code.

    python -m regionjax.ports.sid.convert --pickle network-snapshot-1.200000-498176.pkl --out DIR
    import regionjax.ports.sid as sid
    gen = sid.load("DIR")
    codes = gen.sample_codes(jax.random.PRNGKey(0), 4)
    x = gen.generate(codes)                          # (4, 64, 64, 3)
    f = gen.encode(codes, "dec/32x32_up"); x2 = gen.decode(codes, "dec/32x32_up", f)
"""

from regionjax.ports import checkpoint

from .config import RELEASED_CONFIGS, SIGMA_INIT, SiDConfig
from .generator import SiDGenerator
from .model import EDMSongUNet, precond

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


__all__ = ["EDMSongUNet", "RELEASED_CONFIGS", "SIGMA_INIT", "SiDConfig", "SiDGenerator", "precond", *_CONVERT_NAMES]
