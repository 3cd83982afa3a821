//! ferry-rollback: a guarding CloudWatch alarm went to ALARM, or an operator
//! asked (`{"rollback": ...}`, `{"unfreeze": ...}`) → the environment goes back
//! to a known-good release, every service together, once.

use ferry_aws::handlers;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let ferry = ferry_aws::runtime::Ferry::from_env().await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async {
        let (engine, region) = match ferry.engine() {
            Ok(ready) => ready,
            Err(e) => return Ok(handlers::respond(Err(e))?),
        };
        let result =
            handlers::rollback(engine, region, event.payload, ferry_aws::runtime::now()).await;
        Ok::<_, Error>(handlers::respond(result)?)
    }))
    .await
}
