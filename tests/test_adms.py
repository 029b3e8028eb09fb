"""ADMS: FAIG-SD ranks the discriminative kernel first, masks hold exactly q% of kernels, CNN-ADS's
parameter transform, and the parameter counts of the paper's table."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxir import registry
from jaxir.methods import adms
from jaxir.parity import count_params

class Toy(adms.nn.Module):
    """Three convs: 6 filters, ReLU, a depthwise conv, then 3 filters plus the input."""

    @adms.nn.compact
    def __call__(self, x, train=False):
        h = jax.nn.relu(adms.Conv2d(6, 3, padding=1, name="conv1")(x))
        h = adms.Conv2d(6, 3, padding=1, groups=6, name="dw")(h)
        return adms.Conv2d(3, 3, padding=1, name="conv2")(h) + x


def _toy_params(seed):
    return Toy().init(jax.random.key(seed), jnp.zeros((1, 8, 8, 3)))["params"]


def test_faig_ranks_the_discriminative_kernel_first():
    """θ_d differs from θ_um slightly everywhere and strongly in filter 4 of conv1, which matters for the data."""
    theta_um = _toy_params(0)
    noise = jax.tree_util.tree_map(lambda a: 0.01 * np.random.default_rng(1).normal(size=a.shape), theta_um)
    theta_d = jax.tree_util.tree_map(lambda a, n: a + n, theta_um, noise)
    kernel = np.array(theta_d["conv1"]["kernel"])
    kernel[..., 4] += 0.5 * np.random.default_rng(2).normal(size=kernel[..., 4].shape)
    theta_d["conv1"]["kernel"] = jnp.asarray(kernel)
    x = jax.random.uniform(jax.random.key(3), (4, 8, 8, 3))
    y = Toy().apply({"params": theta_d}, x)  # the target model restores these inputs
    apply_fn = lambda p, inp: Toy().apply({"params": p}, inp)  # noqa: E731
    scores = adms.faig_scores(apply_fn, theta_um, theta_d, x, y, num_points=8, chunk=4)
    assert set(scores) == {("conv1", "kernel"), ("dw", "kernel"), ("conv2", "kernel")}
    ranked = sorted(((float(v), path, i) for path, s in scores.items() for i, v in enumerate(np.asarray(s))),
                    reverse=True)
    assert ranked[0][1:] == (("conv1", "kernel"), 4)
    # Chunking the path points changes nothing.
    again = adms.faig_scores(apply_fn, theta_um, theta_d, x, y, num_points=8, chunk=8)
    np.testing.assert_allclose(again[("conv1", "kernel")], scores[("conv1", "kernel")], rtol=1e-5)
    # Identical models attribute nothing.
    zero = adms.faig_scores(apply_fn, theta_um, theta_um, x, y, num_points=2)
    assert all(float(jnp.max(s)) == 0.0 for s in zero.values())


@pytest.mark.parametrize("q", [0.01, 0.03, 0.05])
def test_masks_hold_exactly_q_of_the_kernels(q):
    rng = np.random.default_rng(0)
    scores = {("a", "kernel"): rng.random(300), ("b", "kernel"): rng.random(64), ("c", "kernel"): rng.random(1000)}
    per_layer = adms.select_kernels(scores, q, "layer")
    for path, s in scores.items():
        assert per_layer[path].sum() == round(q * s.size)
        chosen = s[per_layer[path]]
        if chosen.size:
            assert chosen.min() >= s[~per_layer[path]].max()  # the top ones
    overall = adms.select_kernels(scores, q, "global")
    total = sum(s.size for s in scores.values())
    assert sum(m.sum() for m in overall.values()) == round(q * total)
    threshold = min(scores[p][m].min() for p, m in overall.items() if m.any())
    assert all(scores[p][~m].max() <= threshold for p, m in overall.items())
    with pytest.raises(ValueError):
        adms.select_kernels(scores, 3.0)


def test_one_hot_ads_parameters_are_um_plus_the_masked_extra_kernels():
    base = Toy()
    x = jax.random.uniform(jax.random.key(0), (3, 16, 16, 3))
    shapes = jax.eval_shape(lambda: base.init(jax.random.key(0), x[:1]))["params"]
    rng = np.random.default_rng(0)
    masks = [adms.select_kernels({p: rng.random(leaf.shape[-1]) for p, leaf in adms.conv_kernels(shapes).items()},
                                 0.34) for _ in range(3)]
    selections = adms.selections_from_masks(masks)
    model = adms.ADSModel(base, selections, 3)
    variables = model.init(jax.random.key(1), x)
    assert set(variables["params"]) == {"um", "extra", "dc"}
    variables["params"]["extra"] = jax.tree_util.tree_map(
        lambda a: jnp.asarray(0.1 * rng.normal(size=a.shape), jnp.float32), variables["params"]["extra"])
    um, extras = variables["params"]["um"], variables["params"]["extra"]
    for d in range(3):
        one_hot = jax.nn.one_hot(d, 3)
        got = traverse_util.flatten_dict(adms.ads_params(um, extras, selections, one_hot))
        for path, value in traverse_util.flatten_dict(um).items():
            want = np.array(value)
            if path in masks[d]:  # θ_um + θ_d · M_d, the extra kernel scattered onto the mask
                dense = np.zeros_like(want)
                dense[..., masks[d][path]] = np.asarray(extras[str(d)][".".join(path)])
                want = want + dense
            np.testing.assert_allclose(got[path], want, rtol=1e-6, atol=1e-6)
    # The ADS forward applies each image's own parameters (vmap over the batch).
    labels = jnp.array([0, 2, 1])
    ads_apply = jax.jit(lambda v, probs: model.apply(v, x, class_probs=probs))
    base_apply = jax.jit(lambda p, image: base.apply({"params": p}, image))
    out = ads_apply(variables, jax.nn.one_hot(labels, 3))
    for b in range(3):
        params = adms.ads_params(um, extras, selections, jax.nn.one_hot(labels[b], 3))
        np.testing.assert_allclose(out[b], base_apply(params, x[b:b + 1])[0], rtol=1e-4, atol=1e-4)
    # Zero extra kernels give the unified model whatever the classifier says.
    variables["params"]["extra"] = jax.tree_util.tree_map(jnp.zeros_like, extras)
    np.testing.assert_allclose(jax.jit(model.apply)(variables, x), base_apply(um, x), rtol=1e-4, atol=1e-4)


def test_build_ads_starts_at_the_finetuned_filters():
    base = Toy()
    x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
    um = base.init(jax.random.key(0), x[:1])["params"]
    finetuned = [jax.tree_util.tree_map(lambda a, s=s: a + 0.05 * jax.random.normal(jax.random.key(s), a.shape), um)
                 for s in (1, 2)]
    targets = [base.apply({"params": p}, x) for p in finetuned]
    model, selections, init = adms.build_ads(base, um, finetuned, [x, x], targets, q=0.34, num_points=4)
    variables = model.init(jax.random.key(3), x)
    variables["params"].update(init)
    ads_apply = jax.jit(lambda v, probs: model.apply(v, x, class_probs=probs))
    for d in range(2):
        out = ads_apply(variables, jnp.tile(jax.nn.one_hot(d, 2), (2, 1)))
        mixed = adms.ads_params(um, init["extra"], selections, jax.nn.one_hot(d, 2))
        flat_mixed, flat_ft = traverse_util.flatten_dict(mixed), traverse_util.flatten_dict(finetuned[d])
        for path, per_d in selections:
            idx = np.asarray(per_d[d])
            np.testing.assert_allclose(flat_mixed[path][..., idx], flat_ft[path][..., idx], atol=1e-6)
        np.testing.assert_allclose(out, jax.jit(base.apply)({"params": mixed}, x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,kwargs,um_count,ads_millions", [
    ("nafnet", dict(width=32, enc_blk_nums=[1, 1, 1, 28], middle_blk_num=1, dec_blk_nums=[1, 1, 1, 1]),
     17_111_907, 18.9),
    ("msbdn", dict(rdff=True), 28_712_861, 31.6),
])
def test_parameter_counts_of_the_paper_table(name, kwargs, um_count, ads_millions):
    """UM → ADS at q = 3% for 3 degradations: NAFNet 17.1M → 18.9M, MSBDN 28.7M → 31.6M."""
    base = registry.build_model(name, **kwargs)
    x = jax.ShapeDtypeStruct((2, 64, 64, 3), jnp.float32)
    assert count_params(base, x) == um_count
    shapes = jax.eval_shape(lambda: base.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3))))["params"]
    ads = adms.ADSModel(base, adms.budget_selections(shapes, 3, 0.03), 3)
    count = count_params(ads, x)
    assert round(count / 1e6, 1) == ads_millions, count


# --- through the shared loop -------------------------------------------------------------------------

TINY_NAFNET = {"width": 8, "enc_blk_nums": [1], "middle_blk_num": 1, "dec_blk_nums": [1]}
RAIN_BLUR_NOISE = [
    {"name": "rain", "degradation": [{"name": "rain"}]},
    {"name": "blur", "degradation": [{"name": "motion_blur", "kernel_size": 9}]},
    {"name": "noise", "degradation": [{"name": "gaussian_noise", "sigma": 25 / 255}]},
]


def _stage_config(stage, tasks=RAIN_BLUR_NOISE, steps=2):
    from experiments.base import base_config

    config = base_config()
    config.model.name = "nafnet"
    config.model.kwargs = TINY_NAFNET
    config.data.train = {"source": "task_mixture", "kwargs": {"tasks": tasks}}
    config.data.eval = None
    config.data.crop_size = 32
    config.data.batch_size = 8
    config.optim.update({"lr": 1e-3, "schedule": "constant"})
    config.train.update({"num_steps": steps, "log_every": 1, "ckpt_every": steps, "eval_every": 0})
    if stage == "dc":
        config.method.name = "jaxir.methods.adms:classifier"
        config.method.kwargs = {"num_classes": 3}
        config.loss.terms = [{"name": "cross_entropy"}]
        config.loss.target = "task"
    return config


@pytest.mark.slow
def test_ads_stage_trains_through_the_loop(tmp_path):
    from jaxir.train.loop import load_inference_variables, train

    base = registry.build_model("nafnet", **TINY_NAFNET)
    shapes = jax.eval_shape(lambda: base.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))["params"]
    selections_file = tmp_path / "selections.json"
    adms.save_selections(selections_file, adms.budget_selections(shapes, 3, 0.1))
    config = _stage_config("ads")
    config.method.name = "jaxir.methods.adms:ads"
    config.method.kwargs = {"selections_file": str(selections_file), "num_degradations": 3}
    metrics = train(config, tmp_path / "ads")
    assert metrics["rejected_steps"] == 0 and np.isfinite(metrics["train_loss"])
    params = load_inference_variables(config, tmp_path / "ads")["params"]
    assert set(params) == {"um", "extra", "dc"}
    # The extra kernels start at zero and learn.
    assert max(float(np.abs(a).max()) for a in jax.tree_util.tree_leaves(params["extra"])) > 0


# Too long for CI on 2 cores (minutes, GBs): run with `pytest -m heavy`.
@pytest.mark.heavy
def test_adms_pipeline_through_the_loop(tmp_path):
    """UM -> fine-tuned target -> DC -> FAIG masks and ADS initial weights -> ADS, each stage through `train`."""
    from jaxir.io import load_weights
    from jaxir.train.loop import train

    um = _stage_config("um")
    train(um, tmp_path / "um")
    finetune = _stage_config("um", tasks=RAIN_BLUR_NOISE[:1], steps=4)
    finetune.train.init_from = str(tmp_path / "um")
    train(finetune, tmp_path / "ft_rain")
    dc = _stage_config("dc")
    assert np.isfinite(train(dc, tmp_path / "dc")["train_loss"])
    selections_file, weights_file = adms.prepare_ads(
        um, tmp_path / "um", [tmp_path / "ft_rain"] * 3, dc, tmp_path / "dc", tmp_path / "ads_prep",
        q=0.05, num_points=4, images_per_task=2)
    selections = adms.load_selections(selections_file)
    _, _, variables = load_weights(weights_file)
    assert set(variables["params"]) == {"um", "extra", "dc"}
    kernels = adms.conv_kernels(variables["params"]["um"])
    assert {p for p, _ in selections} == set(kernels)
    for path, per_degradation in selections:
        assert all(len(idx) == round(0.05 * kernels[path].shape[-1]) for idx in per_degradation)
    ads_config = _stage_config("ads")
    ads_config.method.name = "jaxir.methods.adms:ads"
    ads_config.method.kwargs = {"selections_file": selections_file, "num_degradations": 3}
    ads_config.train.init_from = weights_file
    assert np.isfinite(train(ads_config, tmp_path / "ads")["train_loss"])
