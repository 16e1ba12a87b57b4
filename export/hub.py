"""A checkpoint named by its Hugging Face Hub id (``Qwen/Qwen-VL-Chat-Int4``): fetch only the files the
exporter reads into the Hub's own cache (huggingface_hub, its progress bars, ``HF_HUB_OFFLINE=1`` and
``HF_HOME`` / ``HF_HUB_CACHE`` honoured), then export from that snapshot like from any directory.

What is fetched is named file by file, never by a wildcard: the configs, the tokenizer file, the weight
index and the weight files that index lists. A repository's Python files (its remote code) are never
downloaded, let alone run.
"""

from __future__ import annotations

import json
import os
import re

from qwenvl_edge.errors import FormatError

from .checkpoint import BIN_INDEX, BIN_SINGLE, QUANTIZE_CONFIGS, SAFETENSORS_INDEX, SAFETENSORS_SINGLE
from .config import CONFIG_FILE
from .manifest_builder import GENERATION_FILE, VOCAB_FILE

# Everything the exporter reads besides the weights; absent ones (quantize_config.json of a float
# release, say) are simply not there.
METADATA = (CONFIG_FILE, GENERATION_FILE, VOCAB_FILE, "tokenizer_config.json", *QUANTIZE_CONFIGS,
            SAFETENSORS_INDEX, BIN_INDEX)
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


def is_repo_id(src: str) -> bool:
    """``owner/name`` that is not a path on this machine (a local directory always wins)."""
    return not os.path.exists(src) and _REPO_ID.fullmatch(src) is not None


def weight_files(snapshot: str) -> list[str]:
    """The weight files to fetch, from the index the snapshot holds (safetensors preferred, as the
    checkpoint reader prefers it), or the single-file names when there is no index."""
    for index in (SAFETENSORS_INDEX, BIN_INDEX):
        path = os.path.join(snapshot, index)
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as f:
                    files = sorted(set(json.load(f)["weight_map"].values()))
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
                raise FormatError(f"{path}: not a valid index ('weight_map' expected)") from e
            bad = [name for name in files if not isinstance(name, str) or "/" in name or not
                   name.endswith((".safetensors", ".bin"))]
            if bad:
                raise FormatError(f"{path}: the index names {bad[0]!r}, not a weight file beside it")
            return files
    return [SAFETENSORS_SINGLE, BIN_SINGLE]


def fetch(repo_id: str, revision: str | None = None, progress: bool = True) -> tuple[str, str]:
    """Download (or find in the cache) what the exporter reads of ``repo_id``; returns the snapshot
    directory and a name for the manifest (``owner/name@commit``)."""
    try:
        import huggingface_hub
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
    except ImportError:
        raise SystemExit("exporting by Hub id needs huggingface_hub: pip install 'qwenvl-edge[export]'") from None
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError, \
        RevisionNotFoundError

    (enable_progress_bars if progress else disable_progress_bars)()

    def download(files: list[str] | tuple[str, ...]) -> str:
        return huggingface_hub.snapshot_download(repo_id, revision=revision, allow_patterns=list(files))

    where = f"{repo_id}" + (f" at revision {revision}" if revision else "")
    try:
        snapshot = download(METADATA)
        if not os.path.isfile(os.path.join(snapshot, CONFIG_FILE)):
            raise FormatError(f"{where}: no {CONFIG_FILE}; is this a Qwen-VL checkpoint repository?")
        download(weight_files(snapshot))
    except RepositoryNotFoundError:
        raise FormatError(f"{repo_id}: no such repository on the Hugging Face Hub (or it needs a token: "
                          "`hf auth login`)") from None
    except RevisionNotFoundError:
        raise FormatError(f"{where}: no such revision") from None
    except LocalEntryNotFoundError:
        raise FormatError(f"{where}: not in the Hugging Face cache and the Hub cannot be reached (offline?); "
                          "run once with a network connection") from None
    except HfHubHTTPError as e:
        raise FormatError(f"{where}: the Hub refused the download ({str(e).splitlines()[0]})") from None
    return snapshot, f"{repo_id}@{os.path.basename(snapshot)}"
