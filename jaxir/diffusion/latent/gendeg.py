"""GenDeg (Rajagopalan et al., CVPR 2025; sudraj2002/GenDeg): degradation synthesis with an
InstructPix2Pix-style latent diffusion model conditioned on a text prompt and the degradation's
intensity statistics.

Conditioning (`ldm/models/diffusion/ddpm_edit.py`, `edit_dataset.py`): μ and σ of |clean - degraded|
are each one-hot binned into 128 bins over [0, 0.7] and [0, 0.4] (`np.digitize`, values past the top
edge in the last bin) plus a 129th "null" bin; `stats_proj` Linear(129 -> 77) maps the (2, 129) pair to
(77, 2), concatenated to the CLIP text states (77, 768) and projected back by `cc_projection`
Linear(770 -> 768) (initialised to the identity on the text part). The null conditioning is the empty
prompt with both statistics in the null bin. The clean image's VAE latent is concatenated to the noisy
latent (hybrid conditioning), and sampling uses InstructPix2Pix's dual guidance
(`jaxir.diffusion.latent.pipeline`).

`generate_folder` writes a GenDS-style paired folder: `<degradation>/<stem>.png` (the generated degraded image)
and `GT/<stem>.png` (the clean image) with `gendeg.json` (each pair's μ, σ, prompt), read by the
`paired_folder` training source (`paired_source`). μ/σ are given, or drawn per image from the official
statistics (`DegradationStats`, the repository's `data/` folder) as `run_parallel_mu_sigma.py` does.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxir import io as jio
from jaxir import registry
from jaxir.diffusion.latent import autoencoder_kl as akl
from jaxir.diffusion.latent import clip_text, pipeline
from jaxir.models.blocks import Linear
from jaxir.models.ldm_unet import build_ldm_unet

MU_RANGE = (0.0, 0.7)
SIGMA_RANGE = (0.0, 0.4)
NUM_BINS = 128
# GenDeg's captions are BLIP-2 descriptions ending "in <adjective> conditions".
ADJECTIVES = {"haze": "hazy", "rain": "rainy", "snow": "snowy", "raindrop": "rainy", "blur": "blurry",
              "noise": "noisy", "lowlight": "low-light", "low-light": "low-light"}


def one_hot_stat(value: float, value_range: tuple[float, float]) -> np.ndarray:
    edges = np.linspace(value_range[0], value_range[1], NUM_BINS + 1)
    index = int(np.digitize(value, edges, right=False)) - 1
    if index < 0:
        raise ValueError(f"statistic {value} is below the range {value_range}")
    out = np.zeros(NUM_BINS + 1, np.float32)
    out[min(index, NUM_BINS - 1)] = 1.0
    return out


def stats(mu: float, sigma: float) -> np.ndarray:
    """(2, 129) one-hot μ/σ conditioning."""
    return np.stack([one_hot_stat(mu, MU_RANGE), one_hot_stat(sigma, SIGMA_RANGE)])


def null_stats() -> np.ndarray:
    out = np.zeros((2, NUM_BINS + 1), np.float32)
    out[:, -1] = 1.0
    return out


def stats_jnp(mu, sigma):
    """Traceable `stats` for a batch: (N,) μ, σ -> (N, 2, 129) one-hot, binned as `one_hot_stat`."""
    def one_hot(value, value_range):
        edges = jnp.linspace(value_range[0], value_range[1], NUM_BINS + 1)
        index = jnp.clip(jnp.searchsorted(edges, value, side="right") - 1, 0, NUM_BINS - 1)
        return jax.nn.one_hot(index, NUM_BINS + 1)

    return jnp.stack([one_hot(mu, MU_RANGE), one_hot(sigma, SIGMA_RANGE)], axis=1)


def pair_stats(clean01, degraded01):
    """μ and σ of |clean - degraded| over each image's pixels and channels (`edit_dataset.py`)."""
    diff = jnp.abs(clean01.astype(jnp.float32) - degraded01.astype(jnp.float32)).reshape(clean01.shape[0], -1)
    return diff.mean(axis=1), diff.std(axis=1)


