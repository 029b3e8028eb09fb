"""MSBDN-DFF, DCPT's classifier and VLU-Net: structure checks beside their golden parity (tests/test_parity.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir import registry
from jaxir.models.blocks import PReLU
from jaxir.parity import count_params, group_inputs


def _random_variables(model, *inputs, seed=0):
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), *inputs))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda s: jnp.asarray(rng.normal(0.0, 0.1, s.shape), jnp.float32), shapes)


def test_group_inputs_follows_the_sidecar_forward():
    flat = ["x", "a", "b", "c"]
    assert group_inputs({"forward": "model(input, [input_1, input_2], input_3)"}, flat) == (
        ["x", ("a", "b"), "c"], {})
    assert group_inputs({"forward": "model(input, input_1, context=input_2)"}, flat[:3]) == (
        ["x", "a"], {"context": "b"})
    assert group_inputs({}, flat) == (flat, {})


def test_prelu_matches_its_definition():
    x = jnp.array([-2.0, -0.5, 0.0, 3.0])
    y = PReLU().apply({"params": {"weight": jnp.array([0.25])}}, x)
    np.testing.assert_allclose(y, [-0.5, -0.125, 0.0, 3.0])


def test_msbdn_counts_and_checks_its_input():
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    assert count_params(registry.build_model("msbdn"), x) == 31_353_061
    # Each bottleneck residual block is two 3x3 convs at 256 channels and one PReLU slope.
    per_block = 2 * (256 * 256 * 9 + 256) + 1
    assert count_params(registry.build_model("msbdn", res_blocks=17), x) == 31_353_061 - per_block
    # networks/MSBDN-RDFF.py, the 28.7M unified model of the ADMS table.
    assert count_params(registry.build_model("msbdn", rdff=True), x) == 28_712_861
    with pytest.raises(ValueError, match="divisible by 16"):
        registry.build_model("msbdn", res_blocks=0).init(jax.random.key(0), jnp.zeros((1, 24, 24, 3)))


def test_dcpt_classifier_reads_every_feature_and_rejects_wrong_widths():
    model = registry.build_model("dcpt_classifier", feature_dims=(4, 8, 8, 16), num_res_blocks=1, num_classes=3)
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    feats = [jax.random.normal(jax.random.key(i + 1), (2, 32 // 2 ** (i + 1), 32 // 2 ** (i + 1), c))
             for i, c in enumerate((4, 8, 8, 16))]
    variables = _random_variables(model, x, feats)
    logits = model.apply(variables, x, feats)
    assert logits.shape == (2, 3)
    for i in range(4):
        changed = list(feats)
        changed[i] = changed[i] + 1.0
        assert not np.allclose(model.apply(variables, x, changed), logits), f"feature {i} is ignored"
    with pytest.raises(ValueError, match="channels"):
        model.apply(variables, x, feats[:3] + [feats[2]])


def test_vlu_net_uses_the_degradation_vector_and_not_the_unused_downsampler():
    kwargs = dict(de_dim=3, dim=16, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 2, 2, 4))
    model = registry.build_model("vlu_net", **kwargs)
    x = jax.random.uniform(jax.random.key(0), (1, 16, 16, 3))
    v = jax.random.normal(jax.random.key(1), (1, 512))
    variables = _random_variables(model, x, v)
    out = model.apply(variables, x, v)
    assert out.shape == x.shape
    assert not np.allclose(model.apply(variables, x, -v), out, atol=1e-6)
    # The official forward downsamples the image stream with `down1_2`; `down1_2_i` only holds weights.
    changed = jax.tree_util.tree_map(lambda a: a, variables)
    changed["params"]["down1_2_i"]["body_0"]["kernel"] = changed["params"]["down1_2_i"]["body_0"]["kernel"] + 1.0
    np.testing.assert_array_equal(model.apply(changed, x, v), out)
    with pytest.raises(ValueError, match="degradation vector"):
        model.apply(variables, x, v[:, :16])
