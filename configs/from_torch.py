"""The default experiment through the PyTorch bridge: the face DCGAN's own PyTorch module under ``rj.from_torch``.

    python main.py --config=configs/from_torch.py

The generator is ``gan_face_generate.models.Generator`` with the package's
weights (``regionjax/ports/dcgan/torch_face.py``), split at ``main.11`` — the module path
of the Flax port's ``layer3`` (32×32×64, after the fourth block's ReLU) —
with codes z ~ N(0, I) of shape (100, 1, 1): the same numbers as the Flax
port's (100,) codes, so this run explains the same faces as
``configs/default.py`` with the same settings. For your own PyTorch model:

    python main.py --config=configs/from_torch.py --config.model.name=torch:mypackage.mymodule:make \\
        --config.model.layer=blocks.3 --config.model.input_shape='(128,)'

where ``make(model_config)`` returns the ``torch.nn.Module`` in eval mode (or a
generator it built with ``rj.from_torch``); see docs/torch.md.
"""

from configs import default


def get_config():
  c = default.get_config()
  c.workdir = "runs/from_torch"
  c.model.name = (
    "torch:regionjax.ports.dcgan.torch_face:module"  # 'torch:package.module:factory' (regionjax/ports/registry.py)
  )
  c.model.layer = "main.11"  # a module path of module.named_modules(): the split point
  c.model.input_shape = (100, 1, 1)  # one code without the batch axis: the forward pass's input
  return c
