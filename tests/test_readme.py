from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index("```bash")
    assert start <= 4, "the README says what it is in a line, then gives the main-job and the test commands"
    block = lines[start + 1 : lines.index("```", start + 1)]
    commands = [line for line in block if line.startswith("pip install")]
    assert len(commands) == 2, "the first block holds the main-job and the test commands"
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci
