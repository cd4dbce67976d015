"""wganlab: train GANs stably (GAN, NS-GAN, WGAN, WGAN-GP) and measure why GAN training fails."""

__version__ = "0.1.0"
