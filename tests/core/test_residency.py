"""Tests of bridge.core.residency with a fake loader, probe and clock (no GPU, no sleeping)."""

from __future__ import annotations

import threading

import pytest

from bridge.core.errors import NotFound, ResourceExhausted
from bridge.core.residency import Loaded, MemoryInfo, ModelState, Residency

GIB = 1024**3
YEAR = 365 * 24 * 3600.0


class FakeClock:
    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class OutOfMemoryError(RuntimeError):
    """Named like torch.cuda.OutOfMemoryError, which is not a MemoryError."""


class FakeLoader:
    """Records loads and unloads; sizes, OOMs, errors and a gate are configurable."""

    def __init__(self, sizes: dict[str, int] | None = None):
        self.sizes = sizes or {}
        self.loads: list[str] = []
        self.unloads: list[str] = []
        self.oom: dict[str, int] = {}  # name -> how many loads raise OOM
        self.oom_type: type[BaseException] = MemoryError
        self.errors: dict[str, BaseException] = {}
        self.gate: threading.Event | None = None
        self.started = threading.Event()
        self._lock = threading.Lock()

    def load(self, name: str) -> Loaded:
        with self._lock:
            self.loads.append(name)
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(5), "test gate never opened"
        if self.oom.get(name, 0) > 0:
            self.oom[name] -= 1
            raise self.oom_type(f"cannot allocate {name}")
        if name in self.errors:
            raise self.errors[name]
        return Loaded(handle=f"handle:{name}", size_bytes=self.sizes.get(name, GIB))

    def unload(self, name: str, handle: object) -> None:
        assert handle == f"handle:{name}"
        with self._lock:
            self.unloads.append(name)


def probe() -> MemoryInfo:
    return MemoryInfo(total_bytes=10 * GIB, available_bytes=9 * GIB, device="cuda:0")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def loader() -> FakeLoader:
    return FakeLoader()


def make(loader: FakeLoader, clock: FakeClock, **kwargs) -> Residency:
    return Residency(loader.load, loader.unload, probe, clock=clock,
                     wall_clock=lambda: 1_700_000_000.0, **kwargs)


def use(res: Residency, name: str, keep_alive: float | None = None) -> None:
    with res.acquire(name, keep_alive=keep_alive):
        pass


# ---- residency and keep-alive -------------------------------------------------

def test_loads_once_then_stays_resident_across_acquires(loader, clock):
    res = make(loader, clock)
    for _ in range(20):
        with res.acquire("htdemucs") as lease:
            assert lease.handle == "handle:htdemucs"
        clock.advance(10)
    assert loader.loads == ["htdemucs"]
    assert loader.unloads == []
    assert res.state("htdemucs") is ModelState.RESIDENT


def test_default_keep_alive_is_five_minutes(loader, clock):
    res = make(loader, clock)
    use(res, "m")
    assert res.seconds_until_next_expiry() == pytest.approx(300.0)
    clock.advance(299.0)
    assert res.sweep() == []
    assert res.state("m") is ModelState.RESIDENT
    clock.advance(1.0)
    assert res.sweep() == ["m"]
    assert res.state("m") is ModelState.UNLOADED
    assert loader.unloads == ["m"]
    assert res.seconds_until_next_expiry() is None


def test_keep_alive_counts_from_release_not_acquire(loader, clock):
    res = make(loader, clock)
    lease = res.acquire("m")
    clock.advance(1000)
    assert res.sweep() == []  # in use: never expires
    lease.release()
    clock.advance(299)
    assert res.sweep() == []
    clock.advance(1)
    assert res.sweep() == ["m"]


def test_negative_keep_alive_never_expires(loader, clock):
    res = make(loader, clock)
    use(res, "m", keep_alive=-1)
    assert res.seconds_until_next_expiry() is None
    clock.advance(YEAR)
    assert res.sweep() == []
    assert res.state("m") is ModelState.RESIDENT


def test_zero_keep_alive_unloads_right_after_release(loader, clock):
    res = make(loader, clock)
    lease = res.acquire("m", keep_alive=0)
    assert res.state("m") is ModelState.RESIDENT
    assert loader.unloads == []
    lease.release()
    assert loader.unloads == ["m"]
    assert res.state("m") is ModelState.UNLOADED


