"""``qwenvl-edge export`` end to end on the tiny checkpoints: fp -> bundle (GPTQ) and Int4 -> bundle."""

import contextlib
import io
import json
import os
import shutil

import numpy as np
import pytest
import torch

from qwenvl_edge import _core
from qwenvl_edge.bundle import Bundle
from qwenvl_edge.cli import main
from qwenvl_edge.errors import FormatError
from qwenvl_edge.export import export_model, gptq_format, names
from qwenvl_edge.export.checkpoint import CheckpointReader, read_gptq_linear
from qwenvl_edge.export.decoder_file import read_decoder_file
from qwenvl_edge.export.export_model import export
from qwenvl_edge.export.options import ExportOptions
from qwenvl_edge.export.reference_model import QwenVL
from qwenvl_edge.export.vision_onnx import check_images
from qwenvl_edge.tokenizer import Tokenizer
from qwenvl_edge.vision import VisionEncoder
from qwenvl_edge.vocab import SpecialIds

SHORT = dict(zip(names.QUANTIZED_LINEARS, ("c_attn", "c_proj", "w1", "w2", "mlp.c_proj")))


def dequantize_blocks(blocks: np.ndarray, perm: np.ndarray | None) -> np.ndarray:
    """Q4Block tiles -> float weight [out, in], read byte by byte from the documented layout
    (cpp/include/qwenvl_edge/q4_block.h), independently of the exporter's numpy structs."""
    tiles, groups, _ = blocks.shape
    words = blocks[:, :, :1024].copy().view("<u4").reshape(tiles, groups, 16, 16)  # [tile, group, octet, col]
    scales = blocks[:, :, 1024:1056].copy().view("<f2").astype(np.float32)  # [tile, group, col]
    zeros = blocks[:, :, 1056:1072].astype(np.float32)
    nibbles = np.stack([(words >> (4 * j)) & 15 for j in range(8)], axis=3)  # [tile, group, octet, j, col]
    q = nibbles.reshape(tiles, groups, 128, 16).astype(np.float32)
    w = (q - zeros[:, :, None, :]) * scales[:, :, None, :]  # [tile, group, k in group, col]
    w_sorted = w.transpose(1, 2, 0, 3).reshape(groups * 128, tiles * 16)  # [k sorted, n]
    if perm is None:
        return w_sorted.T
    w_orig = np.empty_like(w_sorted)
    w_orig[perm] = w_sorted
    return w_orig.T


def bundle_weights(bundle_dir, cfg) -> dict[str, torch.Tensor]:
    """The five linears of every block as the bundle stores them, dequantised to float."""
    _, tensors = read_decoder_file(os.path.join(bundle_dir, "decoder.qvw"))
    out = {}
    for i in range(cfg.num_hidden_layers):
        for module, short in SHORT.items():
            w = dequantize_blocks(tensors[f"h.{i}.{short}"], tensors.get(f"h.{i}.{short}.perm"))
            out[f"{names.block(i)}{module}.weight"] = torch.from_numpy(np.ascontiguousarray(w))
    return out


