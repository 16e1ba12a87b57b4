from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    lines = (REPO / "README.md").read_text().splitlines()
    commands = [line for line in lines[:8] if line.startswith("pip install")]
    assert len(commands) == 2, "the README opens with the main-job and the test commands"
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci
