"""The bounds on sizes that come from outside (a manifest, an option, a caller), in one place: far above
any real use, far below what would overflow a size computation or exhaust memory."""

MAX_CONTEXT = 1 << 20  # KV-cache positions; the model uses 8192
MAX_DIM = 1 << 20  # any model dimension in a manifest
MAX_THREADS = 256  # more is never faster on a laptop; thousands of threads exhaust memory
# The local server's defaults (`qwenvl-edge serve`; docs/server.md): a request body, the images in one
# request, one image's encoded bytes (its pixels are bounded by image.MAX_PIXELS).
MAX_REQUEST_BYTES = 48 << 20
MAX_REQUEST_IMAGES = 8
MAX_IMAGE_BYTES = 20 << 20
