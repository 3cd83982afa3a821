# One execution role per function, with what `sam deploy` gives the same
# function from template.yaml:
#   * the function's `Policies` statement for statement (same Sid, Effect,
#     actions, resources and conditions) in the inline policy "ferry"; the
#     reason for every grant is written next to the same Sid in template.yaml;
#   * AWSLambdaBasicExecutionRole (logs) and AWSXrayWriteOnlyAccess (Tracing:
#     Active), the managed policies SAM attaches;
#   * sqs:SendMessage on the failed-invocations queue, the policy SAM adds for
#     the EventInvokeConfig's on-failure destination.

data "aws_iam_policy_document" "lambda_assume_role" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

locals {
  function_policies = {
    deploy    = data.aws_iam_policy_document.deploy.json
    gate      = data.aws_iam_policy_document.gate.json
    watch     = data.aws_iam_policy_document.watch.json
    rollback  = data.aws_iam_policy_document.rollback.json
    reconcile = data.aws_iam_policy_document.reconcile.json
  }
}

resource "aws_iam_role" "function" {
  for_each = local.functions

  name               = "${var.name}-${each.key}"
  description        = "ferry-${each.key} execution role"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume_role.json
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions

  name   = "ferry"
  role   = aws_iam_role.function[each.key].id
  policy = local.function_policies[each.key]
}

resource "aws_iam_role_policy_attachment" "basic_execution" {
  for_each = local.functions

  role       = aws_iam_role.function[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
}

resource "aws_iam_role_policy_attachment" "xray" {
  for_each = local.functions

  role       = aws_iam_role.function[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AWSXrayWriteOnlyAccess"
}

data "aws_iam_policy_document" "on_failure_destination" {
  statement {
    sid       = "FailedInvocationsQueue"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.failed_invocations.arn]
  }
}

resource "aws_iam_role_policy" "on_failure_destination" {
  for_each = local.functions

  name   = "on-failure-destination"
  role   = aws_iam_role.function[each.key].id
  policy = data.aws_iam_policy_document.on_failure_destination.json
}

# The execution role of the schedules that end bakes: EventBridge Scheduler
# (of this account only) assumes it to invoke ferry-watch, and to send what it
# could not deliver to the failed-invocations queue.
data "aws_iam_policy_document" "scheduler_assume_role" {
  statement {
    sid     = "SchedulerOfThisAccount"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "InvokeWatchOnly"
    effect    = "Allow"
    actions   = ["lambda:InvokeFunction"]
    resources = [local.watch_function_arn]
  }

  statement {
    sid       = "UndeliveredTimersToTheFailedInvocationsQueue"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.failed_invocations.arn]
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-scheduler"
  description        = "ferry bake timers - EventBridge Scheduler invokes ferry-watch when a bake ends"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume_role.json
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "end-bakes"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}

# --------------------------------------------------------------------------
# The functions' own statements, in template.yaml's order.

data "aws_iam_policy_document" "deploy" {
  statement {
    sid       = "ReadConfig"
    effect    = "Allow"
    actions   = ["ssm:GetParameter"]
    resources = [local.config_parameter_arn]
  }

  statement {
    sid       = "NeverWriteConfig"
    effect    = "Deny"
    actions   = ["ssm:PutParameter", "ssm:LabelParameterVersion", "ssm:DeleteParameter", "ssm:DeleteParameters"]
    resources = [local.config_parameter_arn]
  }

  statement {
    sid       = "NeverDecrypt"
    effect    = "Deny"
    actions   = ["kms:Decrypt"]
    resources = ["*"]
  }

  statement {
    sid       = "Ledger"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.ledger.arn]
  }

  statement {
    sid       = "ReadTaskDefinitions"
    effect    = "Allow"
    actions   = ["ecs:DescribeTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid       = "RegisterReleaseTaskDefinitions"
    effect    = "Allow"
    actions   = ["ecs:RegisterTaskDefinition"]
    resources = ["*"]

    condition {
      test     = "Null"
      variable = "aws:RequestTag/ferry:release"
      values   = ["false"]
    }
  }

  statement {
    sid       = "TagOnCreateOnly"
    effect    = "Allow"
    actions   = ["ecs:TagResource"]
    resources = [local.task_definition_arn, local.task_arn]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RegisterTaskDefinition", "RunTask"]
    }
  }

  statement {
    sid       = "ServicesInManagedClusters"
    effect    = "Allow"
    actions   = ["ecs:DescribeServices", "ecs:UpdateService"]
    resources = [local.service_arn]

    condition {
      test     = "ArnLike"
      variable = "ecs:cluster"
      values   = local.cluster_arn_patterns
    }
  }

  statement {
    sid       = "RunMigrationInManagedClusters"
    effect    = "Allow"
    actions   = ["ecs:RunTask"]
    resources = [local.task_definition_arn]

    condition {
      test     = "ArnLike"
      variable = "ecs:cluster"
      values   = local.cluster_arn_patterns
    }

    condition {
      test     = "Null"
      variable = "aws:RequestTag/ferry:release"
      values   = ["false"]
    }
  }

  statement {
    sid       = "StopMigrationInManagedClusters"
    effect    = "Allow"
    actions   = ["ecs:StopTask"]
    resources = [local.task_arn]

    condition {
      test     = "ArnLike"
      variable = "ecs:cluster"
      values   = local.cluster_arn_patterns
    }
  }

  statement {
    sid       = "PassTaskRolesToEcsTasksOnly"
    effect    = "Allow"
    actions   = ["iam:PassRole"]
    resources = var.task_role_arns

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid       = "SecretsExistMetadataOnly"
    effect    = "Allow"
    actions   = ["secretsmanager:DescribeSecret"]
    resources = [local.secret_arn]
  }

  statement {
    sid       = "SecretParametersExistWithoutDecryption"
    effect    = "Allow"
    actions   = ["ssm:GetParameters"]
    resources = [local.secret_parameter_arn]
  }

  statement {
    sid       = "ImageTagParameters"
    effect    = "Allow"
    actions   = ["ssm:GetParameter", "ssm:GetParameters", "ssm:PutParameter", "ssm:LabelParameterVersion"]
    resources = [local.image_tag_parameter_arn]
  }

  statement {
    sid       = "ResolveImages"
    effect    = "Allow"
    actions   = ["ecr:DescribeImages"]
    resources = [local.repository_arn]
  }

  statement {
    sid       = "AuditEvents"
    effect    = "Allow"
    actions   = ["events:PutEvents"]
    resources = [local.default_event_bus_arn]

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "events:source"
      values   = ["ferry"]
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "events:detail-type"
      values   = ["Release State Change"]
    }

    condition {
      test     = "Null"
      variable = "events:source"
      values   = ["false"]
    }

    condition {
      test     = "Null"
      variable = "events:detail-type"
      values   = ["false"]
    }
  }
}

