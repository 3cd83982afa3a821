//! ferry-gate: the migration task stopped → roll the release out to every
//! service, or fail it and restore the image tag.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry_aws::serve!(ferry_aws::handlers::gate)
}
