//! ferry-watch: a service deployment finished → when all have, the release
//! succeeds and becomes known-good; when one failed, the release rolls back.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry_aws::serve!(ferry_aws::handlers::watch)
}
