"""The synthetic-task model's weights before training: tiny.random_weights, then two starts that put
where things are into the picture's features (benchmarks/NOTES_quality.md, "Where things are").

A ViT trained from scratch on these tasks keeps no position in its features, and an adapter whose
learned queries attend everywhere gives each of the 256 image tokens the picture's average: what is
there survives (captions, counts, colours), where it is does not (boxes, left or right, the letters
of a word). The real Qwen-VL starts from a pretrained ViT whose features carry position; here:
- the ViT's position table starts as the 2-D sin-cos table (reference_vision.sincos_2d_table), so
  every patch's feature holds its row and column in a form a linear map reads;
- the adapter starts local: with the learned queries silenced (ln_q zero) a query is its cell's
  sin-cos row, and the query and key projections pair each head's frequencies of both tables, so a
  query-key logit is ``gain / sqrt(head_dim) * sum_f [cos(w_f * d_col) + cos(w_f * d_row)]`` over the
  head's frequencies: largest at the query's own cell and falling with the distance. The content's share of
  the keys starts small (ln_kv scaled down, the value projection scaled back up to keep the values'
  size). All of it is trained from there; the adapter's table itself stays frozen, as in the original.
"""

from __future__ import annotations

import torch

from ..config import QwenVLConfig
from ..reference_model import QwenVL
from ..reference_vision import sincos_2d_table
from ..tiny import random_weights

KEY_CONTENT_SCALE = 0.3  # the picture's share of the adapter's keys at the start, beside the sin-cos table


def initial_model(cfg: QwenVLConfig, seed: int, vit_position_scale: float = 0.0,
                  adapter_locality: float = 0.0) -> QwenVL:
    """The reference model at its training init: tiny.random_weights (unit-variance projections, the
    sin-cos adapter table) with the lm_head scaled to unit-variance logits; then, when their scale is
    not 0, the sin-cos ViT positions and the local adapter."""
    state = random_weights(cfg, seed)
    state["lm_head.weight"] = state["lm_head.weight"] / 3.0
    with torch.device("meta"):
        model = QwenVL(cfg)
    model.load_state_dict(state, strict=True, assign=True)
    with torch.no_grad():
        if vit_position_scale:
            sincos_vit_positions(model, vit_position_scale)
        if adapter_locality:
            local_adapter(model, adapter_locality)
    model.transformer.visual.attn_pool.pos_embed.requires_grad_(False)
    return model.train()


def sincos_vit_positions(model: QwenVL, scale: float) -> None:
    table = model.transformer.visual.positional_embedding
    grid = round(table.shape[0] ** 0.5)
    table.copy_(scale * torch.from_numpy(sincos_2d_table(table.shape[1], grid)))


def head_frequency_order(dim: int, heads: int) -> list[int]:
    """The adapter's channels reordered so that head h holds frequencies h, h + heads, ... of each of
    the table's four quarters (column sin, column cos, row sin, row cos)."""
    quarter = dim // 4
    return [start + f for h in range(heads) for start in range(0, dim, quarter) for f in range(h, quarter, heads)]


def local_adapter(model: QwenVL, gain: float) -> None:
    pool = model.transformer.visual.attn_pool
    dim = pool.pos_embed.shape[1]
    pairing = torch.zeros(dim, dim)
    pairing[torch.arange(dim), torch.tensor(head_frequency_order(dim, pool.attn.heads))] = 1.0
    weight, bias = pool.attn.in_proj_weight, pool.attn.in_proj_bias
    # The gain sits on the query side: the vision graph computes the queries' projection once, in float
    # (vision_graph's query table), while the key projection runs in int8 in the default graph; unit
    # entries there keep each channel's int8 step fine beside the trained entries (NOTES_quality.md,
    # Measurement 3: with the gain's square root on both sides, the int8 keys moved the attention).
    weight[:dim] = gain * pairing
    weight[dim : 2 * dim] = pairing
    bias[: 2 * dim] = 0.0
    pool.ln_q.weight.zero_()
    pool.ln_q.bias.zero_()
    pool.ln_kv.weight.mul_(KEY_CONTENT_SCALE)
    pool.ln_kv.bias.mul_(KEY_CONTENT_SCALE)
    weight[2 * dim:] /= KEY_CONTENT_SCALE
