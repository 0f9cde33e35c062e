"""`Grid`: a grid file loaded once (TOML -> GridSpec) and expanded once into its RunConfigs. Torch-free."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import cached_property
from typing import Optional

from scalelab.config import DataConfig, RunConfig
from scalelab.errors import ScalelabError
from scalelab.fileio import unsafe_name
from scalelab.grid import expand
from scalelab.grid import spec as gridspec

GRIDS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "grids")  # scalelab/grids


@dataclass(frozen=True)
class Grid:
    """A grid file: the Cartesian product seeds x widths x variants (x budgets for cosine) expands to
    RunConfigs (`runs()`). WSD makes one run per (size, variant, seed) with every budget as a cooldown
    branch. `spec` is the raw TOML dict; `parsed` its typed GridSpec (parsed once)."""

    name: str
    spec: dict
    path: Optional[str] = None
    description: str = ""

    # -- loading --------------------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str) -> "Grid":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        if os.path.isdir(path):
            raise ScalelabError(
                f"grid path {path} is a folder: give a .toml grid file inside it or a built-in grid name"
            )
        if not os.path.isfile(path):
            raise ScalelabError(
                f"grid file {path} not found: give a path to a .toml file or a built-in grid name "
                f"({', '.join(builtin_grids())})"
            )
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ScalelabError(f"grid file {path} is not valid TOML: {e}") from None
        except UnicodeDecodeError:
            raise ScalelabError(f"grid file {path} is not UTF-8 text: save it as UTF-8 TOML") from None
        except OSError as e:
            raise ScalelabError(f"cannot read grid file {path}: {e.strerror}") from None
        name = raw.get("name") or os.path.splitext(os.path.basename(path))[0]
        why = unsafe_name(str(name))
        if why:
            raise ScalelabError(
                f"grid file {path}: name {str(name)[:60]!r} {why}; a grid's name starts its runs' file names: use "
                'letters, digits and - _ . + (e.g. name = "my-grid")'
            )
        grid = cls(name=str(name), spec=raw, path=os.path.abspath(path), description=str(raw.get("description", "")))
        grid.validate()
        return grid

    @classmethod
    def load(cls, name_or_path: str) -> "Grid":
        """A built-in grid name (scalelab/grids/NAME.toml) or a path to a TOML file."""
        if os.path.exists(name_or_path) or name_or_path.endswith(".toml"):
            return cls.from_toml(name_or_path)
        builtin = os.path.join(GRIDS_DIR, f"{name_or_path}.toml")
        if os.path.isfile(builtin):
            return cls.from_toml(builtin)
        raise ScalelabError(
            f"no grid named {name_or_path!r}: use a built-in ({', '.join(builtin_grids())}) or a path to a .toml file"
        )

    # -- validation and expansion ---------------------------------------------------------------
    @cached_property
    def parsed(self) -> gridspec.GridSpec:
        return gridspec.parse(self.spec)

    @cached_property
    def _runs(self) -> tuple:
        from scalelab.data import data_vocab_size  # torch-free; checks the data path exists

        s = self.parsed
        vocab = data_vocab_size(s.data, base_dir=os.path.dirname(self.path) if self.path else None)
        with gridspec.table("model] or [[variants"):  # shape-dependent values met while building runs
            return tuple(expand.expand(s, self.name, vocab))

    def runs(self) -> list[RunConfig]:
        """Every run, validated (expanded once per Grid; ScalelabError for any run that cannot be built)."""
        return list(self._runs)

    def validate(self) -> "Grid":
        """Check every key and build (and validate) every run, so a bad grid fails before training."""
        if not self.runs():
            raise ScalelabError(
                f"grid {self.name}: expands to no runs: give at least one width, variant, budget and seed"
            )
        return self

    def data_config(self) -> DataConfig:
        return gridspec.parse_data(self.spec.get("data", {}))


def builtin_grids() -> list[str]:
    try:
        return sorted(f[:-5] for f in os.listdir(GRIDS_DIR) if f.endswith(".toml"))
    except OSError:
        return []
