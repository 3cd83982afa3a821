# Events a rule could not deliver to its function (after 4 retries or an
# hour), one queue per function; EventBridge needs the queue policy to send.
resource "aws_sqs_queue" "events_dead_letter" {
  for_each = local.functions

  name                      = "${var.name}-${each.key}-events-dead-letter"
  sqs_managed_sse_enabled   = true
  message_retention_seconds = 1209600
}

data "aws_iam_policy_document" "events_dead_letter" {
  for_each = local.functions

  statement {
    sid       = "FromItsRules"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events_dead_letter[each.key].arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = local.rule_arns_by_function[each.key]
    }
  }

  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.events_dead_letter[each.key].arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "events_dead_letter" {
  for_each = local.functions

  queue_url = aws_sqs_queue.events_dead_letter[each.key].id
  policy    = data.aws_iam_policy_document.events_dead_letter[each.key].json
}

# Invocations that still failed after Lambda's asynchronous retries, and bake
# timers EventBridge Scheduler could not deliver.
resource "aws_sqs_queue" "failed_invocations" {

  name                      = "${var.name}-failed-invocations"
  sqs_managed_sse_enabled   = true
  message_retention_seconds = 1209600
}

data "aws_iam_policy_document" "failed_invocations" {
  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.failed_invocations.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "failed_invocations" {
  queue_url = aws_sqs_queue.failed_invocations.id
  policy    = data.aws_iam_policy_document.failed_invocations.json
}
