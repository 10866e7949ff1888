"""NVAE's generation path (CelebA 64×64) in JAX, read from the released ``checkpoint.pt`` without its
authors' code.

    python -m regionjax.ports.nvae.convert --checkpoint checkpoint.pt --out DIR
    import regionjax.ports.nvae as nvae
    gen = nvae.load("DIR")
    codes = gen.sample_codes(jax.random.PRNGKey(0), 4)   # {'eps': (ε of every latent group), 't': temperature}
    x = gen.generate(codes)                              # (4, 64, 64, 3): DiscMixLogistic.mean() in [-1, 1]
    f = gen.encode(codes, "layer44"); x2 = gen.decode(codes, "layer44", f)
"""

from .config import CELEBA64, NVAEConfig
from .generator import NVAEGenerator, load

# The converter's names load lazily, so that `python -m regionjax.ports.nvae.convert`
# does not find its module already imported by the package.
_CONVERT_NAMES = (
  "RELEASE_HINT",
  "RELEASED_FILE",
  "checkpoint_help",
  "read_checkpoint",
  "save",
  "state_dict_to_variables",
)


def __getattr__(name):
  if name in _CONVERT_NAMES:
    from . import convert  # noqa: PLC0415

    return getattr(convert, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CELEBA64", "NVAEConfig", "NVAEGenerator", "load", *_CONVERT_NAMES]