def test_most_recent_keep_alive_wins(loader, clock):
    res = make(loader, clock)
    use(res, "m", keep_alive=-1)
    use(res, "m", keep_alive=60)
    clock.advance(61)
    assert res.sweep() == ["m"]
    # None keeps the model's current keep-alive rather than resetting to the default.
    use(res, "m", keep_alive=30)
    use(res, "m")
    clock.advance(31)
    assert res.sweep() == ["m"]


def test_keep_alive_of_overlapping_leases_is_the_latest_request(loader, clock):
    res = make(loader, clock)
    first = res.acquire("m", keep_alive=-1)
    second = res.acquire("m", keep_alive=0)
    first.release()
    assert loader.unloads == []  # still in use
    second.release()
    assert loader.unloads == ["m"]


def test_release_is_idempotent(loader, clock):
    res = make(loader, clock)
    a = res.acquire("m")
    b = res.acquire("m")
    a.release()
    a.release()
    with a:
        pass
    assert res.snapshot()[0]["refcount"] == 1
    b.release()
    assert res.snapshot()[0]["refcount"] == 0


# ---- explicit load and unload -------------------------------------------------

def test_explicit_load_and_unload(loader, clock):
    res = make(loader, clock)
    record = res.load("m", keep_alive=120)
    assert record.state is ModelState.RESIDENT
    assert record.refcount == 0
    assert record.expires_at == clock.now + 120
    assert loader.loads == ["m"]
    use(res, "m")
    assert loader.loads == ["m"]
    record = res.unload("m")
    assert record.state is ModelState.UNLOADED
    assert loader.unloads == ["m"]
    assert res.snapshot() == []


def test_explicit_load_with_zero_keep_alive_unloads_at_once(loader, clock):
    res = make(loader, clock)
    assert res.load("m", keep_alive=0).state is ModelState.UNLOADED
    assert loader.unloads == ["m"]


def test_unload_while_in_use_is_deferred_to_release(loader, clock):
    res = make(loader, clock)
    lease = res.acquire("m", keep_alive=-1)
    record = res.unload("m")
    assert record.state is ModelState.RESIDENT
    assert record.unload_on_release
    assert loader.unloads == []
    lease.release()
    assert loader.unloads == ["m"]
    assert res.state("m") is ModelState.UNLOADED


def test_unload_all_unloads_idle_and_marks_in_use(loader, clock):
    res = make(loader, clock)
    res.load("idle")
    lease = res.acquire("busy")
    assert res.unload_all() == ["idle"]
    assert loader.unloads == ["idle"]
    lease.release()
    assert loader.unloads == ["idle", "busy"]


def test_unload_unknown_model_names_what_is_resident(loader, clock):
    res = make(loader, clock)
    with pytest.raises(NotFound, match="'htdemux' is not loaded; resident: none"):
        res.unload("htdemux")
    res.load("htdemucs")
    res.load("musicgen-small")
    with pytest.raises(NotFound) as info:
        res.unload("htdemux")
    assert "htdemux" in info.value.message
    assert "resident: htdemucs, musicgen-small" in info.value.message


# ---- memory budget and eviction --------------------------------------------------

def test_budget_is_fraction_of_probed_total_unless_given(loader, clock):
    assert make(loader, clock).budget() == 8 * GIB
    assert make(loader, clock, budget_fraction=0.5).budget() == 5 * GIB
    assert make(loader, clock, budget_bytes=3 * GIB).budget() == 3 * GIB


def test_lru_eviction_picks_least_recently_used_idle(loader, clock):
    loader.sizes = {"a": 3 * GIB, "b": 3 * GIB, "c": 3 * GIB}
    res = make(loader, clock, budget_bytes=7 * GIB, estimate=lambda n: loader.sizes[n])
    use(res, "a")
    clock.advance(1)
    use(res, "b")
    clock.advance(1)
    use(res, "a")  # b is now least recently used
    clock.advance(1)
    use(res, "c")
    assert loader.unloads == ["b"]
    assert {r["name"] for r in res.snapshot()} == {"a", "c"}
    assert res.used_bytes() == 6 * GIB


