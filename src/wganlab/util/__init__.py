"""The bottom layer: file and plotting helpers that know nothing of GANs."""
