"""Measurement: the PacGAN protocol and exact W1 on 2D data (``toy``), FID / KID / class
counts on images (``images``), the shipped evaluation network (``evalnet``), and the one
list of headline metrics (``headline``).

``from wganlab.metrics import evaluate_toy`` (the flat layout's path) still works: the
names of ``wganlab.metrics.toy`` are read from here on first use (POT loads only then).
"""


def __getattr__(name):
    from wganlab.metrics import toy

    try:
        return getattr(toy, name)
    except AttributeError:
        raise AttributeError(f"module 'wganlab.metrics' has no attribute {name!r}") from None
