"""ADMS: adaptive discriminative filters for specific degradations.

Park, Lee, Chun. "All-in-One Image Restoration for Unknown Degradations Using
Adaptive Discriminative Filters for Specific Degradations", CVPR 2023. No official
code was reachable; this follows the paper's method:

1. A unified model θ_um is trained on all k degradations; a target model θ_d is
   fine-tuned from it per degradation d.
2. FAIG-SD (filter attribution integrated gradients, per specific degradation)
   scores every kernel i along the straight path λ(α) = α θ_um + (1 − α) θ_d:
       F_i = Σ_{w ∈ kernel i} | (θ_d − θ_um)_w · (1/N) Σ_t ∂L(λ(α_t), x) / ∂λ_w |
   with α_t = (t + ½)/N (midpoint rule), L the restoration L2 loss against the
   clean image, over inputs x of degradation d. A *kernel* is one output filter of
   a convolution (all of its input channels and taps). The N path points are one
   `vmap`ped gradient (chunked with `lax.map(batch_size=...)`), not a Python loop.
3. The top q% kernels (q = 3 by default, 1 to 5) per degradation form mask M_d.
   By default the selection is per layer (round(q · filters) of every conv), so each
   degradation gets ≈ q% of the network's parameters, as the paper states, and the
   parameter count does not depend on the data; `scope='global'` ranks all kernels
   together instead.
4. A degradation classifier (DC) on the input predicts ĉ = softmax(logits) over
   the k degradations.
5. CNN-ADS: θ_ads^i = θ_um^i + Σ_d ĉ_d θ_d^i M_d^i — an extra kernel per selected
   filter, mixed per image. `ADSModel` applies this as a per-sample parameter
   transform (vmap over the batch) around the unchanged Linen module of the UM,
   so the same module serves UM and ADS. The extra kernels are stored compactly
   (only the selected filters); `init_ads_params` starts them at θ_ft,d − θ_um on
   the masks, so a one-hot ĉ reproduces the fine-tuned filters.

The paper does not spell out the DC; jaxir's `DegradationClassifier` is four 3x3
stride-2 convs (32, 64, 128, 128, ReLU), global average pool and a linear layer
(241,219 parameters for 3 classes). With it and per-layer 3% masks for 3
degradations the ADS parameter counts round to the paper's table: NAFNet
17.1M → 18.9M, MSBDN (its RDFF version, 28.7M) → 31.6M (tests/test_adms.py).
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxir.models.blocks import Conv2d, Linear

Path = tuple[str, ...]
# Selected filters: ((param path, ((indices of degradation 0), (indices of degradation 1), ...)), ...).
Selections = tuple[tuple[Path, tuple[tuple[int, ...], ...]], ...]


# ---------------------------------------------------------------------------
# Kernels and FAIG.


def conv_kernels(params: Any) -> dict[Path, Any]:
    """The convolution kernels (4-D HWIO leaves named 'kernel') of a params tree, by path."""
    flat = traverse_util.flatten_dict(params)
    return {path: leaf for path, leaf in flat.items() if path[-1] == "kernel" and len(leaf.shape) == 4}


def l2_restoration_loss(outputs, target):
    from jaxir.parity import flatten_outputs

    return jnp.mean(jnp.square(flatten_outputs(outputs)[-1].astype(jnp.float32) - target))


def faig_scores(apply_fn: Callable[[Any, jax.Array], Any], theta_um: Any, theta_d: Any, inputs: jax.Array,
                targets: jax.Array, num_points: int = 20, chunk: int | None = None,
                loss_fn: Callable = l2_restoration_loss) -> dict[Path, jax.Array]:
    """FAIG-SD score of every conv kernel (output filter): {path: (out_features,)}.

    `apply_fn(params, inputs)` runs the model; `inputs`/`targets` are degraded and
    clean images of one degradation. The path gradients of all `num_points` α are
    computed by one vmap (in chunks of `chunk` points to bound memory).
    """
    alphas = (jnp.arange(num_points, dtype=jnp.float32) + 0.5) / num_points
    kernels_um, kernels_d = conv_kernels(theta_um), conv_kernels(theta_d)

    @jax.jit
    def run(theta_um, theta_d, inputs, targets):
        def grad_at(alpha):
            point = jax.tree_util.tree_map(lambda u, d: alpha * u + (1.0 - alpha) * d, theta_um, theta_d)
            return jax.grad(lambda p: loss_fn(apply_fn(p, inputs), targets))(point)

        grads = jax.lax.map(grad_at, alphas, batch_size=chunk or num_points)
        mean_grad = conv_kernels(jax.tree_util.tree_map(lambda g: jnp.mean(g, axis=0), grads))
        um, d = conv_kernels(theta_um), conv_kernels(theta_d)
        return {path: jnp.sum(jnp.abs((d[path] - um[path]) * mean_grad[path]), axis=(0, 1, 2)) for path in um}

    if set(kernels_um) != set(kernels_d):
        raise ValueError("theta_um and theta_d have different convolution kernels")
    return run(theta_um, theta_d, inputs, targets)


def select_kernels(scores: Mapping[Path, Any], q: float = 0.03, scope: str = "layer") -> dict[Path, np.ndarray]:
    """Top-q kernels as boolean masks over each layer's output filters.

    scope='layer': round(q · n) of the n filters of every layer (ties broken
    by index); scope='global': round(q · N) of all N filters ranked together.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q is a fraction of the kernels (0.01 to 0.05 in the paper), got {q}")
    scores = {path: np.asarray(s, np.float64) for path, s in scores.items()}
    masks = {path: np.zeros(s.shape, bool) for path, s in scores.items()}
    if scope == "layer":
        for path, s in scores.items():
            count = int(round(q * s.size))
            masks[path][np.argsort(-s, kind="stable")[:count]] = True
    elif scope == "global":
        paths = sorted(scores)
        flat = np.concatenate([scores[p] for p in paths])
        owner = np.concatenate([np.full(scores[p].size, i) for i, p in enumerate(paths)])
        index = np.concatenate([np.arange(scores[p].size) for p in paths])
        for k in np.argsort(-flat, kind="stable")[:int(round(q * flat.size))]:
            masks[paths[owner[k]]][index[k]] = True
    else:
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    return masks


