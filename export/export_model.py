"""``qwenvl-edge export SRC -o BUNDLE``: a Hugging Face checkpoint directory -> a bundle.

Steps: read and check the checkpoint (config.json, qwen.tiktoken, generation_config.json, the weight
index); export the vision encoder + adapter to ONNX and check it against the PyTorch reference; make
the decoder's 4-bit weights (import a GPTQ checkpoint as it is, or quantize a float one: GPTQ on
calibration activations, streamed block by block, or round-to-nearest) and write them in the native
core's layout; copy the vocabulary; write the manifest last and move the bundle in place atomically.
Never runs the checkpoint's code, never touches the network.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

import numpy as np

from qwenvl_edge.manifest import DecoderInfo, Manifest

from . import calibration, manifest_builder
from .bundle_writer import BundleWriter
from .checkpoint import CheckpointReader, gptq_settings
from .decoder_file import DecoderFileWriter, decoder_config, decoder_tensors
from .gptq_checkpoint import GptqCheckpointWriter
from .manifest_builder import VOCAB_FILE, read_tokenizer
from .options import ExportOptions
from .progress import bar as progress_bar
from .quantize_decoder import quantize_decoder
from .vision_onnx import export_vision

DECODER_FILE = "decoder.qvw"


def export(src: str | os.PathLike, out: str | os.PathLike, options: ExportOptions | None = None,
           source: str | None = None) -> Manifest:
    """Export and return the manifest written (with the export's times and per-layer statistics).
    ``source``: the checkpoint's name in the manifest (default: the directory's name)."""
    o = options or ExportOptions()  # its values are checked when it is made
    started = time.perf_counter()
    src = os.fspath(src)
    reader = CheckpointReader(src)
    cfg = reader.config
    if o.save_gptq and reader.quantization is not None:
        raise ValueError("--save-gptq writes a quantized copy of a float checkpoint; this one is already GPTQ")
    tokenizer = read_tokenizer(src, cfg)
    generation = manifest_builder.generation_defaults(manifest_builder.read_generation_config(src), tokenizer,
                                                      os.path.join(src, manifest_builder.GENERATION_FILE))
    calibration_samples = None
    if reader.quantization is None and o.method == "gptq":  # read the user's file before hours of work
        calibration_samples = (calibration.read_samples(o.calibration) if o.calibration
                               else calibration.builtin_samples(generation.chat_format))
    times: dict[str, float] = {}

    with BundleWriter(out, overwrite=o.overwrite) as bundle:
        t = time.perf_counter()
        vision = export_vision(reader, bundle.staging, manifest_builder.preprocess(cfg), variant=o.vision,
                               progress=o.progress)
        times["vision"] = time.perf_counter() - t

        t = time.perf_counter()
        quantization, layer_stats = _write_decoder(reader, bundle.path(DECODER_FILE), o, tokenizer,
                                                   calibration_samples, bundle.path(vision.file))
        times["decoder"] = time.perf_counter() - t
        shutil.copyfile(os.path.join(src, VOCAB_FILE), bundle.path(VOCAB_FILE))

        t = time.perf_counter()
        total = sum(os.path.getsize(bundle.path(n)) for n in os.listdir(bundle.staging))
        with progress_bar(total, "hashing", o.progress, unit="B", unit_scale=True) as bar:
            decoder = DecoderInfo(file=DECODER_FILE, config=decoder_config(cfg, o.max_context), lm_head=o.lm_head,
                                  quantization=quantization)
            record = {"seconds": {**times, "total": time.perf_counter() - started}, "layers": layer_stats}
            manifest = bundle.finish(manifest_builder.build(cfg, tokenizer, generation, vision, decoder,
                                                            source=source or os.path.basename(os.path.abspath(src)),
                                                            export=record), progress=bar.update)
        times["hash"] = time.perf_counter() - t
    return manifest


def _write_decoder(reader: CheckpointReader, path: str, o: ExportOptions, tokenizer, samples,
                   vision_path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Write the decoder file; returns the manifest's quantization record and per-layer statistics."""
    cfg = reader.config
    layer_stats: list[dict[str, Any]] = []
    blocks, gptq_dir = None, None
    if reader.quantization is not None:
        group_size, v1 = gptq_settings(reader.quantization)
        q = reader.quantization
        quantization = {"method": "imported", "source_format": "gptq" if v1 else "gptq_v2", "bits": 4,
                        "group_size": group_size, "sym": bool(q.get("sym", True)),
                        "desc_act": bool(q.get("desc_act", False)), "damp_percent": q.get("damp_percent")}
    else:
        quantization = {"method": o.method, "bits": 4, "group_size": 128, "sym": o.sym,
                        "desc_act": o.act_order and o.method == "gptq"}
        inputs = None
        if o.method == "gptq":
            from qwenvl_edge.vision import VisionEncoder

            # unpacked: its weights stay file-backed, 1.9 GB less anonymous memory at ViT-bigG
            encoder = VisionEncoder(vision_path, threads=o.threads, prepack=False)
            wte = reader.get("transformer.wte.weight")
            inputs = calibration.embeddings(samples, tokenizer, wte, encoder.encode, cfg.visual.image_size,
                                            o.calibration_tokens)
            del wte, encoder
            reader.release()
            quantization.update(damp_percent=o.damp_percent, calibration={
                "source": os.path.basename(o.calibration) if o.calibration else "built-in",
                "samples": len(inputs), "tokens": int(sum(x.shape[1] for x in inputs))})
        blocks = _collect_stats(quantize_decoder(reader, inputs, method=o.method, sym=o.sym, act_order=o.act_order,
                                                 damp_percent=o.damp_percent, progress=o.progress), layer_stats)
        if o.save_gptq:
            gptq_dir = GptqCheckpointWriter(o.save_gptq, reader, sym=o.sym, act_order=quantization["desc_act"],
                                            damp_percent=o.damp_percent)
            blocks = _saved(blocks, gptq_dir)
    with DecoderFileWriter(path, decoder_config(cfg, o.max_context), o.lm_head) as writer:
        for name, array in decoder_tensors(reader, o.lm_head, blocks):
            writer.add(name, array)
    if gptq_dir is not None:
        gptq_dir.finish()
    return quantization, layer_stats


