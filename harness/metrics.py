"""Values off a /metrics page, by metric name and labels (parsed, never matched as text).

Like prometheus_client's ``REGISTRY.get_sample_value`` but for the text a
process serves: a number is compared as a number (``1`` and ``1.0`` are the
same sample) and label order does not matter.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def _samples(text: str, name: str) -> Iterator[Sample]:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                yield s


def sample_value(text: str, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """The sample ``name`` (with its suffix: ``_total``, ``_count``, ...) with exactly ``labels``; None if absent."""
    want = dict(labels or {})
    return next((s.value for s in _samples(text, name) if s.labels == want), None)


def sample_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples ``name`` whose labels include ``labels`` (a counter over the labels not given)."""
    return sum(s.value for s in _samples(text, name) if all(s.labels.get(k) == v for k, v in labels.items()))


def sample_sum_by(text: str, name: str, label: str) -> Counter[str]:
    """The samples ``name`` summed per value of ``label``."""
    out: Counter[str] = Counter()
    for s in _samples(text, name):
        out[s.labels.get(label, "")] += int(s.value)
    return out