@pytest.fixture(scope="module")
def fp_bundle(tiny_fp, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "fp"
    manifest = export(tiny_fp, out, ExportOptions(vision="fp32", act_order=True, progress=False))
    return out, manifest


@pytest.fixture(scope="module")
def rtn_bundle(tiny_fp, tmp_path_factory):
    """tiny_fp exported by the command line with round-to-nearest: (bundle, what the command printed)."""
    out = tmp_path_factory.mktemp("bundles") / "rtn"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(["export", str(tiny_fp), "-o", str(out), "--method", "rtn", "--vision", "fp32", "--quiet"])
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def int4_bundle(tiny_int4, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "int4"
    manifest = export(tiny_int4, out, ExportOptions(vision="int8", lm_head="int8", progress=False))
    return out, manifest


def test_manifest_describes_the_model(fp_bundle, tiny_fp):
    out, manifest = fp_bundle
    Bundle.open(out).verify()
    cfg = CheckpointReader(tiny_fp).config
    n_ranks = cfg.visual.image_start_id - SpecialIds(0).img_start
    sp = SpecialIds(n_ranks)
    assert manifest.tokenizer.special_ids["img_start"] == sp.img_start == cfg.visual.image_start_id
    assert manifest.tokenizer.special_ids["im_end"] == sp.im_end
    g = manifest.generation
    assert (g.chat_format, g.top_p, g.stop_words) == ("chatml", 0.3, [[sp.im_end], [sp.im_start]])
    d = manifest.decoder
    assert d.config.hidden_size == cfg.hidden_size and d.lm_head == "f16"
    q = d.quantization
    assert (q["method"], q["group_size"], q["sym"], q["desc_act"]) == ("gptq", 128, True, True)
    assert q["calibration"]["samples"] >= 15 and q["calibration"]["tokens"] > 2000
    assert sorted(manifest.files) == sorted(f for f in os.listdir(out) if f != "manifest.json")
    assert manifest.vision.preprocess.image_size == 448
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest.to_json() and Bundle.open(out).manifest == manifest


def test_fp_bundle_vision_matches_the_reference(fp_bundle, tiny_fp_model):
    out, manifest = fp_bundle
    pixels = check_images(448)[:3]
    got = VisionEncoder(Bundle.open(out).path("vision"), threads=2).encode(pixels)
    want = tiny_fp_model.encode_images(torch.from_numpy(pixels)).numpy()
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-4


def test_fp_bundle_decoder_is_the_gptq_model(fp_bundle, tiny_fp):
    """The native decoder on the bundle equals the reference model carrying the bundle's dequantised
    weights, and stays close to the float model."""
    out, manifest = fp_bundle
    float_model = QwenVL.from_pretrained(tiny_fp)
    quantized = QwenVL.from_pretrained(tiny_fp)
    quantized.load_state_dict(bundle_weights(out, float_model.cfg), strict=False)
    n_ranks = manifest.tokenizer.n_ranks
    ids = torch.from_numpy(np.random.default_rng(0).integers(0, n_ranks, (1, 40)))
    want, _ = quantized(ids)
    dec = _core.Decoder(Bundle.open(out).path("decoder"), manifest.decoder.config.as_dict(), threads=2, exact=True)
    got = dec.forward(dec.embed(ids[0].numpy().astype(np.int32)), all_logits=True)
    assert np.abs(got - want[0].numpy()).max() / np.abs(want[0].numpy()).max() < 1e-3
    stats = manifest.export["layers"]
    assert len(stats) == float_model.cfg.num_hidden_layers
    assert all(layer["gptq_over_rtn"] < 1 for block in stats for layer in block["layers"])


def test_gptq_beats_round_to_nearest_on_chat_text(fp_bundle, rtn_bundle, tiny_fp):
    """On text in the model's chat format, the GPTQ bundle's logits are closer to the float model's
    than a round-to-nearest bundle's (tiny model: measured 0.13 vs 0.17 relative error)."""
    out, manifest = fp_bundle
    tok = Tokenizer.from_file(out / "qwen.tiktoken")
    text = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital "
            "of France? Tell me about its history.<|im_end|>\n<|im_start|>assistant\nParis is the capital of France.")
    ids = torch.tensor([tok.encode(text)])
    float_model = QwenVL.from_pretrained(tiny_fp)
    want, _ = float_model(ids)
    errors = {}
    for name, bundle in (("gptq", out), ("rtn", rtn_bundle[0])):
        model = QwenVL.from_pretrained(tiny_fp)
        model.load_state_dict(bundle_weights(bundle, float_model.cfg), strict=False)
        got, _ = model(ids)
        errors[name] = ((got - want).norm() / want.norm()).item()
    assert errors["gptq"] < errors["rtn"], errors


def test_int4_import_keeps_the_checkpoint_values_exactly(int4_bundle, tiny_int4):
    out, manifest = int4_bundle
    reader = CheckpointReader(tiny_int4)
    stored = bundle_weights(out, reader.config)
    for name, weight in stored.items():
        layer = read_gptq_linear(reader, name.removesuffix(".weight"), 128)
        np.testing.assert_array_equal(weight.numpy(), gptq_format.dequantize(layer, v1=True), err_msg=name)
    q = manifest.decoder.quantization
    assert (q["method"], q["source_format"], q["sym"]) == ("imported", "gptq", True)
    assert manifest.decoder.lm_head == "int8" and manifest.vision.variant == "int8"


def test_int4_bundle_runs_like_the_reference(int4_bundle, tiny_int4):
    out, manifest = int4_bundle
    ref = QwenVL.from_pretrained(tiny_int4)
    pixels = check_images(448)[:1]
    features = VisionEncoder(Bundle.open(out).path("vision")).encode(pixels)
    want_features = ref.encode_images(torch.from_numpy(pixels)).numpy()
    cos = (features * want_features).sum() / np.linalg.norm(features) / np.linalg.norm(want_features)
    assert cos > 0.99, cos
    sp = SpecialIds(manifest.tokenizer.n_ranks)
    ids = torch.tensor([[sp.img_start] + [sp.img_pad] * 256 + [sp.img_end] + list(range(300, 320))])
    want, _ = ref(ids, torch.from_numpy(want_features))
    dec = _core.Decoder(Bundle.open(out).path("decoder"), manifest.decoder.config.as_dict(), threads=2, exact=True)
    x = dec.embed(ids[0].numpy().astype(np.int32))
    x[1:257] = want_features[0]
    got = dec.forward(x, all_logits=True)
    assert (got.argmax(-1) == want[0].numpy().argmax(-1)).mean() > 0.9  # int8 lm_head: close, not equal


def test_an_interrupted_export_leaves_no_bundle(tiny_fp, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export_model, "decoder_tensors", fail)
    with pytest.raises(KeyboardInterrupt):
        export(tiny_fp, tmp_path / "b", ExportOptions(vision="fp32", method="rtn", progress=False))
    assert os.listdir(tmp_path) == []


def add_rank(vocab):
    """One more BPE rank ("xyzzy"): the special ids move, config.json's image_start_id does not."""
    lines = vocab.read_text().splitlines()
    vocab.write_text("\n".join(lines + [f"eHl6enk= {len(lines)}"]) + "\n")


def damage(tiny_fp, tmp_path, how):
    src = tmp_path / "src"
    shutil.copytree(tiny_fp, src)
    how(src)
    return src


@pytest.mark.parametrize("how, message", [
    (lambda s: (s / "qwen.tiktoken").unlink(), "qwen.tiktoken: the vocabulary file is missing"),
    (lambda s: (s / "generation_config.json").unlink(), "generation_config.json: missing"),
    (lambda s: add_rank(s / "qwen.tiktoken"), "put <img> at id"),
    (lambda s: (s / "model.safetensors").unlink(), "no weights found"),
    (lambda s: (s / "config.json").write_text(
        json.dumps({**json.loads((s / "config.json").read_text()), "sliding_window": 4096})),
     "unknown key 'sliding_window'"),
])
def test_bad_checkpoints_are_named_and_leave_nothing(tiny_fp, tmp_path, how, message):
    src = damage(tiny_fp, tmp_path, how)
    with pytest.raises(FormatError, match=message):
        export(src, tmp_path / "b", ExportOptions(method="rtn", progress=False))
    assert not (tmp_path / "b").exists()


def test_cli_export_then_verify(rtn_bundle, tiny_fp, tmp_path, capsys):
    out, printed = rtn_bundle
    assert "decoder: 4-bit rtn" in printed and "vision: fp32" in printed
    main(["verify", str(out)])
    assert "all sha256 match" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="already exists"):
        main(["export", str(tiny_fp), "-o", str(out), "--method", "rtn", "--quiet"])
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    data = bytearray((copy / "qwen.tiktoken").read_bytes())
    data[10] ^= 1
    (copy / "qwen.tiktoken").write_bytes(bytes(data))
    with pytest.raises(SystemExit, match="qwen.tiktoken: sha256 differs"):
        main(["verify", str(copy)])