data "aws_iam_policy_document" "gate" {
  statement {
    sid       = "ReadConfig"
    effect    = "Allow"
    actions   = ["ssm:GetParameter"]
    resources = [local.config_parameter_arn]
  }

  statement {
    sid       = "NeverWriteConfig"
    effect    = "Deny"
    actions   = ["ssm:PutParameter", "ssm:LabelParameterVersion", "ssm:DeleteParameter", "ssm:DeleteParameters"]
    resources = [local.config_parameter_arn]
  }

  statement {
    sid       = "NeverDecrypt"
    effect    = "Deny"
    actions   = ["kms:Decrypt"]
    resources = ["*"]
  }

  statement {
    sid       = "Ledger"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.ledger.arn]
  }

  statement {
    sid       = "ServicesInManagedClusters"
    effect    = "Allow"
    actions   = ["ecs:DescribeServices", "ecs:UpdateService"]
    resources = [local.service_arn]

    condition {
      test     = "ArnLike"
      variable = "ecs:cluster"
      values   = local.cluster_arn_patterns
    }
  }

  statement {
    sid       = "PassTaskRolesToEcsTasksOnly"
    effect    = "Allow"
    actions   = ["iam:PassRole"]
    resources = var.task_role_arns

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid       = "ReadTaskDefinitions"
    effect    = "Allow"
    actions   = ["ecs:DescribeTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid       = "ImageTagParameters"
    effect    = "Allow"
    actions   = ["ssm:GetParameter", "ssm:PutParameter", "ssm:LabelParameterVersion"]
    resources = [local.image_tag_parameter_arn]
  }

  statement {
    sid       = "StartBakeTimers"
    effect    = "Allow"
    actions   = ["scheduler:CreateSchedule"]
    resources = [local.bake_schedule_arn]
  }

  statement {
    sid       = "PassSchedulerRoleToSchedulerOnly"
    effect    = "Allow"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.scheduler.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["scheduler.amazonaws.com"]
    }
  }

  statement {
    sid       = "ReadGuardingAlarms"
    effect    = "Allow"
    actions   = ["cloudwatch:DescribeAlarms"]
    resources = ["*"]
  }

  statement {
    sid       = "AuditEvents"
    effect    = "Allow"
    actions   = ["events:PutEvents"]
    resources = [local.default_event_bus_arn]

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "events:source"
      values   = ["ferry"]
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "events:detail-type"
      values   = ["Release State Change"]
    }

    condition {
      test     = "Null"
      variable = "events:source"
      values   = ["false"]
    }

    condition {
      test     = "Null"
      variable = "events:detail-type"
      values   = ["false"]
    }
  }
}

