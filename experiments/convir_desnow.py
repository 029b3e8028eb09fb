"""ConvIR, desnowing on CSD, SRRS or Snow100K.

`arg` is '<dataset>' or '<dataset>-<size>': dataset 'csd' (default), 'srrs' or
'snow100k'; size 's', 'b' or 'l' (default 's'); e.g. 'csd-b', 'snow100k'.

Cui, Ren, Cao, Knoll, "Revitalizing Convolutional Network for Image Restoration",
IEEE TPAMI 2024; desnowing rows of the official README's results table: CSD
(ConvIR-S 38.43 dB / B 39.10 dB), SRRS (S 32.25 / B 32.39), Snow100K (S 33.79 /
B 33.92).

Recipe from c-yn/ConvIR Image_desnowing/{main,train}.py, data/data_load.py and
README.md (commit 05dcbff): the motion-deblurring network (dilations [7, 9, 11])
built as version small/base/large; 2000 epochs over each set's 'train2500'
folder (2500 pairs), batch 8 (313 iterations per epoch), 256x256 random crops
with horizontal flips; Adam lr 2e-4, 3 warmup epochs then cosine to 1e-6;
gradient norm clipped to 0.01; multi-scale L1 + 0.1 * FFT L1 (the shared recipe
of experiments/convir_gopro.py); validation every 50 epochs with
Image_desnowing/eval.py's metrics.

The iteration count follows the official 2500-pair sets whatever the built
train split holds (the csd builder reads Train/ or train2500/, snow100k the full
50,000-pair training set). The authors' Snow100K 'test2000' subset is not
published as a list; Snow100K is validated on Snow100K-L (override
--config.data.eval.kwargs.split). SRRS is scored with the CSD convention (same
eval.py).
"""
from experiments.base import tfds_source
from experiments.convir_gopro import convir_recipe, parse_size

OFFICIAL_TRAIN_PAIRS = 2500
# dataset -> (eval split, metric convention)
DATASETS = {"csd": ("test", "csd"), "srrs": ("test", "csd"), "snow100k": ("test_l", "snow100k")}
ARGS = tuple(f"{d}-{s}" for d in DATASETS for s in ("s", "b", "l"))  # paper config names (jaxir.paper_configs)


def get_config(arg: str | None = None):
    dataset, _, size = (arg or "csd").partition("-")
    if dataset not in DATASETS:
        raise ValueError(f"convir_desnow dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    eval_split, convention = DATASETS[dataset]
    return convir_recipe(
        model="convir", size=parse_size(size or None, "s"), train_set=tfds_source(dataset, "train"),
        eval_set=tfds_source(dataset, eval_split), convention=convention, train_pairs=OFFICIAL_TRAIN_PAIRS,
        batch_size=8, epochs=2000, lr=2e-4, warmup_epochs=3, clip_norm=0.01, valid_every_epochs=50,
    )
