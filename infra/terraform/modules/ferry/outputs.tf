output "function_arns" {
  description = "ARN of each function, keyed deploy, gate, watch, rollback, reconcile (ferry-deploy, ferry-rollback and ferry-reconcile are also invoked directly: manual deploys, rollbacks and unfreeze, one lane reconciled now)."
  value       = { for key, function in aws_lambda_function.function : key => function.arn }
}

output "function_names" {
  description = "Name of each function, keyed as function_arns (for `aws lambda invoke` and the ferry CLI)."
  value       = { for key, function in aws_lambda_function.function : key => function.function_name }
}

output "ledger_table_name" {
  description = "DynamoDB release ledger (FERRY_LEDGER_TABLE)."
  value       = aws_dynamodb_table.ledger.name
}

output "config_parameter_name" {
  description = "SSM parameter holding ferry's TOML config (FERRY_CONFIG_PARAMETER)."
  value       = var.config_parameter_name
}

output "failed_invocations_queue_url" {
  description = "Invocations that failed after Lambda's retries."
  value       = aws_sqs_queue.failed_invocations.url
}

output "events_dead_letter_queue_urls" {
  description = "Each function's rule dead-letter queue (events EventBridge could not deliver), keyed by function."
  value       = { for key, queue in aws_sqs_queue.events_dead_letter : key => queue.url }
}

output "notification_topic_arn" {
  description = "SNS topic of release notifications (one line per FAILED, ROLLED_BACK, SUCCEEDED or AWAITING_APPROVAL release), null unless enable_notifications; subscribe e-mail, AWS Chatbot or any SNS endpoint."
  value       = one(aws_sns_topic.notifications[*].arn)
}