data "aws_iam_policy_document" "watch" {
  statement {
    sid       = "ReadConfig"
    effect    = "Allow"
    actions   = ["ssm:GetParameter"]
    resources = [local.config_parameter_arn]
  }

  statement {
    sid       = "NeverWriteConfig"
    effect    = "Deny"
    actions   = ["ssm:PutParameter", "ssm:LabelParameterVersion", "ssm:DeleteParameter", "ssm:DeleteParameters"]
    resources = [local.config_parameter_arn]
  }

  statement {
    sid       = "NeverDecrypt"
    effect    = "Deny"
    actions   = ["kms:Decrypt"]
    resources = ["*"]
  }

  statement {
    sid       = "Ledger"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.ledger.arn]
  }

  statement {
    sid       = "ServicesInManagedClusters"
    effect    = "Allow"
    actions   = ["ecs:DescribeServices", "ecs:UpdateService"]
    resources = [local.service_arn]

    condition {
      test     = "ArnLike"
      variable = "ecs:cluster"
      values   = local.cluster_arn_patterns
    }
  }

  statement {
    sid       = "RunSmokeTestInManagedClusters"
    effect    = "Allow"
    actions   = ["ecs:RunTask"]
    resources = [local.task_definition_arn]

    condition {
      test     = "ArnLike"
      variable = "ecs:cluster"
      values   = local.cluster_arn_patterns
    }

    condition {
      test     = "Null"
      variable = "aws:RequestTag/ferry:release"
      values   = ["false"]
    }
  }

  statement {
    sid       = "TagSmokeTestOnCreateOnly"
    effect    = "Allow"
    actions   = ["ecs:TagResource"]
    resources = [local.task_arn]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RunTask"]
    }
  }

  statement {
    sid       = "StopSmokeTestInManagedClusters"
    effect    = "Allow"
    actions   = ["ecs:StopTask"]
    resources = [local.task_arn]

    condition {
      test     = "ArnLike"
      variable = "ecs:cluster"
      values   = local.cluster_arn_patterns
    }
  }

  statement {
    sid       = "PassTaskRolesToEcsTasksOnly"
    effect    = "Allow"
    actions   = ["iam:PassRole"]
    resources = var.task_role_arns

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid       = "ImageTagParameters"
    effect    = "Allow"
    actions   = ["ssm:GetParameter", "ssm:PutParameter", "ssm:LabelParameterVersion"]
    resources = [local.image_tag_parameter_arn]
  }

  statement {
    sid       = "StartBakeTimers"
    effect    = "Allow"
    actions   = ["scheduler:CreateSchedule"]
    resources = [local.bake_schedule_arn]
  }

  statement {
    sid       = "PassSchedulerRoleToSchedulerOnly"
    effect    = "Allow"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.scheduler.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["scheduler.amazonaws.com"]
    }
  }

  statement {
    sid       = "ReadGuardingAlarms"
    effect    = "Allow"
    actions   = ["cloudwatch:DescribeAlarms"]
    resources = ["*"]
  }

  statement {
    sid       = "AuditEvents"
    effect    = "Allow"
    actions   = ["events:PutEvents"]
    resources = [local.default_event_bus_arn]

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "events:source"
      values   = ["ferry"]
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "events:detail-type"
      values   = ["Release State Change"]
    }

    condition {
      test     = "Null"
      variable = "events:source"
      values   = ["false"]
    }

    condition {
      test     = "Null"
      variable = "events:detail-type"
      values   = ["false"]
    }
  }
}

