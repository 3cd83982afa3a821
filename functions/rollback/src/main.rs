//! ferry-rollback: a guarding CloudWatch alarm went to ALARM, or an operator
//! asked (`{"rollback": ...}`, `{"unfreeze": ...}`) → the environment goes back
//! to a known-good release, every service together, once.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry_aws::serve!(ferry_aws::handlers::rollback)
}
