# ferry in one account and region, from the zips of a GitHub release unpacked
# into ./release (see ../../README.md), with the sample estate's configuration.
#
#   terraform init && terraform plan -out ferry.plan && terraform apply ferry.plan

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      app = "ferry"
    }
  }
}

module "ferry" {
  source = "../../modules/ferry"

  name        = "ferry"
  package_dir = "${path.root}/release"

  config_parameter_name = "/ferry/config"
  config_toml           = file("${path.root}/../../../ferry.toml")

  cluster_names = ["shop-prod", "blog-prod"]
  task_role_arns = [
    "arn:aws:iam::${var.account_id}:role/shop-task",
    "arn:aws:iam::${var.account_id}:role/shop-task-execution",
    "arn:aws:iam::${var.account_id}:role/blog-task",
    "arn:aws:iam::${var.account_id}:role/blog-task-execution",
  ]

  # Only the lanes' own parameters, repositories and secrets.
  image_tag_parameter_prefix   = "/"
  repository_arn_pattern       = "arn:aws:ecr:${var.region}:${var.account_id}:repository/*"
  secret_arn_pattern           = "arn:aws:secretsmanager:${var.region}:${var.account_id}:secret:shop/*"
  secret_parameter_arn_pattern = ""

  reconcile_schedule    = "rate(5 minutes)"
  alarm_topic_arn       = var.alarm_topic_arn
  log_retention_in_days = 365

  # One line per FAILED, ROLLED_BACK, SUCCEEDED or AWAITING_APPROVAL release
  # on an SNS topic, e-mailed to notification_email when it is set.
  enable_notifications = true
  notification_email   = var.notification_email
}

variable "region" {
  description = "Region ferry runs in (the clusters' region)."
  type        = string
  default     = "eu-west-1"
}

variable "account_id" {
  description = "Account of the clusters and task roles."
  type        = string
}

variable "alarm_topic_arn" {
  description = "Optional SNS topic for ferry's own alarms."
  type        = string
  default     = ""
}

variable "notification_email" {
  description = "Optional e-mail address for release notifications (SNS asks it to confirm first)."
  type        = string
  default     = ""
}

output "notification_topic_arn" {
  description = "Release notifications: subscribe AWS Chatbot (Slack) or any SNS endpoint."
  value       = module.ferry.notification_topic_arn
}

output "function_names" {
  description = "ferry's functions."
  value       = module.ferry.function_names
}

output "ledger_table_name" {
  description = "The release ledger."
  value       = module.ferry.ledger_table_name
}

output "failed_invocations_queue_url" {
  description = "Invocations that failed after Lambda's retries."
  value       = module.ferry.failed_invocations_queue_url
}
