"""Offline tools for qwenvl-edge: the PyTorch reference of Qwen-VL, checkpoint readers, tiny random
checkpoints, and (later) the exporters that write bundles. Needs the ``export`` extra (torch)."""
