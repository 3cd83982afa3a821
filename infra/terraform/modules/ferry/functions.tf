resource "aws_cloudwatch_log_group" "function" {
  for_each = local.functions
  #checkov:skip=CKV_AWS_158:Logs carry release metadata, never secret values; CloudWatch Logs encrypts at rest with a service key.

  name              = "/ferry/${var.name}/${each.key}"
  retention_in_days = var.log_retention_in_days
}

resource "aws_lambda_function" "function" {
  for_each = local.functions
  #checkov:skip=CKV_AWS_116:Asynchronous failures go to the event invoke config's on-failure destination (the failed-invocations queue), which keeps the error with the event; undeliverable rule events go to the rule's dead-letter queue.
  #checkov:skip=CKV_AWS_117:ferry only calls public AWS APIs (ECS, ECR, SSM, Secrets Manager, DynamoDB, EventBridge, EventBridge Scheduler, CloudWatch) and reaches nothing inside a VPC; a VPC would add NAT or endpoints and no protection.
  #checkov:skip=CKV_AWS_115:Releases are serialised by conditional writes in the ledger, not by concurrency; reserving concurrency would take capacity from the account's unreserved pool and can fail deployment in accounts with low limits.
  #checkov:skip=CKV_AWS_173:The environment holds only names and ARNs (config parameter, table, event bus, bake timer target, scheduler role and dead-letter queue, log level); no secret is placed in it.
  #checkov:skip=CKV_AWS_272:The zips come from a GitHub release whose SHA256 checksums are published with it; source_code_hash pins what Terraform uploads. Code signing would need an AWS Signer profile to re-sign every release in each account.

  function_name = "${var.name}-${each.key}"
  description   = each.value.description
  role          = aws_iam_role.function[each.key].arn
  runtime       = "provided.al2023"
  architectures = ["arm64"]
  handler       = "bootstrap"
  memory_size   = each.value.memory_size
  timeout       = each.value.timeout

  filename         = var.package_dir == null ? null : "${var.package_dir}/ferry-${each.key}.zip"
  s3_bucket        = var.s3_bucket
  s3_key           = var.s3_bucket == null ? null : "${var.s3_key_prefix}ferry-${each.key}.zip"
  source_code_hash = var.package_dir == null ? lookup(var.s3_source_code_hashes, each.key, null) : filebase64sha256("${var.package_dir}/ferry-${each.key}.zip")

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  environment {
    variables = {
      FERRY_CONFIG_PARAMETER = var.config_parameter_name
      FERRY_LEDGER_TABLE     = aws_dynamodb_table.ledger.name
      FERRY_EVENT_BUS        = "default"
      # The bake timer: a one-time EventBridge Scheduler schedule per release
      # invokes ferry-watch as the scheduler role when the bake ends; what
      # Scheduler cannot deliver goes to the failed-invocations queue.
      FERRY_BAKE_TARGET_ARN      = local.watch_function_arn
      FERRY_SCHEDULER_ROLE_ARN   = aws_iam_role.scheduler.arn
      FERRY_BAKE_DEAD_LETTER_ARN = aws_sqs_queue.failed_invocations.arn
      RUST_LOG                   = "info"
    }
  }

  lifecycle {
    precondition {
      condition     = (var.package_dir == null) != (var.s3_bucket == null)
      error_message = "Set exactly one of package_dir (a directory with the release zips) and s3_bucket."
    }
  }

  # A function must not run before its role can do what it needs.
  depends_on = [
    aws_iam_role_policy.function,
    aws_iam_role_policy.on_failure_destination,
    aws_iam_role_policy_attachment.basic_execution,
    aws_iam_role_policy_attachment.xray,
  ]
}

# Lambda retries a failed asynchronous invocation (EventBridge invokes
# asynchronously) twice; what still fails lands in the failed-invocations
# queue with the error and the original event, instead of being dropped.
resource "aws_lambda_function_event_invoke_config" "function" {
  for_each = local.functions

  function_name                = aws_lambda_function.function[each.key].function_name
  qualifier                    = "$LATEST"
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 3600

  destination_config {
    on_failure {
      destination = aws_sqs_queue.failed_invocations.arn
    }
  }
}
