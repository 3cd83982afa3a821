# ferry's own alarms, as in template.yaml: a function's errors, an event left
# in a rule's dead-letter queue, an invocation that failed after Lambda's
# retries. Each notifies alarm_topic_arn, when set, on ALARM and on OK.
locals {
  alarm_actions = var.alarm_topic_arn == "" ? [] : [var.alarm_topic_arn]

  errors_alarm_descriptions = {
    deploy    = "ferry-deploy invocations failed (retryable AWS errors or crashes); check the deploy log group."
    gate      = "ferry-gate invocations failed (retryable AWS errors or crashes); check the gate log group."
    watch     = "ferry-watch invocations failed (retryable AWS errors or crashes); check the watch log group."
    rollback  = "ferry-rollback invocations failed (retryable AWS errors or crashes); check the rollback log group."
    reconcile = "ferry-reconcile invocations failed (retryable AWS errors or crashes); check the reconcile log group. The next scheduled pass tries again."
  }

  dead_letter_alarm_descriptions = {
    deploy    = "An ECR push event could not be delivered to ferry-deploy; the event waits in the queue for a manual redrive or deploy."
    gate      = "A migration-stopped event could not be delivered to ferry-gate; a release may be stuck in its migration."
    watch     = "A deployment-finished event could not be delivered to ferry-watch; a release may be stuck deploying."
    rollback  = "An alarm-raised event could not be delivered to ferry-rollback; an environment its alarm guards was not rolled back (roll it back by invoking ferry-rollback directly)."
    reconcile = "A reconcile schedule event could not be delivered to ferry-reconcile; lost events are not being made good (invoke ferry-reconcile directly)."
  }
}

resource "aws_cloudwatch_metric_alarm" "errors" {
  for_each = local.functions

  alarm_name          = "${var.name}-${each.key}-errors"
  alarm_description   = local.errors_alarm_descriptions[each.key]
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.function[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "events_dead_letter" {
  for_each = local.functions

  alarm_name          = "${var.name}-${each.key}-events-dead-letter"
  alarm_description   = local.dead_letter_alarm_descriptions[each.key]
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.events_dead_letter[each.key].name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "failed_invocations" {
  alarm_name          = "${var.name}-failed-invocations"
  alarm_description   = "A ferry invocation failed after Lambda's retries; the message holds the event and the error."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.failed_invocations.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}
