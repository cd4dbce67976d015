"""wganlab: train GANs stably (GAN, NS-GAN, WGAN, WGAN-GP) and measure why GAN training fails.

The Python API (see ``wganlab.api``)::

    run = wganlab.train(data=points, steps=2000)   # points: (N, D) array -> Run
    run.sample(1000)                               # (1000, D) numpy array
    run.metrics                                    # final figures, e.g. run.metrics["w1"]
    wganlab.evaluate(samples, "ring8")             # metrics of any (N, D) samples
"""

__version__ = "0.1.0"

__all__ = ["Run", "evaluate", "train"]

from wganlab import _aliases

_aliases.install()  # the flat layout's module paths (wganlab.trainer, ...) keep importing


def __getattr__(name):  # the API imports torch: load it on first use, not on `import wganlab`
    if name in __all__:
        from wganlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'wganlab' has no attribute {name!r}")
