"""`jaxir zeroshot rdmd|cm4ir`: zero-shot restoration of image files with a converted diffusion prior.

    jaxir zeroshot rdmd --task deblur_gauss --prior adm-ffhq256.msgpack --input blurred/ --out restored/
    jaxir zeroshot cm4ir --task sr4 --prior cm-lsun-bedroom.msgpack --input clean/ --out restored/ --degrade

The input images are the measurements y (blurred at full size; low-resolution for sr4; for
inpaint, with `--mask`, missing pixels are ignored). `--degrade` instead takes clean images and
measures them first with the task's operator and noise level, as the official scripts do, writing
the measurement beside the restoration and printing both PSNRs against the clean image.
Tasks use the official presets (`rdmd.task`, `cm4ir.task`); priors are `jaxir convert`ed
official checkpoints (`adm_unet` for RDMD, `cm_unet` for CM4IR).
"""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

TASKS = ("deblur_gauss", "deblur_motion", "sr4", "inpaint")
# jaxir task -> the preset name of each method (None: the official code has no such task).
_PRESETS = {
    "rdmd": {"deblur_gauss": "deblur_gaussian", "deblur_motion": "deblur_motion", "sr4": "sr4", "inpaint": None},
    "cm4ir": {"deblur_gauss": "deblur_gauss", "deblur_motion": None, "sr4": "sr4", "inpaint": "inpainting"},
}
_PRIOR_MODEL = {"rdmd": "adm_unet", "cm4ir": "cm_unet"}


def read_mask(path: str | pathlib.Path) -> np.ndarray:
    """(H, W) float mask, 1 = observed: a .npy array or an image (> 0.5 after scaling to [0, 1])."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--mask {path} does not exist")
    if path.suffix == ".npy":
        mask = np.load(path).astype(np.float32)
    else:
        from jaxir.io import read_image

        mask = read_image(path)
    if mask.ndim == 3:
        mask = mask.mean(axis=-1)
    if mask.ndim != 2:
        raise ValueError(f"--mask {path}: expected an (H, W) mask, got shape {mask.shape}")
    return (mask > 0.5).astype(np.float32)


class ZeroShotRestorer:
    """Measurement ([0, 1] HWC) -> restoration, for one method, task and prior."""

    def __init__(self, method: str, task: str, prior: str | pathlib.Path, mask: np.ndarray | None = None,
                 seed: int = 0, class_label: int | None = None, iterations: int | None = None):
        from jaxir import registry
        from jaxir.io import load_weights

        if method not in _PRESETS:
            raise ValueError(f"unknown zero-shot method {method!r} (rdmd, cm4ir)")
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r} ({', '.join(TASKS)})")
        preset = _PRESETS[method][task]
        if preset is None:
            offered = ", ".join(t for t, p in _PRESETS[method].items() if p)
            raise ValueError(f"{method}'s official code has no {task} task (it has {offered})")
        if task == "inpaint" and mask is None:
            raise ValueError("inpaint needs --mask (an image or .npy, 1 = observed pixel)")
        if not pathlib.Path(prior).is_file():
            raise FileNotFoundError(
                f"--prior {prior} does not exist: convert the official checkpoint first "
                f"(`jaxir zoo convert NAME FILE` or `jaxir convert CKPT OUT --model {_PRIOR_MODEL[method]} ...`)")
        name, kwargs, variables = load_weights(prior)
        if name != _PRIOR_MODEL[method]:
            raise ValueError(f"--prior {prior} holds a {name!r} model; {method} needs a converted "
                             f"{_PRIOR_MODEL[method]!r} ({'ADM' if method == 'rdmd' else 'consistency model'})")
        self.model = registry.build_model(name, **kwargs)
        self.variables = variables
        self.multiple = registry.get_entry(name).pad_multiple
        self.method, self.task, self.mask = method, task, mask
        self.key = jax.random.key(seed)
        conditional = getattr(self.model, "num_classes", None) is not None
        if conditional != (class_label is not None):
            raise ValueError("the prior is class-conditional: pass --class-label" if conditional
                             else "--class-label goes with a class-conditional prior only")
        self.labels = None if class_label is None else jnp.asarray([class_label], jnp.int32)
        if method == "rdmd":
            from jaxir.diffusion import rdmd

            self.operator, self.config = rdmd.task(preset, jax.random.fold_in(self.key, 1))
            if iterations:
                import dataclasses
                self.config = dataclasses.replace(self.config, iter_num=iterations)
            self.sigma_y = self.config.noise_level_img
        else:
            from jaxir.diffusion import cm4ir

            self.operator, self.config = cm4ir.task(preset, mask=mask)
            if iterations:
                raise ValueError("CM4IR runs its paper's 4 steps; --iterations is for RDMD")
            self.sigma_y = self.config.sigma_y
        self.scale = 4 if task == "sr4" else 1
        self._run = jax.jit(self._restore)  # one compile per image size, reused across a folder

    def _initial(self, degraded):
        """(y, x_init) on [-1, 1], outside the jitted loop (inpainting's median fill is numpy)."""
        y = 2 * jnp.asarray(degraded, jnp.float32) - 1
        if self.method == "rdmd":
            return y, (y if self.scale == 1 else self.operator.pinv(y))
        from jaxir.diffusion import cm4ir

        if self.task == "inpaint":
            y = self.operator.forward(y)  # missing pixels read as 0, as the official y
        return y, cm4ir.initial_estimate(self.operator, y, self.config, self.mask)

    def _restore(self, y, x_init, key):
        if self.method == "rdmd":
            from jaxir.diffusion import rdmd
            from jaxir.diffusion.gaussian import GaussianDiffusion

            diffusion = GaussianDiffusion.from_schedule("linear", self.config.num_train_timesteps)
            x0_fn = rdmd.adm_x0_fn(self.model, self.variables, diffusion)
            out = rdmd.restore(x0_fn, self.operator, y, x_init, key, self.config)
        else:
            from jaxir.diffusion import cm4ir

            network = cm4ir.cm_network(self.model, self.variables, self.labels)
            out = cm4ir.restore(network, self.operator, y, x_init, key, self.config)
        return (out + 1) / 2

    def _check_size(self, shape) -> None:
        h, w = shape[0] * self.scale, shape[1] * self.scale
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"the restored image would be {h}x{w}; the prior's U-Net needs multiples of "
                             f"{self.multiple} (the official priors work at 256x256: crop or resize first)")
        if self.mask is not None and self.mask.shape != (h, w):
            raise ValueError(f"--mask is {self.mask.shape[0]}x{self.mask.shape[1]} but the image is {h}x{w}")

    def measure(self, clean: np.ndarray, index: int = 0) -> np.ndarray:
        """y = A x + σ_y n of a clean [0, 1] HWC image, returned on [0, 1] (noise 2σ_y on [-1, 1])."""
        self._check_size((clean.shape[0] // self.scale, clean.shape[1] // self.scale))
        x = 2 * jnp.asarray(clean, jnp.float32)[None] - 1
        y = self.operator.forward(x)
        noise = jax.random.normal(jax.random.fold_in(jax.random.fold_in(self.key, 2), index), y.shape)
        return np.asarray((y + 2 * self.sigma_y * noise + 1) / 2)[0]

    def __call__(self, measurement: np.ndarray, index: int = 0) -> np.ndarray:
        """A [0, 1] HWC measurement -> the [0, 1] HWC restoration (noise from fold_in(key(seed), index))."""
        self._check_size(measurement.shape)
        key = jax.random.fold_in(jax.random.fold_in(self.key, 3), index)
        out = self._run(*self._initial(np.asarray(measurement, np.float32)[None]), key)
        return np.clip(np.asarray(out)[0], 0.0, 1.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.clip(a, 0, 1) - b) ** 2)))


