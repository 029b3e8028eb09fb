"""PromptIR-TUR: PromptIR trained with task-uncertainty regularisation on the 3-task protocol.

Wu, Jiang, Wang, Jiang, Liu. "Debiased All-in-one Image Restoration with Task
Uncertainty Regularization", AAAI 2025 (Table 1, PromptIR + TUR, 3 tasks).
Official code Aitical/TUR (commit 18b495b): basicsr/archs/PromptIR_uncertainty_arch.py
(`var_conv` on the refined decoder features) and basicsr/models/
promptIR_uncertainty_model.py (the pixel loss is the task-uncertainty loss over the
five labels denoise_15/25/50, derain, dehaze). The TUR README defers the 3-task
settings to PromptIR's project, so the data and optimisation are
experiments/promptir_aio3.py's; only the L1 loss becomes the TUR loss and the
model gains the uncertainty head (jaxir.methods.tur; inference is PromptIR alone).
"""
from experiments.promptir_aio3 import promptir_aio3


def get_config(arg=None):
    if arg not in (None, ""):
        raise ValueError(f"promptir_tur_aio3 takes no argument, got {arg!r}")
    c = promptir_aio3()
    c.method.name = "tur"
    c.method.kwargs = {"feature_module": "output"}
    # Task ids 0-4 of data_pipelines.mixtures.TASK_IDS; each task present in a batch counts once.
    c.loss.terms = [{"name": "tur", "weight": 1.0, "num_tasks": 5}]
    return c
