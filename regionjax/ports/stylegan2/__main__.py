"""`python -m regionjax.ports.stylegan2 …` is `python -m regionjax.ports.stylegan2.convert …`."""

import sys

from .convert import main

sys.exit(main())
