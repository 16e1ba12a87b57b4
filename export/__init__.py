"""qwenvl-edge's torch side: everything that needs PyTorch, and nothing else. The exporters (a Hugging
Face checkpoint -> a bundle: export_model, vision_onnx + vision_graph, quantize_decoder + gptq,
decoder_file), the PyTorch reference of Qwen-VL (reference_*), the checkpoint readers, and the writers
of random checkpoints for tests and benchmarks (tiny, release_checkpoint, random_vision). Installed as
``qwenvl_edge.export``; needs the ``export`` extra. The runtime (``qwenvl_edge``) never imports it,
except the command line's option parsing (options.py, which imports nothing heavy)."""
