"""dnspec: property-based verification and benchmarking of the contrastive denoising
(CDN) query builder of RT-DETR-style detectors."""

__version__ = "0.1.0"
