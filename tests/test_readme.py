"""The README's two opening commands are what the project promises; CI must run the second one."""
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_opens_with_install_and_run_commands():
    demo, tests = readme_commands()
    assert "pip install -e ." in demo and "jaxir demo" in demo
    assert "pytest" in tests and "[test" in tests


def test_ci_runs_the_readme_test_command():
    assert readme_commands()[1] in (ROOT / ".ci" / "run").read_text()
