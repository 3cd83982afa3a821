//! ferry-deploy: ECR push (or a direct `{"deploy": ...}` invoke) → a claimed,
//! preflighted release whose migration is running.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry_aws::serve!(ferry_aws::handlers::deploy)
}
