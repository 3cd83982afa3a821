"""The release notifications of template.yaml: which of ferry's Release State
Change events reach the topic, and the one line each becomes.

The rule is read from template.yaml (ReleaseNotificationRule), its pattern
matched by the router's EventBridge matching and its input transformer rendered
by :mod:`eventbridge_transformer` (EventBridge's documented behaviour, written
down there) over the sample events ``events/ferry-release-state-change-*.json``
(whose ``detail`` crates/aws/tests/fixtures.rs checks against what ferry's
``ReleaseEvent`` serializes). No emulator needed.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.parse
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cfn  # noqa: E402
import eventbridge_transformer as transformer  # noqa: E402
import router  # noqa: E402

ROOT = HERE.parent.parent
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"
STACK = "ferry"

# The Logs Insights link of a release, as the template writes it for stack "ferry".
LOGS = (
    "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:logs-insights"
    "$3FqueryDetail$3D~(end~0~start~-86400~timeType~'RELATIVE~unit~'seconds~editorString~'"
    "fields*20*40timestamp*2c*20*40message*0a*7c*20filter*20*40message*20like*20*22RELEASE*22"
    "*0a*7c*20sort*20*40timestamp*20asc~source~(~'*2fferry*2fferry*2fdeploy~'*2fferry*2fferry*2fgate"
    "~'*2fferry*2fferry*2fwatch~'*2fferry*2fferry*2frollback~'*2fferry*2fferry*2freconcile))"
)
FIRST = "shop/prod/3f2a9c1b7e40d5a1"
SECOND = "shop/prod/8b7c6d5e4f3a2b1c"

# What an e-mail subscriber reads, per state; the quotes are EventBridge's
# (a string template is delivered as the quoted string).
EXPECTED = {
    "failed": '"[ferry] shop/prod 1.0.0 FAILED | cause: migration container "migrate" exited with code 1 '
    "(stop code EssentialContainerExited: Essential container in task exited) | logs: "
    + LOGS.replace("RELEASE", FIRST)
    + '"',
    "rolled-back": '"[ferry] shop/prod 1.1.0 ROLLED_BACK | cause: alarm shop-prod-5xx: Threshold Crossed: '
    "1 out of the last 1 datapoints [57.0 (23/11/26 10:10:00)] was greater than the threshold (10.0) "
    "(minimum 1 datapoint for OK -> ALARM transition). | logs: " + LOGS.replace("RELEASE", SECOND) + '"',
    "awaiting-approval": '"[ferry] shop/prod 1.1.0 AWAITING_APPROVAL | cause:  | logs: '
    + LOGS.replace("RELEASE", SECOND)
    + '"',
    "succeeded": '"[ferry] shop/prod 1.0.0 SUCCEEDED | cause:  | logs: ' + LOGS.replace("RELEASE", FIRST) + '"',
}
NOT_NOTIFIED = ["deploying"]


def _template() -> dict:
    return cfn.load_template(str(TEMPLATE))


def _resolver(template: dict) -> cfn.Resolver:
    return cfn.Resolver(
        template,
        {"ClusterNames": "shop-prod", "TaskRoleArns": "arn:aws:iam::123456789012:role/x", "EnableNotifications": "true"},
        region="eu-west-1",
        account_id="123456789012",
        stack_name=STACK,
    )


def _rule() -> dict:
    template = _template()
    resolver = _resolver(template)
    rule = template["Resources"]["ReleaseNotificationRule"]["Properties"]
    target = rule["Targets"][0]
    return {
        "pattern": rule["EventPattern"],
        "bus": rule["EventBusName"],
        "target": target,
        "transformer": resolver.resolve(target["InputTransformer"]),
    }


def _event(name: str) -> dict:
    return json.loads((EVENTS / f"ferry-release-state-change-{name}.json").read_text())


def test_every_sample_release_event_has_a_verdict_here():
    samples = sorted(p.name[len("ferry-release-state-change-") : -len(".json")] for p in EVENTS.glob("ferry-release-state-change-*.json"))
    assert samples == sorted([*EXPECTED, *NOT_NOTIFIED])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_notified_state_matches_the_rule_and_renders_its_one_line(name):
    rule = _rule()
    event = _event(name)
    router.check_pattern(rule["pattern"])
    assert router.matches(rule["pattern"], event)
    line = transformer.render(rule["transformer"], event)
    assert line == EXPECTED[name]
    assert "\n" not in line


@pytest.mark.parametrize("name", NOT_NOTIFIED)
def test_a_state_on_the_way_is_not_notified(name):
    assert not router.matches(_rule()["pattern"], _event(name))


def test_the_rule_listens_where_ferry_emits_and_to_what_it_emits():
    rule = _rule()
    template = _template()
    bus = template["Globals"]["Function"]["Environment"]["Variables"]["FERRY_EVENT_BUS"]
    assert rule["bus"] == bus
    events_rs = (ROOT / "crates/aws/src/events.rs").read_text()
    source = re.search(r'pub const SOURCE: &str = "([^"]+)";', events_rs).group(1)
    detail_type = re.search(r'pub const DETAIL_TYPE: &str = "([^"]+)";', events_rs).group(1)
    assert rule["pattern"]["source"] == [source]
    assert rule["pattern"]["detail-type"] == [detail_type]
    # the states are spelled as the ledger and the events spell them
    release_rs = (ROOT / "crates/core/src/release.rs").read_text()
    spellings = set(re.findall(r'S::\w+ => "([A-Z_]+)",', release_rs))
    assert set(rule["pattern"]["detail"]["state"]) <= spellings
    assert set(rule["pattern"]["detail"]["state"]) == {"FAILED", "ROLLED_BACK", "AWAITING_APPROVAL", "SUCCEEDED"}


def test_only_the_rule_may_publish_to_the_topic_and_it_publishes_there():
    template = _template()
    resources = template["Resources"]
    rule = resources["ReleaseNotificationRule"]["Properties"]
    assert rule["Targets"][0]["Arn"] == {"Ref": "NotificationTopic"}
    (statement,) = resources["NotificationTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sns:Publish"
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["ReleaseNotificationRule", "Arn"]}}}
    for name in ("NotificationTopic", "NotificationTopicPolicy", "ReleaseNotificationRule"):
        assert resources[name]["Condition"] == "NotificationsEnabled"
    assert resources["NotificationEmailSubscription"]["Condition"] == "HasNotificationEmail"


def _console_decode(text: str) -> str:
    """A string of the console's queryDetail format: ``*XX`` is a percent-encoded byte."""
    return urllib.parse.unquote(text.replace("*", "%"))