def selections_from_masks(masks_per_degradation: Sequence[Mapping[Path, np.ndarray]]) -> Selections:
    """Hashable, static selections (for `ADSModel`) from one mask dict per degradation."""
    paths = sorted(set().union(*[set(m) for m in masks_per_degradation]))
    return tuple((path, tuple(tuple(int(i) for i in np.flatnonzero(m.get(path, ()))) for m in masks_per_degradation))
                 for path in paths)


def budget_selections(params_shapes: Any, num_degradations: int, q: float = 0.03) -> Selections:
    """Per-layer selections of the right sizes (the first filters): for counting parameters without data."""
    scores = {path: np.zeros(leaf.shape[-1]) for path, leaf in conv_kernels(params_shapes).items()}
    return selections_from_masks([select_kernels(scores, q, "layer")] * num_degradations)


# ---------------------------------------------------------------------------
# The degradation classifier and the ADS parameter transform.


class DegradationClassifier(nn.Module):
    """ADMS's DC as jaxir builds it: 4 strided 3x3 convs + ReLU, global average pool, linear."""

    num_classes: int = 3
    widths: Sequence[int] = (32, 64, 128, 128)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        for i, width in enumerate(self.widths):
            x = nn.relu(Conv2d(width, 3, 2, padding=1, dtype=self.dtype, name=f"conv_{i}")(x.astype(self.dtype)))
        return Linear(self.num_classes, name="fc")(jnp.mean(x.astype(jnp.float32), axis=(1, 2)))


def extra_kernel_shapes(um_params: Any, selections: Selections) -> dict[str, dict[str, tuple]]:
    """{degradation: {'.'-joined path: (kh, kw, in, n_selected)}}."""
    kernels = conv_kernels(um_params)
    out: dict[str, dict[str, tuple]] = {}
    for path, per_degradation in selections:
        for d, indices in enumerate(per_degradation):
            if indices:
                out.setdefault(str(d), {})[".".join(path)] = (*kernels[path].shape[:3], len(indices))
    return out


