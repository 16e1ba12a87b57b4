"""The bounds on sizes that come from outside (a manifest, an option, a caller), in one place: far above
any real use, far below what would overflow a size computation or exhaust memory."""

MAX_CONTEXT = 1 << 20  # KV-cache positions; the model uses 8192
MAX_DIM = 1 << 20  # any model dimension in a manifest
MAX_THREADS = 256  # more is never faster on a laptop; thousands of threads exhaust memory
