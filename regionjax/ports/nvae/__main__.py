"""``python -m regionjax.ports.nvae`` is the converter (``python -m regionjax.ports.nvae.convert``)."""

import sys

from .convert import main

sys.exit(main())
