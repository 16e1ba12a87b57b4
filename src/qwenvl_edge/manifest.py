"""The bundle's manifest as typed records: the one description of the contract between the exporter
(and the bench's synthetic bundles), which build it, and the runtime, which reads it (docs/bundle.md).

``Manifest.from_json`` is the one validator: every field is checked for its type and its range, and a
bad value is a FormatError naming the field, so nothing past ``Bundle.open`` reads an unchecked value.
``to_json`` writes the same shape back. A field added here is a field of the format: change
FORMAT_VERSION (docs/bundle.md, "Versions") when old bundles cannot be read the new way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from typing import Any

from qwenvl_edge._core import FORMAT_VERSION
from qwenvl_edge.errors import FormatError
from qwenvl_edge.limits import MAX_CONTEXT, MAX_DIM

FORMAT = "qwenvl-edge-bundle"


@dataclasses.dataclass(frozen=True)
class FileEntry:
    bytes: int
    sha256: str

    def check(self, where: str) -> None:
        _require(self.bytes >= 0, where, "bytes", "must be >= 0")
        _require(len(self.sha256) == 64 and all(c in "0123456789abcdef" for c in self.sha256), where, "sha256",
                 "must be 64 lowercase hex digits")


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    source: str  # the checkpoint directory's name
    config: dict[str, Any]  # its config.json as read (Hugging Face spelling)


@dataclasses.dataclass(frozen=True)
class TokenizerInfo:
    file: str
    n_ranks: int
    n_vocab: int
    special_ids: dict[str, int]

    def check(self, where: str) -> None:
        _require(0 < self.n_ranks < self.n_vocab <= MAX_DIM, where, "n_ranks", "and n_vocab are out of range")


@dataclasses.dataclass(frozen=True)
class Preprocess:
    version: int  # bumped whenever qwenvl_edge.image changes its output; feature caches key on it
    image_size: int
    resize: str
    rescale: str
    mean: list[float]
    std: list[float]
    channels: str

    def check(self, where: str) -> None:
        _require(14 <= self.image_size <= 4096, where, "image_size", "is out of range")


@dataclasses.dataclass(frozen=True)
class VisionInfo:
    file: str
    data_file: str | None
    variant: str  # "int8" or "fp32"
    opset: int
    input: str
    output: str
    output_shape: list[int | None]
    parity: dict[str, float]  # the graph against the PyTorch reference at export; empty for random weights
    preprocess: Preprocess
    parity_images: int = 0

    def check(self, where: str) -> None:
        _require(self.variant in ("int8", "fp32"), where, "variant", "must be 'int8' or 'fp32'")


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """What the native decoder is built with (qwenvl_edge._core.DECODER_CONFIG_KEYS spells the same)."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    head_dim: int
    ffn_dim: int
    rms_eps: float
    rope_base: float
    seq_length: int  # the length dynamic NTK and logn attention are relative to
    dynamic_ntk: bool
    logn_attn: bool
    max_context: int  # the KV cache's capacity

    def check(self, where: str) -> None:
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "head_dim", "ffn_dim", "seq_length"):
            _require(0 < getattr(self, name) <= MAX_DIM, where, name, f"must be in 1..{MAX_DIM}")
        _require(self.num_heads * self.head_dim == self.hidden_size, where, "num_heads",
                 "x head_dim must equal hidden_size")
        _require(0 < self.max_context <= MAX_CONTEXT, where, "max_context", f"must be in 1..{MAX_CONTEXT}")
        _require(0 < self.rms_eps < 1 and self.rope_base > 1, where, "rms_eps", "or rope_base is out of range")

    def as_dict(self) -> dict[str, Any]:
        """The keyword form the native decoder takes."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DecoderInfo:
    file: str
    config: DecoderConfig
    lm_head: str  # "f16" or "int8"
    quantization: dict[str, Any]  # how the 4-bit weights were made (method, group size, calibration...)

    def check(self, where: str) -> None:
        _require(self.lm_head in ("f16", "int8"), where, "lm_head", "must be 'f16' or 'int8'")


@dataclasses.dataclass(frozen=True)
class Generation:
    """The checkpoint's generation defaults and the stop words of its prompt format."""

    chat_format: str  # "chatml" (Qwen-VL-Chat) or "raw" (Qwen-VL)
    do_sample: bool
    top_p: float
    top_k: int
    temperature: float
    repetition_penalty: float
    max_new_tokens: int
    max_window_size: int
    eos_token_id: int
    pad_token_id: int
    stop_words: list[list[int]]
    system: str

    def check(self, where: str) -> None:
        _require(self.chat_format in ("chatml", "raw"), where, "chat_format", "must be 'chatml' or 'raw'")
        _require(0 <= self.top_p <= 1 and self.top_k >= 0 and self.temperature >= 0, where, "top_p",
                 "top_k or temperature is out of range")
        _require(0 < self.max_new_tokens <= MAX_CONTEXT and 0 < self.max_window_size <= MAX_CONTEXT, where,
                 "max_new_tokens", "or max_window_size is out of range")


