import jax
import jax.numpy as jnp
import numpy as np

from jaxir import registry
from jaxir.parity import golden_inputs, golden_state_dict, load_golden, load_official_variables


def test_tlc_changes_pooling_only_beyond_train_size(golden_dir):
    """TLC must give a different result than global pooling on an input larger than the training patch."""
    meta, arrays = load_golden(golden_dir / "nafnet_local.npz")
    inputs = golden_inputs(meta, arrays)
    _, tlc_model, variables = load_official_variables(meta, golden_state_dict(arrays), inputs)
    plain = tlc_model.clone(tlc_train_size=None)
    out_tlc = tlc_model.apply(variables, *inputs)
    out_plain = plain.apply(variables, *inputs)
    assert float(jnp.max(jnp.abs(out_tlc - out_plain))) > 1e-5  # float noise is ~1e-7
    # On an input no larger than the training patch the window covers everything: global pooling.
    small = inputs[0][:, :32, :32]
    np.testing.assert_allclose(tlc_model.apply(variables, small), plain.apply(variables, small), atol=1e-6)


def test_nafnet_pads_odd_sizes_and_crops_back():
    model = registry.build_model("nafnet", width=8, enc_blk_nums=(1, 1), middle_blk_num=1, dec_blk_nums=(1, 1))
    x = jnp.ones((2, 37, 29, 3)) * 0.5
    variables = model.init(jax.random.key(0), x)
    assert model.apply(variables, x).shape == x.shape


def test_nafnet_bfloat16_compute_keeps_float32_params():
    model = registry.build_model("nafnet", width=8, enc_blk_nums=(1,), middle_blk_num=1, dec_blk_nums=(1,),
                                 dtype=jnp.bfloat16)
    x = jnp.full((1, 16, 16, 3), 0.5)
    variables = model.init(jax.random.key(0), x)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(variables))
    y = model.apply(variables, x)
    assert y.dtype == jnp.float32 and np.isfinite(np.asarray(y)).all()
