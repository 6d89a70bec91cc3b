import yaml  # the installed PyYAML, not this repository's package of the same name

CONFIG = yaml.safe_load("num_denoising: 100\nlabel_noise_ratio: 0.5\n")
