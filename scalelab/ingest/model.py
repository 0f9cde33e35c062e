"""The model a run trained, as a scalelab ModelConfig: from a description (`d_model=512,n_layers=8,
structure=lowrank,rank=128`) or from the run's logged config (scalelab's field names, or nanoGPT's n_embd,
n_layer, n_head, block_size). Params and FLOPs then follow exactly from scalelab.flops. Torch-free."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from scalelab.config import ModelConfig
from scalelab.errors import ScalelabError
from scalelab.structures import StructureConfig

STRUCTURE_KEYS = {"structure": "kind", "rank": "rank", "blocks": "blocks", "fraction": "fraction"}
# other trainers' names for the same fields (nanoGPT / GPT-2 configs)
ALIASES = {"n_embd": "d_model", "n_layer": "n_layers", "n_head": "n_heads", "block_size": "seq_len"}
_FIELDS = {f.name: f for f in dataclasses.fields(ModelConfig) if f.name not in ("ffn", "guide")}


def keys() -> list[str]:
    """The keys a model description takes."""
    return sorted([*_FIELDS, *STRUCTURE_KEYS])


def parse(text: str) -> ModelConfig:
    """A description KEY=VALUE,... as a ModelConfig; one ScalelabError line when it cannot be built."""
    values: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not value.strip():
            raise ScalelabError(f"--model {text!r}: {part!r} is not KEY=VALUE (e.g. d_model=512,n_layers=8)")
        values[ALIASES.get(key.strip(), key.strip())] = value.strip()
    unknown = sorted(set(values) - set(_FIELDS) - set(STRUCTURE_KEYS))
    if unknown:
        raise ScalelabError(f"--model: unknown key(s) {', '.join(unknown)}: use {', '.join(keys())}")
    return build(values, f"--model {text!r}")


def from_config(config: dict) -> Optional[ModelConfig]:
    """The model a logged config describes (flat, or under "model"), or None when it names no d_model,
    n_layers and n_heads."""
    for d in (config.get("model"), config):
        if not isinstance(d, dict):
            continue
        values: dict[str, Any] = {
            ALIASES.get(str(k), str(k)): v for k, v in d.items() if not isinstance(v, (dict, list))
        }
        values = {k: v for k, v in values.items() if k in _FIELDS or k in STRUCTURE_KEYS}
        if isinstance(d.get("ffn"), dict):  # scalelab's own config: {"ffn": {"kind": ..., "rank": ...}}
            values.update({k: d["ffn"][v] for k, v in STRUCTURE_KEYS.items() if d["ffn"].get(v) is not None})
        if {"d_model", "n_layers", "n_heads"} <= set(values):
            try:
                return build(values, "the run's logged config")
            except ScalelabError as e:
                raise ScalelabError(f"{e} (or describe the model with --model KEY=VALUE,...)") from None
    return None


def build(values: dict[str, Any], where: str) -> ModelConfig:
    """ModelConfig from field values (strings or logged values), converted to each field's type."""
    kw: dict[str, Any] = {}
    ffn: dict[str, Any] = {}
    try:
        for k, v in values.items():
            if k in STRUCTURE_KEYS:
                ffn[STRUCTURE_KEYS[k]] = _convert(v, "str" if k == "structure" else _structure_type(k))
            elif v is not None:
                kw[k] = _convert(v, str(_FIELDS[k].type))
    except ValueError as e:
        raise ScalelabError(f"{where}: {e}") from None
    if ffn:
        kw["ffn"] = StructureConfig(**ffn)
    try:
        return ModelConfig(**kw)
    except ScalelabError as e:
        raise ScalelabError(f"{where} cannot be built: {e}") from None
    except TypeError as e:  # a value of the wrong kind reaching a comparison
        raise ScalelabError(f"{where} cannot be built: {e}") from None


def _structure_type(key: str) -> str:
    return "Optional[float]" if key == "fraction" else "Optional[int]"


def _convert(v: Any, annotation: str) -> Any:
    t = annotation.removeprefix("Optional[").removesuffix("]")
    if isinstance(v, str) and v.lower() in ("none", "null") and annotation.startswith("Optional"):
        return None
    if t == "int":
        if isinstance(v, bool):
            raise ValueError(f"{v!r} is not a whole number")
        try:
            f = float(v) if not isinstance(v, int) else v
        except (TypeError, ValueError):
            raise ValueError(f"{v!r} is not a whole number") from None
        if isinstance(f, float) and not f.is_integer():
            raise ValueError(f"{v!r} is not a whole number")
        return int(f)
    if t == "float":
        try:
            return float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{v!r} is not a number") from None
    if t == "bool":
        if isinstance(v, bool):
            return v
        if str(v).lower() in ("true", "1", "yes"):
            return True
        if str(v).lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"{v!r} is not true or false")
    return str(v)
