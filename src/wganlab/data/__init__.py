"""Data sources. The built-in toy distributions are the default and need no download."""

from wganlab.data.toy import TOY_DATASETS, GaussianMixture, SwissRoll, make_toy

__all__ = ["TOY_DATASETS", "GaussianMixture", "SwissRoll", "make_toy"]
