"""P2IKT trained on LFDOF (light-field defocus pairs), evaluated on LFDOF's test set.

Tang et al., AAAI 2024 (P2IKT), LFDOF comparison. The official code trains
LFDOF with the same model and losses as DPDD (see experiments/p2ikt_dpdd.py,
whose loss terms this reuses); the official script's per-epoch schedule is kept
in epochs and converted with the LFDOF train split size counted by jaxir's
builder (override train.num_steps for a different count).
"""
import math

from experiments.base import base_config, tfds_source
from experiments.p2ikt_dpdd import p2ikt_loss_terms

# LFDOF training pairs (Ruan et al., TCI 2021: 11,261 pairs); recount with the built dataset if it differs.
TRAIN_PAIRS = 11_261
BATCH = 4
STEPS_PER_EPOCH = math.ceil(TRAIN_PAIRS / BATCH)
EPOCHS = 1600
ARGS = ("paper", "official")  # paper config names (jaxir.paper_configs)


def get_config(arg: str | None = None):
    supervision = arg or "paper"
    c = base_config()
    c.model.name = "p2ikt"
    c.model.kwargs = {"num_gaussian_kernels": 5, "gaussian_kernel_size": 5}
    c.data.train = tfds_source("lfdof", "train", features={"input": "input", "target": "target"})
    c.data.eval = tfds_source("lfdof", "test", features={"input": "input", "target": "target"})
    c.data.crop_size = 384
    c.data.batch_size = BATCH
    c.loss.terms = p2ikt_loss_terms(supervision)
    c.optim.update({"lr": 2e-4, "weight_decay": 0.0, "schedule": "multistep",
                    "milestones": [999 * STEPS_PER_EPOCH, 1499 * STEPS_PER_EPOCH], "gamma": 0.5})
    c.train.update({"num_steps": EPOCHS * STEPS_PER_EPOCH, "seed": 10, "log_every": 100,
                    "eval_every": 100 * STEPS_PER_EPOCH, "ckpt_every": 100 * STEPS_PER_EPOCH})
    c.eval.convention = "lfdof"
    return c
