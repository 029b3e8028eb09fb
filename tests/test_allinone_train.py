"""The all-in-one models train a few steps through the loop on the real mixture path, with their papers' losses.

The mixture is `data_pipelines.mixtures.make_mixture` over the bundled photos:
denoising tasks get their noise synthesised on device at the task's sigma, the
paired tasks (rain, haze, blur, low light) read inputs synthesised once from the
same photos; every batch carries its task labels. Widths are tiny; the loss terms
are the experiments/ recipes' (L1; L1 + FFT + router balance; the TUR loss).
"""
import json
import math

import numpy as np
import pytest

from data_pipelines.mixtures import make_mixture
from data_pipelines.sources import BundledPhotos
from experiments.base import base_config
from jaxir.config import load_config
from jaxir.train.data import register_source
from jaxir.train.loop import train

PATCH = 48  # photos are cut to this before synthesis: keeps the fixture cheap
SYNTHETIC = {
    "derain": [{"name": "rain"}], "dehaze": [{"name": "haze"}],
    "deblur": [{"name": "motion_blur", "kernel_size": 9}], "lowlight": [{"name": "low_light"}],
}


class SynthesizedPairs:
    """Paired records (input, target) from clean photos, degraded once by a jaxir degradation spec."""

    def __init__(self, clean, spec):
        self._clean, self._spec, self._cache = clean, spec, {}

    def __len__(self):
        return len(self._clean)

    def __getitem__(self, index):
        if index not in self._cache:
            from jaxir.degradations import synthesize

            target = self._clean[index]["target"][:PATCH, :PATCH]
            degraded = synthesize(self._spec, target[None].astype(np.float32) / 255.0, np.array([index], np.uint32))
            self._cache[index] = {"input": np.round(np.asarray(degraded[0]) * 255).astype(np.uint8),
                                  "target": target, "name": f"{index}"}
        return dict(self._cache[index])


class CutPhotos:
    def __init__(self, photos):
        self._photos = photos

    def __len__(self):
        return len(self._photos)

    def __getitem__(self, index):
        record = self._photos[index]
        return {"target": record["target"][:PATCH, :PATCH], "name": record["name"]}


def bundled_mixture(protocol):
    photos = BundledPhotos("train")
    sources = {"denoise": CutPhotos(photos), **{role: SynthesizedPairs(photos, spec) for role, spec in SYNTHETIC.items()}}
    return make_mixture(protocol, sources)


for _protocol in ("aio3", "aio5"):
    register_source(f"bundled_{_protocol}", lambda protocol=_protocol: bundled_mixture(protocol))

# name -> (experiments recipe, small model kwargs, protocol)
CASES = {
    "promptir": ("experiments/promptir_aio3.py",
                 dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 2, 2, 4],
                      prompt_sizes=[8, 4, 2]), "aio3"),
    "promptir_tur": ("experiments/promptir_tur_aio3.py",
                     dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 2, 2, 4],
                          prompt_sizes=[8, 4, 2]), "aio3"),
    "moce_ir": ("experiments/moce_ir_aio5.py:s",
                dict(dim=8, levels=3, heads=[1, 2, 2], num_blocks=[1, 1, 1], num_dec_blocks=[1, 1],
                     num_refinement_blocks=1, num_experts=3, topk=1, rank_type="spread", depth_type="constant",
                     stage_depth=[1, 1]), "aio5"),
}


def small_config(recipe, kwargs, protocol):
    paper = load_config(recipe)
    config = base_config()
    config.model.name = paper.model.name
    config.model.kwargs = kwargs
    config.method = paper.method
    config.loss = paper.loss
    config.data.train = {"source": f"bundled_{protocol}", "kwargs": {}}
    config.data.eval = None
    config.data.crop_size = 16
    config.data.batch_size = 8  # one image per simulated device (tests/conftest.py)
    config.optim.update({"lr": 1e-3, "schedule": "constant"})
    config.train.update({"num_steps": 2, "log_every": 1, "ckpt_every": 2, "eval_every": 0})
    return config


# About 1.5-3 CPU-minutes each (compiling the train step of the prompt/expert blocks): beyond the default budget.
@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_trains_on_the_mixture_with_the_paper_losses(tmp_path, name):
    recipe, kwargs, protocol = CASES[name]
    config = small_config(recipe, kwargs, protocol)
    metrics = train(config, tmp_path)
    assert metrics["rejected_steps"] == 0 and math.isfinite(metrics["train_loss"])
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    terms = {key for row in logged for key in row if key.startswith("loss/")}
    want = {f"loss/{t.get('label', t['name'])}" for t in config.loss.terms}
    assert want <= terms, (want, terms)
    if name == "moce_ir":
        assert all(row["loss/balance"] > 0 for row in logged if "loss/balance" in row)
