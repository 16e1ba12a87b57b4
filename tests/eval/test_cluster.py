"""``qwenvl-edge eval --ray`` on a local Ray of 2 CPUs and the tiny bundle: the same records and score as
the single-process run, no item lost or repeated when a worker dies, and a resumed run finishing the set."""

import json
import os
import shutil
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from qwenvl_edge.cli import main  # noqa: E402
from qwenvl_edge.eval import cluster  # noqa: E402
from qwenvl_edge.eval.cluster import RESTARTS, Cluster, by_image  # noqa: E402
from qwenvl_edge.eval.data import Item  # noqa: E402
from qwenvl_edge.eval.results import Results  # noqa: E402
from qwenvl_edge.eval.runner import evaluate, evaluate_with  # noqa: E402

pytestmark = pytest.mark.slow
IDS = [f"q{i}" for i in range(9)]
MISSING = json.dumps({"id": "gone", "image": "nowhere.png", "question": "What is it?", "answers": ["x"]})


@pytest.fixture(scope="module")
def local_ray():
    """Ray with 2 CPUs; its workers can import the test double (dying_worker.py)."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent)] + ([old] if old else []))
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()
    if old is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = old


def write_data(folder: Path, pictures) -> Path:
    """Nine questions on three pictures, interleaved (so grouping by image reorders them), and a bad line."""
    folder.mkdir(exist_ok=True)
    for p in map(Path, pictures):
        shutil.copy(p, folder / p.name)
    lines = [json.dumps({"id": q, "image": f"p{i % 3}.png", "question": f"What is thing {i}?",
                         "answers": ["red"] * 3 + ["blue"]}) for i, q in enumerate(IDS)]
    path = folder / "vqa.jsonl"
    path.write_text("\n".join(lines[:4] + [MISSING] + lines[4:]) + "\n", encoding="utf-8")
    return path


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def by_id(rows: list[dict]) -> dict:
    """The records by id, an error's message without its data folder (each test has its own)."""
    keyed = {r["id"]: {**r, "error": r["error"].rsplit("/", 1)[-1]} if "error" in r else r for r in rows}
    assert len(keyed) == len(rows), "an item was written twice"
    return keyed


@pytest.fixture(scope="module")
def reference(tiny_bundle, pictures, tmp_path_factory):
    """The single-process run, with the workers' settings (1 thread, fp32 activations): (summary, records)."""
    import qwenvl_edge

    folder = tmp_path_factory.mktemp("reference")
    out = folder / "out.jsonl"
    model = qwenvl_edge.load(tiny_bundle, threads=1, exact=True)
    summary = evaluate(model, "vqa", write_data(folder, pictures), out=out, progress=False)
    assert summary.items == len(IDS) and [e.line for e in summary.errors] == [5]
    return summary, records(out)


def test_ray_results_and_score_equal_the_single_process_run(local_ray, reference, tiny_bundle, pictures, tmp_path,
                                                            capsys):
    expected, expected_records = reference
    out = tmp_path / "out.jsonl"
    main(["eval", str(tiny_bundle), "--task", "vqa", "--data", str(write_data(tmp_path, pictures)), "--out", str(out),
          "--exact", "--ray", "--workers", "2", "--threads-per-worker", "1"])
    printed = capsys.readouterr()
    row = printed.out.splitlines()[1].split()
    assert row[-4:-1] == [str(expected.items), f"{expected.score:.2f}", "1"]
    assert printed.out.splitlines()[2] == f"line 5: image not found: {tmp_path / 'nowhere.png'}"
    assert f"{len(IDS)}/{len(IDS)}" in printed.err  # one progress bar over the items
    assert by_id(records(out)) == by_id(expected_records)


@pytest.mark.parametrize("deaths", [1, RESTARTS + 1], ids=["restarted", "dead-for-good"])
def test_a_worker_killed_mid_item_loses_and_repeats_no_item(local_ray, reference, tiny_bundle, pictures, tmp_path,
                                                             deaths):
    """Killed once, a worker is restarted and retries its items; killed as often as Ray restarts it and
    once more, it is gone and the other worker answers its items."""
    from dying_worker import DyingWorker

    data = write_data(tmp_path, pictures)
    (tmp_path / "die-on").write_text(f"q4 {deaths}")
    out = tmp_path / "out.jsonl"
    with Cluster(tiny_bundle, workers=2, threads=1, exact=True, worker=DyingWorker) as workers:
        summary = evaluate_with(workers.answers, "vqa", data, out=out, progress=False)
    assert (tmp_path / "deaths").read_text() == "x" * deaths
    assert summary.items == len(IDS) and summary.score == reference[0].score
    assert by_id(records(out)) == by_id(reference[1])


def test_when_every_worker_dies_the_run_stops_and_keeps_the_items_done(local_ray, tiny_bundle, pictures, tmp_path):
    from dying_worker import DyingWorker

    data = write_data(tmp_path, pictures)
    (tmp_path / "die-on").write_text("q4 99")  # q4 kills whichever worker takes it
    out = tmp_path / "out.jsonl"
    with pytest.raises(cluster.WorkersLost, match=rf"every worker died \(1, each restarted {RESTARTS} times\); the "
                                                  r"items done are in the results file, and a rerun does the rest"):
        with Cluster(tiny_bundle, workers=1, threads=1, exact=True, worker=DyingWorker) as workers:
            evaluate_with(workers.answers, "vqa", data, out=out, progress=False)
    assert (tmp_path / "deaths").read_text() == "x" * (RESTARTS + 1)
    done = [r["id"] for r in records(out) if "error" not in r]
    assert "q4" not in done and "q1" in done  # q1 is q4's picture's first question: answered before it


def test_an_interrupted_run_resumes_without_repeating_an_item(local_ray, reference, tiny_bundle, pictures, tmp_path,
                                                               monkeypatch):
    data = write_data(tmp_path, pictures)
    out = tmp_path / "out.jsonl"
    real_add = Results.add

    def interrupted(self, record):  # Ctrl-C once three items are written
        if len(self.records) == 3:
            raise KeyboardInterrupt
        real_add(self, record)

    with monkeypatch.context() as m:
        m.setattr(Results, "add", interrupted)
        with pytest.raises(KeyboardInterrupt), Cluster(tiny_bundle, workers=2, threads=1, exact=True) as workers:
            evaluate_with(workers.answers, "vqa", data, out=out, progress=False)
    first = records(out)
    assert len([r for r in first if "error" not in r]) == 3
    with Cluster(tiny_bundle, workers=2, threads=1, exact=True) as workers:
        summary = evaluate_with(workers.answers, "vqa", data, out=out, progress=False)
    assert summary.items == len(IDS) and summary.score == reference[0].score
    final = records(out)
    assert final[:3] == [r for r in first if "error" not in r]  # the finished items kept, not run again
    assert by_id(final) == by_id(reference[1])


def test_a_bundle_missing_on_a_node_is_named(local_ray, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"the bundle .*nowhere is not on node .+: with --ray, the bundle's "
                                                r"path must exist on every node"):
        Cluster(tmp_path / "nowhere", workers=1)


def test_the_workers_must_fit_the_cluster(local_ray, tiny_bundle):
    with pytest.raises(ValueError, match="3 workers of 1 threads need 3 CPUs; the Ray cluster has 2"):
        Cluster(tiny_bundle, workers=3)


def test_items_are_grouped_by_image_in_order_of_first_appearance():
    items = [Item(id=i, line=i, image=f"/p{i % 2}.png", image_ref="") for i in range(5)]
    assert [[i.id for i in group] for group in by_image(items)] == [[0, 2, 4], [1, 3]]