data "aws_iam_policy_document" "rollback" {
  statement {
    sid       = "ReadConfig"
    effect    = "Allow"
    actions   = ["ssm:GetParameter"]
    resources = [local.config_parameter_arn]
  }

  statement {
    sid       = "NeverWriteConfig"
    effect    = "Deny"
    actions   = ["ssm:PutParameter", "ssm:LabelParameterVersion", "ssm:DeleteParameter", "ssm:DeleteParameters"]
    resources = [local.config_parameter_arn]
  }

  statement {
    sid       = "NeverDecrypt"
    effect    = "Deny"
    actions   = ["kms:Decrypt"]
    resources = ["*"]
  }

  statement {
    sid       = "Ledger"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.ledger.arn]
  }

  statement {
    sid       = "ReadTaskDefinitions"
    effect    = "Allow"
    actions   = ["ecs:DescribeTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid       = "RegisterReleaseTaskDefinitions"
    effect    = "Allow"
    actions   = ["ecs:RegisterTaskDefinition"]
    resources = ["*"]

    condition {
      test     = "Null"
      variable = "aws:RequestTag/ferry:release"
      values   = ["false"]
    }
  }

  statement {
    sid       = "TagOnCreateOnly"
    effect    = "Allow"
    actions   = ["ecs:TagResource"]
    resources = [local.task_definition_arn, local.task_arn]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RegisterTaskDefinition", "RunTask"]
    }
  }

  statement {
    sid       = "ServicesInManagedClusters"
    effect    = "Allow"
    actions   = ["ecs:DescribeServices", "ecs:UpdateService"]
    resources = [local.service_arn]

    condition {
      test     = "ArnLike"
      variable = "ecs:cluster"
      values   = local.cluster_arn_patterns
    }
  }

  statement {
    sid       = "RunMigrationInManagedClusters"
    effect    = "Allow"
    actions   = ["ecs:RunTask"]
    resources = [local.task_definition_arn]

    condition {
      test     = "ArnLike"
      variable = "ecs:cluster"
      values   = local.cluster_arn_patterns
    }

    condition {
      test     = "Null"
      variable = "aws:RequestTag/ferry:release"
      values   = ["false"]
    }
  }

  statement {
    sid       = "StopMigrationInManagedClusters"
    effect    = "Allow"
    actions   = ["ecs:StopTask"]
    resources = [local.task_arn]

    condition {
      test     = "ArnLike"
      variable = "ecs:cluster"
      values   = local.cluster_arn_patterns
    }
  }

  statement {
    sid       = "PassTaskRolesToEcsTasksOnly"
    effect    = "Allow"
    actions   = ["iam:PassRole"]
    resources = var.task_role_arns

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid       = "SecretsExistMetadataOnly"
    effect    = "Allow"
    actions   = ["secretsmanager:DescribeSecret"]
    resources = [local.secret_arn]
  }

  statement {
    sid       = "SecretParametersExistWithoutDecryption"
    effect    = "Allow"
    actions   = ["ssm:GetParameters"]
    resources = [local.secret_parameter_arn]
  }

  statement {
    sid       = "ResolveImages"
    effect    = "Allow"
    actions   = ["ecr:DescribeImages"]
    resources = [local.repository_arn]
  }

  statement {
    sid       = "ImageTagParameters"
    effect    = "Allow"
    actions   = ["ssm:GetParameter", "ssm:PutParameter", "ssm:LabelParameterVersion"]
    resources = [local.image_tag_parameter_arn]
  }

  statement {
    sid       = "AuditEvents"
    effect    = "Allow"
    actions   = ["events:PutEvents"]
    resources = [local.default_event_bus_arn]

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "events:source"
      values   = ["ferry"]
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "events:detail-type"
      values   = ["Release State Change"]
    }

    condition {
      test     = "Null"
      variable = "events:source"
      values   = ["false"]
    }

    condition {
      test     = "Null"
      variable = "events:detail-type"
      values   = ["false"]
    }
  }
}

