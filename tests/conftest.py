"""Every test session keeps its own cache (``cache.dir = 'auto'`` reads ``$XDG_CACHE_HOME``): runs in tests and
the ``main.py`` subprocesses they start never read or write the user's ``~/.cache/regionjax``."""

import os
import tempfile

if "REGIONJAX_TEST_KEEP_CACHE" not in os.environ:
  os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="regionjax-test-cache-")
