"""Exceptions raised by qwenvl-edge.

Caller mistakes (a bad argument, an out-of-range id) raise ``ValueError``; problems with files on disk
(a checkpoint or bundle that is missing pieces, has wrong shapes or fails a check) raise ``FormatError``,
whose message names the file or tensor at fault.
"""


class FormatError(ValueError):
    """A checkpoint, bundle or vocabulary file is missing, malformed or inconsistent."""
