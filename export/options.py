"""The export command's options and its command-line arguments. Imports nothing heavy, so that the
command line parses (and ``qwenvl-edge -h`` answers) without loading torch."""

from __future__ import annotations

import argparse
import dataclasses

from qwenvl_edge.limits import MAX_CONTEXT, MAX_THREADS


@dataclasses.dataclass
class ExportOptions:
    vision: str = "int8"  # "int8" (dynamic quantization) or "fp32"
    method: str = "gptq"  # for float checkpoints: "gptq" or "rtn"
    sym: bool = True
    act_order: bool = False
    damp_percent: float = 0.01
    calibration: str | None = None  # a user file; None = the built-in set
    calibration_tokens: int = 1024  # per sample
    lm_head: str = "f16"
    max_context: int = 8192
    overwrite: bool = False
    save_gptq: str | None = None  # also write the quantized checkpoint in the AutoGPTQ layout here
    threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        """Every value checked here, before any work, each error naming the command-line flag."""
        for flag, value, allowed in (("--vision", self.vision, ("int8", "fp32")), ("--method", self.method, ("gptq", "rtn")),
                                     ("--lm-head", self.lm_head, ("f16", "int8"))):
            if value not in allowed:
                raise ValueError(f"{flag} must be one of {', '.join(allowed)}, not {value!r}")
        for flag, value, low, high in (("--max-context", self.max_context, 1, MAX_CONTEXT),
                                       ("--calibration-tokens", self.calibration_tokens, 16, 1 << 16),
                                       ("--threads", self.threads or 1, 1, MAX_THREADS)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{flag} must be a whole number in {low}..{high}, not {value!r}")
        if not 0 < self.damp_percent < 1:
            raise ValueError(f"--damp must be in (0, 1), not {self.damp_percent!r}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = ExportOptions()
    p.add_argument("src", help="a Qwen-VL / Qwen-VL-Chat / Qwen-VL-Chat-Int4 checkpoint: a directory or a Hugging "
                               "Face Hub id such as Qwen/Qwen-VL-Chat-Int4 (only the files the exporter reads are "
                               "downloaded, into the Hub's cache)")
    p.add_argument("-o", "--output", help="the bundle directory to write (default for a Hub id: the bundle folder "
                                          "of `qwenvl-edge list`, named after the repository)")
    p.add_argument("--revision", help="with a Hub id: a branch, tag or commit (default: main)")
    p.add_argument("--vision", choices=("int8", "fp32"), default=d.vision,
                   help="vision encoder weights: int8 (dynamic quantization, default) or fp32")
    p.add_argument("--method", choices=("gptq", "rtn"), default=d.method,
                   help="for float checkpoints: GPTQ on calibration data (default) or round-to-nearest")
    p.add_argument("--asym", action="store_true", help="asymmetric zero points (default: symmetric, as released)")
    p.add_argument("--act-order", action="store_true", help="GPTQ act-order (desc_act)")
    p.add_argument("--damp", type=float, default=d.damp_percent, help="GPTQ dampening, fraction of mean diag(H)")
    p.add_argument("--calibration", help="calibration file: JSON lines {\"text\": ...} or text; <img>PATH</img> spans")
    p.add_argument("--calibration-tokens", type=int, default=d.calibration_tokens, help="max tokens per sample")
    p.add_argument("--lm-head", choices=("f16", "int8"), default=d.lm_head, help="lm_head precision")
    p.add_argument("--max-context", type=int, default=d.max_context, help="the decoder's KV capacity")
    p.add_argument("--threads", type=int, help="threads for the vision encoder during calibration")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    p.add_argument("--save-gptq", metavar="DIR", help="float checkpoints: also write the quantized model as a "
                   "Hugging Face checkpoint in the AutoGPTQ layout (like Qwen-VL-Chat-Int4)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def from_arguments(args: argparse.Namespace) -> ExportOptions:
    return ExportOptions(vision=args.vision, method=args.method, sym=not args.asym, act_order=args.act_order,
                         damp_percent=args.damp, calibration=args.calibration,
                         calibration_tokens=args.calibration_tokens, lm_head=args.lm_head,
                         max_context=args.max_context, overwrite=args.overwrite, save_gptq=args.save_gptq,
                         threads=args.threads,
                         progress=not args.quiet)
