//! ferry-gate: the migration task stopped → roll the release out to every
//! service, or fail it and restore the image tag.

use ferry_aws::handlers;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let ferry = ferry_aws::runtime::Ferry::from_env().await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async {
        let (engine, _) = match ferry.engine() {
            Ok(ready) => ready,
            Err(e) => return Ok(handlers::respond(Err(e))?),
        };
        let result = handlers::gate(engine, event.payload, ferry_aws::runtime::now()).await;
        Ok::<_, Error>(handlers::respond(result)?)
    }))
    .await
}
