"""Corpora and tokenizers: from a DataConfig to two token arrays (train, validation).

Sources (DataConfig.source / .format):
- "stdlib" (default): the running Python's standard-library source, every *.py under
  sysconfig's stdlib path except site-packages/dist-packages, in sorted path order. No download ever.
- a text file, a folder (every file under it, recursively, sorted) or a glob of text files;
- a JSONL file (one JSON object per line) or a Parquet file with a text column (`text_column`);
- pre-tokenized uint16 .bin files (nanoGPT convention): a folder with train.bin and val.bin, or the
  path of a train .bin with val.bin beside it.
Tokenizers: "byte" (vocab 256, one token per UTF-8 byte) or a local Hugging Face tokenizer.json.

Train/validation split: by a hash of each document's key (relative file path, or the document's own
sha256 for JSONL/Parquet rows): a document is held out when the first 8 bytes of sha256(key), read as
an integer, fall below val_fraction x 2^64. A single text file is split by position instead (its last
val_fraction). The corpus fingerprint `corpus_sha` is the sha256 of the train tokens then the
validation tokens, exactly what a run sees.

Tokenized corpora are cached under $SCALELAB_CACHE (default ~/.cache/scalelab) as memory-mapped
arrays keyed by the source listing (paths, sizes, mtimes) and the tokenizer, so later runs start fast.
This module never imports torch.
"""

from __future__ import annotations

import functools
import glob as globlib
import hashlib
import json
import os
import sys
import sysconfig
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from scalelab.config import DataConfig, stable_hash
from scalelab.errors import ScalelabError
from scalelab.fileio import atomic_write, atomic_write_bytes, sha256_file

TEXT_SUFFIXES_SKIP = (".bin", ".npy", ".pt", ".parquet", ".gz", ".zip", ".png", ".jpg", ".pdf")


def cache_dir() -> str:
    return os.environ.get("SCALELAB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "scalelab")


@dataclass
class Corpus:
    train: np.ndarray  # 1-D token ids (memmap), uint8 or uint16
    val: np.ndarray
    name: str  # e.g. "stdlib-py3.11" or the source path
    sha: str  # sha256 of train tokens then validation tokens
    tokenizer: str  # "byte" or "hf:<file name>:<sha256[:12]>"
    vocab_size: int

    @property
    def n_train(self) -> int:
        return int(self.train.shape[0])


# ---- resolving sources ----------------------------------------------------------------------------


def stdlib_root() -> str:
    return sysconfig.get_paths()["stdlib"]


def stdlib_name() -> str:
    return f"stdlib-py{sys.version_info.major}.{sys.version_info.minor}"


def resolve_path(source: str, base_dir: Optional[str] = None) -> str:
    """A relative path is taken from the working directory, then from the grid file's folder."""
    src = os.path.expanduser(source)
    if os.path.isabs(src) or os.path.exists(src) or globlib.has_magic(src) or base_dir is None:
        return src
    alt = os.path.join(base_dir, src)
    return alt if os.path.exists(alt) else src


def detect_format(cfg: DataConfig, path: str) -> str:
    if cfg.source == "stdlib":
        return "stdlib"
    if cfg.format != "auto":
        return cfg.format
    low = path.lower()
    if low.endswith(".bin") or (os.path.isdir(path) and os.path.isfile(os.path.join(path, "train.bin"))):
        return "bin"
    if low.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        return "jsonl"
    if low.endswith(".parquet"):
        return "parquet"
    return "text"


def _bin_paths(path: str) -> tuple[str, str]:
    if os.path.isdir(path):
        return os.path.join(path, "train.bin"), os.path.join(path, "val.bin")
    return path, os.path.join(os.path.dirname(path) or ".", "val.bin")


def _text_files(path: str) -> tuple[list[tuple[str, str]], bool]:
    """[(key, full path)] sorted by key, and whether it is a single file (split by position)."""
    if os.path.isfile(path):
        return [(os.path.basename(path), path)], True
    if os.path.isdir(path):
        out = []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for f in files:
                if f.startswith(".") or f.lower().endswith(TEXT_SUFFIXES_SKIP):
                    continue
                full = os.path.join(root, f)
                out.append((os.path.relpath(full, path).replace(os.sep, "/"), full))
        return sorted(out), False
    matches = sorted(p for p in globlib.glob(path, recursive=True) if os.path.isfile(p))
    if globlib.has_magic(path) and matches:
        return [(m.replace(os.sep, "/"), m) for m in matches], len(matches) == 1
    raise ScalelabError(f'data source {path} not found: give an existing file, folder or glob (or source = "stdlib")')


def _check_text(p: str) -> None:
    """Refuse a file that is not text (a NUL byte in its first 64 KiB: an image, an archive, a .bin): tokenized
    as bytes it would give a corpus of noise."""
    try:
        with open(p, "rb") as f:
            head = f.read(1 << 16)
    except OSError as e:
        raise ScalelabError(f"cannot read {p}: {e.strerror}") from None
    if b"\x00" in head:
        raise ScalelabError(
            f"{p} is not a text file (it holds binary bytes): give text files only (move it out of the folder), "
            "or use format jsonl / parquet / bin for such data"
        )


def _stdlib_files() -> list[tuple[str, str]]:
    root = stdlib_root()
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "dist-packages", "__pycache__"))
        for f in files:
            if f.endswith(".py"):
                full = os.path.join(dirpath, f)
                out.append((os.path.relpath(full, root).replace(os.sep, "/"), full))
    return sorted(out)


