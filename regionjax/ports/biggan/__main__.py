"""`python -m regionjax.ports.biggan …` is `python -m regionjax.ports.biggan.convert …`."""

import sys

from .convert import main

sys.exit(main())
