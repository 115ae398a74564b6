"""Token buckets per key, on a fake clock."""

from __future__ import annotations

import pytest

from attune.auth.ratelimit import TokenBucketLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_rate():
    clock = Clock()
    limiter = TokenBucketLimiter(clock)
    assert [limiter.acquire("k", rate=2, burst=3) for _ in range(3)] == [0, 0, 0]
    wait = limiter.acquire("k", rate=2, burst=3)
    assert wait == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("k", rate=2, burst=3) == 0
    assert limiter.acquire("k", rate=2, burst=3) > 0
    clock.now += 100  # refills up to the burst, never beyond
    assert [limiter.acquire("k", rate=2, burst=3) for _ in range(4)][-1] > 0


def test_keys_have_separate_buckets_and_forget_refills():
    limiter = TokenBucketLimiter(Clock())
    assert limiter.acquire("a", rate=1, burst=1) == 0
    assert limiter.acquire("a", rate=1, burst=1) > 0
    assert limiter.acquire("b", rate=1, burst=1) == 0
    limiter.forget("a")
    assert limiter.acquire("a", rate=1, burst=1) == 0


def test_bucket_count_is_bounded():
    limiter = TokenBucketLimiter(Clock(), max_keys=3)
    for key in "abcde":
        limiter.acquire(key, rate=1, burst=1)
    assert len(limiter._buckets) == 3
