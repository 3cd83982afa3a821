"""The CloudWatch dashboard of template.yaml: its body is the JSON CloudWatch
takes, it graphs every metric the functions write (crates/aws/src/metrics.rs,
namespace and dimension sets included) and shows every alarm of the template.
No emulator needed."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cfn  # noqa: E402

ROOT = HERE.parent.parent
TEMPLATE = ROOT / "template.yaml"


def _body() -> tuple[dict, dict]:
    template = cfn.load_template(str(TEMPLATE))
    resolver = cfn.Resolver(
        template,
        {"ClusterNames": "shop-prod", "TaskRoleArns": "arn:aws:iam::123456789012:role/x"},
        region="eu-west-1",
        account_id="123456789012",
        stack_name="ferry",
    )
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            resolver.attributes[(logical_id, "Arn")] = f"arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{logical_id}"
    body = resolver.resolve(template["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
    return template, json.loads(body)


def test_the_dashboard_graphs_every_metric_the_functions_write_by_its_dimension_sets():
    _, body = _body()
    searches = [
        m["expression"]
        for w in body["widgets"]
        if w["type"] == "metric"
        for row in w["properties"]["metrics"]
        for m in row
        if isinstance(m, dict)
    ]
    graphed = {re.search(r'MetricName="(\w+)"', s).group(1): re.search(r"\{([^}]*)\}", s).group(1) for s in searches}
    emf = (ROOT / "crates/aws/src/metrics.rs").read_text()
    assert 'pub const NAMESPACE: &str = "ferry";' in emf
    written = set(re.findall(r'Metric::\w+\(_\) => "(\w+)"', (ROOT / "crates/core/src/metrics.rs").read_text()))
    assert set(graphed) == written == {"ReleaseDuration", "MigrationDuration", "TimeToRollback", "Releases"}
    for name, schema in graphed.items():
        dims = "App,Environment,Outcome" if name == "Releases" else "App,Environment"
        assert schema == f"ferry,{dims}", name


def test_the_dashboard_shows_every_alarm_of_the_template():
    template, body = _body()
    (widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    shown = {arn.rsplit(":", 1)[1] for arn in widget["properties"]["alarms"]}
    alarms = {k for k, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert shown == alarms
    assert all(w["properties"].get("region", "eu-west-1") == "eu-west-1" for w in body["widgets"])
