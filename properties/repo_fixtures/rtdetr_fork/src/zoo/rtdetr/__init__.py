from .rtdetr import RTDETR  # noqa: F401
from .denoising import get_contrastive_denoising_training_group  # noqa: F401