def condition_latents(vae: akl.AutoencoderKL, variables, images01):
    """The concatenated image condition: the posterior mode, not scaled by 0.18215 (InstructPix2Pix's
    `encode_first_stage(x).mode()`, in GenDeg's training `get_input` and in `run_single.py`)."""
    return vae.apply(variables, 2.0 * images01 - 1.0, method=akl.AutoencoderKL.encode).mode()


def prompt(degradation: str, caption: str = "a photo") -> str:
    return f"{caption} in {ADJECTIVES.get(degradation, degradation)} conditions"


class GenDegConditioner(nn.Module):
    """(CLIP states (N, 77, D), stats (N, 2, 129)) -> cross-attention context (N, 77, D)."""

    context_length: int = 77
    dim: int = 768

    @nn.compact
    def __call__(self, text_states, stat_vectors):
        projected = Linear(self.context_length, name="stats_proj")(stat_vectors)  # (N, 2, 77)
        joined = jnp.concatenate([text_states, jnp.swapaxes(projected, 1, 2)], axis=-1)
        return Linear(self.dim, name="cc_projection")(joined)


def init_conditioner(module: GenDegConditioner, key) -> dict:
    """Random init with cc_projection the identity on the text part and a zero bias, as the official init."""
    variables = module.init(key, jnp.zeros((1, module.context_length, module.dim)),
                            jnp.zeros((1, 2, NUM_BINS + 1)))
    cc = variables["params"]["cc_projection"]
    cc = {"kernel": cc["kernel"].at[: module.dim].set(jnp.eye(module.dim)), "bias": jnp.zeros_like(cc["bias"])}
    return {"params": {**variables["params"], "cc_projection": cc}}


@dataclasses.dataclass
class GenDegModel:
    """The four networks with their variables, and the tokenizer."""

    unet: nn.Module
    unet_vars: dict
    vae: akl.AutoencoderKL
    vae_vars: dict
    text: clip_text.CLIPTextModel
    text_vars: dict
    conditioner: GenDegConditioner
    conditioner_vars: dict
    tokenizer: object

    def context(self, prompts: list[str], stat_vectors: np.ndarray):
        ids = clip_text.tokenize(self.tokenizer, prompts, self.text.max_position_embeddings)
        states = self.text.apply(self.text_vars, jnp.asarray(ids))[0]
        return self.conditioner.apply(self.conditioner_vars, states, jnp.asarray(stat_vectors))

    def generate(self, clean01, degradation: str, mu: float, sigma: float, key, caption: str = "a photo",
                 steps: int = 20, text_scale: float = 7.5, image_scale: float = 1.5, prompt_text: str | None = None):
        """Clean NHWC images in [0, 1] (sides multiples of 8) -> degraded images in [0, 1]."""
        n = clean01.shape[0]
        text = prompt(degradation, caption) if prompt_text is None else prompt_text
        cond = self.context([text] * n, np.repeat(stats(mu, sigma)[None], n, 0))
        null = self.context([""], null_stats()[None])
        image_latent = condition_latents(self.vae, self.vae_vars, jnp.asarray(clean01, jnp.float32))
        diffusion = pipeline.sd_diffusion()
        z = pipeline.sample(self.unet, self.unet_vars, diffusion, image_latent, cond, null, key, steps=steps,
                            text_scale=text_scale, image_scale=image_scale)
        return akl.decode_latents(self.vae, self.vae_vars, z)


_PARTS = {"unet": "unet.msgpack", "vae": "vae.msgpack", "text_encoder": "text_encoder.msgpack",
          "conditioner": "conditioner.msgpack"}


def save(directory, model: GenDegModel, kwargs: dict[str, dict]) -> None:
    """A GenDeg folder: one jaxir weights file per network (`kwargs[part]` its constructor kwargs) and
    the tokenizer's vocab.json / merges.txt under tokenizer/."""
    directory = pathlib.Path(directory)
    for part, variables in (("unet", model.unet_vars), ("vae", model.vae_vars), ("text_encoder", model.text_vars),
                            ("conditioner", model.conditioner_vars)):
        jio.save_weights(directory / _PARTS[part], part, kwargs.get(part, {}), jax.device_get(variables))
    model.tokenizer.save_pretrained(str(directory / "tokenizer"))


