# The EventBridge rules of template.yaml's EventBridgeRule events, keyed
# <function>-<event name in kebab case>. The patterns are the template's,
# value for value; undelivered events go, after 4 retries or an hour, to the
# function's events dead-letter queue (queues.tf).
locals {
  event_rules = {
    deploy-ecr-push = {
      function = "deploy"
      pattern = {
        source        = ["aws.ecr"]
        "detail-type" = ["ECR Image Action"]
        detail = {
          "action-type" = ["PUSH"]
          result        = ["SUCCESS"]
        }
      }
      maximum_retry_attempts       = 4
      maximum_event_age_in_seconds = 3600
    }
    # Secrets Manager's native event (no CloudTrail trail needed): AWSCURRENT
    # moved to a new version; environments with restart_on_secret_change
    # restart the services whose known-good revisions read the secret.
    deploy-secret-value-changed = {
      function = "deploy"
      pattern = {
        source        = ["aws.secretsmanager"]
        "detail-type" = ["Secret Label Updated"]
        detail = {
          labelUpdated = ["AWSCURRENT"]
        }
      }
      maximum_retry_attempts       = 4
      maximum_event_age_in_seconds = 3600
    }
    gate-migration-stopped = {
      function = "gate"
      pattern = {
        source        = ["aws.ecs"]
        "detail-type" = ["ECS Task State Change"]
        detail = {
          lastStatus = ["STOPPED"]
          startedBy  = [{ prefix = "ferry/" }]
        }
      }
      maximum_retry_attempts       = 4
      maximum_event_age_in_seconds = 3600
    }
    watch-deployment-finished = {
      function = "watch"
      pattern = {
        source        = ["aws.ecs"]
        "detail-type" = ["ECS Deployment State Change"]
        detail = {
          eventName = ["SERVICE_DEPLOYMENT_COMPLETED", "SERVICE_DEPLOYMENT_FAILED"]
        }
      }
      maximum_retry_attempts       = 4
      maximum_event_age_in_seconds = 3600
    }
    # Every alarm of the account that goes to ALARM; ferry acts only on the
    # alarms an environment lists under `alarms` and ignores the rest.
    rollback-alarm-raised = {
      function = "rollback"
      pattern = {
        source        = ["aws.cloudwatch"]
        "detail-type" = ["CloudWatch Alarm State Change"]
        detail = {
          state = {
            value = ["ALARM"]
          }
        }
      }
      maximum_retry_attempts       = 4
      maximum_event_age_in_seconds = 3600
    }
  }

  # The reconcile pass's schedule rule (template.yaml's Schedule event).
  reconcile_schedule = {
    description                  = "ferry's reconcile pass over every lane"
    maximum_retry_attempts       = 4
    maximum_event_age_in_seconds = 3600
  }

  # Which rules may send to each function's events dead-letter queue.
  rule_arns_by_function = {
    for function in keys(local.functions) : function => concat(
      [for key, rule in local.event_rules : aws_cloudwatch_event_rule.event[key].arn if rule.function == function],
      function == "reconcile" ? [aws_cloudwatch_event_rule.reconcile_schedule.arn] : [],
    )
  }
}

resource "aws_cloudwatch_event_rule" "event" {
  for_each = local.event_rules

  name          = "${var.name}-${each.key}"
  event_pattern = jsonencode(each.value.pattern)
}

resource "aws_cloudwatch_event_target" "event" {
  for_each = local.event_rules

  rule      = aws_cloudwatch_event_rule.event[each.key].name
  target_id = "ferry-${each.value.function}"
  arn       = aws_lambda_function.function[each.value.function].arn

  retry_policy {
    maximum_retry_attempts       = each.value.maximum_retry_attempts
    maximum_event_age_in_seconds = each.value.maximum_event_age_in_seconds
  }

  dead_letter_config {
    arn = aws_sqs_queue.events_dead_letter[each.value.function].arn
  }

  depends_on = [aws_sqs_queue_policy.events_dead_letter]
}

resource "aws_lambda_permission" "event" {
  for_each = local.event_rules

  statement_id  = "AllowEventBridgeRule-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function[each.value.function].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.event[each.key].arn
}

# A scheduled rule has no pattern: tests and the demo invoke ferry-reconcile
# directly.
resource "aws_cloudwatch_event_rule" "reconcile_schedule" {
  name                = "${var.name}-reconcile-schedule"
  description         = local.reconcile_schedule.description
  schedule_expression = var.reconcile_schedule
}

resource "aws_cloudwatch_event_target" "reconcile_schedule" {
  rule      = aws_cloudwatch_event_rule.reconcile_schedule.name
  target_id = "ferry-reconcile"
  arn       = aws_lambda_function.function["reconcile"].arn

  retry_policy {
    maximum_retry_attempts       = local.reconcile_schedule.maximum_retry_attempts
    maximum_event_age_in_seconds = local.reconcile_schedule.maximum_event_age_in_seconds
  }

  dead_letter_config {
    arn = aws_sqs_queue.events_dead_letter["reconcile"].arn
  }

  depends_on = [aws_sqs_queue_policy.events_dead_letter]
}

resource "aws_lambda_permission" "reconcile_schedule" {
  statement_id  = "AllowEventBridgeRule-reconcile-schedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["reconcile"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.reconcile_schedule.arn
}