def test_save_gptq_writes_an_autogptq_checkpoint_that_imports_to_the_same_decoder(tiny_fp, tmp_path):
    export(tiny_fp, tmp_path / "b", ExportOptions(vision="fp32", save_gptq=str(tmp_path / "int4"), progress=False))
    ck = tmp_path / "int4"
    assert sorted(os.listdir(tmp_path)) == ["b", "int4"]
    quant = json.loads((ck / "quantize_config.json").read_text())
    assert quant["sym"] and quant["bits"] == 4 and "checkpoint_format" not in quant  # v1, like the release
    reader = CheckpointReader(ck)
    assert reader.quantization["group_size"] == 128 and reader.config.torch_dtype == "float16"
    words = reader.get("transformer.h.0.mlp.w1.qzeros").numpy().view(np.uint32)
    assert np.all(words == 0x77777777)  # sym zero 8 stored as 7 in every nibble (docs/model.md 8.4)
    export(ck, tmp_path / "again", ExportOptions(vision="fp32", progress=False))
    assert (tmp_path / "again" / "decoder.qvw").read_bytes() == (tmp_path / "b" / "decoder.qvw").read_bytes()
    with pytest.raises(ValueError, match="already GPTQ"):
        export(ck, tmp_path / "c", ExportOptions(save_gptq=str(tmp_path / "x"), progress=False))


def test_an_export_interrupted_while_streaming_the_vision_graph_leaves_no_bundle(tiny_fp, tmp_path, monkeypatch):
    from qwenvl_edge.export import vision_onnx

    real = vision_onnx.write_graph

    def interrupted(*args, after_block=None, **kwargs):
        def stop(i):
            after_block(i)
            raise KeyboardInterrupt  # after the first block's weights are in the data file

        return real(*args, external=True, after_block=stop, **{k: v for k, v in kwargs.items() if k != "external"})

    monkeypatch.setattr(vision_onnx, "write_graph", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export(tiny_fp, tmp_path / "b", ExportOptions(method="rtn", progress=False))
    assert os.listdir(tmp_path) == []


def test_a_terminated_export_command_removes_its_staging(tiny_fp, tmp_path):
    """SIGTERM (kill, a shutdown) ends an export like Ctrl-C: no bundle and no staging directory left."""
    import signal
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-m", "qwenvl_edge.cli", "export", str(tiny_fp), "-o",
                              str(tmp_path / "b"), "--method", "rtn", "--quiet"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120

    def staged() -> bool:  # the export is at work: its staging holds a file (past its imports)
        return any(p.name.startswith(".b.partial-") and any(p.iterdir()) for p in tmp_path.iterdir())

    while not staged() and time.time() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == 128 + signal.SIGTERM
    assert os.listdir(tmp_path) == []
