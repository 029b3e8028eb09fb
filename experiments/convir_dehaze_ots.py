"""ConvIR, dehazing trained on RESIDE OTS. `arg` picks the size: 's', 'b' or 'l' (default 's').

Cui, Ren, Cao, Knoll, "Revitalizing Convolutional Network for Image Restoration",
IEEE TPAMI 2024; the SOTS-Outdoor row of the official README's results table
(ConvIR-S 37.95 dB / 0.994, ConvIR-B 39.42 dB / 0.996).

Recipe from c-yn/ConvIR Dehazing/OTS/{main,train}.py and data/data_load.py
(commit 05dcbff): the motion-deblurring network (dilations [7, 9, 11]) built as
version small/base/large; 30 epochs over RESIDE OTS, batch 8, 256x256 random
crops with horizontal flips; Adam lr 1e-4, 1 warmup epoch then cosine to 1e-6;
gradient norm clipped to 0.01; multi-scale L1 + 0.1 * FFT L1 (the shared recipe
of experiments/convir_gopro.py). Validation on SOTS outdoor (full images padded
to a multiple of 32, Dehazing/OTS/eval.py); the official loop also validates six
times per epoch, here once per epoch.

Epoch length assumes the full RESIDE-beta OTS release the authors link
(313,950 hazy images of 8,970 clear ones); with another OTS list set
--config.train.num_steps accordingly.
"""
from experiments.base import tfds_source
from experiments.convir_gopro import convir_recipe, parse_size

OTS_TRAIN_PAIRS = 313_950
ARGS = ("s", "b", "l")  # paper config names (jaxir.paper_configs)


def get_config(arg: str | None = None):
    return convir_recipe(
        model="convir", size=parse_size(arg, "s"), train_set=tfds_source("reside_ots", "train"),
        eval_set=tfds_source("sots_outdoor", "test"), convention="sots_outdoor", train_pairs=OTS_TRAIN_PAIRS,
        batch_size=8, epochs=30, lr=1e-4, warmup_epochs=1, clip_norm=0.01, valid_every_epochs=1,
    )