def _collect_stats(results, stats: list[dict[str, Any]]):
    for block in results:
        stats.append(block.stats)
        yield block.linears


def _saved(blocks, writer: GptqCheckpointWriter):
    """Pass the blocks through, writing each into the AutoGPTQ checkpoint as it comes."""
    for i, linears in enumerate(blocks):
        writer.add_block(i, linears)
        yield linears


def summary(manifest: Manifest, out: str) -> str:
    files = manifest.files
    lines = [f"bundle {out}: {sum(f.bytes for f in files.values()) / 1e6:.1f} MB"]
    lines += [f"  {name:<24} {entry.bytes / 1e6:10.1f} MB" for name, entry in files.items()]
    vision = manifest.vision
    lines.append(f"vision: {vision.variant}, " + ", ".join(f"{k} {v:.3g}" for k, v in vision.parity.items()))
    q = manifest.decoder.quantization
    line = f"decoder: 4-bit {q['method']}, group {q['group_size']}, {'sym' if q['sym'] else 'asym'}"
    line += ", act-order" if q.get("desc_act") else ""
    if "calibration" in q:
        c = q["calibration"]
        line += f"; calibration {c['source']}: {c['samples']} samples, {c['tokens']} tokens"
    lines.append(line)
    record = manifest.export or {"layers": [], "seconds": {}}
    ratios = [layer["gptq_over_rtn"] for block in record["layers"] for layer in block.get("layers", [])]
    if ratios:
        lines.append(f"GPTQ output error / round-to-nearest, per layer: median {np.median(ratios):.3f}, "
                     f"max {max(ratios):.3f} over {len(ratios)} layers")
    seconds = record["seconds"]
    lines.append("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    return "\n".join(lines)
