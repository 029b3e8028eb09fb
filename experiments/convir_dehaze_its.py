"""ConvIR, dehazing with the Dehazing/ITS code: RESIDE ITS (default) or a real-haze set.

`arg` is '<size>' for ITS or '<dataset>-<size>' for real haze, with size 's', 'b'
or 'l' (default 's') and dataset one of 'its', 'nh_haze', 'dense_haze', 'o_haze'
(e.g. 'b', 'its-b', 'nh_haze-s').

Cui, Ren, Cao, Knoll, "Revitalizing Convolutional Network for Image Restoration",
IEEE TPAMI 2024; rows of the official README's results table: SOTS-Indoor
(ConvIR-S 41.53 dB / 0.996, ConvIR-B 42.72 dB / 0.997), NH-HAZE (S 20.65 / B
20.66), Dense-Haze (S 17.45 / B 16.86), O-HAZE (S 25.25 / B 25.36).

Recipe from c-yn/ConvIR Dehazing/ITS/{main,train}.py, data/data_load.py and
README.md (commit 05dcbff). The network is the motion-deblurring one (the `data`
argument's dilation branch always yields [7, 9, 11]). Shared by all datasets:
Adam, 3 warmup epochs then cosine to 1e-6, gradient norm clipped to 0.001,
horizontal flips, multi-scale L1 + 0.1 * FFT L1 (experiments/convir_gopro.py).
  its:       README command: 1000 epochs over the 13990 ITS pairs, batch 4,
             lr 1e-4, 256x256 crops, validation every 20 epochs on SOTS indoor.
  real haze: main.py's 'Train for real-haze' block: 5000 epochs, batch 2, lr 2e-4,
             800x1184 crops (data_load.py, data='real_haze'); trained on the
             builders' train split, validated on their test split (the official
             folders are the authors' own train/test partition).
Real-haze scores use the SOTS convention: the same Dehazing/ITS/eval.py scores them.
"""
from experiments.base import tfds_source
from experiments.convir_gopro import SIZES, convir_recipe, parse_size

ITS_TRAIN_PAIRS = 13990
# Real-haze dataset -> its number of training pairs (the NTIRE train split the builder makes).
REAL_HAZE = {"nh_haze": 45, "dense_haze": 45, "o_haze": 35}
ARGS = tuple(SIZES) + tuple(f"{d}-{s}" for d in REAL_HAZE for s in SIZES)  # paper config names (jaxir.paper_configs)


def get_config(arg: str | None = None):
    arg = (arg or "s").lower()
    dataset, _, size = ("its", "", arg) if arg in SIZES else arg.partition("-")
    size = parse_size(size or None, "s")
    if dataset == "its":
        return convir_recipe(
            model="convir", size=size, train_set=tfds_source("reside_its", "train"),
            eval_set=tfds_source("sots_indoor", "test"), convention="sots_indoor", train_pairs=ITS_TRAIN_PAIRS,
            batch_size=4, epochs=1000, lr=1e-4, warmup_epochs=3, clip_norm=0.001, valid_every_epochs=20,
        )
    if dataset not in REAL_HAZE:
        raise ValueError(f"convir_dehaze_its dataset must be 'its' or one of {sorted(REAL_HAZE)}, got {dataset!r}")
    return convir_recipe(
        model="convir", size=size, train_set=tfds_source(dataset, "train"), eval_set=tfds_source(dataset, "test"),
        convention="sots_indoor", train_pairs=REAL_HAZE[dataset], batch_size=2, epochs=5000, lr=2e-4,
        warmup_epochs=3, clip_norm=0.001, valid_every_epochs=10, crop_size=(800, 1184),
    )