def load(directory) -> GenDegModel:
    from transformers import CLIPTokenizer

    directory = pathlib.Path(directory)
    loaded = {part: jio.load_weights(directory / name) for part, name in _PARTS.items()}
    unet = build_ldm_unet(**loaded["unet"][1])
    vae = akl.AutoencoderKL(**akl.diffusers_kwargs(loaded["vae"][1]))
    text = clip_text.CLIPTextModel(**loaded["text_encoder"][1])
    conditioner = GenDegConditioner(**loaded["conditioner"][1])
    tokenizer = CLIPTokenizer.from_pretrained(str(directory / "tokenizer"))
    return GenDegModel(unet, loaded["unet"][2], vae, loaded["vae"][2], text, loaded["text_encoder"][2],
                       conditioner, loaded["conditioner"][2], tokenizer)


# `data/<folder>/` of the official statistics for each degradation name `generate` takes
STATS_FOLDERS = {"haze": "haze", "rain": "rain", "snow": "snow", "motion": "motion blur", "blur": "motion blur",
                 "lowlight": "low-light", "low-light": "low-light", "raindrop": "raindrop"}
# edit_dataset.py EditDatasetParallelMuSigma: datasets with intense degradations drawn less often
DATASET_WEIGHTS = {"rain": {"ORD": 0.2}, "haze": {"DenseHaze": 0.05, "NH-HAZE": 0.1, "I-HAZE": 0.25},
                   "low-light": {"SID": 0.2}}
# ... and prompted as mixed degradations
MIXED_PROMPTS = {"ORD": ("rainy", "rainy and hazy"), "CSD": ("snowy", "snowy and hazy")}


def _bounds(histogram: list[dict]) -> tuple[str, str]:
    keys = histogram[0].keys()
    return next(k for k in keys if "min" in k), next(k for k in keys if "max" in k)


def _sample_histogram(histogram: list[dict], rng: np.random.Generator) -> tuple[float, dict]:
    """A bin drawn in proportion to its count, then a value uniform in it (`sample_from_histogram`)."""
    counts = np.cumsum([b["Count"] for b in histogram])
    if counts[-1] <= 0:
        raise ValueError("empty histogram")
    chosen = histogram[int(np.searchsorted(counts, rng.integers(1, counts[-1] + 1), side="left"))]
    low, high = _bounds(histogram)
    return float(rng.uniform(chosen[low], chosen[high])), chosen


def _occupied_range(histogram: list[dict]) -> tuple[float, float]:
    low, high = _bounds(histogram)
    used = [b for b in histogram if b["Count"] > 0]
    return min(b[low] for b in used), max(b[high] for b in used)


class DegradationStats:
    """The official per-dataset μ/σ statistics of one degradation (`data/<degradation>/Mu_*.json`,
    `Sigma_*.json`, `Mu-Sigma-*.json`) and the paper's sampler (Sec. 3.2, `get_samples_mu_sigma_nested.py`):
    a dataset by weight; every `random_every`-th draw (the first included) μ and σ uniform over the
    occupied range of their histograms; otherwise μ from its histogram and σ from the joint histogram's
    row of μ's bin."""

    def __init__(self, stats_dir, degradation: str):
        folder = pathlib.Path(stats_dir) / STATS_FOLDERS.get(degradation, degradation)
        self.mu: dict[str, list] = {}
        self.sigma: dict[str, list] = {}
        self.joint: dict[str, dict] = {}
        for path in sorted(folder.glob("*.json")):
            content = json.loads(path.read_text())
            if not isinstance(content, list) or not content or "Dataset" not in content[0]:
                continue  # e.g. rain's mu_sigma_weighted_rain.json, not read by the official sampler
            dataset = content[0]["Dataset"]
            if "Mu-Sigma-" in path.name:
                self.joint.setdefault(dataset, {row["Mu range"]: row["Count"] for row in content})
            elif path.name.startswith("Mu_"):
                self.mu.setdefault(dataset, content)
            elif path.name.startswith("Sigma_"):
                self.sigma.setdefault(dataset, content)
        self.datasets = sorted(self.mu)
        if not self.datasets:
            raise FileNotFoundError(f"no Mu_*.json statistics in {folder}")
        factors = DATASET_WEIGHTS.get(STATS_FOLDERS.get(degradation, degradation), {})
        self.weights = np.array([factors.get(d, 1.0) for d in self.datasets]) / len(self.datasets)

    def sample(self, rng: np.random.Generator, random_sample: bool) -> tuple[float, float, str]:
        dataset = self.datasets[int(rng.choice(len(self.datasets), p=self.weights / self.weights.sum()))]
        if random_sample:
            mu_range, sigma_range = _occupied_range(self.mu[dataset]), _occupied_range(self.sigma[dataset])
            return float(rng.uniform(*mu_range)), float(rng.uniform(*sigma_range)), dataset
        mu, chosen = _sample_histogram(self.mu[dataset], rng)
        low, high = _bounds(self.mu[dataset])
        sigma, _ = _sample_histogram(self.joint[dataset][f"{chosen[low]:.3f} - {chosen[high]:.3f}"], rng)
        return mu, sigma, dataset


