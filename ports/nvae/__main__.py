"""``python -m ports.nvae`` is the converter (``python -m ports.nvae.convert``)."""

import sys

from .convert import main

sys.exit(main())
