"""Rate–distortion training of the all-in-one codec through the shared loop (the experiments/ recipe's loss
terms: λ·255²·MSE + rate + the bottleneck's aux loss), then `jaxir eval` on real bitstreams and the RD curve."""
import json
import math

import jax
import numpy as np
import pytest

from experiments.allinone_codec import VARIANTS, codec_config, get_config
from jaxir.losses import LossContext, build_loss

TINY = dict(N=8, M=12, stage_blocks=[1, 1, 1], num_heads=2, window=4, representation_size=4, representation_dim=4)


def test_rate_term_is_bits_per_pixel():
    bits = np.float32(1234.0)
    loss = build_loss([{"name": "rate"}])
    pred = np.zeros((2, 8, 16, 3), np.float32)
    total, terms = loss(pred, pred, LossContext(aux={"codec": {"rate_bits": (bits,)}}))
    assert float(total) == pytest.approx(1234.0 / (2 * 8 * 16))
    with pytest.raises(ValueError, match="sowed none"):
        loss(pred, pred, LossContext())


def test_config_variants():
    c = get_config("noise:0.0130")
    assert c.model.name == "allinone_codec"
    assert c.loss.terms[0]["weight"] == pytest.approx(0.0130 * 255 ** 2)
    assert {t["name"] for t in c.loss.terms} == {"l2", "rate", "aux"}
    assert len(VARIANTS) == 30 and "allinone:0.0483" in VARIANTS
    assert get_config("allinone:0.0018").data.train["source"] == "task_mixture"
    assert get_config().model.name == "allinone_codec"
    with pytest.raises(ValueError):
        get_config("noise")


def _tiny_config(tmp_path, lmbda=0.0018, steps=8):
    c = codec_config("noise", lmbda, TINY)
    c.data.train = {"source": "bundled", "kwargs": {"split": "train", "heldout": 3}}
    c.data.eval = {"source": "bundled", "kwargs": {"split": "heldout", "heldout": 3}}
    c.data.crop_size = 64
    c.data.batch_size = 8  # one crop per simulated device (tests/conftest.py)
    c.optim.update({"lr": 1e-2, "schedule": "constant", "clip_norm": 0.0})
    c.train.update({"num_steps": steps, "log_every": 1, "ckpt_every": steps, "eval_every": 0})
    return c


@pytest.mark.heavy  # train + eval with real bitstreams: ~18 min on the loaded 2-core machine
def test_trains_through_the_loop_and_evaluates_real_bitstreams(tmp_path):
    from jaxir.cli import main
    from jaxir.codec.evaluation import evaluate_codec, load_codec
    from jaxir.train.loop import train

    config = _tiny_config(tmp_path)
    metrics = train(config, tmp_path / "run")  # 8 steps, lr 1e-2
    assert metrics["rejected_steps"] == 0 and math.isfinite(metrics["train_loss"])
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rows = [row for row in logged if "loss/rate" in row]
    assert {"loss/distortion", "loss/rate", "loss/entropy_aux"} <= set(rows[0])
    assert all(math.isfinite(row["loss"]) for row in rows)
    # The aux loss fits the bottleneck's quantiles step by step; the distortion term falls from the untrained
    # codec's (the untrained rate is tiny, so the first steps trade a little rate for distortion).
    aux = [row["loss/entropy_aux"] for row in rows]
    assert all(b < a for a, b in zip(aux, aux[1:]))
    assert rows[-1]["loss/distortion"] < rows[0]["loss/distortion"]

    model, variables, name = load_codec(config, tmp_path / "run")
    fresh = jax.jit(model.init)({"params": jax.random.key(0)}, np.zeros((1, 64, 64, 3), np.float32))["params"]
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), variables["params"], fresh)
    assert all(jax.tree.leaves(changed["entropy_bottleneck"]))  # quantiles (aux loss) and density both moved

    scores = evaluate_codec(config, None, model, variables, name)
    assert scores["images"] >= 1 and scores["bpp"] > 0 and 0 < scores["ssim"] <= 1 and scores["psnr"] > 5

    # `jaxir eval` on a codec reports bpp and adds the point to the RD curve.
    from jaxir.io import save_weights

    save_weights(tmp_path / "tiny.msgpack", name, TINY, variables)
    png = tmp_path / "rd.png"
    assert main(["eval", "--config", "experiments/allinone_codec.py:noise:0.0018", "--checkpoint",
                 str(tmp_path / "tiny.msgpack"), "--rd-curve", str(png), "--rd-label", "tiny"]) == 0
    points = json.loads(png.with_suffix(".json").read_text())
    assert points["tiny"]["bpp"] == pytest.approx(scores["bpp"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rd_curve_draws_all_points(tmp_path):
    from jaxir.codec.evaluation import add_rd_point

    png = tmp_path / "rd.png"
    add_rd_point(png, "a", {"bpp": 0.2, "psnr": 28.0, "ssim": 0.8})
    add_rd_point(png, "b", {"bpp": 0.5, "psnr": 31.0, "ssim": 0.9, "images": 3})
    points = json.loads(png.with_suffix(".json").read_text())
    assert set(points) == {"a", "b"} and points["b"] == {"bpp": 0.5, "psnr": 31.0, "ssim": 0.9}
    from PIL import Image

    assert Image.open(png).size[0] > 100
