"""Every experiments/ config loads, builds its model, loss and optimizer, and names real datasets."""
import pathlib

import pytest

from jaxir import methods, registry
from jaxir.config import load_config
from jaxir.losses import build_loss
from jaxir.parity import count_params, example_inputs
from jaxir.train.optim import make_optimizer

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"
CONFIGS = sorted(p.name for p in EXPERIMENTS.glob("*.py") if p.stem not in ("__init__", "base"))


@pytest.mark.parametrize("filename", CONFIGS)
def test_config_builds(filename):
    module_doc = (EXPERIMENTS / filename).read_text()
    assert '"""' in module_doc.split("\n", 3)[0] + module_doc, "config must cite its paper in the docstring"
    config = load_config(str(EXPERIMENTS / filename))
    assert config.model.name in registry.model_names()
    model = registry.build_model(config.model.name, **dict(config.model.kwargs))
    entry = registry.get_entry(config.model.name)
    size = max(64, entry.min_size)
    size += (-size) % entry.pad_multiple
    assert count_params(model, *example_inputs(entry, model, 1, size)) > 0  # timesteps/context where declared
    methods.build_method(config.get("method", None))  # importing a method registers its loss terms
    build_loss([dict(t) for t in config.loss.terms], multiscale=config.loss.get("multiscale", "bilinear"))
    make_optimizer(config.optim, int(config.train.num_steps))
    assert config.data.train is not None and config.data.batch_size > 0
