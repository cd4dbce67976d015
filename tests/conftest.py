import os
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def subprocess_env(**extra) -> dict:
    """The environment for a child ``python -m wganlab``: this checkout's src first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def write_mnist_fixture(folder, n_train=40, n_test=20, compress=False, seed=0):
    """Writes four small IDX files of random 'digits' with labels cycling 0..9."""
    import numpy as np

    from wganlab.data.idx import write_idx
    from wganlab.data.mnist import FILES

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        arrays[(split, "images")] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[(split, "labels")] = (np.arange(n) % 10).astype(np.uint8)
    for key, array in arrays.items():
        write_idx(folder / (FILES[key] + (".gz" if compress else "")), array, compress=compress)
    return arrays
