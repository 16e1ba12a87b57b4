"""The tensor names and shapes of a Qwen-VL checkpoint in the Hugging Face layout (docs/model.md 1.4, 4.6, 8.3).

One table for the whole project: the reference loader, the tiny-checkpoint writer and the exporters all
take their names from here.
"""

from __future__ import annotations

from .config import QwenVLConfig

VISUAL = "transformer.visual."
# The five Linear layers of each decoder block; in the Int4 release these (and only these) are GPTQ.
QUANTIZED_LINEARS = ("attn.c_attn", "attn.c_proj", "mlp.w1", "mlp.w2", "mlp.c_proj")
GPTQ_SUFFIXES = ("qweight", "qzeros", "scales", "g_idx", "bias")


def block(i: int) -> str:
    return f"transformer.h.{i}."


def linear_shape(cfg: QwenVLConfig, module: str) -> tuple[int, int]:
    """(out_features, in_features) of one decoder Linear."""
    d, f = cfg.hidden_size, cfg.ffn_dim
    return {
        "attn.c_attn": (3 * d, d),
        "attn.c_proj": (d, d),
        "mlp.w1": (f, d),
        "mlp.w2": (f, d),
        "mlp.c_proj": (d, f),
    }[module]


def visual_shapes(cfg: QwenVLConfig) -> dict[str, tuple[int, ...]]:
    v = cfg.visual
    w, o, m = v.width, v.output_dim, v.mlp_width
    shapes: dict[str, tuple[int, ...]] = {
        "conv1.weight": (w, 3, v.patch_size, v.patch_size),
        # Stored for the 16x16 pretraining grid, whatever the image size; resized at run time.
        "positional_embedding": (256, w),
        "ln_pre.weight": (w,),
        "ln_pre.bias": (w,),
    }
    for i in range(v.layers):
        p = f"transformer.resblocks.{i}."
        shapes.update({
            p + "ln_1.weight": (w,),
            p + "ln_1.bias": (w,),
            p + "attn.in_proj.weight": (3 * w, w),
            p + "attn.in_proj.bias": (3 * w,),
            p + "attn.out_proj.weight": (w, w),
            p + "attn.out_proj.bias": (w,),
            p + "ln_2.weight": (w,),
            p + "ln_2.bias": (w,),
            p + "mlp.c_fc.weight": (m, w),
            p + "mlp.c_fc.bias": (m,),
            p + "mlp.c_proj.weight": (w, m),
            p + "mlp.c_proj.bias": (w,),
        })
    shapes.update({
        "attn_pool.query": (v.n_queries, o),
        "attn_pool.pos_embed": (v.n_queries, o),
        "attn_pool.kv_proj.weight": (o, w),
        "attn_pool.attn.in_proj_weight": (3 * o, o),
        "attn_pool.attn.in_proj_bias": (3 * o,),
        "attn_pool.attn.out_proj.weight": (o, o),
        "attn_pool.attn.out_proj.bias": (o,),
        "attn_pool.ln_q.weight": (o,),
        "attn_pool.ln_q.bias": (o,),
        "attn_pool.ln_kv.weight": (o,),
        "attn_pool.ln_kv.bias": (o,),
        "ln_post.weight": (o,),
        "ln_post.bias": (o,),
        "proj": (o, o),
    })
    return {VISUAL + k: s for k, s in shapes.items()}


def float_shapes(cfg: QwenVLConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of a float checkpoint (Qwen-VL, Qwen-VL-Chat): 853 at the real config."""
    d, vocab = cfg.hidden_size, cfg.vocab_size
    shapes: dict[str, tuple[int, ...]] = {"transformer.wte.weight": (vocab, d)}
    for i in range(cfg.num_hidden_layers):
        p = block(i)
        shapes[p + "ln_1.weight"] = (d,)
        shapes[p + "ln_2.weight"] = (d,)
        for module in QUANTIZED_LINEARS:
            shapes[p + module + ".weight"] = linear_shape(cfg, module)
        shapes[p + "attn.c_attn.bias"] = (3 * d,)
    shapes["transformer.ln_f.weight"] = (d,)
    shapes["lm_head.weight"] = (vocab, d)
    shapes.update(visual_shapes(cfg))
    return shapes


def gptq_shapes(cfg: QwenVLConfig, group_size: int, bits: int = 4) -> dict[str, tuple[int, ...]]:
    """Every tensor of a GPTQ checkpoint in the AutoGPTQ layout: 1461 at the real config.

    qweight [in*bits/32, out] packs along the input axis, qzeros [groups, out*bits/32] along the output
    axis, scales [groups, out], g_idx [in], and a bias [out] on every layer (docs/model.md 8.3-8.4).
    """
    shapes = {k: s for k, s in float_shapes(cfg).items() if not _is_quantized_float(k)}
    per_word = 32 // bits
    for i in range(cfg.num_hidden_layers):
        for module in QUANTIZED_LINEARS:
            out, inp = linear_shape(cfg, module)
            groups = -(-inp // group_size)
            p = block(i) + module + "."
            shapes[p + "qweight"] = (inp // per_word, out)
            shapes[p + "qzeros"] = (groups, out // per_word)
            shapes[p + "scales"] = (groups, out)
            shapes[p + "g_idx"] = (inp,)
            shapes[p + "bias"] = (out,)
    return shapes


def _is_quantized_float(name: str) -> bool:
    return name.startswith("transformer.h.") and any(
        name.endswith(f".{m}.weight") or name.endswith(f".{m}.bias") for m in QUANTIZED_LINEARS
    )
