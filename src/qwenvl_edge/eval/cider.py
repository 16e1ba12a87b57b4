"""CIDEr (CIDEr-D, as pycocoevalcap computes it for COCOEvalCap; docs/model.md 7.5) of generated captions.

A corpus metric: the n-gram weights (IDF) come from the references of all scored images, so a score
depends on the whole set (with a single image every weight is log(1) = 0 and CIDEr is 0). Captions are
tokenised like COCOEvalCap does: Stanford's PTB tokenizer (java, shipped inside pycocoevalcap),
lower-cased, punctuation tokens dropped. Without java the fallback is lower-cased text with the ASCII
punctuation characters deleted, split on whitespace; ``Cider.tokenizer`` says which one was used.
Only CIDEr is computed: COCOEvalCap's SPICE downloads a model at run time, METEOR is slow.
"""

from __future__ import annotations

import dataclasses
import shutil
import string
from typing import Hashable, Mapping, Sequence

PTB = "ptb"
SIMPLE = "simple"
_DELETE_PUNCTUATION = str.maketrans("", "", string.punctuation)


@dataclasses.dataclass(frozen=True)
class Cider:
    score: float  # the corpus CIDEr, mean of the per-image scores (x100 is the usual report)
    per_item: dict  # id -> the image's CIDEr (0..10)
    tokenizer: str  # PTB or SIMPLE


def simple_tokens(captions: Mapping[Hashable, Sequence[str]]) -> dict:
    return {k: [" ".join(c.lower().translate(_DELETE_PUNCTUATION).split()) for c in v] for k, v in captions.items()}


def ptb_tokens(captions: Mapping[Hashable, Sequence[str]]) -> dict:
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    return PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})


def cider(predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]],
          tokenizer: str | None = None) -> Cider:
    """CIDEr of ``predictions[id]`` against ``references[id]`` (same ids). ``tokenizer``: PTB or
    SIMPLE; default PTB when java is on the PATH."""
    from pycocoevalcap.cider.cider import Cider as CiderD

    if set(predictions) != set(references):
        raise ValueError("CIDEr needs the same ids in the predictions and the references")
    if not predictions:
        raise ValueError("CIDEr of no captions")
    if any(not refs for refs in references.values()):
        raise ValueError("every image needs at least one reference caption")
    tokenizer = tokenizer or (PTB if shutil.which("java") else SIMPLE)
    tokenize = ptb_tokens if tokenizer == PTB else simple_tokens
    ids = list(predictions)
    refs = tokenize({k: list(references[k]) for k in ids})
    hyps = tokenize({k: [predictions[k]] for k in ids})
    score, scores = CiderD().compute_score(refs, hyps)
    return Cider(float(score), {k: float(s) for k, s in zip(ids, scores)}, tokenizer)
