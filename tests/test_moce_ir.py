"""MoCE-IR: only the routed experts execute, the balance loss against the official formulas, the aux loss hook.

Numerical parity with the official code is tests/test_parity.py (moce_ir.npz, both paper counts).
"""
import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxir import registry
from jaxir.losses import LossContext, build_loss
from jaxir.models.moce_ir import BALANCE_LOSS, balance_loss, expert_complexity, expert_ranks

TINY = dict(dim=8, levels=2, heads=(1, 2), num_blocks=(1, 1), num_dec_blocks=(2,), num_refinement_blocks=1,
            num_experts=3, topk=1, rank_type="spread", depth_type="constant", stage_depth=(1,))
DEC_BLOCKS = 2  # sum(num_dec_blocks)


def _variables(model, x):
    return jax.jit(lambda: model.init(jax.random.key(0), x))()


def test_only_routed_experts_execute():
    """Sparse routing runs batch * topk experts per decoder block; dense runs all of them, same output."""
    calls = collections.Counter()

    def probe(level, block, expert):
        calls[(int(level), int(block), int(expert))] += 1

    x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 3))
    sparse = registry.build_model("moce_ir", **TINY, expert_probe=probe)  # 'auto': sparse in inference
    dense = registry.build_model("moce_ir", **TINY, routing="dense", expert_probe=probe)
    variables = _variables(sparse, x[:1])
    calls.clear()
    out_sparse = jax.jit(lambda v, x: sparse.apply(v, x))(variables, x)
    jax.effects_barrier()
    assert sum(calls.values()) == DEC_BLOCKS * x.shape[0] * TINY["topk"]
    assert all(count == 1 or count == 2 for count in calls.values())
    assert {key[:2] for key in calls} == {(0, 0), (0, 1)}  # every decoder block routed

    calls.clear()
    out_dense = jax.jit(lambda v, x: dense.apply(v, x))(variables, x)
    jax.effects_barrier()
    assert sum(calls.values()) == DEC_BLOCKS * TINY["num_experts"]
    np.testing.assert_allclose(out_sparse, out_dense, atol=1e-5)


@pytest.mark.slow
def test_topk_two_sums_gated_experts_and_matches_dense():
    x = jax.random.uniform(jax.random.key(2), (2, 8, 8, 3))
    sparse = registry.build_model("moce_ir", **dict(TINY, topk=2))
    dense = registry.build_model("moce_ir", **dict(TINY, topk=2), routing="dense")
    variables = _variables(sparse, x[:1])
    run = lambda model: jax.jit(model.apply)(variables, x)  # noqa: E731
    np.testing.assert_allclose(run(sparse), run(dense), atol=1e-5)


def _torch_balance(logits, noisy, k, std, complexity=None):
    """The official RoutingFunction.importance_loss + load_loss, written out in torch."""
    logits, noisy = torch.tensor(np.asarray(logits)), torch.tensor(np.asarray(noisy))
    importance = logits.softmax(-1).sum(0)
    if complexity is not None:
        importance = importance * torch.tensor(np.asarray(complexity))
    imp = (importance.std() / (importance.mean() + 1e-8)) ** 2
    kth = torch.topk(noisy, k, dim=-1).indices[:, -1]
    threshold = (torch.nn.functional.one_hot(kth, logits.shape[1]) * noisy).sum(-1)
    p = 1.0 - torch.distributions.Normal(0.0, 1.0).cdf((threshold[:, None] - logits) / std)
    p_mean = p.mean(0)
    load = (p_mean.std() / (p_mean.mean() + 1e-8)) ** 2
    return float(0.5 * imp + 0.5 * load)


@pytest.mark.parametrize("k,with_complexity", [(1, False), (2, True)])
def test_balance_loss_matches_the_official_formulas(k, with_complexity):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 4)).astype(np.float32)
    noisy = logits + 0.25 * rng.normal(size=(6, 4)).astype(np.float32)
    complexity = expert_complexity(32, 2, 4, "spread", "max") if with_complexity else None
    got = float(balance_loss(jnp.asarray(logits), jnp.asarray(noisy), k, 0.25,
                             None if complexity is None else jnp.asarray(complexity)))
    assert got == pytest.approx(_torch_balance(logits, noisy, k, 0.25, complexity), rel=1e-5)


def test_complexity_is_expert_params_over_the_max():
    assert expert_ranks(32, 2, 4, "spread") == [4, 8, 16, 32]
    model = registry.build_model("moce_ir", **TINY)
    x = jnp.zeros((1, 8, 8, 3))
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
    adapter = shapes["params"]["dec_0_2"]["layers_0"]["adapter"]
    counts = [sum(int(np.prod(l.shape)) for l in jax.tree_util.tree_leaves(adapter[f"experts_{e}"])) for e in range(3)]
    want = np.asarray(counts, np.float32) / max(counts)
    np.testing.assert_allclose(expert_complexity(8, 2, 3, "spread", "max"), want, rtol=1e-6)
    stored = shapes["batch_stats"]["dec_0_2"]["layers_0"]["adapter"]["routing_fn"]["complexity"]
    assert stored.shape == (3,)


@pytest.mark.slow  # compiles the gradient through the experts: about a CPU-minute
def test_training_sows_one_balance_loss_per_decoder_block_and_the_aux_term_averages_them():
    model = registry.build_model("moce_ir", **TINY)
    x = jax.random.uniform(jax.random.key(3), (3, 8, 8, 3))
    variables = _variables(model, x[:1])
    out, mutated = jax.jit(lambda v, x: model.apply(v, x, train=True, rngs={"noise": jax.random.key(4)},
                                                    mutable=["batch_stats", "aux"]))(variables, x)
    context = LossContext(aux=mutated["aux"])
    sown = context.sown(BALANCE_LOSS)
    assert len(sown) == DEC_BLOCKS and all(float(v) >= 0 for v in sown)
    loss_fn = build_loss([{"name": "l1"}, {"name": "aux", "key": BALANCE_LOSS, "weight": 0.01}])
    assert loss_fn.uses_context
    total, terms = loss_fn(out, x, context)
    assert float(terms["aux"]) == pytest.approx(float(np.mean([float(v) for v in sown])), rel=1e-6)
    assert float(total) == pytest.approx(float(terms["l1"]) + 0.01 * float(terms["aux"]), rel=1e-6)
    # The balance loss alone reaches the router's weights.
    aux_only = build_loss([{"name": "aux", "key": BALANCE_LOSS}])

    def balance(params):
        out, mutated = model.apply({**variables, "params": params}, x, train=True, rngs={"noise": jax.random.key(4)},
                                   mutable=["batch_stats", "aux"])
        return aux_only(out, x, LossContext(aux=mutated["aux"]))[0]

    grads = jax.jit(jax.grad(balance))(variables["params"])
    router = grads["dec_0_2"]["layers_0"]["adapter"]["routing_fn"]
    assert float(jnp.abs(router["freq_gate"]["kernel"]).max()) > 0
    assert float(jnp.abs(router["gate_2"]["kernel"]).max()) > 0