def ads_params(um_params: Any, extras: Mapping[str, Mapping[str, jax.Array]], selections: Selections,
               class_probs: jax.Array) -> Any:
    """θ_um + Σ_d ĉ_d θ_d M_d for one image (`class_probs` of shape (k,))."""
    flat = traverse_util.flatten_dict(um_params)
    for path, per_degradation in selections:
        if not any(per_degradation):
            continue
        kernel = flat[path]
        for d, indices in enumerate(per_degradation):
            if indices:
                extra = extras[str(d)][".".join(path)]
                kernel = kernel.at[..., np.asarray(indices)].add(class_probs[d] * extra.astype(kernel.dtype))
        flat[path] = kernel
    return traverse_util.unflatten_dict(flat)


class ADSModel(nn.Module):
    """CNN-ADS around any params-only restoration module (`base`, the UM architecture).

    Parameters: `um` (θ_um, the base module's own tree), `extra` (the selected extra
    kernels per degradation), `dc` (the degradation classifier). `class_probs`
    overrides the classifier's ĉ (e.g. one-hot labels).
    """

    base: nn.Module
    selections: Selections
    num_degradations: int
    dc_widths: Sequence[int] = (32, 64, 128, 128)

    @nn.compact
    def __call__(self, x, train: bool = False, class_probs: jax.Array | None = None):
        um = self.param("um", lambda key: self.base.init(key, x[:1], train=False)["params"])
        shapes = extra_kernel_shapes(um, self.selections)
        extras = self.param("extra", lambda key: jax.tree_util.tree_map(
            lambda s: jnp.zeros(s, jnp.float32), shapes, is_leaf=lambda s: isinstance(s, tuple)))
        logits = DegradationClassifier(self.num_degradations, self.dc_widths, name="dc")(x)
        probs = jax.nn.softmax(logits, axis=-1) if class_probs is None else class_probs
        return self.restore(um, extras, probs, x, train)

    def restore(self, um, extras, probs, x, train=False):
        varying = {path for path, per_d in self.selections if any(per_d)}
        flat = traverse_util.flatten_dict(um)
        shared = traverse_util.unflatten_dict({p: v for p, v in flat.items() if p not in varying})
        selected = traverse_util.unflatten_dict({p: v for p, v in flat.items() if p in varying})

        def one(prob, image):
            mixed = traverse_util.flatten_dict(ads_params(selected, extras, self.selections, prob))
            params = traverse_util.unflatten_dict({**traverse_util.flatten_dict(shared), **mixed})
            out = self.base.apply({"params": params}, image[None], train=train)
            return jax.tree_util.tree_map(lambda o: o[0], out)

        # Only the kernels that carry extra filters vary per image; the rest stays shared.
        return jax.vmap(one)(probs, x)


def init_ads_params(um_params: Any, finetuned: Sequence[Any], selections: Selections) -> dict:
    """ADS extra kernels starting at θ_ft,d − θ_um on each degradation's selected filters."""
    um_k = conv_kernels(um_params)
    extras: dict[str, dict[str, Any]] = {}
    for path, per_degradation in selections:
        for d, indices in enumerate(per_degradation):
            if indices:
                ft_k = conv_kernels(finetuned[d])[path]
                extras.setdefault(str(d), {})[".".join(path)] = (ft_k - um_k[path])[..., np.asarray(indices)]
    return extras


def build_ads(base: nn.Module, um_params: Any, finetuned: Sequence[Any], inputs_per_degradation: Sequence[Any],
              targets_per_degradation: Sequence[Any], q: float = 0.03, scope: str = "layer",
              num_points: int = 20, chunk: int | None = None):
    """The ADMS pipeline after training: FAIG-SD per degradation, masks, the ADS module and its initial
    `um`/`extra` parameters (the DC is initialised by `ADSModel.init` and trained with cross-entropy)."""
    apply_fn = functools.partial(_apply_params, base)
    masks = []
    for theta_d, x, y in zip(finetuned, inputs_per_degradation, targets_per_degradation):
        masks.append(select_kernels(faig_scores(apply_fn, um_params, theta_d, x, y, num_points, chunk), q, scope))
    selections = selections_from_masks(masks)
    model = ADSModel(base, selections, len(finetuned))
    return model, selections, {"um": um_params, "extra": init_ads_params(um_params, finetuned, selections)}


def _apply_params(base, params, x):
    return base.apply({"params": params}, x, train=False)


