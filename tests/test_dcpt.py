"""DCPT: encoder taps from the registry, classification pre-training through the loop, fine-tuning from it."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from experiments.base import base_config
from jaxir import registry
from jaxir.methods import dcpt

TINY_NAFNET = {"width": 8, "enc_blk_nums": [1, 1], "middle_blk_num": 1, "dec_blk_nums": [1, 1]}
TASKS = [
    {"name": "noise", "degradation": [{"name": "gaussian_noise", "sigma": 50 / 255}]},
    {"name": "blur", "degradation": [{"name": "gaussian_blur", "sigma": 2.5, "kernel_size": 11}]},
    {"name": "dark", "degradation": [{"name": "low_light"}]},
]


def _pretrain_config(steps):
    c = base_config()
    c.model.name = "nafnet"
    c.model.kwargs = TINY_NAFNET
    c.method.name = "jaxir.methods.dcpt:pretrain"
    c.method.kwargs = {"num_classes": len(TASKS), "num_res_blocks": 1}
    c.data.train = {"source": "task_mixture", "kwargs": {"tasks": TASKS}}
    c.data.eval = None
    c.data.crop_size = 32
    c.data.batch_size = 8
    c.loss.terms = [{"name": "cross_entropy"}]
    c.loss.target = "task"
    c.optim.update({"lr": 2e-3, "schedule": "constant"})
    c.train.update({"num_steps": steps, "log_every": steps, "ckpt_every": steps, "eval_every": 0})
    return c


@pytest.mark.parametrize("name,kwargs,levels", [
    ("nafnet", TINY_NAFNET, 2),
    ("restormer", {"dim": 8, "num_blocks": [1, 2, 1, 1], "num_refinement_blocks": 1, "heads": [1, 2, 2, 4]}, 4),
])
def test_taps_come_from_the_model_entry(name, kwargs, levels):
    base = registry.build_model(name, **kwargs)
    model = dcpt.pretrain(base, registry.get_entry(name), num_classes=4, num_res_blocks=1)
    assert len(model.taps) == levels
    x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))["params"]
    assert set(shapes) == {"restorer", "classifier"}
    # The restorer's own parameter tree sits unchanged under 'restorer'.
    own = jax.eval_shape(lambda: base.init(jax.random.key(0), x))["params"]
    assert jax.tree_util.tree_structure(own) == jax.tree_util.tree_structure(shapes["restorer"])
    assert shapes["classifier"]["mixing_weights"].shape == (levels,)
    with pytest.raises(ValueError, match="encoder taps"):
        dcpt.pretrain(base, registry.get_entry("mimo_unet"))


@pytest.mark.slow
def test_pretraining_classifies_and_finetuning_starts_from_it(tmp_path):
    from jaxir.train.data import make_source, make_train_iterator, task_degradations
    from jaxir.train.loop import build_model, load_inference_variables, train
    from jaxir.train.step import degraded_input

    config = _pretrain_config(steps=60)
    metrics = train(config, tmp_path / "pretrain")
    assert metrics["rejected_steps"] == 0
    pretrained = load_inference_variables(config, tmp_path / "pretrain")["params"]

    # Accuracy on the held-out photos, degraded with other seeds.
    model, _ = build_model(config)
    heldout = _pretrain_config(1)
    heldout.data.train.kwargs.clean = {"source": "bundled", "kwargs": {"split": "heldout"}}
    heldout.data.batch_size = 48
    source = make_source(heldout.data.train, "train")
    batch = {k: jnp.asarray(v) for k, v in next(make_train_iterator(heldout.data, 123, source)).items()}
    inputs = degraded_input(batch, None, task_degradations(source))
    logits = jax.jit(model.apply)({"params": pretrained}, inputs)
    accuracy = dcpt.classification_accuracy(logits, batch["task"])
    assert accuracy >= 0.75, f"accuracy {accuracy:.2f} after pre-training (chance 0.33)"

    # Fine-tuning: the plain restorer, initialised from the pre-trained one (lr 0 keeps the start visible).
    finetune = base_config()
    finetune.model.name = "nafnet"
    finetune.model.kwargs = TINY_NAFNET
    finetune.data.train = {"source": "task_mixture", "kwargs": {"tasks": TASKS}}
    finetune.data.eval = None
    finetune.data.crop_size = 32
    finetune.data.batch_size = 8
    finetune.optim.update({"lr": 0.0, "schedule": "constant"})
    finetune.train.update({"num_steps": 1, "log_every": 1, "ckpt_every": 1, "eval_every": 0})
    pretrain_file = tmp_path / "pretrain_config.py"
    pretrain_file.write_text(
        "import sys\nsys.path.insert(0, %r)\nfrom test_dcpt import _pretrain_config\n\n\n"
        "def get_config(arg=None):\n    return _pretrain_config(60)\n" % str(__import__("pathlib").Path(__file__).parent))
    finetune.train.init_from = str(tmp_path / "pretrain")
    finetune.train.init_from_config = str(pretrain_file)
    finetune.train.init_from_subtree = "restorer"
    train(finetune, tmp_path / "finetune")
    started = traverse_util.flatten_dict(load_inference_variables(finetune, tmp_path / "finetune")["params"])
    want = traverse_util.flatten_dict(pretrained["restorer"])
    assert set(started) == set(want)
    for path, value in want.items():
        np.testing.assert_array_equal(started[path], value, err_msg="/".join(path))
    # ... and the pre-training did move the encoder away from its initialisation.
    base = registry.build_model("nafnet", **TINY_NAFNET)
    init = traverse_util.flatten_dict(base.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"])
    encoder = [p for p in want if p[0].startswith("encoders_")]
    assert encoder and any(not np.allclose(want[p], init[p]) for p in encoder)
