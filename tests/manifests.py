"""A small, valid, typed manifest for the tests of bundle files and of the manifest's own checks."""

from __future__ import annotations

from qwenvl_edge.manifest import (DecoderConfig, DecoderInfo, Generation, Manifest, ModelInfo, Preprocess,
                                  TokenizerInfo, VisionInfo)

# The smallest decoder config the native core builds (hidden and ffn multiples of 128), for synthetic
# decoder files (qwenvl_edge.bench.synthetic_decoder.write_ours).
TINY_DECODER = DecoderConfig(vocab_size=512, hidden_size=256, num_layers=2, num_heads=4, head_dim=64, ffn_dim=384,
                             rms_eps=1e-6, rope_base=10000.0, seq_length=64, dynamic_ntk=True, logn_attn=True,
                             max_context=96)


def small_manifest(vision: str = "vision.onnx", decoder: str = "decoder.qvw", tokenizer: str = "qwen.tiktoken",
                   data_file: str | None = None) -> Manifest:
    """Consistent values of a tiny model (no files listed: the bundle writer lists them)."""
    preprocess = Preprocess(version=1, image_size=448, resize="pillow-bicubic-squash", rescale="1/255",
                            mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25], channels="RGB")
    return Manifest(
        created_by="tests", model=ModelInfo(source="tiny", config={}),
        tokenizer=TokenizerInfo(file=tokenizer, n_ranks=256, n_vocab=473, special_ids={"endoftext": 256}),
        vision=VisionInfo(file=vision, data_file=data_file, variant="int8", opset=17, input="pixels",
                          output="features", output_shape=[None, 256, 64], parity={}, preprocess=preprocess),
        decoder=DecoderInfo(file=decoder, config=DecoderConfig(
            vocab_size=512, hidden_size=64, num_layers=2, num_heads=4, head_dim=16, ffn_dim=128, rms_eps=1e-6,
            rope_base=10000.0, seq_length=2048, dynamic_ntk=True, logn_attn=True, max_context=1024),
            lm_head="f16", quantization={"method": "rtn"}),
        generation=Generation(chat_format="chatml", do_sample=False, top_p=1.0, top_k=0, temperature=1.0,
                              repetition_penalty=1.0, max_new_tokens=16, max_window_size=512, eos_token_id=256,
                              pad_token_id=256, stop_words=[[258], [257]], system="You are a helpful assistant."))