def paired_source(out_dir, degradation: str) -> dict:
    """The training-data description of a `generate_folder` output (the `paired_folder` source)."""
    out_dir = pathlib.Path(out_dir)
    return {"source": "paired_folder", "kwargs": {"input_dir": str(out_dir / degradation),
                                                  "target_dir": str(out_dir / "GT")}}


def generate_folder(model: GenDegModel, clean_dir, out_dir, degradation: str, mu: float | None = None,
                    sigma: float | None = None, seed: int = 0, steps: int = 20, text_scale: float = 7.5,
                    image_scale: float = 1.5, caption: str = "a photo", stats: DegradationStats | None = None,
                    random_every: int = 20) -> list[str]:
    """Every image in `clean_dir` (cropped to multiples of 8) -> a GenDS-style pair, as `run_parallel_mu_sigma.py`
    lays them out: `out_dir/<degradation>/<stem>.png` (generated) and `out_dir/GT/<stem>.png` (clean), with
    `out_dir/gendeg.json` recording each pair's μ, σ and the dataset whose statistics gave them. μ/σ are
    the given values, or drawn per image from the official statistics (`stats`)."""
    if (mu is None or sigma is None) and stats is None:
        raise ValueError("give mu and sigma, or the official statistics to draw them from")
    clean_dir, out_dir = pathlib.Path(clean_dir), pathlib.Path(out_dir)
    paths = sorted(p for p in clean_dir.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif"))
    if not paths:
        raise FileNotFoundError(f"no images in {clean_dir}")
    key, rng = jax.random.key(seed), np.random.default_rng(seed)
    records = []
    for index, path in enumerate(paths):
        clean = np.asarray(jio.read_image(path), np.float32)
        h, w = clean.shape[0] // 8 * 8, clean.shape[1] // 8 * 8
        clean = clean[:h, :w]
        record = {"mu": mu, "sigma": sigma, "sampled_dataset": None, "random_sampled": False}
        text = prompt(degradation, caption)
        if mu is None or sigma is None:
            random_sample = index % random_every == 0
            drawn_mu, drawn_sigma, dataset = stats.sample(rng, random_sample)
            record.update(mu=drawn_mu, sigma=drawn_sigma, sampled_dataset=dataset, random_sampled=random_sample)
            if dataset in MIXED_PROMPTS:
                text = text.replace(*MIXED_PROMPTS[dataset])
        model_out = model.generate(clean[None], degradation, record["mu"], record["sigma"],
                                   jax.random.fold_in(key, index), caption=caption, steps=steps,
                                   text_scale=text_scale, image_scale=image_scale, prompt_text=text)
        name = f"{path.stem}.png"
        jio.write_image(out_dir / degradation / name, np.asarray(model_out[0]))
        jio.write_image(out_dir / "GT" / name, clean)
        records.append({"image_path": f"{degradation}/{name}", "target_path": f"GT/{name}",
                        "degradation": degradation, "prompt": text, **record})
    manifest = out_dir / "gendeg.json"
    previous = json.loads(manifest.read_text()) if manifest.exists() else {"records": [], "settings": {}}
    kept = [r for r in previous["records"] if r["degradation"] != degradation]  # other degradations, same clean set
    settings = {**previous["settings"], degradation: {"seed": seed, "steps": steps, "text_scale": text_scale,
                                                      "image_scale": image_scale, "caption": caption}}
    manifest.write_text(json.dumps({"records": kept + records, "settings": settings}, indent=1))
    return [pathlib.Path(r["image_path"]).stem for r in records]


# configs/train.yaml: the SD 1.5 U-Net with 8 input channels, SD's VAE, CLIP ViT-L/14, 77 x 768 context.
PAPER_KWARGS = {
    "unet": dict(in_channels=8, out_channels=4, model_channels=320, attention_resolutions=(4, 2, 1),
                 num_res_blocks=2, channel_mult=(1, 2, 4, 4), num_heads=8, transformer_depth=1, context_dim=768),
    "vae": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4),
    "text_encoder": dict(clip_text.VIT_L14),
    "conditioner": dict(context_length=77, dim=768),
}