def is_val(key: str, val_fraction: float) -> bool:
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()[:8], "big")
    return h < val_fraction * 2.0**64


# ---- tokenizers -----------------------------------------------------------------------------------


class ByteTokenizer:
    name = "byte"
    vocab_size = 256
    dtype = np.uint8

    def encode(self, data: bytes) -> np.ndarray:
        return np.frombuffer(data, dtype=np.uint8)


class HFTokenizer:
    dtype = np.uint16

    def __init__(self, path: str):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ScalelabError("a tokenizer.json needs the `tokenizers` package: pip install 'scalelab[hf]'") from None
        try:
            self.tok = Tokenizer.from_file(path)
        except Exception as e:  # tokenizers raises a bare Exception on bad files
            raise ScalelabError(f"cannot load tokenizer {path}: {str(e).splitlines()[0]}") from None
        self.vocab_size = int(self.tok.get_vocab_size(with_added_tokens=True))
        if self.vocab_size > 65536:
            raise ScalelabError(f"tokenizer {path} has {self.vocab_size} tokens; uint16 storage holds at most 65536")
        self.name = f"hf:{os.path.basename(path)}:{sha256_file(path)[:12]}"

    def encode(self, data: bytes) -> np.ndarray:
        ids = self.tok.encode(data.decode("utf-8", errors="replace")).ids
        return np.asarray(ids, dtype=np.uint16)


def get_tokenizer(spec: str, base_dir: Optional[str] = None):
    if spec == "byte":
        return ByteTokenizer()
    path = resolve_path(spec, base_dir)
    if not os.path.isfile(path):
        raise ScalelabError(f'tokenizer {spec!r} not found: use "byte" or a path to a tokenizer.json')
    return HFTokenizer(path)


# ---- documents ------------------------------------------------------------------------------------


def iter_documents(cfg: DataConfig, path: str, fmt: str) -> tuple[list[tuple[str, Callable[[], bytes]]], bool]:
    """[(split key, loader)] in corpus order, and whether to split by position (one text file)."""
    if fmt == "stdlib":
        return [(k, _reader(p)) for k, p in _stdlib_files()], False
    if fmt == "text":
        files, single = _text_files(path)
        return [(k, _reader(p)) for k, p in files], single
    if fmt in ("jsonl", "parquet"):
        if not os.path.isfile(path):
            raise ScalelabError(f"data source {path} not found: give an existing {fmt} file")
        texts = _read_jsonl(path, cfg.text_column) if fmt == "jsonl" else _read_parquet(path, cfg.text_column)
        docs: list[tuple[str, Callable[[], bytes]]] = []
        for t in texts:
            b = t.encode("utf-8", errors="replace")
            docs.append((hashlib.sha256(b).hexdigest(), _held(b)))
        return docs, False
    raise ScalelabError(f"format {fmt} has no documents")


def _reader(p: str) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            with open(p, "rb") as f:
                return f.read()
        except OSError:
            return b""  # an unreadable stdlib file is skipped, not fatal

    return read


def _held(b: bytes) -> Callable[[], bytes]:
    """A loader for a document already in memory (jsonl, parquet)."""
    return lambda: b


def _read_jsonl(path: str, column: str) -> list[str]:
    import gzip

    opener = gzip.open if path.endswith(".gz") else open
    out = []
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ScalelabError(f"{path}:{i} is not valid JSON ({e.msg}): one JSON object per line") from None
                if not isinstance(obj, dict) or column not in obj:
                    raise ScalelabError(f"{path}:{i} has no {column!r} field: set data.text_column")
                out.append(str(obj[column]))
    except OSError as e:
        raise ScalelabError(f"cannot read {path}: {e.strerror}") from None
    return out


