//! ferry-reconcile: on its schedule (every lane) or a direct invoke (one lane),
//! read what AWS says and drive the ledger and the estate to where the events
//! that were lost would have.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry_aws::serve!(ferry_aws::handlers::reconcile)
}
