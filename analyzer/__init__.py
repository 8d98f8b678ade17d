"""callaudit: where did a video call's traffic go, and did its key exchange leave the expected jurisdiction?"""

import os

__version__ = "0.1.0"

# pandas keeps text columns in Arrow memory; Arrow's default pool (mimalloc) keeps freed blocks, so every
# intermediate frame of a 100k-flow audit stayed in the peak (~440 MB vs ~370 MB with the system allocator).
# Set before pandas loads pyarrow; a user's own choice wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
