"""The live benchmark's statistics: paired per-round ratios, interval and verdict."""

from __future__ import annotations

import math

import pytest

from benchmarks import bench
from benchmarks.common import Samples
from benchmarks.stats import (
    FAIL,
    PASS,
    UNDECIDED,
    needs_more_rounds,
    paired_round_ratios,
    ratio_interval,
    t_quantile,
)

TARGET = 0.98


@pytest.mark.parametrize(
    ("df", "expected"),
    [(1, 12.706), (2, 4.303), (4, 2.776), (5, 2.571), (9, 2.262), (30, 2.042)],
)
def test_t_quantile_matches_the_table(df: int, expected: float) -> None:
    assert t_quantile(0.95, df) == pytest.approx(expected, abs=1e-3)


def test_t_quantile_other_confidences() -> None:
    assert t_quantile(0.99, 5) == pytest.approx(4.032, abs=1e-3)
    assert t_quantile(0.90, 1) == pytest.approx(6.314, abs=1e-3)
    assert t_quantile(0.95, 1000) == pytest.approx(1.962, abs=1e-3)


def test_ratios_are_paired_by_round() -> None:
    raw = [100.0, 50.0, 200.0]  # load differs from round to round ...
    vllm = [99.0, 49.5, 198.0]  # ... and hits both clients of a round alike
    assert paired_round_ratios(raw, vllm) == pytest.approx([0.99, 0.99, 0.99])
    with pytest.raises(ValueError, match="not paired"):
        paired_round_ratios(raw, vllm[:2])
    with pytest.raises(ValueError, match="positive"):
        paired_round_ratios([0.0], [1.0])


def test_interval_by_hand() -> None:
    ratios = [1.0, 1.02, 0.99, 1.01]
    e = ratio_interval(ratios)
    logs = [math.log(r) for r in ratios]
    mean = sum(logs) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / 3)
    half = 3.182446 * sd / 2
    assert e.center == pytest.approx(math.exp(mean))
    assert (e.low, e.high) == pytest.approx(
        (math.exp(mean - half), math.exp(mean + half))
    )
    assert e.median == pytest.approx(1.005)
    assert e.rounds == 4
    assert e.low < e.center < e.high


def test_tight_ratios_around_one_pass() -> None:
    e = ratio_interval([1.001, 0.998, 1.003, 0.999, 1.0, 1.002])
    assert e.low >= TARGET
    assert e.verdict(TARGET) == PASS


def test_tight_ratios_below_target_fail() -> None:
    e = ratio_interval([0.95, 0.952, 0.948, 0.951, 0.949, 0.95])
    assert e.high < TARGET
    assert e.verdict(TARGET) == FAIL


def test_noise_larger_than_the_effect_is_undecided() -> None:
    # The old method's figures: 2 rounds cannot tell 0.967 from 1.390.
    assert ratio_interval([0.967, 1.390]).verdict(TARGET) == UNDECIDED
    assert ratio_interval([1.0]).verdict(TARGET) == UNDECIDED  # one round: no interval


def test_a_load_spike_widens_the_interval_instead_of_passing() -> None:
    steady = [0.99, 1.0, 1.01, 0.995, 1.005, 1.0]
    assert ratio_interval(steady).verdict(TARGET) == PASS
    spiked = [*steady[:-1], 4.5]  # raw SDK's turn of one round hit by other load
    e = ratio_interval(spiked)
    assert e.verdict(TARGET) == UNDECIDED
    assert e.median == pytest.approx(1.0, abs=0.01)  # the median barely moves


def test_interval_narrows_with_more_rounds() -> None:
    pattern = [0.97, 1.01, 0.99, 1.03, 1.0, 0.98]
    few, many = ratio_interval(pattern[:4]), ratio_interval(pattern * 3)
    assert many.high - many.low < few.high - few.low


def test_more_rounds_until_a_verdict_or_the_cap() -> None:
    def more(ratios: list[float]) -> bool:
        return needs_more_rounds(ratios, TARGET, min_rounds=4, max_rounds=8)

    assert more([1.0, 1.0, 1.0])  # below the minimum, even if decided
    assert not more([1.0, 1.001, 0.999, 1.0])  # PASS at the minimum
    assert not more([0.9, 0.901, 0.899, 0.9])  # FAIL at the minimum
    assert more([0.9, 1.1, 0.95, 1.05])  # undecided, under the cap
    assert not more([0.9, 1.1] * 4)  # undecided at the cap: stop


def test_report_gives_interval_and_verdict_per_level() -> None:
    raw = {1: [68.0, 67.0, 69.0, 68.0], 64: [540.0, 300.0, 545.0, 538.0]}
    vllm = {1: [68.1, 67.2, 68.9, 68.0], 64: [470.0, 400.0, 380.0, 600.0]}
    live = {
        "model": "m",
        "max_tokens": 32,
        "levels": [1, 64],
        "names": [bench.RAW, bench.VLLM],
        "throughput": {
            c: {bench.RAW: Samples(raw[c]), bench.VLLM: Samples(vllm[c])} for c in raw
        },
        "latency": {c: {bench.RAW: [0.5], bench.VLLM: [0.5]} for c in raw},
        "ttft": {bench.RAW: Samples([0.05]), bench.VLLM: Samples([0.05])},
        "startup_s": 60.0,
        "eager": False,
    }
    lines, targets = bench._live_report(live, bench.QUICK)
    assert [met for _, met, _ in targets] == ["yes", "undecided"]
    assert targets[0][2].endswith("4 rounds: PASS")
    assert UNDECIDED in targets[1][2]
    text = "\n".join(lines)
    assert "| 1 | ChatVLLM | 4 |" in text
    assert "95 % interval" in text
    estimates = bench.live_estimates(live)
    assert estimates["c=1"][bench.VLLM]["verdict"] == PASS
    assert len(estimates["c=64"][bench.VLLM]["ratios"]) == 4