def run(method: str, task: str, prior: str, inputs: str, out: str, *, mask: str | None = None,
        degrade: bool = False, seed: int = 0, class_label: int | None = None,
        iterations: int | None = None) -> list[pathlib.Path]:
    """Restores every image of `inputs` (a file or folder) into the folder `out`; returns the written paths."""
    from jaxir.io import list_images, read_image, write_image

    restorer = ZeroShotRestorer(method, task, prior, read_mask(mask) if mask else None, seed, class_label,
                                iterations)
    folder = pathlib.Path(out)
    written = []
    for index, path in enumerate(list_images(inputs)):
        image = read_image(path)[..., :3]
        if image.shape[-1] != 3:
            raise ValueError(f"{path}: {method} priors are RGB; got {image.shape[-1]} channel(s)")
        measurement = restorer.measure(image, index) if degrade else image
        restored = restorer(measurement, index)
        target = folder / f"{path.stem}.png"
        write_image(target, restored)
        written.append(target)
        line = f"{path} -> {target}"
        if degrade:
            measured = folder / f"{path.stem}_measured.png"
            write_image(measured, np.clip(measurement, 0, 1))
            baseline = np.asarray((restorer.operator.pinv(2 * jnp.asarray(measurement)[None] - 1) + 1) / 2)[0]
            line += (f" (measurement {measured.name}; PSNR vs clean: A⁺y {psnr(baseline, image):.2f} dB, "
                     f"restored {psnr(restored, image):.2f} dB)")
        print(line)
    return written