def test_the_logs_link_opens_logs_insights_on_the_stacks_log_groups_filtered_on_the_release():
    template = _template()
    resolver = _resolver(template)
    line = transformer.render(_rule()["transformer"], _event("failed"))
    url = line.split(" | logs: ", 1)[1].rstrip('"')
    assert url.startswith("https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:logs-insights")
    detail = url.split("$3FqueryDetail$3D", 1)[1]
    assert detail.startswith("~(") and detail.endswith(")")
    editor = re.search(r"~editorString~'([^~]*)~", detail).group(1)
    assert _console_decode(editor) == f'fields @timestamp, @message\n| filter @message like "{FIRST}"\n| sort @timestamp asc'
    sources = re.search(r"~source~\(((?:~'[^~)]*)+)\)\)$", detail).group(1)
    linked = sorted(_console_decode(s) for s in sources.split("~'")[1:])
    log_groups = sorted(
        resolver.resolve(r["Properties"]["LogGroupName"])
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Logs::LogGroup"
    )
    assert linked == log_groups
    assert len(linked) == 5


# ---------------------------------------------------------------------------
# the transformer itself, on the documentation's own examples

EC2 = {
    "version": "0",
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "123456789012",
    "time": "2015-11-11T21:29:54Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
    "detail": {"instance-id": "i-0123456789", "state": "RUNNING"},
}
PATHS = {"timestamp": "$.time", "instance": "$.detail.instance-id", "state": "$.detail.state", "resource": "$.resources[0]"}


@pytest.mark.parametrize(
    "template, output",
    [
        ('"instance <instance> is in <state>"', '"instance i-0123456789 is in RUNNING"'),
        ('{"instance" : <instance>, "state": <state>}', '{"instance" : "i-0123456789", "state": "RUNNING"}'),
        (
            '{"instance" : <instance>, "state": "<state>", "instanceStatus": "instance \\"<instance>\\" is in <state>"}',
            '{"instance" : "i-0123456789", "state": "RUNNING", "instanceStatus": "instance \\"i-0123456789\\" is in RUNNING"}',
        ),
        ('{"instance" : <instance>, "state": [ 9, <state>, true ]}', '{"instance" : "i-0123456789", "state": [ 9, "RUNNING", true ]}'),
        ('"<aws.events.rule-name> triggered"', '"example triggered"'),
        ('"<resource> at <timestamp>"', '"arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111 at 2015-11-11T21:29:54Z"'),
        ('"absent: <missing>."', '"absent: ."'),
        ('"not a variable: <b>"', '"not a variable: <b>"'),
    ],
)
def test_the_transformer_renders_the_documented_examples(template, output):
    paths = {**PATHS, "missing": "$.detail.nothing.here"}
    assert transformer.render({"InputPathsMap": paths, "InputTemplate": template}, EC2) == output


@pytest.mark.parametrize(
    "paths",
    [
        {"x": "$.detail['state']"},  # bracket notation
        {"x": "detail.state"},  # not a path
        {"AWS.x": "$.detail"},
        {"a b": "$.detail"},
        {f"k{i}": "$.time" for i in range(101)},
    ],
)
def test_a_transformer_eventbridge_would_refuse_is_refused(paths):
    with pytest.raises(transformer.TransformerError):
        transformer.check({"InputPathsMap": paths, "InputTemplate": '"x"'})
