"""P2IKT on DPDD single-image defocus deblurring (Canon dual-pixel set, centre view as input).

Tang et al., "Prior and Prediction Inverse Kernel Transformer for Single Image
Defocus Deblurring", AAAI 2024, Table 1 (DPDD combined: 26.24 dB reported
for the SWA model; 3.32M parameters). Recipe from the official P2IKT.sh,
main.py and train.py: 384x384 crops, batch 4, Adam (no weight decay),
1600 epochs of the 350 training pairs; the lr is 1e-4 doubled for 384 crops
(2e-4), halved at epoch 1000 and again at 1500 (train.py's schedule; its later
steps lie beyond 1600 epochs). Losses (train.py, loss_mode 'fft_loss_out'):
MSE on the restoration, 0.2 x L1 on the complex fft2 spectra, 0.2 x LPIPS
(AlexNet) and 0.05 x MSE on the inverse-kernel branch's auxiliary output.

arg 'paper' (default) supervises coarse to fine, MSE at 1/4, 1/2 and full
scale as the paper describes; 'official' supervises only the full-scale output
as the released train.py does. Not reproduced: the official stochastic weight
averaging (torchcontrib SWA over the last 100 epochs); the EMA here is off.
"""
import math

from experiments.base import base_config, tfds_source

TRAIN_PAIRS = 350
BATCH = 4
STEPS_PER_EPOCH = math.ceil(TRAIN_PAIRS / BATCH)
EPOCHS = 1600
ARGS = ("paper", "official")  # paper config names (jaxir.paper_configs)


def p2ikt_loss_terms(supervision: str) -> list[dict]:
    restoration = {"paper": [0, 1, 3], "official": [3]}[supervision]
    return [
        {"name": "l2", "weight": 1.0, "outputs": restoration},
        {"name": "fft", "weight": 0.2, "modulus": True, "outputs": [3]},
        {"name": "lpips", "weight": 0.2, "net": "alex", "outputs": [3]},
        {"name": "l2", "label": "kernel_aux", "weight": 0.05, "outputs": [2]},
    ]


def get_config(arg: str | None = None):
    supervision = arg or "paper"
    if supervision not in ("paper", "official"):
        raise ValueError(f"arg must be 'paper' or 'official', got {supervision!r}")
    c = base_config()
    c.model.name = "p2ikt"
    c.model.kwargs = {"num_gaussian_kernels": 5, "gaussian_kernel_size": 5}
    c.data.train = tfds_source("dpdd", "train", features={"input": "input", "target": "target"})
    c.data.eval = tfds_source("dpdd", "test", features={"input": "input", "target": "target"})
    c.data.crop_size = 384
    c.data.batch_size = BATCH
    c.loss.terms = p2ikt_loss_terms(supervision)
    c.optim.update({"lr": 2e-4, "b1": 0.9, "b2": 0.999, "weight_decay": 0.0, "schedule": "multistep",
                    "milestones": [999 * STEPS_PER_EPOCH, 1499 * STEPS_PER_EPOCH], "gamma": 0.5})
    c.train.update({"num_steps": EPOCHS * STEPS_PER_EPOCH, "seed": 10, "log_every": 100,
                    "eval_every": 100 * STEPS_PER_EPOCH, "ckpt_every": 100 * STEPS_PER_EPOCH})
    c.eval.convention = "dpdd"
    return c
