"""Write the GPTQ result as a Hugging Face checkpoint in the AutoGPTQ layout (``--save-gptq DIR``).

The directory looks like Qwen-VL-Chat-Int4: config.json with ``quantization_config``,
quantize_config.json, the five linears of every block as qweight/qzeros/scales/g_idx/bias (a zero bias
on the four bias-free ones, as AutoGPTQ writes), everything else in float16, sharded safetensors with
``model.safetensors.index.json``, and the tokenizer and generation files copied. Symmetric results are
written as ``gptq`` (v1: zeros stored minus one, word-wise), which auto-gptq, GPTQModel, transformers
and vLLM read; asymmetric ones as ``gptq_v2`` (zeros as they are), because v1 cannot store a zero of 0
for readers that decode it nibble by nibble (docs/model.md 8.5, 8.8). One shard per block is written as
soon as the block is quantized, so this streams like the bundle does; the directory is written as
``DIR.partial`` and renamed to DIR when complete.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import torch
from safetensors.torch import save_file

from . import gptq_format, names
from .checkpoint import CheckpointReader

COPIED = ("qwen.tiktoken", "generation_config.json", "tokenizer_config.json")


class GptqCheckpointWriter:
    def __init__(self, out: str, reader: CheckpointReader, *, sym: bool, act_order: bool, damp_percent: float,
                 group_size: int = 128):
        if os.path.exists(out):
            raise FileExistsError(f"{out} already exists")
        self.final, self.out = out, out + ".partial"  # renamed when complete
        shutil.rmtree(self.out, ignore_errors=True)
        os.makedirs(self.out)
        self.reader, self.v1 = reader, sym
        cfg = reader.config
        self.shards = cfg.num_hidden_layers + 1
        self.quant = {"bits": 4, "group_size": group_size, "damp_percent": damp_percent, "desc_act": act_order,
                      "static_groups": False, "sym": sym, "true_sequential": True, "model_name_or_path": None,
                      "model_file_base_name": "model", "quant_method": "gptq"}
        if not sym:
            self.quant["checkpoint_format"] = "gptq_v2"
        self.weight_map: dict[str, str] = {}
        self.total = 0

    def _save(self, index: int, tensors: dict[str, torch.Tensor]) -> None:
        file = f"model-{index + 1:05d}-of-{self.shards:05d}.safetensors"
        tensors = {n: t.contiguous() for n, t in tensors.items()}
        save_file(tensors, os.path.join(self.out, file), metadata={"format": "pt"})
        for name, t in tensors.items():
            self.weight_map[name] = file
            self.total += t.numel() * t.element_size()

    def add_block(self, i: int, linears: dict[str, gptq_format.QuantizedLinear]) -> None:
        p = names.block(i)
        tensors = {}
        for module, layer in linears.items():
            zeros = gptq_format.unpack_zeros(layer.qzeros, v1=True)  # as the exporter packs them
            tensors[f"{p}{module}.qweight"] = torch.from_numpy(layer.qweight)
            tensors[f"{p}{module}.qzeros"] = torch.from_numpy(gptq_format.pack_zeros(zeros, v1=self.v1))
            tensors[f"{p}{module}.scales"] = torch.from_numpy(layer.scales.astype("float16"))
            tensors[f"{p}{module}.g_idx"] = torch.from_numpy(layer.g_idx.astype("int32"))
            bias = (self.reader.get(f"{p}{module}.bias").to(torch.float16) if module == "attn.c_attn"
                    else torch.zeros(layer.qweight.shape[1], dtype=torch.float16))
            tensors[f"{p}{module}.bias"] = bias
        for norm in ("ln_1.weight", "ln_2.weight"):
            tensors[p + norm] = self.reader.get(p + norm).to(torch.float16)
        self._save(i, tensors)

    def finish(self) -> None:
        cfg = self.reader.config
        rest = {n: self.reader.get(n).to(torch.float16) for n in names.float_shapes(cfg)
                if not n.startswith("transformer.h.")}
        self._save(cfg.num_hidden_layers, rest)
        with open(os.path.join(self.out, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
            json.dump({"metadata": {"total_size": self.total}, "weight_map": dict(sorted(self.weight_map.items()))},
                      f, indent=2)
        config = dataclasses.replace(cfg, torch_dtype="float16", quantization=self.quant).to_json()
        for path, obj in (("config.json", config), ("quantize_config.json", self.quant)):
            with open(os.path.join(self.out, path), "w", encoding="utf-8") as f:
                json.dump(obj, f, indent=2)
                f.write("\n")
        for file in COPIED:
            source = os.path.join(self.reader.directory, file)
            if os.path.isfile(source):
                shutil.copyfile(source, os.path.join(self.out, file))
        os.rename(self.out, self.final)