@dataclasses.dataclass(frozen=True)
class Manifest:
    created_by: str
    model: ModelInfo
    tokenizer: TokenizerInfo
    vision: VisionInfo
    decoder: DecoderInfo
    generation: Generation
    files: dict[str, FileEntry] = dataclasses.field(default_factory=dict)  # filled in by the bundle writer
    export: dict[str, Any] | None = None  # the export's own record: seconds per step, per-layer statistics
    digest: str | None = None  # sha256 of the rest of the manifest (Manifest.sealed), checked by verify
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for optional in ("export", "digest"):
            if out[optional] is None:
                del out[optional]
        head = {"format": out.pop("format"), "format_version": out.pop("format_version")}
        return {**head, **out}

    def content_digest(self) -> str:
        """sha256 of the manifest's JSON without its digest (keys sorted, compact)."""
        body = {k: v for k, v in self.to_json().items() if k != "digest"}
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def sealed(self) -> "Manifest":
        """This manifest with its digest set, so that verify covers the manifest itself too."""
        return dataclasses.replace(self, digest=self.content_digest())

    @classmethod
    def from_json(cls, raw: Any, where: str) -> "Manifest":
        """The checked manifest; FormatError naming ``where`` and the first bad field."""
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise FormatError(f"{where}: not a qwenvl-edge bundle manifest")
        if raw.get("format_version") != FORMAT_VERSION:
            raise FormatError(f"{where}: bundle format version {raw.get('format_version')!r}; this qwenvl-edge reads "
                              f"version {FORMAT_VERSION} (re-export the model with this version)")
        manifest = _read(cls, raw, where, "")
        for section in ("vision", "decoder", "tokenizer"):
            name = getattr(manifest, section).file
            if name not in manifest.files:
                raise FormatError(f"{where}: {section}.file = {name!r} is not among the listed files")
        return manifest


def _require(ok: bool, where: str, field: str, message: str) -> None:
    if not ok:
        raise FormatError(f"{where}: manifest field {field!r} {message}")


def _bad(where: str, path: str, message: str) -> FormatError:
    return FormatError(f"{where}: " + (f"manifest field {path!r} " if path else "the manifest ") + message)


def _read(kind: Any, value: Any, where: str, path: str) -> Any:
    """``value`` checked against the type ``kind`` (dataclasses field by field)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise _bad(where, path, "must be an object")
        hints = typing.get_type_hints(kind)
        fields = {}
        for f in dataclasses.fields(kind):
            sub = f"{path}.{f.name}" if path else f.name
            if f.name not in value:
                if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                    continue
                raise FormatError(f"{where}: the manifest lacks {sub!r}")
            fields[f.name] = _read(hints[f.name], value[f.name], where, sub)
        record = typing.cast(Any, kind)(**fields)
        if hasattr(record, "check"):
            record.check(f"{where} ({path or 'manifest'})")
        return record
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _read(option, value, where, path)
            except FormatError:
                continue
        raise _bad(where, path, f"has a value of the wrong type ({value!r:.60})")
    if kind is type(None):
        if value is not None:
            raise _bad(where, path, "must be null")
        return None
    if origin is list:
        if not isinstance(value, list):
            raise _bad(where, path, "must be a list")
        return [_read(args[0], v, where, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _bad(where, path, "must be an object")
        return {k: _read(args[1], v, where, f"{path}.{k}") for k, v in value.items()}
    if kind is Any:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise _bad(where, path, f"must be {kind.__name__}, not {type(value).__name__}")
    return value
