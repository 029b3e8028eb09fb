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
  start times the chunk's cumulative decay, plus the chunk's own scan). Each chunk is
  discretised inside the (rematerialised) chunk body, so the (L, batch, D, N) states
  are never held at once: memory is O(L (D + N) + chunk D N), forward and backward.
- ``"sequential"``: `jax.lax.scan` one step at a time, the reference.

All compute in float32, as mamba_ssm does, whatever the input dtype.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

METHODS = ("associative", "chunked", "sequential")
_HIGHEST = jax.lax.Precision.HIGHEST


def _bc_time_major(m: jax.Array, d: int) -> tuple[jax.Array, bool]:
    """B or C in any of mamba_ssm's layouts -> (array, varies_in_time). Time-varying ones become
    (L, batch, G, N) with G = 1 (shared) or the groups; time-invariant (D, N) ones (1, 1, D, N)."""
    if m.ndim == 2:  # (D, N)
        return m[None, None], False
    if m.ndim == 3:  # (batch, N, L): shared by every channel
        return jnp.transpose(m, (2, 0, 1))[:, :, None, :], True
    if m.ndim == 4:  # (batch, G, N, L): group g for channels [g D/G, (g+1) D/G)
        if d % m.shape[1]:
            raise ValueError(f"selective_scan: {d} channels are not divisible by {m.shape[1]} B/C groups")
        return jnp.transpose(m, (3, 0, 1, 2)), True
    raise ValueError(f"selective_scan: B/C must have 2, 3 or 4 dims, got shape {m.shape}")


def _per_channel(m: jax.Array, d: int) -> jax.Array:
    """(T, batch, G, N) -> (T, batch, D, N) (repeat each group over its channels)."""
    return m if m.shape[2] in (1, d) else jnp.repeat(m, d // m.shape[2], axis=2)


def _discretise(delta, u, b, c, A):
    """Time-major delta, u (T, batch, D) and B, C -> the recurrence's (a_t, b_t) and C, each (T, batch, D, N)."""
    d = delta.shape[-1]
    da = jnp.exp(delta[..., None] * A[None, None])
    dbu = (delta * u)[..., None] * _per_channel(b, d)
    return da, dbu, _per_channel(c, d)


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


def _scan_chunked(delta, u, b, c, A, h0, chunk_size: int, b_varies: bool, c_varies: bool):
    """Chunks of the raw inputs (L, batch, D) / (L, batch, G, N) are discretised inside the
    rematerialised chunk body, so only one chunk's (T, batch, D, N) states exist at a time."""
    length = delta.shape[0]
    chunk = max(1, min(chunk_size, length))
    pad = (-length) % chunk

    def padded(x):
        if not pad:
            return x
        # Δ = 0 steps at the end (decay exp(0) = 1, input 0) leave the state unchanged.
        return jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)])

    n_chunks = (length + pad) // chunk

    def split(x):
        return x.reshape((n_chunks, chunk) + x.shape[1:])

    xs = [split(padded(delta)), split(padded(u))]
    xs += [split(padded(b))] if b_varies else []
    xs += [split(padded(c))] if c_varies else []

    @jax.checkpoint
    def body(h, inputs):
        delta_c, u_c = inputs[0], inputs[1]
        rest = list(inputs[2:])
        b_c = rest.pop(0) if b_varies else b
        c_c = rest.pop(0) if c_varies else c
        da, dbu, c_full = _discretise(delta_c, u_c, b_c, c_c, A)
        y, last = _scan_associative(da, dbu, c_full, h)
        return last, y

    last, y = jax.lax.scan(body, h0, tuple(xs))
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
    # Time-major (L, batch, D[, N]) so every form scans axis 0.
    delta_t = jnp.transpose(delta32, (2, 0, 1))
    u_t = jnp.transpose(u32, (2, 0, 1))
    b_t, b_varies = _bc_time_major(B.astype(f32), d)
    c_t, c_varies = _bc_time_major(C.astype(f32), d)
    A32 = A.astype(f32)
    h0 = jnp.zeros((batch, d, A.shape[-1]), f32)
    if method == "chunked":
        y, last = _scan_chunked(delta_t, u_t, b_t, c_t, A32, h0, chunk_size, b_varies, c_varies)
    else:
        da, dbu, c = _discretise(delta_t, u_t, b_t, c_t, A32)
        scan = _scan_associative if method == "associative" else _scan_sequential
        y, last = scan(da, dbu, c, h0)
    out = jnp.transpose(y, (1, 2, 0))  # (batch, D, L)
    if D is not None:
        out = out + u32 * D.astype(f32)[None, :, None]
    if z is not None:
        out = out * jax.nn.silu(z.astype(f32))
    out = out.astype(dtype_in)
    return (out, last) if return_last_state else out
