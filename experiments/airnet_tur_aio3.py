"""AirNet-TUR: AirNet trained with task-uncertainty regularisation on the 3-task protocol.

Wu, Jiang, Wang, Jiang, Liu. "Debiased All-in-one Image Restoration with Task
Uncertainty Regularization", AAAI 2025 (AirNet + TUR, 3 tasks; scored by
`jaxir eval --benchmark allinone3`). Official code Aitical/TUR (commit 18b495b):
  - basicsr/archs/airnet_arch.py AirNet_uncertainty (fix_E=True): the encoder's
    parameters are frozen (freeze_encoder_parameters) and training runs its query
    encoder only (E.inference): no InfoNCE term, no use of the MoCo keys;
  - basicsr/archs/airnet/DGRN.py DGRN_uncertainty: `var_conv` on the restorer body's
    output, the input of the tail conv (jaxir: the TUR head on `R/tail_0`);
  - basicsr/models/airnet_uncertanty_model.py: the network starts from
    path.pretrain_network_g; the only loss is airnet_uncertainty_loss (the TUR loss over
    denoise_15/25/50, derain, dehaze, with eps 1e-6 added to the task maps);
  - README: the 3-task settings are AirNet's project page's (no option file is released),
    so data, batch, crop, optimiser and schedule are experiments/airnet_aio3.py's joint stage.
Methods: compose [freeze backbone/E, tur]. Start from a trained AirNet, put inside the TUR
wrapper (train.init_from_into='backbone'): the encoder stage's workdir
(--config.train.init_from=<dir> --config.train.init_from_config=experiments/airnet_aio3.py:encoder)
or converted official AirNet weights (--config.train.init_from=airnet.msgpack).
jaxir's AirNet forward still runs the MoCo key encoder and advances the queue in training;
with the encoder frozen and the logits unused this changes no gradient (extra compute only).
"""
from experiments.airnet_aio3 import get_config as airnet_aio3


def get_config(arg=None):
    if arg not in (None, ""):
        raise ValueError(f"airnet_tur_aio3 takes no argument, got {arg!r}")
    c = airnet_aio3("joint")
    c.method = {"name": "compose", "kwargs": {"methods": [
        {"name": "freeze", "kwargs": {"paths": ["backbone/E"]}},
        # AirNet's training outputs are (restored, logits): the head takes the restored image's channels.
        {"name": "tur", "kwargs": {"feature_module": "R/tail_0", "output_index": 0}},
    ]}}
    # Task ids 0-4 of data_pipelines.mixtures.TASK_IDS; the official AirNet variant adds eps = 1e-6.
    c.loss.terms = [{"name": "tur", "weight": 1.0, "num_tasks": 5, "eps": 1e-6, "outputs": [0]}]
    c.train.init_from_into = "backbone"
    return c
