"""Corpora: file-hash splits, fingerprints, caching, JSONL/Parquet/.bin sources, tokenizers, batches."""

import hashlib
import json
import os

import numpy as np
import pytest

from scalelab.config import DataConfig
from scalelab.data import (
    _stdlib_files,
    batch_offsets,
    data_vocab_size,
    epochs_note,
    get_batch,
    is_val,
    load_corpus,
    prepare,
    stdlib_root,
    val_windows,
)
from scalelab.errors import ScalelabError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALELAB_CACHE", str(tmp_path / "cache"))


def _folder(tmp_path, n=12):
    d = tmp_path / "docs"
    d.mkdir()
    texts = {}
    for i in range(n):
        t = f"document {i}: " + "hello world, " * (20 + i) + "\n"
        (d / f"f{i:02d}.txt").write_text(t)
        texts[f"f{i:02d}.txt"] = t.encode()
    return d, texts


def test_folder_split_by_file_hash_and_fingerprint(tmp_path):
    d, texts = _folder(tmp_path)
    c = load_corpus(DataConfig(source=str(d), val_fraction=0.3))
    keys = sorted(texts)
    # independent reference: sha256(key)[:8] as an integer below 0.3 * 2^64 -> validation
    ref_val = [k for k in keys if int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "big") < 0.3 * 2**64]
    train = b"".join(texts[k] for k in keys if k not in ref_val)
    val = b"".join(texts[k] for k in ref_val)
    assert 0 < len(ref_val) < len(keys)
    assert bytes(c.train) == train and bytes(c.val) == val
    assert c.sha == hashlib.sha256(train + val).hexdigest()
    assert c.vocab_size == 256 and c.tokenizer == "byte" and c.train.dtype == np.uint8


def test_cache_is_reused_and_invalidated_by_changes(tmp_path):
    d, _ = _folder(tmp_path)
    cfg = DataConfig(source=str(d), val_fraction=0.3)
    c1 = load_corpus(cfg)
    cached = sorted(os.listdir(tmp_path / "cache"))
    assert len(cached) == 1
    c2 = load_corpus(cfg)
    assert c2.sha == c1.sha and sorted(os.listdir(tmp_path / "cache")) == cached
    (d / "f00.txt").write_text("changed text " * 50)
    c3 = load_corpus(cfg)
    assert c3.sha != c1.sha and len(os.listdir(tmp_path / "cache")) == 2


def test_single_text_file_is_split_by_position(tmp_path):
    f = tmp_path / "one.txt"
    data = bytes(range(32, 127)) * 20
    f.write_bytes(data)
    c = load_corpus(DataConfig(source=str(f), val_fraction=0.1))
    cut = round(len(data) * 0.9)
    assert bytes(c.train) == data[:cut] and bytes(c.val) == data[cut:]


def test_jsonl_and_parquet_text_columns(tmp_path):
    import pandas as pd

    docs = [f"row {i} " * (5 + i) for i in range(30)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({"body": t, "id": i}) for i, t in enumerate(docs)))
    pd.DataFrame({"body": docs}).to_parquet(tmp_path / "d.parquet")
    cj = load_corpus(DataConfig(source=str(tmp_path / "d.jsonl"), text_column="body", val_fraction=0.2))
    cp = load_corpus(DataConfig(source=str(tmp_path / "d.parquet"), text_column="body", val_fraction=0.2))
    assert cj.sha == cp.sha
    assert len(cj.train) + len(cj.val) == sum(len(t.encode()) for t in docs)
    with pytest.raises(ScalelabError, match="no 'text' field"):
        load_corpus(DataConfig(source=str(tmp_path / "d.jsonl")))


def test_prepare_writes_uint16_bins_that_load_back(tmp_path):
    d, _ = _folder(tmp_path)
    meta = prepare(DataConfig(source=str(d), val_fraction=0.3), str(tmp_path / "bin"))
    ref = load_corpus(DataConfig(source=str(d), val_fraction=0.3))
    tr = np.fromfile(tmp_path / "bin" / "train.bin", dtype=np.uint16)
    assert np.array_equal(tr, np.asarray(ref.train)) and meta["n_val"] == len(ref.val)
    c = load_corpus(DataConfig(source=str(tmp_path / "bin")))
    assert c.vocab_size == 256 and np.array_equal(np.asarray(c.train), tr)


