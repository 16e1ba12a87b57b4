"""What the export configurations cost in answer quality, on a small Qwen-VL trained on synthetic images,
scored by the eval harness on the paper's metrics (docs/eval.md; notes in NOTES_quality.md).

    python benchmarks/bench_quality.py --vocab ../shared/qwen.tiktoken [--cache DIR] [--work DIR] [--items 100]

1. The model: qwenvl_edge.export.synthetic.train with its default settings, reused from --cache (keyed by
   the settings and the vocabulary) or trained there first (~20 min on 2 free cores); the exports and
   the scoring took 5.6 min on 2 cores.
2. Held-out eval sets (caption, vqa, textvqa, refcoco; --items each) and a GPTQ calibration file of the
   training distribution (its own seeds), written under --work.
3. Every bundle of CONFIGS exported from the float checkpoint, then every configuration (a bundle and
   the load options; the first row is the PyTorch reference at fp32) scored by
   qwenvl_edge.eval.runner.evaluate on every task, plus its greedy-token agreement with the reference on
   --agreement prompts per task: teacher-forced top-1 (the share of the reference's greedy tokens that
   are this configuration's argmax too, fed the reference's tokens) and free-running (the share of
   prompts whose whole greedy continuation is the reference's); and the share of all eval items whose
   answer differs from the reference's (paired: far more sensitive than the scores' intervals).
4. A "chance" row: each item answered with another item's answer of the same kind (a VQA question's
   type; refcoco: another item's box in 0..999 units), scored by the same metric.

Scores are x100 with a 95% percentile-bootstrap interval over the items (CIDEr: the per-item scores of
one corpus computation resampled, the IDF weights fixed). Out: a table on the terminal, one JSON line
in benchmarks/results/quality.jsonl, the table in results/quality.md, a chart in results/quality.png and
the training's log in results/quality_train_log.jsonl.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from quality_chart import draw  # noqa: E402

from qwenvl_edge import _core  # noqa: E402
from qwenvl_edge.eval import grounding, runner, tasks  # noqa: E402
from qwenvl_edge.eval.cider import cider  # noqa: E402

TASKS = ("caption", "vqa", "textvqa", "refcoco")
BUNDLES = {  # name -> ExportOptions fields
    "fp32-vision": dict(vision="fp32"),
    "fp32-vision-rtn": dict(vision="fp32", method="rtn"),
    "default": {},
    "rtn": dict(method="rtn"),
    "asym": dict(sym=False),
    "act-order": dict(act_order=True),
    "int8-head": dict(lm_head="int8"),
}


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    bundle: str | None  # None: the PyTorch reference
    load: dict


CONFIGS = (
    Config("PyTorch reference fp32", None, {}),
    Config("fp32 vision, GPTQ, exact", "fp32-vision", dict(exact=True)),
    Config("fp32 vision, RTN, exact", "fp32-vision-rtn", dict(exact=True)),
    Config("int8 vision, GPTQ, exact", "default", dict(exact=True)),
    Config("default (int8 vision, GPTQ, q8, KV f16)", "default", {}),
    Config("default, KV f32", "default", dict(kv_cache="f32")),
    Config("RTN", "rtn", {}),
    Config("GPTQ asym", "asym", {}),
    Config("GPTQ act-order", "act-order", {}),
    Config("int8 lm_head", "int8-head", {}),
)


def bootstrap(values: list[float], seed: int = 0, n: int = 2000) -> tuple[float, float]:
    """95% percentile interval of the mean, x100."""
    v = np.asarray(values, dtype=np.float64)
    means = v[np.random.default_rng(seed).integers(0, len(v), (n, len(v)))].mean(axis=1)
    return float(100 * np.percentile(means, 2.5)), float(100 * np.percentile(means, 97.5))


def per_item_scores(task: str, records: list[dict]) -> tuple[float, list[float]]:
    """(the harness's score x100, the per-item scores in 0..1 for the interval) of a task's records."""
    score, _ = runner.score(tasks.TASKS[task], records)
    if task == "caption":
        per = cider({i: r["prediction"] for i, r in enumerate(records)},
                    {i: r["references"] for i, r in enumerate(records)}).per_item
        return score, [per[i] for i in range(len(records))]
    return score, [r["score"] for r in records]


def evaluate(model, config: str, data: dict[str, str], work: str) -> tuple[dict, dict]:
    """({task: score, interval, items, errors, seconds}, {(task, id): the prediction})."""
    out, predictions = {}, {}
    for task in TASKS:
        path = os.path.join(work, "results", config.replace(" ", "_").replace(",", ""), f"{task}.jsonl")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.exists(path):
            os.remove(path)  # a fresh run: never mix an earlier run's answers in
        start = time.perf_counter()
        summary = runner.evaluate(model, task, data[task], out=path, progress=False)
        with open(path, encoding="utf-8") as f:
            records = [json.loads(line) for line in f]
        records = [r for r in records if "error" not in r]
        predictions.update({(task, r["id"]): r["prediction"] for r in records})
        score, per_item = per_item_scores(task, records)
        assert score == summary.score
        low, high = bootstrap(per_item)
        out[task] = dict(score=score, low=round(low, 2), high=round(high, 2), items=len(records),
                         errors=len(summary.errors), seconds=round(time.perf_counter() - start, 1))
    return out, predictions


def chance(data: dict[str, str]) -> dict:
    """Each item answered with a random other item's answer of the same kind, scored by the task's metric."""
    rng = random.Random(0)
    out = {}
    for task in TASKS:
        with open(data[task], encoding="utf-8") as f:
            items = [json.loads(line) for line in f]
        records = []
        for n, item in enumerate(items):
            peers = [o for o in items if o is not item and o.get("kind") == item.get("kind")] or \
                [o for o in items if o is not item]
            other = rng.choice(peers)
            if task == "caption":
                records.append(dict(prediction=other["captions"][0], references=item["captions"], score=None))
            elif task == "refcoco":
                x1, y1, x2, y2 = other["box"]
                w, h = other["width"], other["height"]
                text = f"({x1 * 999 / w:.0f},{y1 * 999 / h:.0f}),({x2 * 999 / w:.0f},{y2 * 999 / h:.0f})"
                records.append(dict(score=grounding.evaluate(text, item["box"], item["width"], item["height"])[2]))
            else:
                records.append(dict(score=tasks.TASKS[task].score(other["answers"][0], item["answers"])))
        score, per_item = per_item_scores(task, records)
        low, high = bootstrap(per_item)
        out[task] = dict(score=score, low=round(low, 2), high=round(high, 2), items=len(records))
    return out


def reference_continuations(reference, prompts: list[dict], folder: str, max_new_tokens: int) -> list[list[int]]:
    return [reference.generate(p["prompt"], [os.path.join(folder, p["image"])], max_new_tokens=max_new_tokens).token_ids
            for p in prompts]


def agreement(model, prompts: list[dict], folder: str, want: list[list[int]], max_new_tokens: int) -> dict:
    """Teacher-forced top-1 agreement and identical free-running continuations with the reference."""
    hits = total = same = 0
    for p, ref in zip(prompts, want):
        images = [os.path.join(folder, p["image"])]
        rows = teacher_forced(model, p["prompt"], images, ref)
        hits += int((rows.argmax(axis=1) == np.asarray(ref)).sum())
        total += len(ref)
        same += model.generate(p["prompt"], images, temperature=0, max_new_tokens=max_new_tokens).token_ids == ref
    return dict(teacher_forced_top1=round(100 * hits / total, 2), free_running_identical=round(100 * same / len(prompts), 2),
                prompts=len(prompts), tokens=total)


def teacher_forced(model, prompt: str, images: list[str], continuation: list[int]) -> np.ndarray:
    if hasattr(model, "continuation_logits"):  # the reference
        return model.continuation_logits(prompt, images, continuation)
    prepared = model.prepare_raw(prompt, images)
    with model.session.lock:
        last = model.session.prefill(prepared.ids, prepared.spans, prepared.timings)
        return model.session.continuation_logits(last, continuation)


def export_all(checkpoint: str, work: str, calibration: str, threads: int | None) -> dict[str, dict]:
    from qwenvl_edge.export.export_model import export
    from qwenvl_edge.export.options import ExportOptions

    made = {}
    os.makedirs(os.path.join(work, "bundles"), exist_ok=True)
    for name, fields in BUNDLES.items():
        start = time.perf_counter()
        export(checkpoint, os.path.join(work, "bundles", name),
               ExportOptions(calibration=calibration, overwrite=True, progress=False, threads=threads, **fields))
        made[name] = dict(options=fields, seconds=round(time.perf_counter() - start, 1))
    return made


def table(rows: list[dict]) -> str:
    head = "| configuration | " + " | ".join(f"{t} ({tasks.TASKS[t].metric})" for t in TASKS) + \
           " | answers changed vs reference | teacher-forced top-1 | identical continuations |"
    lines = [head, "|" + "---|" * (len(TASKS) + 4)]
    for r in rows:
        cells = [f"{r['tasks'][t]['score']:.1f} [{r['tasks'][t]['low']:.1f}, {r['tasks'][t]['high']:.1f}]" for t in TASKS]
        a = r.get("agreement")
        agree = [f"{a['answers_changed']:.1f}%", f"{a['teacher_forced_top1']:.1f}%",
                 f"{a['free_running_identical']:.1f}%"] if a else ["", "", ""]
        lines.append(f"| {r['name']} | " + " | ".join(cells + agree) + " |")
    return "\n".join(lines)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", default=os.environ.get("QWENVL_VOCAB"),
                        help="the qwen.tiktoken whose first ranks the model uses (default $QWENVL_VOCAB)")
    parser.add_argument("--cache", default=os.path.join(os.environ.get("QWENVL_EDGE_CACHE", os.path.expanduser(
        "~/.cache/qwenvl-edge")), "synthetic"), help="trained checkpoints, reused (default ~/.cache/qwenvl-edge/synthetic)")
    parser.add_argument("--checkpoint", help="score this float checkpoint instead of the trained one (a quick look)")
    parser.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "qwenvl-quality"),
                        help="eval sets, calibration, bundles and per-item results")
    parser.add_argument("--items", type=int, default=100, help="eval items per task")
    parser.add_argument("--agreement", type=int, default=15, help="prompts per task for the agreement checks")
    parser.add_argument("--agreement-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    if args.vocab is None:
        parser.error("give --vocab (a qwen.tiktoken; the byte vocabulary cannot fit a caption in 30 tokens)")

    import torch

    from qwenvl_edge import load
    from qwenvl_edge.export.reference_generation import ReferenceGenerator
    from qwenvl_edge.export.synthetic import calibration_set, eval_sets, train, training

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    cfg = training.TrainConfig()
    checkpoint = args.checkpoint or train.cached(args.cache, cfg, args.vocab, args.threads)
    print(f"checkpoint {checkpoint}", flush=True)
    data = eval_sets.write(os.path.join(args.work, "eval"), args.items)
    calibration = calibration_set.write(os.path.join(args.work, "calibration"))
    exports = export_all(checkpoint, args.work, calibration, args.threads)
    print(f"exported {len(exports)} bundles", flush=True)
    folder = os.path.join(args.work, "eval")
    with open(os.path.join(folder, "prompts.jsonl"), encoding="utf-8") as f:
        prompts = [json.loads(line) for line in f]
    by_task: dict[str, list[dict]] = {}
    for p in prompts:
        by_task.setdefault(p["task"], []).append(p)
    prompts = [p for t in TASKS for p in by_task[t][: args.agreement]]

    def bundle_model(config: Config):
        return load(os.path.join(args.work, "bundles", config.bundle), threads=args.threads, **config.load)

    reference = ReferenceGenerator(checkpoint, bundle_model(CONFIGS[1]).generation)
    want = reference_continuations(reference, prompts, folder, args.agreement_tokens)
    rows = [dict(name="chance (another item's answer)", tasks=chance(data))]
    reference_answers: dict = {}
    for config in CONFIGS:
        model = reference if config.bundle is None else bundle_model(config)
        scores, answers = evaluate(model, config.name, data, args.work)
        row = dict(name=config.name, bundle=config.bundle, load=config.load, tasks=scores)
        if config.bundle is None:
            reference_answers = answers
        else:
            row["agreement"] = agreement(model, prompts, folder, want, args.agreement_tokens)
            row["agreement"]["answers_changed"] = round(100 * sum(answers.get(k) != v for k, v in reference_answers.items())
                                                        / len(reference_answers), 2)
        rows.append(row)
        print(config.name, json.dumps(row["tasks"]), row.get("agreement", ""), flush=True)
    load_average = os.getloadavg()
    text = table(rows)
    print(text)
    os.makedirs(args.results, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H%M%S", time.gmtime())
    record = dict(bench="quality", time=stamp, git=git_commit(),
                  machine={"platform": platform.platform(), **_core.cpu_info()}, threads=args.threads, load_average=[round(x, 2) for x in load_average], items=args.items,
                  train=dataclasses.asdict(cfg), checkpoint=os.path.basename(checkpoint), exports=exports, rows=rows,
                  seconds=round(time.perf_counter() - started, 1))
    with open(os.path.join(args.results, "quality.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    with open(os.path.join(args.results, "quality.md"), "w", encoding="utf-8") as f:
        f.write(f"Run {stamp} (git {record['git']}, {args.items} items per task, {args.threads} threads, "
                f"load average {record['load_average']}):\n\n{text}\n")
    draw(rows, TASKS, os.path.join(args.results, "quality.png"))
    if os.path.isfile(os.path.join(checkpoint, train.LOG_FILE)):  # --checkpoint may name an untrained one
        shutil.copyfile(os.path.join(checkpoint, train.LOG_FILE), os.path.join(args.results, "quality_train_log.jsonl"))


if __name__ == "__main__":
    main()