def split_checkpoint(state_dict, require_conditioner: bool = True) -> dict[str, dict]:
    """GenDeg's / InstructPix2Pix's single LatentDiffusion state dict -> per-network official state dicts.

    `model.diffusion_model.` (U-Net, LDM names), `first_stage_model.` (VAE, CompVis names),
    `cond_stage_model.transformer.` (transformers CLIPTextModel), `stats_proj.` / `cc_projection.`
    (conditioner; absent from SD 1.5's checkpoint, allowed with require_conditioner=False). EMA copies
    (`model_ema.`) and schedule buffers are left out.
    """
    parts: dict[str, dict] = {"unet": {}, "vae": {}, "text_encoder": {}, "conditioner": {}}
    prefixes = (("model.diffusion_model.", "unet"), ("first_stage_model.", "vae"),
                ("cond_stage_model.transformer.", "text_encoder"), ("stats_proj.", "conditioner"),
                ("cc_projection.", "conditioner"))
    for key, value in state_dict.items():
        for prefix, part in prefixes:
            if key.startswith(prefix):
                name = key[len(prefix):] if part != "conditioner" else key
                parts[part][name] = value
                break
    missing = [p for p, sd in parts.items() if not sd and (require_conditioner or p != "conditioner")]
    if missing:
        raise ValueError(f"checkpoint has no {missing} weights (expected a GenDeg LatentDiffusion state dict)")
    return parts


def convert_checkpoint(state_dict, kwargs: dict[str, dict], tokenizer) -> GenDegModel:
    """Official checkpoint + constructor kwargs per network (as `save` records them) -> GenDegModel."""
    from jaxir.convert.state_dict import convert_state_dict

    parts = split_checkpoint(state_dict, require_conditioner=False)
    unet = build_ldm_unet(**kwargs["unet"])
    conv_in = parts["unet"].get("input_blocks.0.0.weight")
    if conv_in is not None and conv_in.shape[1] < unet.in_channels:
        # SD's 4-channel U-Net: the image-condition channels start at zero (`ddpm_edit.py` init_from_ckpt)
        conv_in = np.asarray(conv_in)
        pad = np.zeros((conv_in.shape[0], unet.in_channels - conv_in.shape[1], *conv_in.shape[2:]), conv_in.dtype)
        parts["unet"]["input_blocks.0.0.weight"] = np.concatenate([conv_in, pad], axis=1)
    vae = akl.AutoencoderKL(**akl.diffusers_kwargs(kwargs["vae"]))
    text = clip_text.CLIPTextModel(**kwargs["text_encoder"])
    cond = GenDegConditioner(**kwargs["conditioner"])
    ctx_len, dim = cond.context_length, cond.dim
    unet_vars = convert_state_dict(parts["unet"], unet, jnp.zeros((1, 8, 8, unet.in_channels)),
                                   jnp.zeros((1,), jnp.int32), jnp.zeros((1, ctx_len, unet.context_dim)))
    vae_sd = akl.compvis_to_diffusers(parts["vae"], len(vae.block_out_channels))
    vae_vars = convert_state_dict(vae_sd, vae, jnp.zeros((1, 8, 8, vae.in_channels)))
    text_vars = convert_state_dict(parts["text_encoder"], text, jnp.zeros((1, 4), jnp.int32),
                                   hooks=clip_text.CONVERT_HOOKS)
    if parts["conditioner"]:
        cond_vars = convert_state_dict(parts["conditioner"], cond, jnp.zeros((1, ctx_len, dim)),
                                       jnp.zeros((1, 2, NUM_BINS + 1)))
    else:  # a fresh conditioner, initialised as the official one
        cond_vars = init_conditioner(cond, jax.random.key(0))
    return GenDegModel(unet, unet_vars, vae, vae_vars, text, text_vars, cond, cond_vars, tokenizer)


