"""Metrics: full-reference image quality (:mod:`.image`) and downstream face measures (:mod:`.face`).

Importing this package registers ``psnr``, ``ssim``, ``psnr_rgb``, ``ssim_rgb``, ``lpips``,
``lpips_vgg``, ``vif`` and ``fid`` in :data:`fsrlib.registry.METRICS`. Importing is cheap:
dlib, lpips, piq and pytorch-fid are imported, and weights loaded, on first use.
"""
from fsrlib.metrics.image import (
    FID,
    LPIPS,
    PSNR,
    PSNR_RGB,
    SSIM,
    SSIM_RGB,
    VIF,
    Metric,
    MetricInfo,
    build_metric,
    crop,
    describe_metrics,
    evaluate_images,
    psnr,
    quantize,
    rgb_to_y,
    ssim,
    vifp,
)
from fsrlib.metrics.face import (
    FACE_METRICS,
    ArcFace,
    analyze_faces,
    auc,
    ced,
    cosine_similarity,
    evaluate_downstream,
    nme,
    verification_accuracy,
)

__all__ = [
    "Metric", "MetricInfo", "PSNR", "SSIM", "PSNR_RGB", "SSIM_RGB", "LPIPS", "VIF", "FID",
    "build_metric", "describe_metrics", "evaluate_images", "psnr", "ssim", "vifp", "quantize",
    "rgb_to_y", "crop", "FACE_METRICS", "ArcFace", "analyze_faces", "evaluate_downstream",
    "nme", "ced", "auc", "cosine_similarity", "verification_accuracy",
]
