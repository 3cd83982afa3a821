terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.32.0 added aws_lambda_function's logging_config, which sends each
      # function's logs to its /ferry/<name>/<function> log group in JSON.
      version = ">= 5.32.0"
    }
  }
}
