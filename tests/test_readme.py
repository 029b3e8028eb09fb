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


def readme_python_example() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Python", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_python_example_runs_line_by_line(tmp_path, monkeypatch, capsys):
    """The five lines, as written, on a self-made stand-in for the official NAFNet-GoPro-width32.pth."""
    torch = __import__("pytest").importorskip("torch")
    import numpy as np
    from PIL import Image

    from jaxir.api import resolve
    from jaxir.torch_reference import build_reference

    lines = readme_python_example()
    assert len(lines) == 5
    name, kwargs = resolve("nafnet-gopro-width32")
    reference_kwargs = {k: v for k, v in kwargs.items() if k != "tlc_train_size"}  # TLC has no weights
    torch.manual_seed(0)
    torch.save({"params": build_reference(name, **reference_kwargs).state_dict()},
               tmp_path / "NAFNet-GoPro-width32.pth")
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(sharp).save(tmp_path / "sharp.png")
    Image.fromarray(np.clip(sharp.astype(int) + rng.integers(-30, 31, sharp.shape), 0, 255).astype(np.uint8)).save(
        tmp_path / "blurry.png")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for line in lines:
        exec(compile(line, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    restored = Image.open(tmp_path / "restored.png")
    assert restored.size == (56, 40) and restored.mode == "RGB"
    printed = capsys.readouterr().out
    assert np.isfinite(float(printed.strip().strip("[]")))
