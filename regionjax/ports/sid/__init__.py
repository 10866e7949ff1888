"""SiD's one-step generator (EDM DDPM++ U-Net, FFHQ 64×64) in Flax, read from
the released NVlabs pickle without its authors' code.

    python -m regionjax.ports.sid.convert --pickle network-snapshot-1.200000-498176.pkl --out DIR
    import regionjax.ports.sid as sid
    gen = sid.load("DIR")
    codes = gen.sample_codes(jax.random.PRNGKey(0), 4)
    x = gen.generate(codes)                          # (4, 64, 64, 3)
    f = gen.encode(codes, "dec/32x32_up"); x2 = gen.decode(codes, "dec/32x32_up", f)
"""

from .config import RELEASED_CONFIGS, SIGMA_INIT, SiDConfig
from .generator import SiDGenerator
from .model import EDMSongUNet, precond

# The converter's names load lazily, so that `python -m regionjax.ports.sid.convert`
# does not find its module already imported by the package.
_CONVERT_NAMES = (
  "RELEASE_HINT",
  "RELEASED_FILE",
  "checkpoint_help",
  "load",
  "read_pickle",
  "save",
  "state_dict_to_variables",
)


def __getattr__(name):
  if name in _CONVERT_NAMES:
    from . import convert  # noqa: PLC0415

    return getattr(convert, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EDMSongUNet", "RELEASED_CONFIGS", "SIGMA_INIT", "SiDConfig", "SiDGenerator", "precond", *_CONVERT_NAMES]
