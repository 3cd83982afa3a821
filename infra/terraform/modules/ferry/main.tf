# ferry from its release zips: the same resources, names, settings and IAM as
# template.yaml (the source of truth; tests/infra/test_terraform_matches_template.py
# fails when the two drift apart). Where a value below looks arbitrary, the
# template's comment next to the same value says why.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id

  # template.yaml's five AWS::Serverless::Function resources (Globals:
  # MemorySize 128, Timeout 60; ferry-reconcile's pass gets 240 s, under the
  # default schedule's period, so two scheduled passes seldom overlap).
  functions = {
    deploy = {
      description = "ferry-deploy - ECR push or direct deploy invoke to a claimed, preflighted release whose migration is running; a secret's new current value to a restart of the services that read it"
      memory_size = 128
      timeout     = 60
    }
    gate = {
      description = "ferry-gate - migration task stopped to every service updated, or release failed and image tag restored"
      memory_size = 128
      timeout     = 60
    }
    watch = {
      description = "ferry-watch - service deployment finished to release succeeded (known-good), or failed and rolled back"
      memory_size = 128
      timeout     = 60
    }
    rollback = {
      description = "ferry-rollback - guarding alarm in ALARM, or rollback/unfreeze invoke, to every service back on a known-good release (unfreeze deploys a held push)"
      memory_size = 128
      timeout     = 60
    }
    reconcile = {
      description = "ferry-reconcile - on a schedule (every lane) or a direct invoke (one lane), AWS's state read and the ledger and estate driven to where lost events would have"
      memory_size = 128
      timeout     = 240
    }
  }

  # Built from the explicit function name, as in template.yaml: the bake
  # timer's target and the scheduler role's policy need it before the function
  # exists, and a reference would make ferry-watch depend on itself.
  watch_function_arn = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${var.name}-watch"

  # ARNs the roles' statements are scoped to (iam.tf).
  config_parameter_arn    = "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${var.config_parameter_name}"
  image_tag_parameter_arn = "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${var.image_tag_parameter_prefix}*"
  service_arn             = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:service/*"
  task_definition_arn     = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/*"
  task_arn                = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/*"
  bake_schedule_arn       = "arn:${local.partition}:scheduler:${local.region}:${local.account_id}:schedule/default/ferry-bake-*"
  default_event_bus_arn   = "arn:${local.partition}:events:${local.region}:${local.account_id}:event-bus/default"
  repository_arn          = var.repository_arn_pattern == "" ? "arn:${local.partition}:ecr:${local.region}:${local.account_id}:repository/*" : var.repository_arn_pattern
  secret_arn              = var.secret_arn_pattern == "" ? "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:*" : var.secret_arn_pattern
  secret_parameter_arn    = var.secret_parameter_arn_pattern == "" ? "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/*" : var.secret_parameter_arn_pattern

  # The values of the ecs:cluster condition, written as template.yaml writes
  # them (it cannot build full ARNs from a list): the wildcards grant nothing
  # beyond what the statements' Resource already pins to this account and
  # region, and ECS has no resource-based policies.
  cluster_arn_patterns = [for cluster in var.cluster_names : "arn:*:ecs:*:*:cluster/${cluster}"]
}
