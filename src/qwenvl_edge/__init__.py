"""qwenvl-edge: run Qwen-VL (Qwen-VL, Qwen-VL-Chat) fast on laptop CPUs.

The runtime needs numpy, onnxruntime, pillow, tiktoken and the native core; never torch.
The exporters (``qwenvl_edge.export``) need the ``export`` extra.
"""

from qwenvl_edge._core import FORMAT_VERSION, __version__, cpu_info
from qwenvl_edge.errors import FormatError
from qwenvl_edge.model import Model, load

__all__ = ["FORMAT_VERSION", "FormatError", "Model", "__version__", "cpu_info", "load"]
