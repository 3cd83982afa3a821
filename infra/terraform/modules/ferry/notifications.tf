# Optional (enable_notifications): ferry's own Release State Change events on
# the default bus become one line each on an SNS topic, as template.yaml's
# NotificationTopic and ReleaseNotificationRule do. The cause is the event's
# `reason`; a release without one (SUCCEEDED without notes, AWAITING_APPROVAL)
# reads "cause: " with nothing after it, as EventBridge leaves out a variable
# whose path is absent. The link opens CloudWatch Logs Insights on the five
# functions' log groups, last 24 hours, filtered on the release id (the
# console's URL format: `~(` object, `~'` string, `*XX` a percent-encoded
# character).
locals {
  release_notification = {
    description = "ferry releases that failed, were rolled back, succeeded or await approval, as one line on the notification topic"
    pattern = {
      source        = ["ferry"]
      "detail-type" = ["Release State Change"]
      detail = {
        state = ["FAILED", "ROLLED_BACK", "AWAITING_APPROVAL", "SUCCEEDED"]
      }
    }
    input_paths = {
      app         = "$.detail.app"
      environment = "$.detail.environment"
      tag         = "$.detail.tag"
      state       = "$.detail.state"
      cause       = "$.detail.reason"
      release     = "$.detail.releaseId"
      region      = "$.region"
    }
  }

  release_logs_query            = "fields*20*40timestamp*2c*20*40message*0a*7c*20filter*20*40message*20like*20*22<release>*22*0a*7c*20sort*20*40timestamp*20asc"
  release_logs_groups           = "~'*2fferry*2f${var.name}*2fdeploy~'*2fferry*2f${var.name}*2fgate~'*2fferry*2f${var.name}*2fwatch~'*2fferry*2f${var.name}*2frollback~'*2fferry*2f${var.name}*2freconcile"
  release_notification_template = "\"[ferry] <app>/<environment> <tag> <state> | cause: <cause> | logs: https://<region>.console.aws.amazon.com/cloudwatch/home?region=<region>#logsV2:logs-insights$3FqueryDetail$3D~(end~0~start~-86400~timeType~'RELATIVE~unit~'seconds~editorString~'${local.release_logs_query}~source~(${local.release_logs_groups}))\""
}

resource "aws_sns_topic" "notifications" {
  count = var.enable_notifications ? 1 : 0
  #checkov:skip=CKV_AWS_26:Not encrypted with KMS on purpose. EventBridge cannot publish to a topic encrypted with the AWS managed key alias/aws/sns (its key policy cannot grant events.amazonaws.com), so encryption would need a customer managed key for messages that hold only what the default event bus already carries in clear (app, environment, tag, state and cause of a release, never a secret value). SNS stores and delivers them over TLS.

  name         = "${var.name}-releases"
  display_name = "ferry releases"
}

data "aws_iam_policy_document" "notifications" {
  count = var.enable_notifications ? 1 : 0

  statement {
    sid       = "FromTheReleaseNotificationRule"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.notifications[0].arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.release_notifications[0].arn]
    }
  }
}

resource "aws_sns_topic_policy" "notifications" {
  count = var.enable_notifications ? 1 : 0

  arn    = aws_sns_topic.notifications[0].arn
  policy = data.aws_iam_policy_document.notifications[0].json
}

resource "aws_sns_topic_subscription" "notification_email" {
  count = var.enable_notifications && var.notification_email != "" ? 1 : 0

  topic_arn = aws_sns_topic.notifications[0].arn
  protocol  = "email"
  endpoint  = var.notification_email
}

resource "aws_cloudwatch_event_rule" "release_notifications" {
  count = var.enable_notifications ? 1 : 0

  name           = "${var.name}-release-notifications"
  description    = local.release_notification.description
  event_bus_name = "default"
  event_pattern  = jsonencode(local.release_notification.pattern)
}

resource "aws_cloudwatch_event_target" "release_notifications" {
  count = var.enable_notifications ? 1 : 0

  rule           = aws_cloudwatch_event_rule.release_notifications[0].name
  event_bus_name = "default"
  target_id      = "notification-topic"
  arn            = aws_sns_topic.notifications[0].arn

  input_transformer {
    input_paths    = local.release_notification.input_paths
    input_template = local.release_notification_template
  }

  depends_on = [aws_sns_topic_policy.notifications]
}
