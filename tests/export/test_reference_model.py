import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from qwenvl_edge.export import gptq_format, names
from qwenvl_edge.export.checkpoint import CheckpointReader
from qwenvl_edge.export.reference_model import QwenVL, image_paths, image_spans
from qwenvl_edge.export.tiny import write_checkpoint
from qwenvl_edge.vocab import SpecialIds, read_ranks


def image_prompt(special: SpecialIds, path: bytes, text_ids: list[int]) -> list[int]:
    slots = list(path) + [special.img_pad] * (256 - len(path))
    return [special.img_start] + slots + [special.img_end] + text_ids


def test_image_features_overwrite_exactly_the_256_slots(tiny_fp_model):
    model = tiny_fp_model
    special = SpecialIds(model.cfg.visual.image_start_id - SpecialIds(0).img_start)
    ids = torch.tensor([[5, 6] + image_prompt(special, b"a.jpg", [7]) + image_prompt(special, b"b.png", [8, 9])])
    feats = torch.randn(2, 256, model.cfg.hidden_size)
    x = model.embed(ids, feats)
    plain = model.transformer.wte(ids)
    (r0, a0, b0), (r1, a1, b1) = image_spans(ids, special.img_start)
    assert (b0 - a0, b1 - a1) == (257, 257)
    torch.testing.assert_close(x[0, a0 + 1 : b0], feats[0], rtol=0, atol=0)
    torch.testing.assert_close(x[0, a1 + 1 : b1], feats[1], rtol=0, atol=0)
    for keep in (0, 1, a0, b0, a1, b1, ids.shape[1] - 1):  # tags and text keep their embeddings
        torch.testing.assert_close(x[0, keep], plain[0, keep], rtol=0, atol=0)
    assert image_paths(ids, special.img_start) == ["a.jpg", "b.png"]


def test_image_count_must_match_the_spans(tiny_fp_model):
    special = SpecialIds(tiny_fp_model.cfg.visual.image_start_id - SpecialIds(0).img_start)
    ids = torch.tensor([image_prompt(special, b"x", [1])])
    with pytest.raises(ValueError, match="1 image span"):
        tiny_fp_model.embed(ids, None)
    unclosed = ids[:, :-3]
    with pytest.raises(ValueError, match="do not pair"):
        tiny_fp_model.embed(unclosed, torch.zeros(1, 256, tiny_fp_model.cfg.hidden_size))


def test_a_255_byte_path_has_no_imgpad_and_is_refused_like_the_original():
    special = SpecialIds(256)
    ids = torch.tensor([image_prompt(special, b"p" * 255, [])])
    with pytest.raises(ValueError, match="254 bytes"):
        image_paths(ids, special.img_start)


def test_random_tiny_logits_are_distinctive(tiny_fp_model):
    ids = torch.randint(0, 256, (1, 30), generator=torch.Generator().manual_seed(0))
    logits, _ = tiny_fp_model(ids)
    last = logits[0].float()
    assert last.std(dim=-1).min() > 1.5  # not the near-flat output of a 0.02-std init
    top2 = last.topk(2, dim=-1).values
    assert (top2[:, 0] - top2[:, 1]).median() > 0.1  # greedy picks are not coin flips


def test_int4_twin_equals_the_float_model_built_from_the_same_dequantised_values(tmp_path, tiny_int4):
    """Dequantise the Int4 checkpoint independently (nibble by nibble, docs/model.md 8.4), write those values as a
    float32 checkpoint, and compare both through the reference: same logits."""
    reader = CheckpointReader(tiny_int4)
    cfg = reader.config
    stored = load_file(tiny_int4 / "model.safetensors")
    state = {}
    for name in names.float_shapes(cfg):
        if name in stored:
            state[name] = stored[name].float()
            continue
        p = name.rsplit(".", 1)[0] + "."
        if name.endswith(".bias"):
            state[name] = stored[p + "bias"].float()
            continue
        qw = stored[p + "qweight"].numpy().view(np.uint32)
        qz = stored[p + "qzeros"].numpy().view(np.uint32)
        sc = stored[p + "scales"].float().numpy()
        gi = stored[p + "g_idx"].numpy()
        shifts = np.arange(8, dtype=np.uint32) * 4
        q = ((qw[:, None, :] >> shifts[None, :, None]) & 0xF).reshape(-1, qw.shape[1])  # [in, out]
        z = (((qz[:, :, None] >> shifts[None, None, :]) & 0xF) + 1).reshape(qz.shape[0], -1)  # [g, out]
        state[name] = torch.from_numpy((sc[gi] * (q.astype(np.float32) - z[gi])).T.copy())
    ranks = read_ranks(tiny_int4 / "qwen.tiktoken")
    write_checkpoint(str(tmp_path), cfg.__class__(**{**cfg.__dict__, "quantization": None}), state, ranks,
                     dtype="float32")
    int4 = QwenVL.from_pretrained(tiny_int4)
    twin = QwenVL.from_pretrained(tmp_path)
    special = SpecialIds(len(ranks))
    ids = torch.tensor([image_prompt(special, b"img.png", list(range(40, 60)))])
    pixels = torch.randn(1, 3, 448, 448, generator=torch.Generator().manual_seed(1))
    a, _ = int4(ids, int4.encode_images(pixels))
    b, _ = twin(ids, twin.encode_images(pixels))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert int4.greedy(ids, int4.encode_images(pixels), 12) == twin.greedy(ids, twin.encode_images(pixels), 12)


def test_int4_is_close_to_the_float_model_it_was_quantized_from(tiny_fp, tiny_int4):
    fp = QwenVL.from_pretrained(tiny_fp)
    q4 = QwenVL.from_pretrained(tiny_int4)
    ids = torch.randint(0, 256, (1, 20), generator=torch.Generator().manual_seed(2))
    a, _ = fp(ids)
    b, _ = q4(ids)
    cos = torch.nn.functional.cosine_similarity(a[0], b[0], dim=-1)
    assert cos.min() > 0.9  # 4-bit RTN of random weights: close, not equal
    # the Int4 dequantisation of one layer is within half a quantisation step of the float weights
    w = fp.transformer.h[0].mlp.w1.weight
    wq = q4.transformer.h[0].mlp.w1.weight
    stored = load_file(tiny_int4 / "model.safetensors")
    step = stored["transformer.h.0.mlp.w1.scales"].float().max()
    assert (w - wq).abs().max() <= 0.5 * step + 0.02 * w.abs().max()  # + bf16 rounding of the source
    assert gptq_format.BITS == 4
