"""``qwenvl-edge bench``: latency at the real dimensions with random weights, the machine's roof and
the peers a user would pick instead, measured side by side in one run (runner). Needs the export
extra (torch, onnx) to build the synthetic bundle; the llama.cpp peer needs the bench extra."""
