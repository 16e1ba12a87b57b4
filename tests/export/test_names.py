from qwenvl_edge.export import names
from qwenvl_edge.export.config import QwenVLConfig


def test_real_config_tensor_counts_and_bytes_match_the_release_indexes():
    cfg = QwenVLConfig()
    float_shapes = names.float_shapes(cfg)
    assert len(float_shapes) == 853
    assert len([n for n in float_shapes if n.startswith(names.VISUAL)]) == 594
    params = sum(int(__import__("math").prod(s)) for s in float_shapes.values())
    assert 2 * params == 19_313_870_336  # pytorch_model.bin.index.json total_size of Qwen-VL-Chat (bf16)

    gptq = names.gptq_shapes(cfg, group_size=128)
    assert len(gptq) == 1461
    assert gptq["transformer.h.0.mlp.c_proj.qweight"] == (1376, 4096)
    assert gptq["transformer.h.0.mlp.c_proj.qzeros"] == (86, 512)
    assert gptq["transformer.h.0.attn.c_attn.qzeros"] == (32, 1536)
    # Every non-GPTQ tensor float16 (2 bytes); qweight/qzeros/g_idx int32; total = the Int4 index's.
    total = 0
    for name, shape in gptq.items():
        count = int(__import__("math").prod(shape))
        total += count * (4 if name.endswith(("qweight", "qzeros", "g_idx")) else 2)
    assert total == 9_731_786_240
