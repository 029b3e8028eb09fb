"""OSDFace's colour fixes against the same operations written with torch (replicate-padded dilated
depthwise conv2d, unbiased variance)."""
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.diffusion.latent import colorfix

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _torch_decompose(x, levels=5):
    kernel = torch.tensor([[0.0625, 0.125, 0.0625], [0.125, 0.25, 0.125], [0.0625, 0.125, 0.0625]])[None, None]
    kernel = kernel.repeat(3, 1, 1, 1)
    high = torch.zeros_like(x)
    for i in range(levels):
        r = 2 ** i
        low = F.conv2d(F.pad(x, (r, r, r, r), mode="replicate"), kernel, groups=3, dilation=r)
        high += x - low
        x = low
    return high, low


def test_wavelet_and_adain_fixes_match_torch():
    rng = np.random.default_rng(0)
    restored, reference = rng.uniform(size=(2, 40, 36, 3)).astype(np.float32), rng.uniform(
        size=(2, 40, 36, 3)).astype(np.float32)
    t = lambda a: torch.from_numpy(a.transpose(0, 3, 1, 2).copy())  # noqa: E731
    high, _ = _torch_decompose(t(restored))
    _, low = _torch_decompose(t(reference))
    want = (high + low).clamp(0, 1).numpy().transpose(0, 2, 3, 1)
    got = np.asarray(colorfix.wavelet_color_fix(jnp.asarray(restored), jnp.asarray(reference)))
    np.testing.assert_allclose(got, want, atol=1e-5)

    c, s = t(restored), t(reference)
    cm, cs = c.mean((2, 3), keepdim=True), (c.reshape(2, 3, -1).var(2) + 1e-5).sqrt()[..., None, None]
    sm, ss = s.mean((2, 3), keepdim=True), (s.reshape(2, 3, -1).var(2) + 1e-5).sqrt()[..., None, None]
    want = ((c - cm) / cs * ss + sm).clamp(0, 1).numpy().transpose(0, 2, 3, 1)
    got = np.asarray(colorfix.adain_color_fix(jnp.asarray(restored), jnp.asarray(reference)))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_wavelet_fix_keeps_the_reference_colour_of_a_flat_image():
    flat = jnp.full((1, 16, 16, 3), 0.3)
    restored = flat.at[..., 0].add(0.4)  # a colour cast
    fixed = colorfix.wavelet_color_fix(restored, flat)
    np.testing.assert_allclose(np.asarray(fixed), np.asarray(flat), atol=1e-6)