class GenDegLDM(nn.Module):
    """GenDeg's `LatentDiffusion` (configs/train.yaml) as one module for the shared training loop.

    Parameters: `unet`, `vae`, `text_encoder`, `conditioner` (the GenDeg folder's four parts; kwargs None:
    the paper's). `training_outputs(degraded, clean, prompt_ids, null_ids)` -> (ε prediction, ε): the
    degraded image (the batch's 'input') is what is generated, its posterior sample x 0.18215 noised at a
    uniform timestep; the clean image ('target') conditions by its unscaled posterior mode concatenated to
    the noisy latent; the cross-attention context is the CLIP states of the prompt joined with the one-hot
    μ/σ of |clean - degraded| (`GenDegConditioner`); text / image / both are dropped 5% each. VAE and CLIP
    outputs are under stop_gradient (frozen, `cond_stage_trainable: false`; the `gendeg` training method
    also masks their updates). The prompt ids come from the method (`jaxir.methods.gendeg`), which
    tokenizes on the host. `__call__` (init and the loop's eval forward) returns the VAE reconstruction;
    generation is `to_generation_model(...).generate`.
    """

    unet_kwargs: dict | None = None
    vae_kwargs: dict | None = None
    text_kwargs: dict | None = None
    conditioner_kwargs: dict | None = None
    linear_start: float = 0.00085
    linear_end: float = 0.012
    num_timesteps: int = 1000
    remat: bool = False  # the U-Net's `use_checkpoint`
    dtype: jnp.dtype = jnp.float32

    def _kwargs(self, given, part):
        return dict(PAPER_KWARGS[part] if given is None else given)

    def setup(self):
        self.unet = build_ldm_unet(**self._kwargs(self.unet_kwargs, "unet"), remat=self.remat, dtype=self.dtype)
        self.vae = akl.AutoencoderKL(**akl.diffusers_kwargs(self._kwargs(self.vae_kwargs, "vae")), dtype=self.dtype)
        self.text_encoder = clip_text.CLIPTextModel(**self._kwargs(self.text_kwargs, "text_encoder"), dtype=self.dtype)
        self.conditioner = GenDegConditioner(**self._kwargs(self.conditioner_kwargs, "conditioner"))

    def diffusion(self):
        return pipeline.GaussianDiffusion(pipeline.sd_betas(self.num_timesteps, self.linear_start, self.linear_end))

    def _context(self, ids, stat_vectors):
        states = jax.lax.stop_gradient(self.text_encoder(ids)[0].astype(jnp.float32))
        return self.conditioner(states, stat_vectors)

    def __call__(self, x, train: bool = False):
        posterior = self.vae.encode(2.0 * x - 1.0)
        if self.is_initializing():  # create every network's parameters
            n = x.shape[0]
            ids = jnp.zeros((n, self.conditioner.context_length), jnp.int32)
            context = self._context(ids, jnp.asarray(np.repeat(null_stats()[None], n, 0)))
            z = posterior.mode()
            self.unet(jnp.concatenate([z, z], axis=-1), jnp.zeros((n,), jnp.int32), context, train=train)
        return jnp.clip((self.vae.decode(posterior.mode()) + 1.0) / 2.0, 0.0, 1.0)

    def training_outputs(self, degraded, clean, prompt_ids=None, null_ids=None, train: bool = True):
        if prompt_ids is None or null_ids is None:
            raise ValueError("GenDegLDM.training_outputs needs prompt_ids and null_ids: train it with "
                             "config.method = {'name': 'gendeg', 'kwargs': {'tokenizer': ..., 'prompts': [...]}}")
        n = degraded.shape[0]
        key_posterior, key_loss = jax.random.split(self.make_rng("noise"))
        z0 = self.vae.encode(2.0 * degraded - 1.0).sample(key_posterior) * self.vae.scaling_factor
        image_latent = self.vae.encode(2.0 * clean - 1.0).mode()
        z0, image_latent = jax.lax.stop_gradient(z0), jax.lax.stop_gradient(image_latent)
        mu, sigma = pair_stats(clean, degraded)
        context = self._context(prompt_ids, stats_jnp(mu, sigma))
        null_context = self._context(null_ids, jnp.asarray(null_stats()[None]))
        return pipeline.training_pair(lambda x, t, c: self.unet(x, t, c, train=train), self.diffusion(), z0,
                                      image_latent, context, null_context, key_loss)


