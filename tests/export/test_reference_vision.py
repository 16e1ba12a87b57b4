import numpy as np
import torch

import numpy_reference as npref
from qwenvl_edge.export.reference_vision import VisualAttention, get_abs_pos, sincos_2d_table


def test_bicubic_position_table_matches_the_cubic_convolution_formula():
    table = torch.randn(256, 40, generator=torch.Generator().manual_seed(0))
    ours = get_abs_pos(table, 1024).numpy()
    assert ours.shape == (1024, 40)
    np.testing.assert_allclose(ours, npref.resize_table(table.numpy(), 32), rtol=0, atol=2e-5)


def test_bicubic_resize_is_done_in_float32_and_cast_back():
    table = torch.randn(256, 8).to(torch.bfloat16)
    out = get_abs_pos(table, 1024)
    assert out.dtype == torch.bfloat16
    expected = torch.from_numpy(npref.resize_table(table.float().numpy(), 32)).float().to(torch.bfloat16)
    assert (out.float() - expected.float()).abs().max() <= 2 ** -7 * expected.float().abs().max()


def test_sincos_table_matches_the_spec_formula():
    np.testing.assert_allclose(sincos_2d_table(64, 16), npref.sincos_table(64, 16), atol=2e-6)
    # first half encodes the column: rows of one column share it
    t = sincos_2d_table(64, 16)
    np.testing.assert_array_equal(t[0 * 16 + 5, :32], t[7 * 16 + 5, :32])


def test_vit_attention_reads_in_proj_rows_per_head_interleaved():
    torch.manual_seed(0)
    attn = VisualAttention(width=24, heads=3)
    x = torch.randn(2, 10, 24)
    sd = {"w": attn.in_proj.weight.detach().double().numpy(), "b": attn.in_proj.bias.detach().double().numpy()}
    qkv = x.double().numpy() @ sd["w"].T + sd["b"]  # [2, 10, 72]
    ctx = np.zeros((2, 10, 24))
    for h in range(3):
        q, k, v = (qkv[..., h * 24 + j * 8 : h * 24 + (j + 1) * 8] for j in range(3))
        ctx[..., h * 8 : (h + 1) * 8] = npref.softmax(q @ k.transpose(0, 2, 1) / np.sqrt(8)) @ v
    expected = ctx @ attn.out_proj.weight.detach().double().numpy().T + attn.out_proj.bias.detach().double().numpy()
    np.testing.assert_allclose(attn(x).detach().numpy(), expected, atol=1e-5)


def test_resampler_matches_the_spec(tiny_fp_model):
    sd = {k: v.detach() for k, v in tiny_fp_model.state_dict().items()}
    v = tiny_fp_model.cfg.visual
    x = torch.randn(1, v.n_patches, v.width, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = tiny_fp_model.transformer.visual.attn_pool(x)[0].numpy()
    expected = npref.resampler(sd, x[0].double().numpy())
    np.testing.assert_allclose(ours, expected, rtol=0, atol=2e-4 * np.abs(expected).max())


def test_whole_vision_encoder_matches_the_spec(tiny_fp_model):
    sd = {k: v.detach() for k, v in tiny_fp_model.state_dict().items()}
    pixels = torch.randn(2, 3, 448, 448, generator=torch.Generator().manual_seed(4))
    ours = tiny_fp_model.encode_images(pixels).numpy()
    assert ours.shape == (2, 256, tiny_fp_model.cfg.hidden_size)
    expected = npref.vision(sd, tiny_fp_model.cfg, pixels[1].double().numpy())
    rel = np.abs(ours[1] - expected).max() / np.abs(expected).max()
    assert rel < 1e-4, rel