def test_never_evicts_a_model_in_use(loader, clock):
    loader.sizes = {"big": 6 * GIB, "other": 4 * GIB}
    res = make(loader, clock, budget_bytes=8 * GIB, estimate=lambda n: loader.sizes[n])
    lease = res.acquire("big")
    with pytest.raises(ResourceExhausted) as info:
        res.acquire("other")
    message = info.value.message
    assert "'other'" in message and "4.0 GiB" in message
    assert "big (6.0 GiB, in use by 1)" in message
    assert "budget of 8.0 GiB" in message
    assert "--memory-budget" in message
    assert loader.unloads == []
    assert loader.loads == ["big"]
    assert res.state("other") is ModelState.UNLOADED
    lease.release()
    use(res, "other")  # fits once big is idle: big gets evicted
    assert loader.unloads == ["big"]


def test_estimate_too_big_with_nothing_resident_is_tried_anyway(loader, clock):
    res = make(loader, clock, budget_bytes=1 * GIB, estimate=lambda n: 5 * GIB)
    use(res, "huge")
    assert loader.loads == ["huge"]


def test_previous_size_is_the_estimate_when_unknown(loader, clock):
    loader.sizes = {"a": 5 * GIB, "b": 5 * GIB}
    res = make(loader, clock, budget_bytes=8 * GIB)
    use(res, "a", keep_alive=0)
    lease = res.acquire("b")
    with pytest.raises(ResourceExhausted):
        res.acquire("a")  # known to take 5 GiB from its last load
    lease.release()


# ---- out of memory and loader errors ---------------------------------------------

def test_oom_evicts_idle_models_and_retries_once(loader, clock):
    res = make(loader, clock)
    use(res, "a")
    use(res, "b")
    loader.oom["c"] = 1
    with res.acquire("c") as lease:
        assert lease.handle == "handle:c"
    assert loader.loads == ["a", "b", "c", "c"]
    assert sorted(loader.unloads) == ["a", "b"]
    assert res.state("c") is ModelState.RESIDENT


def test_oom_by_class_name_is_recognised(loader, clock):
    loader.oom_type = OutOfMemoryError
    loader.oom["c"] = 1
    res = make(loader, clock)
    use(res, "a")
    use(res, "c")
    assert loader.unloads == ["a"]


def test_oom_twice_is_resource_exhausted_and_unloaded(loader, clock):
    res = make(loader, clock, estimate=lambda n: 2 * GIB)
    lease = res.acquire("busy")
    loader.oom["c"] = 2
    with pytest.raises(ResourceExhausted) as info:
        res.acquire("c")
    message = info.value.message
    assert "out of memory loading model 'c' (estimated 2.0 GiB)" in message
    assert "budget 8.0 GiB" in message
    assert "busy (1.0 GiB, in use by 1)" in message
    assert "--memory-budget" in message
    assert isinstance(info.value.__cause__, MemoryError)
    assert loader.loads == ["busy", "c", "c"]
    assert res.state("c") is ModelState.UNLOADED
    assert [r["name"] for r in res.snapshot()] == ["busy"]
    lease.release()


def test_non_oom_loader_error_propagates_and_state_is_clean(loader, clock):
    res = make(loader, clock)
    use(res, "a")
    loader.errors["bad"] = FileNotFoundError("weights missing")
    with pytest.raises(FileNotFoundError, match="weights missing"):
        res.acquire("bad")
    assert loader.loads == ["a", "bad"]  # no retry, no eviction
    assert loader.unloads == []
    assert res.state("bad") is ModelState.UNLOADED
    assert res.used_bytes() == GIB
    del loader.errors["bad"]
    use(res, "bad")
    assert res.state("bad") is ModelState.RESIDENT


# ---- reporting ---------------------------------------------------------------------

