"""canvas-export: asynchronous export of Canvas LMS sections and section rosters to Parquet."""

import os

__version__ = "0.1.0"

# Arrow's allocator: the system's malloc unless the user chose one. pyarrow reads this variable once, when it
# is first imported, so it is set here, before any module of the package imports pyarrow. Why: pyarrow's
# default (mimalloc) keeps freed memory resident for about a second, and typing pages frees about three times
# their size as it goes, so peak RSS followed the churn rather than the data (exporter/arrow_thread.py).
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
