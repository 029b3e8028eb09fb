"""DCPT: degradation classification pre-training.

Hu, Jin, Yao, Lu. "Universal Image Restoration Pre-training via Degradation
Classification", ICLR 2025. Official code: MILab-PKU/dcpt
(basicsr/models/degradation_classification_pretrain_model.py, basicsr/archs/
degrad_classify_arch.py).

Pre-training: the restoration network's encoder extracts features of the degraded
image; a light classifier decoder (`PromptIR_DC`, jaxir.models.dcpt_classifier)
classifies the degradation type from the image and those features; cross-entropy
on the task label trains encoder and classifier together. Fine-tuning: the whole
restoration network starts from the pre-trained one (the encoder pre-trained, the
rest as the pre-training left it) and trains on restoration as usual.

The encoder's feature taps are declared by each model's registry entry
(`encoder_taps`: the last block of every encoder level), not hard-coded here; the
classifier's level i takes a feature at 1/2^(i+1) of the input size, so a tap at
a finer resolution is average-pooled down to it.

Through the loop: the pre-training config sets `method.name =
'jaxir.methods.dcpt:pretrain'`, `loss.terms = [cross_entropy]`, `loss.target =
'task'`; the fine-tuning config trains the plain model with `train.init_from =
<pre-training workdir>`, `train.init_from_config = <pre-training config>` and
`train.init_from_subtree = 'restorer'`.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxir.models.blocks import avg_pool
from jaxir.models.dcpt_classifier import DegradationClassifier


class DCPTPretrainModel(nn.Module):
    """(image) -> degradation logits from the restorer's encoder taps and the DCPT classifier.

    Parameters: `restorer` (the whole restoration network's tree, so fine-tuning can
    start from it) and `classifier`.
    """

    restorer: nn.Module
    taps: tuple[str, ...]
    num_classes: int
    num_res_blocks: int = 2

    @nn.compact
    def __call__(self, x, train: bool = False):
        features = {}

        def record(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            module = context.module
            if (context.method_name == "__call__" and len(module.path) == 2 and module.path[0] == "restorer"
                    and module.path[1] in self.taps):
                features[module.path[1]] = out
            return out

        with nn.intercept_methods(record):
            # The decoder's output is unused here, so XLA drops its computation; its parameters stay.
            self.restorer(x, train=train)  # a module field: adopted as the child "restorer"
        missing = [t for t in self.taps if t not in features]
        if missing:
            raise ValueError(f"encoder taps {missing} were not called by the restorer")
        h, w = x.shape[1:3]
        feats = []
        for i, tap in enumerate(self.taps):
            f = features[tap]
            factor = f.shape[1] // max(h // 2 ** (i + 1), 1)
            feats.append(avg_pool(f, factor) if factor > 1 else f)
        classifier = DegradationClassifier(tuple(f.shape[-1] for f in feats), self.num_res_blocks,
                                           self.num_classes, name="classifier")
        return classifier(x, feats, train=train)


def pretrain(model: nn.Module, entry: Any, num_classes: int = 5, num_res_blocks: int = 2) -> nn.Module:
    """`config.method` of the pre-training stage."""
    if entry is None or entry.encoder_taps is None:
        raise ValueError(f"model {getattr(entry, 'name', model)!r} declares no encoder taps (ModelEntry.encoder_taps)")
    taps = tuple(entry.encoder_taps(model))
    if not taps:
        raise ValueError("DCPT needs at least one encoder tap")
    return DCPTPretrainModel(model, taps, int(num_classes), int(num_res_blocks))


def classification_accuracy(logits, labels) -> float:
    return float(jnp.mean(jnp.argmax(logits, axis=-1) == jnp.asarray(labels)))