def test_snapshot_contents(loader, clock):
    loader.sizes = {"a": 2 * GIB, "b": GIB}

    def slow_load(name):
        clock.advance(4)
        return loader.load(name)

    res = Residency(slow_load, loader.unload, probe, clock=clock,
                    wall_clock=lambda: 1_700_000_000.0)
    res.load("a", keep_alive=-1)
    lease = res.acquire("b", keep_alive=60)
    clock.advance(10)
    lease.release()
    clock.advance(20)
    assert res.snapshot() == [
        {"name": "a", "state": "resident", "size_bytes": 2 * GIB, "refcount": 0,
         "keep_alive": -1.0, "expires_at": None, "last_used": 1_700_000_000.0 - 34,
         "load_seconds": 4.0, "loaded_at": 1_700_000_000.0 - 34, "unload_on_release": False},
        {"name": "b", "state": "resident", "size_bytes": GIB, "refcount": 0,
         "keep_alive": 60.0, "expires_at": 1_700_000_000.0 + 40,
         "last_used": 1_700_000_000.0 - 20, "load_seconds": 4.0,
         "loaded_at": 1_700_000_000.0 - 30, "unload_on_release": False},
    ]
    assert res.used_bytes() == 3 * GIB
    assert res.seconds_until_next_expiry() == pytest.approx(40)


# ---- threads -------------------------------------------------------------------------

def _run_threads(count, target):
    results, errors = [], []

    def run():
        try:
            results.append(target())
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results, errors


def _wait_for_waiters(res, count, timeout=2.0):
    """Wait until ``count`` threads block on the residency condition (no fixed sleep)."""
    deadline = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if len(getattr(res._cond, "_waiters", ())) >= count:
            return
        deadline.wait(0.01)
    raise AssertionError(f"fewer than {count} threads waiting")


def test_concurrent_acquires_load_once(loader, clock):
    loader.gate = threading.Event()
    res = make(loader, clock)
    threads, leases, errors = _run_threads(8, lambda: res.acquire("m"))
    assert loader.started.wait(2)
    _wait_for_waiters(res, 7)
    assert res.state("m") is ModelState.LOADING
    loader.gate.set()
    for thread in threads:
        thread.join(5)
    assert errors == []
    assert loader.loads == ["m"]
    assert len(leases) == 8 and all(lease.handle == "handle:m" for lease in leases)
    assert res.snapshot()[0]["refcount"] == 8
    for lease in leases:
        lease.release()
    assert res.snapshot()[0]["refcount"] == 0


def test_failed_load_hands_its_error_to_waiters(loader, clock):
    loader.gate = threading.Event()
    loader.errors["m"] = ValueError("corrupt checkpoint")
    res = make(loader, clock)
    threads, leases, errors = _run_threads(4, lambda: res.acquire("m"))
    assert loader.started.wait(2)
    _wait_for_waiters(res, 3)
    loader.gate.set()
    for thread in threads:
        thread.join(5)
    assert leases == []
    assert len(errors) == 4 and all(isinstance(e, ValueError) for e in errors)
    assert loader.loads == ["m"]
    assert res.state("m") is ModelState.UNLOADED


def test_acquire_while_unloading_waits_then_reloads(clock):
    unloading, finish = threading.Event(), threading.Event()
    loader = FakeLoader()

    def slow_unload(name, handle):
        unloading.set()
        assert finish.wait(5)
        loader.unload(name, handle)

    res = Residency(loader.load, slow_unload, probe, clock=clock)
    res.load("m")
    unloader = threading.Thread(target=res.unload, args=("m",))
    unloader.start()
    assert unloading.wait(2)
    assert res.state("m") is ModelState.UNLOADING
    threads, leases, errors = _run_threads(1, lambda: res.acquire("m"))
    _wait_for_waiters(res, 1)
    assert loader.loads == ["m"]  # not reloaded while the unload runs
    finish.set()
    unloader.join(5)
    threads[0].join(5)
    assert errors == []
    assert loader.loads == ["m", "m"]
    assert loader.unloads == ["m"]
    assert leases[0].handle == "handle:m"


def test_unload_while_loading_is_deferred_until_loaded(loader, clock):
    loader.gate = threading.Event()
    res = make(loader, clock)
    threads, records, errors = _run_threads(1, lambda: res.load("m", keep_alive=-1))
    assert loader.started.wait(2)
    record = res.unload("m")
    assert record.state is ModelState.LOADING
    assert record.unload_on_release
    assert loader.unloads == []
    loader.gate.set()
    threads[0].join(5)
    assert errors == []
    assert loader.unloads == ["m"]
    assert records[0].state is ModelState.UNLOADED
