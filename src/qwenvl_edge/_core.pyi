from typing import Any

__version__: str
FORMAT_VERSION: int

def cpu_info() -> dict[str, Any]: ...
