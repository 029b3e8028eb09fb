"""The selective scan of Mamba (S6), with mamba_ssm's semantics, in pure JAX.

Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", 2023;
reference semantics: state-spaces/mamba, mamba_ssm/ops/selective_scan_interface.py
`selective_scan_ref`. For every channel d and state index n:

    Δ_t   = softplus(delta_t + delta_bias)          (softplus and bias optional)
    h_t   = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t u_t       (h_0 = 0)
    y_t   = <C_t, h_t> + D u_t
    out_t = y_t · silu(z_t)                          (when z is given)

Layouts follow mamba_ssm: u, delta, z (batch, D, L); A (D, N); B and C either
(D, N) (time-invariant), (batch, N, L) or grouped (batch, G, N, L), where group g
serves channels [g D/G, (g+1) D/G) (MaIR's four scan directions, K = G); D and
delta_bias (D,). MambaIRv2 adds its prompt to C before calling.

The recurrence h_t = a_t h_{t-1} + b_t is a composition of affine maps, which is
associative: (a1, b1) then (a2, b2) is (a1 a2, a2 b1 + b2). Three implementations:

- ``"associative"``: `jax.lax.associative_scan` over the whole sequence (log depth,
  parallel; holds (L, batch, D, N) states at once).
- ``"chunked"``: the sequence cut into chunks of `chunk_size`; inside a chunk the
  associative scan, across chunks a sequential carry of the state (h at the chunk
  start times the chunk's cumulative decay, plus the chunk's own scan). Memory is
  bounded by one chunk's states; the chunk body is rematerialised for the backward pass.
- ``"sequential"``: `jax.lax.scan` one step at a time, the reference.

All compute in float32, as mamba_ssm does, whatever the input dtype.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

METHODS = ("associative", "chunked", "sequential")
_HIGHEST = jax.lax.Precision.HIGHEST


def _expand_bc(m: jax.Array, batch: int, d: int, length: int) -> jax.Array:
    """B or C in any of mamba_ssm's layouts -> (L, batch, D, N) broadcastable."""
    if m.ndim == 2:  # (D, N): time-invariant
        return m[None, None]
    if m.ndim == 3:  # (batch, N, L): shared by every channel
        return jnp.transpose(m, (2, 0, 1))[:, :, None, :]
    if m.ndim == 4:  # (batch, G, N, L): group g for channels [g D/G, (g+1) D/G)
        groups = m.shape[1]
        if d % groups:
            raise ValueError(f"selective_scan: {d} channels are not divisible by {groups} B/C groups")
        m = jnp.repeat(m, d // groups, axis=1)  # (batch, D, N, L)
        return jnp.transpose(m, (3, 0, 1, 2))
    raise ValueError(f"selective_scan: B/C must have 2, 3 or 4 dims, got shape {m.shape}")


def _combine(left, right):
    a1, b1 = left
    a2, b2 = right
    return a1 * a2, a2 * b1 + b2


def _scan_associative(da, dbu, c, h0):
    """States of h_t = da_t h_{t-1} + dbu_t along axis 0 from h0; returns (y (L, b, D), last state)."""
    a_cum, h = jax.lax.associative_scan(_combine, (da, dbu), axis=0)
    h = h + a_cum * h0[None]
    y = jnp.sum(h * c, axis=-1)
    return y, h[-1]


def _scan_sequential(da, dbu, c, h0):
    def step(h, inputs):
        a, b, c_t = inputs
        h = a * h + b
        return h, jnp.sum(h * c_t, axis=-1)

    c = jnp.broadcast_to(c, da.shape)
    last, y = jax.lax.scan(step, h0, (da, dbu, c))
    return y, last


def _scan_chunked(da, dbu, c, h0, chunk_size: int):
    length = da.shape[0]
    chunk = max(1, min(chunk_size, length))
    pad = (-length) % chunk
    c = jnp.broadcast_to(c, da.shape)
    if pad:
        # Identity steps (a=1, b=0) at the end leave the state and earlier outputs unchanged.
        da = jnp.concatenate([da, jnp.ones((pad,) + da.shape[1:], da.dtype)])
        dbu = jnp.concatenate([dbu, jnp.zeros((pad,) + dbu.shape[1:], dbu.dtype)])
        c = jnp.concatenate([c, jnp.zeros((pad,) + c.shape[1:], c.dtype)])
    n_chunks = da.shape[0] // chunk

    def split(x):
        return x.reshape((n_chunks, chunk) + x.shape[1:])

    @jax.checkpoint
    def body(h, inputs):
        a, b, c_t = inputs
        return _scan_associative(a, b, c_t, h)[::-1]

    last, y = jax.lax.scan(body, h0, (split(da), split(dbu), split(c)))
    y = y.reshape((n_chunks * chunk,) + y.shape[2:])
    return y[:length], last


@functools.partial(jax.jit, static_argnames=("delta_softplus", "return_last_state", "method", "chunk_size"))
def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus: bool = False,
                   return_last_state: bool = False, method: str = "associative", chunk_size: int = 256):
    """mamba_ssm's `selective_scan_fn` (see the module docstring); returns out (batch, D, L)
    in u's dtype, and the last state (batch, D, N) when `return_last_state`."""
    if method not in METHODS:
        raise ValueError(f"selective_scan method must be one of {METHODS}, got {method!r}")
    dtype_in = u.dtype
    batch, d, length = u.shape
    f32 = jnp.float32
    u32, delta32 = u.astype(f32), delta.astype(f32)
    if delta_bias is not None:
        delta32 = delta32 + delta_bias.astype(f32)[None, :, None]
    if delta_softplus:
        delta32 = jax.nn.softplus(delta32)
    # Time-major (L, batch, D, N) so every form scans axis 0.
    delta_t = jnp.transpose(delta32, (2, 0, 1))[..., None]
    u_t = jnp.transpose(u32, (2, 0, 1))[..., None]
    da = jnp.exp(delta_t * A.astype(f32)[None, None])
    dbu = delta_t * u_t * _expand_bc(B.astype(f32), batch, d, length)
    c = _expand_bc(C.astype(f32), batch, d, length)
    h0 = jnp.zeros((batch, d, A.shape[-1]), f32)
    if method == "associative":
        y, last = _scan_associative(da, dbu, c, h0)
    elif method == "chunked":
        y, last = _scan_chunked(da, dbu, c, h0, chunk_size)
    else:
        y, last = _scan_sequential(da, dbu, c, h0)
    out = jnp.transpose(y, (1, 2, 0))  # (batch, D, L)
    if D is not None:
        out = out + u32 * D.astype(f32)[None, :, None]
    if z is not None:
        out = out * jax.nn.silu(z.astype(f32))
    out = out.astype(dtype_in)
    return (out, last) if return_last_state else out
