"""`python -m ports.sid …` is `python -m ports.sid.convert …`."""

import sys

from .convert import main

sys.exit(main())