def _read_parquet(path: str, column: str) -> list[str]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=[column])
    except Exception as e:
        raise ScalelabError(
            f"cannot read column {column!r} from Parquet file {path}: {str(e).splitlines()[0]} (set data.text_column)"
        ) from None
    return [str(x) for x in table.column(column).to_pylist() if x is not None]


# ---- vocab (cheap, torch-free; used at grid load) -------------------------------------------------


def data_vocab_size(cfg: DataConfig, base_dir: Optional[str] = None) -> int:
    """The vocabulary a model needs for this data; checks that the source exists (grid validation)."""
    if cfg.source == "stdlib":
        return _with_override(cfg, get_tokenizer(cfg.tokenizer, base_dir).vocab_size)
    path = resolve_path(cfg.source, base_dir)
    fmt = detect_format(cfg, path)
    if fmt == "bin":
        tr, va = _bin_paths(path)
        _check_bin(tr)
        _check_bin(va)
        meta = _bin_meta(tr)
        if cfg.vocab_size:
            return int(cfg.vocab_size)
        if "vocab_size" in meta:
            return int(meta["vocab_size"])
        if cfg.tokenizer != "byte":
            return get_tokenizer(cfg.tokenizer, base_dir).vocab_size
        return int(max(_bin_max(tr), _bin_max(va))) + 1
    if fmt == "text":
        _text_files(path)
    elif not os.path.isfile(path):
        raise ScalelabError(f"data source {path} not found: give an existing {fmt} file")
    return _with_override(cfg, get_tokenizer(cfg.tokenizer, base_dir).vocab_size)


def _with_override(cfg: DataConfig, vocab: int) -> int:
    """data.vocab_size may enlarge the model's vocab (e.g. the seeds' 32000 on a byte corpus)."""
    if cfg.vocab_size is None:
        return vocab
    if cfg.vocab_size < vocab:
        raise ScalelabError(f"data.vocab_size {cfg.vocab_size} is smaller than the tokenizer's {vocab}")
    return int(cfg.vocab_size)


def _check_bin(p: str) -> None:
    if not os.path.isfile(p):
        raise ScalelabError(
            f"token file {p} not found: a .bin corpus needs train.bin and val.bin (scalelab data prepare writes them)"
        )
    try:
        size = os.path.getsize(p)
        with open(p, "rb") as f:
            f.read(2)
    except OSError as e:
        raise ScalelabError(f"cannot read token file {p}: {e.strerror}") from None
    if size == 0 or size % 2:
        raise ScalelabError(
            f"token file {p} is not a uint16 token array ({size} bytes; expected a non-empty even size)"
        )


def _bin_meta(train_path: str) -> dict:
    p = os.path.join(os.path.dirname(train_path) or ".", "meta.json")
    if os.path.isfile(p):
        try:
            with open(p) as f:
                return json.load(f)
        except (OSError, json.JSONDecodeError):
            raise ScalelabError(f"{p} is not valid JSON: fix or delete it") from None
    return {}


def _bin_max(p: str) -> int:
    return int(np.memmap(p, dtype=np.uint16, mode="r").max())


# ---- loading with a cache -------------------------------------------------------------------------


def _listing_key(cfg: DataConfig, path: str, fmt: str, tok_name: str) -> str:
    if fmt == "stdlib":
        files = [p for _, p in _stdlib_files()]
    elif fmt == "text":
        files = [p for _, p in _text_files(path)[0]]
    else:
        files = [path]
    listing = []
    for p in files:
        try:
            st = os.stat(p)
            listing.append((p, st.st_size, st.st_mtime_ns))
        except OSError:
            listing.append((p, -1, -1))
    return stable_hash(
        {
            "fmt": fmt,
            "source": os.path.abspath(path) if fmt != "stdlib" else "stdlib",
            "tok": tok_name,
            "col": cfg.text_column,
            "val": cfg.val_fraction,
            "files": listing,
        },
        n=16,
    )


