# The inputs mirror template.yaml's Parameters (same meaning, same defaults,
# same validation), plus where the release zips come from and the name that
# plays the role of the CloudFormation stack name.

variable "name" {
  description = "Prefix of every named resource, as the stack name is for template.yaml: functions <name>-deploy, <name>-gate, <name>-watch, <name>-rollback, <name>-reconcile; log groups /ferry/<name>/<function>."
  type        = string
  default     = "ferry"

  validation {
    # The longest derived name, the rule <name>-deploy-secret-value-changed,
    # must fit EventBridge's 64 characters; function, role and queue names
    # allow letters, digits, hyphens and underscores.
    condition     = can(regex("^[A-Za-z0-9_-]{1,36}$", var.name))
    error_message = "name: 1 to 36 letters, digits, hyphens or underscores."
  }
}

# ------------------------------------------------------------------ packages

variable "package_dir" {
  description = "Directory holding the release zips ferry-deploy.zip, ferry-gate.zip, ferry-watch.zip, ferry-rollback.zip and ferry-reconcile.zip (each with `bootstrap` at its root). Set this or s3_bucket."
  type        = string
  default     = null
}

variable "s3_bucket" {
  description = "S3 bucket (in the deployment's region) holding the release zips, as an alternative to package_dir."
  type        = string
  default     = null
}

variable "s3_key_prefix" {
  description = "Key prefix of the zips in s3_bucket, e.g. \"ferry/v1.4.0/\": the keys are <prefix>ferry-<function>.zip. Put the version in it, so that a new release changes the keys."
  type        = string
  default     = ""
}

variable "s3_source_code_hashes" {
  description = "With s3_bucket: base64-encoded SHA256 of each zip, keyed by function (deploy, gate, watch, rollback, reconcile), e.g. from `openssl dgst -sha256 -binary ferry-deploy.zip | base64`. Lets Terraform see a changed zip under an unchanged key."
  type        = map(string)
  default     = {}
}

# ------------------------------------------------------------- configuration

variable "config_parameter_name" {
  description = "Name of the SSM String parameter holding ferry's TOML configuration (FERRY_CONFIG_PARAMETER). The functions may read it and nothing inside ferry may write it."
  type        = string
  default     = "/ferry/config"

  validation {
    condition     = can(regex("^(/[A-Za-z0-9_.-]+)+$", var.config_parameter_name))
    error_message = "config_parameter_name: a hierarchical SSM parameter name starting with \"/\", e.g. /ferry/config."
  }
}

variable "config_toml" {
  description = "ferry's TOML configuration, stored in config_parameter_name by this module (e.g. file(\"ferry.toml\")). The empty string leaves that parameter to you (aws ssm put-parameter --type String --overwrite --name /ferry/config --value file://ferry.toml); when the module manages it, out-of-band edits are overwritten on the next apply."
  type        = string
}

# ---------------------------------------------------- what ferry may touch

variable "cluster_names" {
  description = "Names (not ARNs) of the ECS clusters ferry manages, e.g. [\"shop-prod\", \"blog-prod\"]. Every ECS action that names a service or task is limited to them with an ecs:cluster condition."
  type        = list(string)

  validation {
    condition     = length(var.cluster_names) > 0
    error_message = "cluster_names: at least one ECS cluster name."
  }
}

variable "task_role_arns" {
  description = "ARNs of every task role and task execution role named by the task definitions ferry copies (services and migrations). ferry may pass these roles, and only to ecs-tasks.amazonaws.com."
  type        = list(string)

  validation {
    condition     = length(var.task_role_arns) > 0
    error_message = "task_role_arns: at least one IAM role ARN."
  }
}

variable "image_tag_parameter_prefix" {
  description = "Path prefix of the SSM image-tag parameters ferry writes and labels (every lane's image_tag_parameter must start with it). Narrow it, e.g. /shop/, when every environment's parameter lives under one path. The config parameter is always excluded by an explicit Deny."
  type        = string
  default     = "/"

  validation {
    condition     = can(regex("^/([A-Za-z0-9_.-]+/)*$", var.image_tag_parameter_prefix))
    error_message = "image_tag_parameter_prefix: starts and ends with \"/\", e.g. / or /shop/."
  }
}

variable "repository_arn_pattern" {
  description = "ECR repositories ferry may describe (ARN, wildcards allowed, e.g. arn:aws:ecr:eu-west-1:123456789012:repository/shop*). Empty means every repository of this account and region."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^(arn:[^:]+:ecr:[^:]*:[^:]*:repository/.+)?$", var.repository_arn_pattern))
    error_message = "repository_arn_pattern: empty or an ECR repository ARN (wildcards allowed)."
  }
}

variable "secret_arn_pattern" {
  description = "Secrets Manager secrets that task definitions reference; ferry calls DescribeSecret (metadata only) on them to check they exist. Empty means every secret of this account and region."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^(arn:[^:]+:secretsmanager:[^:]*:[^:]*:secret:.+)?$", var.secret_arn_pattern))
    error_message = "secret_arn_pattern: empty or a Secrets Manager secret ARN (wildcards allowed)."
  }
}

variable "secret_parameter_arn_pattern" {
  description = "SSM parameters that task definitions reference as secrets; ferry calls GetParameters without decryption on them to check they exist. Empty means every parameter of this account and region."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^(arn:[^:]+:ssm:[^:]*:[^:]*:parameter.*)?$", var.secret_parameter_arn_pattern))
    error_message = "secret_parameter_arn_pattern: empty or an SSM parameter ARN (wildcards allowed)."
  }
}

# ---------------------------------------------------------------- operations

variable "reconcile_schedule" {
  description = "How often ferry-reconcile passes over every lane (EventBridge schedule expression). The period bounds how long a lost event, a migration that never stops or a drifted service goes unnoticed; each pass costs one invocation and a few reads per lane."
  type        = string
  default     = "rate(5 minutes)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.reconcile_schedule))
    error_message = "reconcile_schedule: an EventBridge schedule expression, e.g. rate(5 minutes) or cron(0/10 * * * ? *)."
  }
}

variable "alarm_topic_arn" {
  description = "Optional SNS topic notified when one of ferry's own alarms changes state."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^(arn:[^:]+:sns:[^:]+:[0-9]{12}:.+)?$", var.alarm_topic_arn))
    error_message = "alarm_topic_arn: empty or an SNS topic ARN."
  }
}

variable "log_retention_in_days" {
  description = "Retention of the functions' log groups."
  type        = number
  default     = 365

  validation {
    condition     = contains([30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_in_days)
    error_message = "log_retention_in_days: one of 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

# ------------------------------------------------------ release notifications

variable "enable_notifications" {
  description = "Creates an SNS topic (output notification_topic_arn) that receives one line per release that FAILED, ROLLED_BACK, SUCCEEDED or waits for approval (AWAITING_APPROVAL): app/environment, tag, state, cause and a link to the release's logs. Subscribe e-mail below, or anything SNS delivers to (AWS Chatbot for Slack)."
  type        = bool
  default     = false
}

variable "notification_email" {
  description = "Optional e-mail address subscribed to the notification topic (with enable_notifications); SNS sends it a confirmation message first."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^([^@\\s]+@[^@\\s]+)?$", var.notification_email))
    error_message = "notification_email: an e-mail address, or empty."
  }
}
