"""The strategies reach the edge cases they promise and shrink to small batches
(in the spirit of Hypothesis' own tests/quality)."""

import pytest
import torch
from hypothesis import HealthCheck, find, settings
from hypothesis.errors import NoSuchExample

from dnspec import strategies
from dnspec.generation import regimes
from dnspec.generation.strategies import REGIME_SETS, cdn_cases, edge_case_buckets, regime_cases

# derandomized: these tests assert what search and shrinking reach, which must not vary by run
SEARCH = settings(
    max_examples=2000, database=None, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)

BUCKETS = [
    "all images empty",
    "some image empty",
    "num_denoising == 0",
    "max_gt > num_denoising (one group)",
    "exactly one group",
    "batch of one",
    "no label noise",
    "label_noise_ratio == 1",
    "no box noise",
    "box touching a border",
    "full-image box",
    "tiny box",
    "identical boxes",
]


@pytest.mark.parametrize("bucket", BUCKETS)
def test_strategy_reaches_edge_case(bucket):
    found = find(cdn_cases(), lambda case: bucket in edge_case_buckets(case), settings=SEARCH)
    assert bucket in edge_case_buckets(found)


def _holds_an_invalid_box(case) -> bool:
    for t in case.targets:
        boxes, labels = t["boxes"].double(), t["labels"]
        if not len(boxes):
            continue
        centre, size = boxes[:, :2], boxes[:, 2:]
        invalid = (
            (size <= 0).any(1)
            | (centre - size / 2 < -1e-6).any(1)
            | (centre + size / 2 > 1 + 1e-6).any(1)
            | (labels < 0)
            | (labels >= case.num_classes)
        )
        if bool(invalid.any()):
            return True
    return False


def test_generated_boxes_and_labels_are_valid():
    """No generated case holds a box with a side <= 0 or a corner outside [0, 1] (beyond
    float32 rounding), or a label outside [0, num_classes)."""
    with pytest.raises(NoSuchExample):
        find(cdn_cases(), _holds_an_invalid_box, settings=settings(SEARCH, max_examples=500))


def test_failures_shrink_to_one_image_with_one_box():
    """A bug that needs only 'some box' shrinks to a batch of one or two images holding
    one or two boxes (the shrinker is heuristic: its exact end point may vary with
    Hypothesis' version, so the test asks for what the issue asks, not one tuple)."""
    minimal = find(cdn_cases(), lambda case: sum(case.counts) >= 1, settings=SEARCH)
    assert len(minimal.counts) <= 2 and 1 <= sum(minimal.counts) <= 2, minimal.counts


def test_failures_needing_two_images_shrink_to_two():
    """A bug that needs two non-empty images shrinks to two images with one or two boxes each."""
    minimal = find(cdn_cases(), lambda case: sum(1 for n in case.counts if n) >= 2, settings=SEARCH)
    assert len(minimal.counts) == 2 and all(1 <= n <= 2 for n in minimal.counts), minimal.counts


def test_cases_respect_dtype_and_device():
    case = find(cdn_cases(dtype=torch.float64), lambda case: sum(case.counts) > 0, settings=SEARCH)
    assert all(t["boxes"].dtype == torch.float64 and t["labels"].dtype == torch.int64 for t in case.targets)


# --- the regime strategies (what dnspec verify generates) ----------------------------------


REGIME_SEARCH = settings(SEARCH, max_examples=300)
SMALLEST_BATCH = {"batch_of_one": 1}


def _in_regime(regime: str):
    return lambda case: regimes.regimes_of(case) == REGIME_SETS[regime]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_regime_filter_stays_rare(monkeypatch, dtype):
    """Each regime's cases are built in the regime: the ``assume`` that drops a case the
    dtype's rounding moved onto another edge rejects under 2% of them (in every regime),
    and every case it lets through is in its regime."""
    verdicts = []

    def counting_assume(condition):
        verdicts.append(bool(condition))
        return hypothesis.assume(condition)

    import hypothesis
    from hypothesis import Phase, given

    monkeypatch.setattr(strategies, "assume", counting_assume)
    seen = []
    for regime in regimes.NAMES:
        verdicts.clear()
        seen.clear()

        @settings(REGIME_SEARCH, max_examples=60, phases=[Phase.generate])
        @given(case=regime_cases(regime, dtype=dtype))
        def collect(case):
            seen.append(case)

        collect()
        assert all(_in_regime(regime)(case) for case in seen), regime
        assert verdicts and verdicts.count(False) <= 0.02 * len(verdicts), (
            regime,
            verdicts.count(False),
            len(verdicts),
        )


@pytest.mark.parametrize("regime_name", regimes.NAMES)
def test_regime_cases_shrink_to_the_smallest_batch(regime_name):
    """A bug that needs only a non-empty call of the regime shrinks to its smallest batch
    (two images, one in batch_of_one) of one or two boxes each, in that regime."""
    regime = regime_name
    needs_a_box = regime != "all_images_empty"
    minimal = find(
        regime_cases(regime), lambda case: (sum(case.counts) >= 1) or not needs_a_box, settings=REGIME_SEARCH
    )
    assert _in_regime(regime)(minimal)
    assert len(minimal.counts) == SMALLEST_BATCH.get(regime, 2), minimal.counts
    assert all(n <= 2 for n in minimal.counts), minimal.counts


def _boxes(case):
    return torch.cat([t["boxes"].double() for t in case.targets if len(t["boxes"])])


def test_common_regime_geometry_shrinks_to_one_box_per_image():
    """A bug that needs one wide box shrinks to two images of one box each (the common
    regime's smallest batch), the wide box among them: seeded boxes shrink by count."""
    minimal = find(regime_cases(), lambda case: bool((_boxes(case)[:, 2] > 0.5).any()), settings=REGIME_SEARCH)
    assert minimal.counts == (1, 1), minimal.counts


def test_common_regime_reaches_the_whole_inner_range():
    """The common regime's coded boxes still cover its range (in one pass of generation,
    no shrinking): sides near both of its bounds, corners near (never on) the border,
    repeated boxes, crowded batches."""
    from hypothesis import Phase, given

    lo, hi = strategies.COMMON_SIDES
    tests = {
        "small side": lambda c: bool((_boxes(c)[:, 2:] <= 2 * lo).any()),
        "large side": lambda c: bool((_boxes(c)[:, 2:] >= 0.95 * hi).any()),
        "near the border": lambda c: bool(((_boxes(c)[:, :2] - _boxes(c)[:, 2:] / 2) < 0.01).any()),
        "identical boxes": lambda c: "identical boxes" in edge_case_buckets(c),
        "many boxes": lambda c: sum(c.counts) >= 40,
    }
    reached = set()

    @settings(REGIME_SEARCH, phases=[Phase.generate])
    @given(case=regime_cases())
    def collect(case):
        assert _in_regime(regimes.COMMON)(case)
        reached.update(name for name, holds in tests.items() if holds(case))

    collect()
    assert reached == set(tests), set(tests) - reached


def test_regime_cases_respect_dtype_and_device():
    case = find(regime_cases(dtype=torch.float64), lambda case: sum(case.counts) > 0, settings=REGIME_SEARCH)
    assert all(t["boxes"].dtype == torch.float64 and t["labels"].dtype == torch.int64 for t in case.targets)
    assert case.dtype == torch.float64
