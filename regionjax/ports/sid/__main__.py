"""`python -m regionjax.ports.sid …` is `python -m regionjax.ports.sid.convert …`."""

import sys

from .convert import main

sys.exit(main())
