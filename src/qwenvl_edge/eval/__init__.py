"""The paper's evaluation harness (``qwenvl-edge eval``; docs/eval.md): a bundle scored on one task of
Qwen-VL's eval_mm, with its prompts, greedy lengths and metrics, quirks included.

Map: ``tasks`` (prompt, lengths and metric per task), ``data`` (the JSONL schema, checked per line),
``runner`` (the resumable run and its summary), ``results`` (the ``--out`` file), ``command`` (the CLI),
``cluster`` (``--ray``: the items answered by Ray workers; imported only then),
and one module per metric: ``vqa_score``, ``anls``, ``relaxed_accuracy``, ``exact_match``,
``grounding``, ``cider``, ``ranking``.
"""
