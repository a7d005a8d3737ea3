"""The result cache: stable keys, whole entries, oldest pruned first."""

from __future__ import annotations

import time

from bridge.core.cache import ResultCache, cache_key


def test_key_changes_with_every_part_and_not_with_order():
    base = dict(engine="master", engine_version="1", model="", model_version="",
                input_hashes={"audio": "a" * 64}, params={"lufs": -14.0, "eq": True})
    key = cache_key(**base)
    assert key == cache_key(**{**base, "params": {"eq": True, "lufs": -14.0}})
    for change in ({"engine_version": "2"}, {"model_version": "x"}, {"params": {"lufs": -16.0, "eq": True}},
                   {"input_hashes": {"audio": "b" * 64}}, {"engine": "separate"}):
        assert cache_key(**{**base, **change}) != key


def test_entries_are_whole_and_pruned_oldest_first(tmp_path):
    cache = ResultCache(tmp_path / "cache", max_bytes=2500)
    for index in range(3):
        out = tmp_path / f"o{index}.wav"
        out.write_bytes(bytes([index]) * 1000)
        cache.put(f"k{index}", [{"path": str(out), "kind": "mastered"}], {"n": index})
        time.sleep(0.02)  # distinct mtimes: the prune order
    # k0 was pushed out when k2 arrived (3 x ~1 kB > 2.5 kB); the newest remain whole
    assert cache.get("k0") is None
    meta = cache.get("k2")
    assert meta["report"] == {"n": 2} and meta["outputs"][0]["kind"] == "mastered"
    assert cache.file("k2", meta["outputs"][0]["file"]).read_bytes() == bytes([2]) * 1000


def test_a_broken_entry_is_a_miss_and_leftovers_are_swept(tmp_path):
    root = tmp_path / "cache"
    cache = ResultCache(root)
    out = tmp_path / "o.wav"
    out.write_bytes(b"x" * 10)
    cache.put("k", [{"path": str(out), "kind": "mastered"}], {})
    next((root / "k").glob("0-*")).unlink()  # a file lost from under the cache
    assert cache.get("k") is None
    (root / ".put-abc").mkdir()  # a daemon killed mid-put
    ResultCache(root)
    assert not (root / ".put-abc").exists()
