"""The metrics' contract: every metric the Grafana dashboard queries exists with the labels it uses,
and the dashboard shows every metric."""
from __future__ import annotations

import json
import re
from pathlib import Path

from services.common import metrics

DASHBOARD = Path(__file__).parents[3] / "deploy" / "grafana" / "ticketing.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")
COLLECTORS = [value for value in vars(metrics).values()
              if hasattr(value, "_name") and hasattr(value, "_labelnames")]


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def collector_of(sample: str):
    for collector in COLLECTORS:
        if sample == collector._name or any(sample == collector._name + s for s in SUFFIXES):
            return collector
    return None


def test_every_metric_the_dashboard_queries_exists_with_its_labels():
    exprs = expressions()
    assert exprs
    for expr in exprs:
        for sample in re.findall(r"\b(ticketing_[a-z_]+)", expr):
            assert sample in metrics.names(), f"{sample} (in {expr}) is not a metric"
            collector = collector_of(sample)
            labels = set(collector._labelnames) | ({"le"} if sample.endswith("_bucket") else set())
            used = set(re.findall(r"(\w+)\s*(?:=~|!=|=)\s*\"", expr))
            for group in re.findall(r"by \(([^)]*)\)", expr):
                used |= {name.strip() for name in group.split(",")}
            assert used <= labels, f"{expr} uses labels {used - labels} that {sample} does not have"


def test_the_dashboard_shows_every_metric():
    queried = " ".join(expressions())
    for collector in COLLECTORS:
        assert collector._name in queried, f"{collector._name} is on no panel"


def test_the_names_have_the_project_prefix_and_say_their_unit():
    for collector in COLLECTORS:
        assert collector._name.startswith("ticketing_")
        if type(collector).__name__ == "Histogram":
            assert collector._name.endswith("_seconds")
