"""A synthetic image world for training and scoring a small Qwen-VL (benchmarks/bench_quality.py): scenes
of coloured shapes and a drawn word (scenes), the paper's four tasks about them plus ChatML (task_text),
held-out eval sets in the harness's JSONL schema (eval_sets), and the training of the small model on them
(model_init, training, train). The first three are torch-free."""