def test_unreadable_or_missing_bin_is_a_one_line_error(tmp_path):
    b = tmp_path / "b"
    b.mkdir()
    (b / "train.bin").write_bytes(b"\x01\x02\x03")  # odd size: not uint16
    (b / "val.bin").write_bytes(b"\x01\x00")
    with pytest.raises(ScalelabError, match="not a uint16 token array"):
        data_vocab_size(DataConfig(source=str(b)))
    (b / "train.bin").write_bytes(b"\x01\x00\x02\x00")
    os.remove(b / "val.bin")
    with pytest.raises(ScalelabError, match="val.bin not found"):
        data_vocab_size(DataConfig(source=str(b)))


def test_hf_tokenizer_json(tmp_path):
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "doc": 3}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    f = tmp_path / "t.txt"
    f.write_text("hello world doc foo " * 50)
    c = load_corpus(DataConfig(source=str(f), tokenizer=str(tmp_path / "tokenizer.json"), val_fraction=0.1))
    ids = np.concatenate([np.asarray(c.train), np.asarray(c.val)])
    assert list(ids[:4]) == [1, 2, 3, 0] and c.vocab_size == 4 and c.tokenizer.startswith("hf:tokenizer.json:")


def test_batches_are_a_pure_function_of_seed_and_step():
    toks = np.arange(1000, dtype=np.uint16)
    a = batch_offsets(1000, 16, seed=3, step=7, micro_index=1, micro=4)
    assert np.array_equal(a, batch_offsets(1000, 16, 3, 7, 1, 4))
    assert not np.array_equal(a, batch_offsets(1000, 16, 3, 8, 1, 4))
    x, y = get_batch(toks, a, 16)
    assert x.shape == (4, 16) and np.array_equal(x[:, 1:], y[:, :-1]) and np.array_equal(x[:, 0], a)
    vx, vy = val_windows(toks, 16, 64)
    assert vx.shape == (4, 16) and np.array_equal(vx.ravel(), np.arange(64))


def test_default_corpus_is_the_stdlib_source_cached(monkeypatch):
    monkeypatch.delenv("SCALELAB_CACHE")  # the user's cache: the stdlib corpus is tokenized once per machine
    files = _stdlib_files()
    assert files and all("site-packages" not in k and k.endswith(".py") for k, _ in files)
    assert [k for k, _ in files] == sorted(k for k, _ in files)
    c = load_corpus(DataConfig())
    assert c.name.startswith("stdlib-py") and c.vocab_size == 256 and len(c.sha) == 64
    n_val = sum(1 for k, _ in files if is_val(k, 0.05))
    assert 0.02 < n_val / len(files) < 0.08  # about val_fraction of the files
    total = sum(os.path.getsize(p) for _, p in files)
    assert len(c.train) + len(c.val) == total
    assert os.path.isdir(stdlib_root())


def test_epochs_note(tmp_path):
    d, _ = _folder(tmp_path)
    c = load_corpus(DataConfig(source=str(d), val_fraction=0.3))
    assert epochs_note(len(c.train) // 2, c) is None
    assert "about 3.0 epochs" in epochs_note(3 * len(c.train), c)


def test_epoch_order_sees_every_window_once_per_epoch():
    from scalelab.data import epoch_offsets, n_windows

    n, T, seed = 1000, 32, 3
    W = n_windows(n, T)
    assert W == (n - 1) // T and (W - 1) * T + T + 1 <= n  # the last window and its target fit
    first = epoch_offsets(n, T, seed, 0, W)
    assert sorted(first.tolist()) == [k * T for k in range(W)]  # each disjoint window exactly once
    second = epoch_offsets(n, T, seed, W, W)
    assert sorted(second.tolist()) == sorted(first.tolist()) and second.tolist() != first.tolist()
    # a pure function of (seed, index): any slice equals the same part of the whole
    whole = epoch_offsets(n, T, seed, 0, 3 * W)
    assert epoch_offsets(n, T, seed, W - 5, 11).tolist() == whole[W - 5 : W + 6].tolist()
    assert epoch_offsets(n, T, seed + 1, 0, W).tolist() != first.tolist()
