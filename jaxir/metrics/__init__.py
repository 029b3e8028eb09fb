"""Image-quality metrics with benchmark conventions.

    from jaxir import metrics
    metrics.psnr(pred, target, color='y', quantize_uint8=True)   # (N,)
    metrics.evaluate(pred, target, 'gopro')                      # {'psnr': ..}

LPIPS lives in `jaxir.metrics.lpips` (imported on demand: it loads weights).
"""
from jaxir.metrics.conventions import (
    CONVENTIONS,
    METRIC_NAMES,
    MetricConvention,
    describe,
    evaluate,
    evaluate_per_image,
    get_convention,
)
from jaxir.metrics.image import (
    SSIM_KINDS,
    mae,
    prepare,
    psnr,
    quantize_uint8,
    rgb_to_y,
    rgb_to_ycbcr,
    ssim,
)

__all__ = [
    "CONVENTIONS", "METRIC_NAMES", "MetricConvention", "SSIM_KINDS",
    "describe", "evaluate", "evaluate_per_image", "get_convention", "mae",
    "prepare", "psnr", "quantize_uint8", "rgb_to_y", "rgb_to_ycbcr", "ssim",
]
