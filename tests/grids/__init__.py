"""Tiny grids and a tiny text corpus for the runner's tests."""

import os

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus.txt")
TINY = os.path.join(HERE, "tiny.toml")


def write_grid(folder, body: str = "", name: str = "t", **sections) -> str:
    """A one-run tiny grid (d 16, 1 layer... overridable) as TOML text in folder/NAME.toml.

    sections: replacement TOML text per section name (data, model, variants, budgets, schedule,
    optimizer, eval); body: extra top-level TOML appended at the end.
    """
    s = {
        "data": f'[data]\nsource = "{CORPUS}"\nval_fraction = 0.2\n',
        "model": "[model]\nwidths = [16]\nn_layers = 2\nheads = 2\nseq_len = 32\n",
        "variants": '[[variants]]\nstructure = "dense"\n',
        "budgets": "[budgets]\ntokens = [12800]\n",
        "schedule": '[schedule]\nkind = "cosine"\nwarmup = 0.1\n',
        "optimizer": "[optimizer]\nlr = 3e-3\nbatch_size = 8\n",
        "eval": "[eval]\npoints = 4\nval_tokens = 1024\n",
    }
    s.update(sections)
    text = f'name = "{name}"\nseeds = [0]\n' + "\n".join(s.values()) + "\n" + body
    path = os.path.join(str(folder), f"{name}.toml")
    with open(path, "w") as f:
        f.write(text)
    return path
