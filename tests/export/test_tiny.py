import json

import pytest
import tiktoken

from qwenvl_edge.export.config import QwenVLConfig
from qwenvl_edge.export.tiny import make_tiny, tiny_ranks
from qwenvl_edge.vocab import SpecialIds, encoding, read_ranks


def test_tiny_checkpoint_files_and_schema(tiny_fp):
    files = {p.name for p in tiny_fp.iterdir()}
    assert {"config.json", "generation_config.json", "tokenizer_config.json", "qwen.tiktoken",
            "model.safetensors"} <= files
    raw = json.loads((tiny_fp / "config.json").read_text())
    cfg = QwenVLConfig.from_dict(raw)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.head_dim, cfg.ffn_dim) == (256, 2, 4, 64, 384)
    v = cfg.visual
    assert (v.width, v.layers, v.heads, v.image_size, v.n_patches) == (64, 2, 4, 448, 1024)
    assert raw["torch_dtype"] == "bfloat16" and raw["intermediate_size"] == 768


def test_special_ids_follow_from_the_vocabulary_size(tiny_fp):
    ranks = read_ranks(tiny_fp / "qwen.tiktoken")
    cfg = QwenVLConfig.from_dir(tiny_fp)
    special = SpecialIds(len(ranks))
    assert cfg.visual.image_start_id == special.img_start
    assert cfg.vocab_size >= special.n_vocab and cfg.vocab_size % 128 == 0
    gen = json.loads((tiny_fp / "generation_config.json").read_text())
    assert gen["eos_token_id"] == gen["pad_token_id"] == special.endoftext
    assert gen["chat_format"] == "chatml" and gen["top_p"] == 0.3


def test_int4_variant_files(tiny_int4):
    qc = json.loads((tiny_int4 / "quantize_config.json").read_text())
    assert qc == {"bits": 4, "group_size": 128, "damp_percent": 0.01, "desc_act": False, "static_groups": False,
                  "sym": True, "true_sequential": True, "model_name_or_path": None, "model_file_base_name": "model"}
    raw = json.loads((tiny_int4 / "config.json").read_text())
    assert raw["quantization_config"] == {**qc, "quant_method": "gptq"}
    assert raw["torch_dtype"] == "float16" and raw["fp16"] is True


def test_truncated_real_vocabulary_is_a_valid_smaller_bpe(real_vocab, tmp_path):
    ranks = tiny_ranks(real_vocab, 4096)
    assert len(ranks) == 4096
    enc = encoding(ranks)
    full = tiktoken.Encoding("full", pat_str=enc._pat_str, mergeable_ranks=read_ranks(real_vocab), special_tokens={})
    for text in ["\n", "Describe the image in English:", " A B", "(451,379),(731,806)"]:
        ids = enc.encode_ordinary(text)
        assert enc.decode(ids) == text
        if all(t < 4096 for t in full.encode_ordinary(text)):  # tokens inside the cut encode as in the full BPE
            assert ids == full.encode_ordinary(text)
    make_tiny(tmp_path, vocab=real_vocab, n_ranks=4096)
    assert QwenVLConfig.from_dir(tmp_path).visual.image_start_id == 4096 + 214


def test_byte_vocabulary_without_a_file():
    ranks = tiny_ranks(None)
    assert len(ranks) == 256
    assert encoding(ranks).encode_ordinary("hi") == [ord("h"), ord("i")]


@pytest.mark.parametrize("seed", [0, 1])
def test_seeds_give_reproducible_weights(tmp_path, seed):
    make_tiny(tmp_path / "a", seed=seed)
    make_tiny(tmp_path / "b", seed=seed)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


@pytest.mark.slow
def test_the_command_replaces_only_a_checkpoint_and_only_when_asked(tmp_path):
    from command_line import qwenvl_edge

    out = tmp_path / "t"
    assert qwenvl_edge("tiny", str(out)).returncode == 0
    again = qwenvl_edge("tiny", str(out), "--int4")
    assert again.returncode == 2 and "not empty (pass --overwrite" in again.stderr
    assert not (out / "quantize_config.json").exists()
    assert qwenvl_edge("tiny", str(out), "--int4", "--overwrite").returncode == 0
    assert (out / "quantize_config.json").is_file()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    refused = qwenvl_edge("tiny", str(other), "--overwrite")
    assert refused.returncode == 2 and "not a checkpoint" in refused.stderr and (other / "keep.txt").exists()
