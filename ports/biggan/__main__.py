"""`python -m ports.biggan …` is `python -m ports.biggan.convert …`."""

import sys

from .convert import main

sys.exit(main())