def load_corpus(
    cfg: DataConfig, base_dir: Optional[str] = None, progress: Optional[Callable[[int, int], None]] = None
) -> Corpus:
    """Tokenize (or memory-map) the corpus; cached, so only the first call reads the sources."""
    path = resolve_path(cfg.source, base_dir) if cfg.source != "stdlib" else "stdlib"
    fmt = detect_format(cfg, path)
    if fmt == "bin":
        return _load_bin(cfg, path, base_dir)
    tok = get_tokenizer(cfg.tokenizer, base_dir)
    name = stdlib_name() if fmt == "stdlib" else cfg.source
    key = _listing_key(cfg, path, fmt, tok.name)
    folder = os.path.join(cache_dir(), f"corpus-{key}")
    meta_path = os.path.join(folder, "meta.json")
    if not os.path.isfile(meta_path):
        docs, single = iter_documents(cfg, path, fmt)
        train, val = tokenize_split(docs, single, tok, cfg.val_fraction, progress)
        if train.size < 2 or val.size < 2:
            raise ScalelabError(
                f"corpus {name} is too small to split ({train.size} train, {val.size} validation tokens): add text "
                "or change val_fraction"
            )
        sha = hashlib.sha256(train.tobytes() + val.tobytes()).hexdigest()
        os.makedirs(folder, exist_ok=True)
        atomic_write(os.path.join(folder, "train.bin"), lambda f: f.write(train.tobytes()))
        atomic_write(os.path.join(folder, "val.bin"), lambda f: f.write(val.tobytes()))
        meta = {
            "name": name,
            "sha": sha,
            "tokenizer": tok.name,
            "vocab_size": tok.vocab_size,
            "dtype": np.dtype(tok.dtype).name,
            "n_train": int(train.size),
            "n_val": int(val.size),
        }
        atomic_write(meta_path, lambda f: f.write(json.dumps(meta, indent=1).encode()))
    with open(meta_path) as f:
        meta = json.load(f)
    dt = np.dtype(meta["dtype"])
    return Corpus(
        train=np.memmap(os.path.join(folder, "train.bin"), dtype=dt, mode="r"),
        val=np.memmap(os.path.join(folder, "val.bin"), dtype=dt, mode="r"),
        name=meta["name"],
        sha=meta["sha"],
        tokenizer=meta["tokenizer"],
        vocab_size=int(meta["vocab_size"]),
    )


def tokenize_split(docs, single: bool, tok, val_fraction: float, progress=None) -> tuple[np.ndarray, np.ndarray]:
    train_parts, val_parts = [], []
    n = len(docs)
    for i, (key, load) in enumerate(docs):
        ids = tok.encode(load())
        if single:
            cut = int(round(len(ids) * (1 - val_fraction)))
            train_parts.append(ids[:cut])
            val_parts.append(ids[cut:])
        else:
            (val_parts if is_val(key, val_fraction) else train_parts).append(ids)
        if progress is not None:
            progress(i + 1, n)
    cat = lambda parts: np.concatenate(parts).astype(tok.dtype, copy=False) if parts else np.zeros(0, tok.dtype)
    return cat(train_parts), cat(val_parts)


def _load_bin(cfg: DataConfig, path: str, base_dir: Optional[str]) -> Corpus:
    tr, va = _bin_paths(path)
    _check_bin(tr)
    _check_bin(va)
    vocab = data_vocab_size(cfg, base_dir)
    meta = _bin_meta(tr)
    # the fingerprint of a big .bin is cached by (path, size, mtime)
    sts = [os.stat(p) for p in (tr, va)]
    key = stable_hash([[os.path.abspath(p), s.st_size, s.st_mtime_ns] for p, s in zip((tr, va), sts)], n=16)
    sha_path = os.path.join(cache_dir(), f"bin-{key}.sha256")
    try:
        with open(sha_path) as f:
            sha = f.read().strip()
    except OSError:
        h = hashlib.sha256()
        for p in (tr, va):
            with open(p, "rb") as fb:
                for chunk in iter(lambda: fb.read(1 << 24), b""):
                    h.update(chunk)
        sha = h.hexdigest()
        os.makedirs(cache_dir(), exist_ok=True)
        atomic_write(sha_path, lambda f: f.write(sha.encode()))
    train = np.memmap(tr, dtype=np.uint16, mode="r")
    val = np.memmap(va, dtype=np.uint16, mode="r")
    tok = meta.get("tokenizer") or cfg.tokenizer
    return Corpus(train=train, val=val, name=cfg.source, sha=sha, tokenizer=str(tok), vocab_size=vocab)


# ---- batches --------------------------------------------------------------------------------------


def batch_offsets(n_tokens: int, seq_len: int, seed: int, step: int, micro_index: int, micro: int) -> np.ndarray:
    """Window starts for one micro-batch: a pure function of (seed, step, micro index), so a resumed
    run sees exactly the data of an uninterrupted one and a replayed step sees the same data again."""
    if n_tokens <= seq_len + 1:
        raise ScalelabError(
            f"the training split has {n_tokens} tokens, fewer than one window of {seq_len + 1}: use a bigger corpus "
            "or a shorter seq_len"
        )
    rng = np.random.default_rng([int(seed), int(step), int(micro_index)])
    return rng.integers(0, n_tokens - seq_len - 1, size=micro)


