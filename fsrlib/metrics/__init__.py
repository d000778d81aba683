"""Metrics: full-reference image quality (:mod:`.image`) and downstream face measures (:mod:`.face`).

Importing :mod:`fsrlib.metrics.image` registers ``psnr``, ``ssim``, ``psnr_rgb``, ``ssim_rgb``,
``lpips``, ``lpips_vgg``, ``vif`` and ``fid`` in :data:`fsrlib.registry.METRICS`; importing
:mod:`fsrlib.metrics.vif_pyramid` registers ``vif_pyramid`` (steerable-pyramid VIF, family A). The optional
metric backends (lpips, piq, pytorch-fid: each pulls in torchvision models) are imported, and
every network's weights loaded, on first use. This package imports neither module (import the
one you use: ``from fsrlib.metrics.image import psnr``), so a stage that scores images does not
depend on the face models' code.
"""
