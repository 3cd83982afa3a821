# The release ledger. template.yaml retains it when the stack is deleted
# (DeletionPolicy: Retain); here `terraform destroy` refuses to delete it: to
# remove ferry and keep its history, `terraform state rm` the table first.
resource "aws_dynamodb_table" "ledger" {
  #checkov:skip=CKV_AWS_119:Encrypted at rest with the AWS managed key (server_side_encryption enabled); the ledger holds release metadata, no secrets, and a customer managed key would add key-policy upkeep and kms grants to every role.

  name         = "${var.name}-ledger"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  range_key    = "sk"

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }

  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_ssm_parameter" "config" {
  count = var.config_toml == "" ? 0 : 1
  #checkov:skip=CKV2_AWS_34:The configuration names apps, clusters, services and alarms, never a secret; every role denies kms:Decrypt (NeverDecrypt), so a SecureString could not even be read by ferry.

  name        = var.config_parameter_name
  type        = "String"
  tier        = "Intelligent-Tiering"
  description = "ferry's configuration (TOML), read by every ferry function at cold start"
  value       = var.config_toml
}