def identity_text_projection(params):
    """The official init of `cc_projection`: the identity on the text part, zero bias (`ddpm_edit.py`)."""
    cc = params["conditioner"]["cc_projection"]
    dim = cc["kernel"].shape[1]
    kernel = jnp.zeros_like(cc["kernel"]).at[:dim].set(jnp.eye(dim, dtype=cc["kernel"].dtype))
    kernel = kernel.at[dim:].set(cc["kernel"][dim:])
    conditioner = {**params["conditioner"], "cc_projection": {"kernel": kernel, "bias": jnp.zeros_like(cc["bias"])}}
    return {**params, "conditioner": conditioner}


def to_generation_model(module: GenDegLDM, variables, tokenizer) -> GenDegModel:
    """A trained GenDegLDM's variables (e.g. the loop's EMA weights) -> a GenDegModel to `generate` or `save`."""
    params = variables["params"]
    unet = build_ldm_unet(**module._kwargs(module.unet_kwargs, "unet"))
    vae = akl.AutoencoderKL(**akl.diffusers_kwargs(module._kwargs(module.vae_kwargs, "vae")))
    text = clip_text.CLIPTextModel(**module._kwargs(module.text_kwargs, "text_encoder"))
    cond = GenDegConditioner(**module._kwargs(module.conditioner_kwargs, "conditioner"))
    return GenDegModel(unet, {"params": params["unet"]}, vae, {"params": params["vae"]}, text,
                       {"params": params["text_encoder"]}, cond, {"params": params["conditioner"]}, tokenizer)


def build_gendeg_ldm(**kwargs) -> GenDegLDM:
    return GenDegLDM(**kwargs)


registry.register_model(registry.ModelEntry(
    name="gendeg",
    builder=build_gendeg_ldm,
    official=(("sudraj2002/GenDeg", "LatentDiffusion"),),
    pad_multiple=8,
    min_size=8,
    official_file="GenDeg/stable_diffusion/ldm/models/diffusion/ddpm_edit.py",
    description="GenDeg's latent diffusion (U-Net + SD VAE + CLIP text + μ/σ conditioner) for the training "
                "loop; `jaxir gendeg generate` samples a GenDeg folder.",
))


def module_kwargs(kwargs: dict[str, dict]) -> dict:
    """A GenDeg folder's per-network kwargs (`PAPER_KWARGS` layout) -> GenDegLDM's."""
    return {"unet_kwargs": dict(kwargs["unet"]), "vae_kwargs": dict(kwargs["vae"]),
            "text_kwargs": dict(kwargs["text_encoder"]), "conditioner_kwargs": dict(kwargs["conditioner"])}


def folder_kwargs(module: GenDegLDM) -> dict[str, dict]:
    """GenDegLDM's kwargs -> a GenDeg folder's (`save`)."""
    return {part: module._kwargs(given, part) for part, given in (
        ("unet", module.unet_kwargs), ("vae", module.vae_kwargs), ("text_encoder", module.text_kwargs),
        ("conditioner", module.conditioner_kwargs))}


def training_variables(model: GenDegModel) -> dict:
    """A GenDegModel's networks -> GenDegLDM variables (`train.init_from` weights)."""
    return {"params": {"unet": model.unet_vars["params"], "vae": model.vae_vars["params"],
                       "text_encoder": model.text_vars["params"], "conditioner": model.conditioner_vars["params"]}}
