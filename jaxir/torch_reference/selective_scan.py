"""Sequential selective scan in pure PyTorch: the recurrence of mamba_ssm's `selective_scan_ref`.

Semantics of state-spaces/mamba, mamba_ssm/ops/selective_scan_interface.py
(`selective_scan_ref`), written for jaxir; the official MaIR and MambaIRv2 call the
CUDA `selective_scan_fn`, which has the same semantics and is not available on CPU.
Shapes as `jaxir.ops.scan.selective_scan`: u, delta, z (batch, D, L); A (D, N);
B, C (D, N), (batch, N, L) or (batch, G, N, L); D, delta_bias (D,).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _expand(m: torch.Tensor, d: int) -> torch.Tensor:
    """B or C -> (batch or 1, D, N, L or 1)."""
    if m.dim() == 2:
        return m[None, :, :, None]
    if m.dim() == 3:
        return m[:, None]
    return m.repeat_interleave(d // m.shape[1], dim=1)


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False):
    dtype_in = u.dtype
    u, delta = u.float(), delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[None, :, None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, d, length = u.shape
    A = A.float()
    B, C = _expand(B.float(), d), _expand(C.float(), d)
    h = u.new_zeros(batch, d, A.shape[1])
    ys = []
    for t in range(length):
        b_t = B[..., t if B.shape[-1] > 1 else 0]
        c_t = C[..., t if C.shape[-1] > 1 else 0]
        dt = delta[:, :, t, None]
        h = torch.exp(dt * A) * h + dt * b_t * u[:, :, t, None]
        ys.append((h * c_t).sum(-1))
    out = torch.stack(ys, dim=-1)
    if D is not None:
        out = out + u * D.float()[None, :, None]
    if z is not None:
        out = out * F.silu(z.float())
    out = out.to(dtype_in)
    return (out, h) if return_last_state else out
