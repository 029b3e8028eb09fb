"""ConvIR, deraining trained on Rain13K. `arg` picks the size: 's', 'b' or 'l' (default 'l').

Cui, Ren, Cao, Knoll, "Revitalizing Convolutional Network for Image Restoration",
IEEE TPAMI 2024; the deraining rows of the official README's results table
(ConvIR-L: Test100 31.40 dB / 0.919, Test2800 33.73 dB / 0.937, Y-channel MATLAB
scores of Image_deraining/deraining_test.m).

Model: the deraining copy of the network ('convir_derain': DeepPoolLayer
dilations [3, 7, 9]); the official build_net() is ConvIR-L (num_res 16).
Recipe from c-yn/ConvIR Image_deraining/{main,train}.py and data/data_load.py
(commit 05dcbff): 300 epochs over the 13712 Rain13K pairs, batch 4 (3428
iterations per epoch), 256x256 random crops with horizontal flips; Adam lr 1e-4,
3 warmup epochs then cosine to 1e-6; gradient norm clipped to 0.01; multi-scale
L1 + 0.1 * FFT L1 (the shared recipe of experiments/convir_gopro.py).

Evaluation: the data pipelines build Rain100H/Rain100L but not Test100 or
Test2800, so validation runs on Rain100H (same MATLAB Y-channel convention);
point --config.data.eval at a folder source to score Test100/Test2800.
"""
from experiments.base import tfds_source
from experiments.convir_gopro import convir_recipe, parse_size


RAIN13K_TRAIN_PAIRS = 13712
VARIANTS = ("l", "s", "b")  # the first is the default; build_net() of Image_deraining is ConvIR-L


def get_config(arg: str | None = None):
    return convir_recipe(
        model="convir_derain", size=parse_size(arg, "l"), train_set=tfds_source("rain13k", "train"),
        eval_set=tfds_source("rain100h", "test"), convention="rain100h", train_pairs=RAIN13K_TRAIN_PAIRS,
        batch_size=4, epochs=300, lr=1e-4, warmup_epochs=3, clip_norm=0.01, valid_every_epochs=10,
    )
