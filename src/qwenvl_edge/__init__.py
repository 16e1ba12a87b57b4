"""qwenvl-edge: run Qwen-VL (Qwen-VL, Qwen-VL-Chat) fast on laptop CPUs.

The runtime needs numpy, onnxruntime, pillow, tiktoken and the native core; never torch.
The exporters (``qwenvl_edge.export``) need the ``export`` extra.
"""

from qwenvl_edge._core import FORMAT_VERSION, __version__, cpu_info
from qwenvl_edge.boxes import Box, Quad
from qwenvl_edge.chat import Chat
from qwenvl_edge.errors import FormatError
from qwenvl_edge.image import AsStored
from qwenvl_edge.model import Model, load
from qwenvl_edge.records import Timings
from qwenvl_edge.reply import Reply, ReplyStream

__all__ = ["FORMAT_VERSION", "AsStored", "Box", "Chat", "FormatError", "Model", "Quad", "Reply", "ReplyStream",
           "Timings",
           "__version__", "cpu_info", "load"]