# ---------------------------------------------------------------------------
# The stages through the shared loop (config.method) and the step between them.


def classifier(model: nn.Module, entry=None, num_classes: int = 3,
               widths: Sequence[int] = (32, 64, 128, 128)) -> nn.Module:
    """`config.method` of the DC stage: the degradation classifier alone (loss.target='task', cross_entropy)."""
    del model, entry  # the DC reads the image only
    return DegradationClassifier(int(num_classes), tuple(int(w) for w in widths))


def ads(model: nn.Module, entry=None, selections_file: str = "", num_degradations: int = 3,
        dc_widths: Sequence[int] = (32, 64, 128, 128)) -> nn.Module:
    """`config.method` of the ADS stage: CNN-ADS around the configured (UM) model."""
    return ADSModel(model, load_selections(selections_file), int(num_degradations), tuple(int(w) for w in dc_widths))


def save_selections(path, selections: Selections) -> None:
    import json
    import pathlib

    data = [{"path": list(p), "filters": [list(i) for i in per_d]} for p, per_d in selections]
    pathlib.Path(path).write_text(json.dumps(data))


def load_selections(path) -> Selections:
    import json
    import pathlib

    data = json.loads(pathlib.Path(path).expanduser().read_text())
    return tuple((tuple(item["path"]), tuple(tuple(int(i) for i in f) for f in item["filters"])) for item in data)


def _inputs_per_task(config, num_tasks: int, images_per_task: int, seed: int = 0):
    """Degraded inputs and clean targets of each task, drawn from `config`'s training mixture."""
    from jaxir.train.data import make_source, make_train_iterator, task_degradations
    from jaxir.train.step import degraded_input

    source = make_source(config.data.train, "train")
    iterator = make_train_iterator(config.data, seed, source)
    synth = task_degradations(source)
    inputs, targets = [[] for _ in range(num_tasks)], [[] for _ in range(num_tasks)]
    for _ in range(1000):
        if all(len(x) >= images_per_task for x in inputs):
            break
        batch = next(iterator)
        degraded = np.asarray(degraded_input({k: jnp.asarray(v) for k, v in batch.items()}, None, synth))
        for i, task in enumerate(np.asarray(batch["task"])):
            if task < num_tasks and len(inputs[task]) < images_per_task:
                inputs[task].append(degraded[i])
                targets[task].append(np.asarray(batch["target"][i]))
    if not all(inputs):
        raise ValueError("the training mixture gave no images for some task")
    return [np.stack(x) for x in inputs], [np.stack(y) for y in targets]


def prepare_ads(um_config, um_workdir, finetune_workdirs: Sequence[str], dc_config, dc_workdir, out_dir,
                q: float = 0.03, scope: str = "layer", num_points: int = 20, chunk: int | None = 4,
                images_per_task: int = 8) -> tuple[str, str]:
    """Between the loop's stages: FAIG-SD of each fine-tuned model against the UM on its own degradation
    (inputs from the UM config's mixture, task d = degradation d), masks, and the ADS stage's initial
    weights (θ_um, extra kernels θ_ft,d − θ_um on the masks, the trained DC). Writes
    `selections.json` and `ads_init.msgpack` in `out_dir`; returns their paths."""
    import pathlib

    from jaxir.io import save_weights
    from jaxir.train.loop import build_model, load_inference_variables

    out = pathlib.Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    base, _ = build_model(um_config)
    um = load_inference_variables(um_config, um_workdir)["params"]
    finetuned = [load_inference_variables(um_config, w)["params"] for w in finetune_workdirs]
    inputs, targets = _inputs_per_task(um_config, len(finetuned), images_per_task)
    _, selections, init = build_ads(base, um, finetuned, inputs, targets, q, scope, num_points, chunk)
    init["dc"] = load_inference_variables(dc_config, dc_workdir)["params"]
    selections_file, weights_file = out / "selections.json", out / "ads_init.msgpack"
    save_selections(selections_file, selections)
    kwargs = um_config.model.get("kwargs", {})
    save_weights(weights_file, um_config.model.name, dict(_plain(kwargs)), {"params": init})
    return str(selections_file), str(weights_file)


def _plain(value):
    return value.to_dict() if hasattr(value, "to_dict") else value
