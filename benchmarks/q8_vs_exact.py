"""How often greedy tokens differ between the int8-activation (q8) and the exact decoder paths on a
tiny random Qwen-VL (Int4, truncated real vocabulary when available).

    python benchmarks/q8_vs_exact.py [--prompts 20] [--tokens 32] [--vocab ../shared/qwen.tiktoken]

Teacher-forced: top-1 agreement per position over prompt + exact continuation. Free-running: the
first position where the two greedy continuations part, per prompt.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

from qwenvl_edge import _core
from qwenvl_edge.export.checkpoint import CheckpointReader
from qwenvl_edge.export.decoder_file import decoder_config, decoder_tensors, write_decoder_file
from qwenvl_edge.export.tiny import make_tiny


def greedy(dec, ids, n):
    dec.reset()
    logits = dec.prefill_ids(ids)[0]
    out = []
    for _ in range(n):
        out.append(int(logits.argmax()))
        logits = dec.step(out[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=32)
    default_vocab = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "qwen.tiktoken")
    parser.add_argument("--vocab", default=default_vocab if os.path.exists(default_vocab) else None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        make_tiny(tmp, vocab=args.vocab, int4=True, seed=1)
        reader = CheckpointReader(tmp)
        path = os.path.join(tmp, "decoder.qwd")
        cfg = decoder_config(reader.config, max_context=1024)
        write_decoder_file(path, cfg, decoder_tensors(reader))
        exact = _core.Decoder(path, cfg.as_dict(), exact=True)
        fast = _core.Decoder(path, cfg.as_dict(), exact=False)
        rng = np.random.default_rng(0)
        forced_same = forced_total = 0
        part_at = []
        for _ in range(args.prompts):
            ids = rng.integers(0, 256, int(rng.integers(8, 64))).astype(np.int32)
            a = greedy(exact, ids, args.tokens)
            b = greedy(fast, ids, args.tokens)
            part_at.append(next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None))
            seq = np.concatenate([ids, np.array(a, np.int32)])
            exact.reset()
            fast.reset()
            la = exact.prefill_ids(seq, all_logits=True).argmax(-1)
            lb = fast.prefill_ids(seq, all_logits=True).argmax(-1)
            forced_same += int((la == lb).sum())
            forced_total += len(la)
    identical = sum(p is None for p in part_at)
    print(f"teacher-forced top-1 agreement: {forced_same}/{forced_total} = {forced_same / forced_total:.4f} "
          f"({forced_total - forced_same} positions differ)")
    print(f"free-running greedy, {args.tokens} tokens: {identical}/{args.prompts} continuations identical; "
          f"first divergence at {[p for p in part_at if p is not None]}")


if __name__ == "__main__":
    main()
