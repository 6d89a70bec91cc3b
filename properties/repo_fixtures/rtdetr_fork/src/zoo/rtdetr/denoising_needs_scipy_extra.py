from .denoising import get_contrastive_denoising_training_group  # noqa: F401
from .matcher import match  # noqa: F401  (its sibling needs a package that is not installed)