def n_windows(n_tokens: int, seq_len: int) -> int:
    """Disjoint training windows of seq_len + 1 tokens (input and shifted target) at starts k x seq_len."""
    return (n_tokens - 1) // seq_len


@functools.lru_cache(maxsize=4)
def _epoch_perm(n_win: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([int(seed), int(epoch), 0x5CA1E]).permutation(n_win)


def epoch_offsets(n_tokens: int, seq_len: int, seed: int, first: int, count: int) -> np.ndarray:
    """Window starts of training sequences first .. first + count - 1 in epoch order: every disjoint window
    once per epoch, in a fresh permutation per (seed, epoch). A pure function of (seed, sequence index),
    so a resumed or replayed step sees exactly the same data, as with `batch_offsets`."""
    if n_tokens <= seq_len + 1:
        raise ScalelabError(
            f"the training split has {n_tokens} tokens, fewer than one window of {seq_len + 1}: use a bigger corpus "
            "or a shorter seq_len"
        )
    n_win = n_windows(n_tokens, seq_len)
    idx = np.arange(first, first + count, dtype=np.int64)
    out = np.empty(count, dtype=np.int64)
    for e in np.unique(idx // n_win):
        sel = idx // n_win == e
        out[sel] = _epoch_perm(n_win, int(seed), int(e))[idx[sel] % n_win] * seq_len
    return out


def get_batch(tokens: np.ndarray, offsets: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """x[B, T], y[B, T] (next-token targets) as int64 arrays."""
    idx = offsets[:, None] + np.arange(seq_len + 1)[None, :]
    w = np.asarray(tokens[idx], dtype=np.int64)
    return w[:, :-1], w[:, 1:]


def val_windows(val: np.ndarray, seq_len: int, n_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed held-out set: the first n_tokens of the validation split as contiguous windows."""
    n_win = max(1, min(n_tokens // seq_len, (len(val) - 1) // seq_len))
    if len(val) < seq_len + 1:
        raise ScalelabError(
            f"the validation split has {len(val)} tokens, fewer than one window of {seq_len + 1}: use a bigger "
            "corpus, a larger val_fraction or a shorter seq_len"
        )
    offsets = np.arange(n_win) * seq_len
    return get_batch(val, offsets, seq_len)


def epochs_note(tokens_asked: int, corpus: Corpus) -> Optional[str]:
    """A warning line when a run would see some training data more than once (None if not)."""
    if tokens_asked > corpus.n_train:
        return (
            f"note: the largest run asks for {tokens_asked:,} tokens but corpus {corpus.name} has "
            f"{corpus.n_train:,} training tokens: about {tokens_asked / corpus.n_train:.1f} epochs"
        )
    return None


# ---- `scalelab data prepare` ----------------------------------------------------------------------


def prepare(cfg: DataConfig, out_dir: str, progress=None) -> dict:
    """Tokenize a text/JSONL/Parquet/stdlib source into out_dir/{train,val}.bin (uint16) + meta.json."""
    path = resolve_path(cfg.source) if cfg.source != "stdlib" else "stdlib"
    fmt = detect_format(cfg, path)
    if fmt == "bin":
        raise ScalelabError(f"{cfg.source} is already tokenized (.bin)")
    tok = get_tokenizer(cfg.tokenizer)
    docs, single = iter_documents(cfg, path, fmt)
    if not docs:
        raise ScalelabError(f"data source {cfg.source} has no documents")
    if fmt == "text":
        for _, p in _text_files(path)[0]:
            _check_text(p)
    train, val = tokenize_split(docs, single, tok, cfg.val_fraction, progress)
    if train.size < 2 or val.size < 2:  # a corpus no run can train or validate on: not written
        raise ScalelabError(
            f"data source {cfg.source} gives {train.size} training and {val.size} validation tokens, too few to "
            "split: give more text (or a larger --val-fraction for a few documents)"
        )
    train, val = train.astype(np.uint16), val.astype(np.uint16)
    os.makedirs(out_dir, exist_ok=True)
    for name, arr in (("train.bin", train), ("val.bin", val)):
        atomic_write_bytes(os.path.join(out_dir, name), arr.tobytes())
    meta = {
        "source": cfg.source,
        "tokenizer": tok.name,
        "vocab_size": tok.vocab_size,
        "dtype": "uint16",
        "n_train": int(train.size),
        "n_val": int(val.size),
        "val_fraction": cfg.val_fraction,
        "sha": hashlib.sha256(train.tobytes() + val.tobytes()).hexdigest(),
    }
    atomic_write(os.path.join(out_dir, "meta.json"), lambda f: f.write(json.dumps(meta, indent=1).encode()))
    return meta