data "aws_iam_policy_document" "reconcile" {
  statement {
    sid       = "ReadConfig"
    effect    = "Allow"
    actions   = ["ssm:GetParameter"]
    resources = [local.config_parameter_arn]
  }

  statement {
    sid       = "NeverWriteConfig"
    effect    = "Deny"
    actions   = ["ssm:PutParameter", "ssm:LabelParameterVersion", "ssm:DeleteParameter", "ssm:DeleteParameters"]
    resources = [local.config_parameter_arn]
  }

  statement {
    sid       = "NeverDecrypt"
    effect    = "Deny"
    actions   = ["kms:Decrypt"]
    resources = ["*"]
  }

  statement {
    sid       = "Ledger"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.ledger.arn]
  }

  statement {
    sid       = "ReadTaskDefinitions"
    effect    = "Allow"
    actions   = ["ecs:DescribeTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid       = "RegisterReleaseTaskDefinitions"
    effect    = "Allow"
    actions   = ["ecs:RegisterTaskDefinition"]
    resources = ["*"]

    condition {
      test     = "Null"
      variable = "aws:RequestTag/ferry:release"
      values   = ["false"]
    }
  }

  statement {
    sid       = "TagOnCreateOnly"
    effect    = "Allow"
    actions   = ["ecs:TagResource"]
    resources = [local.task_definition_arn, local.task_arn]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RegisterTaskDefinition", "RunTask"]
    }
  }

  statement {
    sid       = "ServicesInManagedClusters"
    effect    = "Allow"
    actions   = ["ecs:DescribeServices", "ecs:UpdateService"]
    resources = [local.service_arn]

    condition {
      test     = "ArnLike"
      variable = "ecs:cluster"
      values   = local.cluster_arn_patterns
    }
  }

  statement {
    sid       = "RunOneOffTasksInManagedClusters"
    effect    = "Allow"
    actions   = ["ecs:RunTask"]
    resources = [local.task_definition_arn]

    condition {
      test     = "ArnLike"
      variable = "ecs:cluster"
      values   = local.cluster_arn_patterns
    }

    condition {
      test     = "Null"
      variable = "aws:RequestTag/ferry:release"
      values   = ["false"]
    }
  }

  statement {
    sid       = "RetireRevisionsBeyondKeep"
    effect    = "Allow"
    actions   = ["ecs:ListTaskDefinitions", "ecs:DeregisterTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid       = "OneOffTasksInManagedClusters"
    effect    = "Allow"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = [local.task_arn]

    condition {
      test     = "ArnLike"
      variable = "ecs:cluster"
      values   = local.cluster_arn_patterns
    }
  }

  statement {
    sid       = "PassTaskRolesToEcsTasksOnly"
    effect    = "Allow"
    actions   = ["iam:PassRole"]
    resources = var.task_role_arns

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid       = "SecretsExistMetadataOnly"
    effect    = "Allow"
    actions   = ["secretsmanager:DescribeSecret"]
    resources = [local.secret_arn]
  }

  statement {
    sid       = "SecretParametersExistWithoutDecryption"
    effect    = "Allow"
    actions   = ["ssm:GetParameters"]
    resources = [local.secret_parameter_arn]
  }

  statement {
    sid       = "ImageTagParameters"
    effect    = "Allow"
    actions   = ["ssm:GetParameter", "ssm:GetParameters", "ssm:PutParameter", "ssm:LabelParameterVersion"]
    resources = [local.image_tag_parameter_arn]
  }

  statement {
    sid       = "ListImages"
    effect    = "Allow"
    actions   = ["ecr:DescribeImages"]
    resources = [local.repository_arn]
  }

  statement {
    sid       = "StartBakeTimers"
    effect    = "Allow"
    actions   = ["scheduler:CreateSchedule"]
    resources = [local.bake_schedule_arn]
  }

  statement {
    sid       = "PassSchedulerRoleToSchedulerOnly"
    effect    = "Allow"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.scheduler.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["scheduler.amazonaws.com"]
    }
  }

  statement {
    sid       = "ReadGuardingAlarms"
    effect    = "Allow"
    actions   = ["cloudwatch:DescribeAlarms"]
    resources = ["*"]
  }

  statement {
    sid       = "AuditEvents"
    effect    = "Allow"
    actions   = ["events:PutEvents"]
    resources = [local.default_event_bus_arn]

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "events:source"
      values   = ["ferry"]
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "events:detail-type"
      values   = ["Release State Change", "Reconciled", "Drift Detected"]
    }

    condition {
      test     = "Null"
      variable = "events:source"
      values   = ["false"]
    }

    condition {
      test     = "Null"
      variable = "events:detail-type"
      values   = ["false"]
    }
  }
}
