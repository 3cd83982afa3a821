//! The end-to-end harness: a moto server per test (with ferry's ECS extensions,
//! `tests/emulator/ecs_behaviours.py`), the sample `shop` estate seeded into it
//! through the AWS SDK, and helpers that turn emulator state changes into the
//! EventBridge events AWS would deliver.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_sdk_ecs::types as ecs;
use ferry_aws::timers::TimerTarget;
use ferry_aws::AwsEngine;
use ferry_core::config::Config;
use serde_json::{json, Value};

pub const REGION: &str = "eu-west-1";
pub const ACCOUNT: &str = "123456789012";
pub const TABLE: &str = "ferry-ledger";
pub const CLUSTER: &str = "shop-prod";
pub const PARAMETER: &str = "/shop/prod/compute/currentImageTag";
pub const SERVICES: [&str; 3] = ["api", "worker", "scheduler"];
pub const MIGRATION_FAMILY: &str = "shop-migrate";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn registry() -> String {
    format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com")
}

/// A moto server on loopback, gone when this value drops (also on a failed test:
/// the child is killed, and it exits by itself when its stdin closes).
pub struct Emulator {
    child: Child,
    pub endpoint: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub sdk: SdkConfig,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    pub fn start() -> Emulator {
        let root = repo_root();
        let python = std::env::var("FERRY_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join(".venv/bin/python"));
        assert!(
            python.exists(),
            "no Python with moto at {} — run scripts/test, which installs the emulator into .venv",
            python.display()
        );
        let dir = std::env::temp_dir().join(format!(
            "ferry-emulator-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ready = dir.join("ready.json");
        let log = std::fs::File::create(dir.join("emulator.log")).expect("log file");
        let child = Command::new(&python)
            .arg(root.join("tests/emulator/ferry_emulator.py"))
            .args(["--port", "0", "--region", REGION, "--ready-file"])
            .arg(&ready)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start the emulator");
        let mut emulator = Emulator {
            child,
            endpoint: String::new(),
            subnets: Vec::new(),
            security_groups: Vec::new(),
            sdk: SdkConfig::builder().build(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let info: Value = loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                if let Ok(v) = serde_json::from_str(&text) {
                    break v;
                }
            }
            if let Ok(Some(status)) = emulator.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("emulator.log")).unwrap_or_default();
                panic!("the emulator exited ({status}):\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "the emulator did not start in 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let strings = |key: &str| -> Vec<String> {
            info[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        emulator.endpoint = info["endpoint"].as_str().expect("endpoint").to_owned();
        emulator.subnets = strings("subnets");
        emulator.security_groups = strings("security_groups");
        emulator.sdk = SdkConfig::builder()
            .region(Region::new(REGION))
            .endpoint_url(&emulator.endpoint)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "testing", "testing", None, None, "emulator",
            )))
            .behavior_version(BehaviorVersion::latest())
            // CloudWatch speaks RPC v2 CBOR: the emulator serves it
            // (tests/emulator/cloudwatch_behaviours.py).
            .http_client(ferry_aws::clients::http_client())
            .timeout_config(ferry_aws::clients::timeouts())
            .build();
        emulator
    }

    pub fn ecs(&self) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&self.sdk)
    }
    pub fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.sdk)
    }
    pub fn ecr(&self) -> aws_sdk_ecr::Client {
        aws_sdk_ecr::Client::new(&self.sdk)
    }
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }
    pub fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
    }
    pub fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.sdk)
    }
    pub fn scheduler(&self) -> aws_sdk_scheduler::Client {
        aws_sdk_scheduler::Client::new(&self.sdk)
    }

    /// POST to the emulator's control routes (`/_ferry/...`).
    pub fn control(&self, path: &str, body: &Value) -> Value {
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).expect("connect to the emulator");
        let body = body.to_string();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        assert!(
            head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
            "control route {path} answered {head}\n{body}"
        );
        serde_json::from_str(body.trim()).unwrap_or(Value::Null)
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What the engine's bake timers invoke in the emulator's account: ferry-watch
/// as the local stack names it, and a scheduler role (moto checks neither).
pub fn timer_target() -> TimerTarget {
    TimerTarget {
        target_arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:ferry-local-watch"),
        role_arn: format!("arn:aws:iam::{ACCOUNT}:role/ferry-local-SchedulerRole"),
        dead_letter_arn: Some(format!(
            "arn:aws:sqs:{REGION}:{ACCOUNT}:ferry-local-FailedInvocationsQueue"
        )),
    }
}

pub fn shop_config() -> String {
    shop_config_with(&SERVICES.map(str::to_owned))
}

pub fn shop_config_with(services: &[String]) -> String {
    let services = services
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[apps.shop]
repository = "shop"

[apps.shop.environments.prod]
cluster = "{CLUSTER}"
services = [{services}]
tags = {{ semver = ">=0.1.0" }}
image_tag_parameter = "{PARAMETER}"
migration = {{ task_family = "{MIGRATION_FAMILY}", timeout = "15m" }}
alarms = ["shop-prod-5xx"]
"#
    )
}

/// The sample estate: ECR repository `shop` with 0.9.0 running everywhere, three
/// awsvpc Fargate services, a migration family, secrets in Secrets Manager and SSM.
pub struct Shop {
    pub emulator: Emulator,
    pub services: Vec<String>,
    pub config: Arc<Config>,
    pub secret_arn: String,
}

impl Shop {
    pub async fn start() -> Shop {
        Self::start_with(&shop_config()).await
    }

    /// The estate with `count` services (for measuring fan-out).
    pub async fn start_sized(count: usize) -> Shop {
        let services: Vec<String> = (0..count).map(|i| format!("svc-{i:02}")).collect();
        let mut shop = Self::start_services(&shop_config_with(&services), services.clone()).await;
        shop.services = services;
        shop
    }

    /// `count` lanes: environments `e00`, `e01`, … of app `shop`, each with one
    /// service (`svc-00`, … in cluster shop-prod) of repository `shop`, its own
    /// image-tag parameter, no migration and no alarm.
    pub async fn start_lanes(count: usize) -> Shop {
        let services: Vec<String> = (0..count).map(|i| format!("svc-{i:02}")).collect();
        let mut config = "[apps.shop]\nrepository = \"shop\"\n".to_owned();
        for i in 0..count {
            config.push_str(&format!(
                "\n[apps.shop.environments.e{i:02}]\ncluster = \"{CLUSTER}\"\nservices = [\"svc-{i:02}\"]\ntags = {{ semver = \">=0.1.0\" }}\nimage_tag_parameter = \"/shop/e{i:02}/compute/currentImageTag\"\n"
            ));
        }
        let shop = Self::start_services(&config, services).await;
        for i in 0..count {
            shop.emulator
                .ssm()
                .put_parameter()
                .name(format!("/shop/e{i:02}/compute/currentImageTag"))
                .value("0.9.0")
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .send()
                .await
                .expect("image tag parameter");
        }
        shop
    }

    pub async fn start_with(config_toml: &str) -> Shop {
        Self::start_services(config_toml, SERVICES.map(str::to_owned).to_vec()).await
    }

    async fn start_services(config_toml: &str, services: Vec<String>) -> Shop {
        let emulator = Emulator::start();
        let config = Arc::new(Config::from_toml(config_toml).expect("test config is valid"));
        let dynamodb = emulator.dynamodb();
        dynamodb
            .create_table()
            .table_name(TABLE)
            .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk"))
            .attribute_definitions(attr("sk"))
            .key_schema(key("pk", aws_sdk_dynamodb::types::KeyType::Hash))
            .key_schema(key("sk", aws_sdk_dynamodb::types::KeyType::Range))
            .send()
            .await
            .expect("create ledger table");
        emulator
            .ecr()
            .create_repository()
            .repository_name("shop")
            .send()
            .await
            .expect("create repository");
        let secret_arn = emulator
            .secrets()
            .create_secret()
            .name("shop/prod/db")
            .secret_string("not-read-by-ferry")
            .send()
            .await
            .expect("secret")
            .arn
            .expect("secret arn");
        emulator
            .ssm()
            .put_parameter()
            .name("/shop/prod/api-key")
            .value("not-read-by-ferry")
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("secure parameter");
        let shop = Shop {
            emulator,
            services: services.clone(),
            config,
            secret_arn,
        };
        let baseline = shop.push("0.9.0").await;
        shop.emulator
            .ssm()
            .put_parameter()
            .name(PARAMETER)
            .value("0.9.0")
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .send()
            .await
            .expect("image tag parameter");
        let ecs = shop.emulator.ecs();
        ecs.create_cluster()
            .cluster_name(CLUSTER)
            .send()
            .await
            .expect("cluster");
        let image = format!("{}/shop@{baseline}", registry());
        for service in &services {
            let service = service.as_str();
            let definition = shop.task_definition(&format!("shop-{service}"), service, &image);
            let arn = register(&ecs, definition).await;
            ecs.create_service()
                .cluster(CLUSTER)
                .service_name(service)
                .task_definition(arn)
                .desired_count(2)
                .launch_type(ecs::LaunchType::Fargate)
                .network_configuration(shop.network())
                .deployment_configuration(
                    ecs::DeploymentConfiguration::builder()
                        .deployment_circuit_breaker(
                            ecs::DeploymentCircuitBreaker::builder()
                                .enable(true)
                                .rollback(true)
                                .build(),
                        )
                        .maximum_percent(200)
                        .minimum_healthy_percent(100)
                        .build(),
                )
                .send()
                .await
                .expect("service");
        }
        register(
            &ecs,
            shop.task_definition(MIGRATION_FAMILY, "migrate", &image),
        )
        .await;
        shop
    }

    pub fn network(&self) -> ecs::NetworkConfiguration {
        ecs::NetworkConfiguration::builder()
            .awsvpc_configuration(
                ecs::AwsVpcConfiguration::builder()
                    .set_subnets(Some(self.emulator.subnets.clone()))
                    .set_security_groups(Some(self.emulator.security_groups.clone()))
                    .assign_public_ip(ecs::AssignPublicIp::Disabled)
                    .build()
                    .expect("awsvpc"),
            )
            .build()
    }

    pub fn task_definition(
        &self,
        family: &str,
        container: &str,
        image: &str,
    ) -> aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder
    {
        self.emulator
            .ecs()
            .register_task_definition()
            .family(family)
            .network_mode(ecs::NetworkMode::Awsvpc)
            .requires_compatibilities(ecs::Compatibility::Fargate)
            .cpu("256")
            .memory("512")
            .execution_role_arn(format!("arn:aws:iam::{ACCOUNT}:role/shop-execution"))
            .task_role_arn(format!("arn:aws:iam::{ACCOUNT}:role/shop-task"))
            .container_definitions(
                ecs::ContainerDefinition::builder()
                    .name(container)
                    .image(image)
                    .essential(true)
                    .cpu(256)
                    .memory(512)
                    .environment(
                        ecs::KeyValuePair::builder()
                            .name("APP_ROLE")
                            .value(container)
                            .build(),
                    )
                    .secrets(
                        ecs::Secret::builder()
                            .name("DATABASE_URL")
                            .value_from(format!("{}:url::", self.secret_arn))
                            .build()
                            .expect("secret"),
                    )
                    .secrets(
                        ecs::Secret::builder()
                            .name("API_KEY")
                            .value_from(format!(
                                "arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/shop/prod/api-key"
                            ))
                            .build()
                            .expect("secret"),
                    )
                    .build(),
            )
            .tags(ecs::Tag::builder().key("team").value("shop").build())
    }

    /// Pushes a new image manifest under `tag`; returns its digest.
    pub async fn push(&self, tag: &str) -> String {
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023,
                       "digest": format!("sha256:{:064x}", tag.bytes().fold(7u128, |a, b| a.wrapping_mul(31).wrapping_add(b as u128)))},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654,
                        // moto derives the image digest from the layer digests.
                        "digest": format!("sha256:{:064x}", tag.bytes().fold(11u128, |a, b| a.wrapping_mul(131).wrapping_add(b as u128)))}],
            "annotations": {"tag": tag}
        });
        let out = self
            .emulator
            .ecr()
            .put_image()
            .repository_name("shop")
            .image_manifest(manifest.to_string())
            .image_tag(tag)
            .send()
            .await
            .expect("push image");
        out.image()
            .and_then(|i| i.image_id())
            .and_then(|i| i.image_digest())
            .expect("digest")
            .to_owned()
    }

    /// The digest ECR holds under `tag` in repository `shop`.
    pub async fn image_digest(&self, tag: &str) -> String {
        self.emulator
            .ecr()
            .describe_images()
            .repository_name("shop")
            .image_ids(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_tag(tag)
                    .build(),
            )
            .send()
            .await
            .expect("DescribeImages")
            .image_details()
            .first()
            .and_then(|d| d.image_digest())
            .expect("a digest")
            .to_owned()
    }

    pub fn engine(&self) -> AwsEngine {
        ferry_aws::engine(
            &self.emulator.sdk,
            self.config.clone(),
            TABLE,
            "default",
            &timer_target(),
        )
    }

    pub fn engine_observed(&self, calls: &CallLog) -> AwsEngine {
        ferry_aws::engine_observed(
            &self.emulator.sdk,
            self.config.clone(),
            TABLE,
            "default",
            &timer_target(),
            Some(calls.clone()),
        )
    }

    /// The migration task ferry started for a release, from ECS.
    pub async fn migration_tasks(&self) -> Vec<ecs::Task> {
        let ecs = self.emulator.ecs();
        let arns = ecs
            .list_tasks()
            .cluster(CLUSTER)
            .family(MIGRATION_FAMILY)
            .send()
            .await
            .expect("list tasks")
            .task_arns
            .unwrap_or_default();
        let mut stopped = ecs
            .list_tasks()
            .cluster(CLUSTER)
            .family(MIGRATION_FAMILY)
            .desired_status(ecs::DesiredStatus::Stopped)
            .send()
            .await
            .expect("list tasks")
            .task_arns
            .unwrap_or_default();
        stopped.extend(arns);
        stopped.sort();
        stopped.dedup();
        if stopped.is_empty() {
            return Vec::new();
        }
        ecs.describe_tasks()
            .cluster(CLUSTER)
            .set_tasks(Some(stopped))
            .send()
            .await
            .expect("describe tasks")
            .tasks
            .unwrap_or_default()
    }

    /// Stops a task the way the scenario says (see ecs_behaviours.py) and returns
    /// the `ECS Task State Change` event ECS would emit for it.
    pub async fn stop_task(&self, task_arn: &str, how: &str) -> Value {
        let ecs = self.emulator.ecs();
        ecs.stop_task()
            .cluster(CLUSTER)
            .task(task_arn)
            .reason(how)
            .send()
            .await
            .expect("stop task");
        let task = ecs
            .describe_tasks()
            .cluster(CLUSTER)
            .tasks(task_arn)
            .send()
            .await
            .expect("describe task")
            .tasks
            .unwrap_or_default()
            .pop()
            .expect("task");
        task_state_change(&task)
    }

    /// Ends a service's PRIMARY deployment in the emulator and returns the
    /// `ECS Deployment State Change` event ECS would emit.
    pub async fn finish_deployment(&self, service: &str, outcome: &str) -> Value {
        let described = self
            .emulator
            .ecs()
            .describe_services()
            .cluster(CLUSTER)
            .services(service)
            .send()
            .await
            .expect("describe service");
        let svc = described.services().first().expect("service").clone();
        let deployment = svc
            .deployments()
            .iter()
            .find(|d| d.status() == Some("PRIMARY"))
            .and_then(|d| d.id())
            .expect("primary deployment")
            .to_owned();
        self.emulator.control(
            "/_ferry/deployments/finish",
            &json!({"cluster": CLUSTER, "service": service, "deploymentId": deployment, "outcome": outcome}),
        );
        deployment_state_change(svc.service_arn().expect("arn"), &deployment, outcome)
    }

    /// What each service runs now: service → task-definition ARN.
    pub async fn services_task_definitions(&self) -> BTreeMap<String, String> {
        let out = self
            .emulator
            .ecs()
            .describe_services()
            .cluster(CLUSTER)
            .set_services(Some(self.services.clone()))
            .send()
            .await
            .expect("describe services");
        out.services()
            .iter()
            .map(|s| {
                (
                    s.service_name().unwrap_or_default().to_owned(),
                    s.task_definition().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Number of deployments each service has had started (the PRIMARY and ACTIVE ones).
    pub async fn deployments(&self) -> BTreeMap<String, usize> {
        let out = self
            .emulator
            .ecs()
            .describe_services()
            .cluster(CLUSTER)
            .set_services(Some(self.services.clone()))
            .send()
            .await
            .expect("describe services");
        out.services()
            .iter()
            .map(|s| {
                (
                    s.service_name().unwrap_or_default().to_owned(),
                    s.deployments().len(),
                )
            })
            .collect()
    }

    /// The image-tag parameter's history: (version, value, labels).
    pub async fn parameter_history(&self) -> Vec<(i64, String, Vec<String>)> {
        let out = self
            .emulator
            .ssm()
            .get_parameter_history()
            .name(PARAMETER)
            .send()
            .await
            .expect("parameter history");
        out.parameters()
            .iter()
            .map(|p| {
                (
                    p.version(),
                    p.value().unwrap_or_default().to_owned(),
                    p.labels().to_vec(),
                )
            })
            .collect()
    }

    /// Every revision of a family, oldest first.
    pub async fn revisions(&self, family: &str) -> Vec<String> {
        let mut arns = self
            .emulator
            .ecs()
            .list_task_definitions()
            .family_prefix(family)
            .send()
            .await
            .expect("list task definitions")
            .task_definition_arns
            .unwrap_or_default();
        arns.retain(|a| a.contains(&format!("/{family}:")));
        arns.sort_by_key(|a| a.rsplit(':').next().and_then(|r| r.parse::<u32>().ok()));
        arns
    }

    pub async fn release_item(&self, release_id: &str) -> Option<BTreeMap<String, String>> {
        let out = self
            .emulator
            .dynamodb()
            .get_item()
            .table_name(TABLE)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("release#{release_id}")),
            )
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S("release".into()),
            )
            .send()
            .await
            .expect("get item");
        out.item()
            .map(|item| item.iter().map(|(k, v)| (k.clone(), flatten(v))).collect())
    }

    /// Everything ferry could have changed, rendered for byte-for-byte comparison.
    pub async fn snapshot(&self) -> String {
        let mut parts = Vec::new();
        for family in [
            "shop-api",
            "shop-worker",
            "shop-scheduler",
            MIGRATION_FAMILY,
        ] {
            parts.push(format!("{family}: {:?}", self.revisions(family).await));
        }
        parts.push(format!(
            "services: {:?}",
            self.services_task_definitions().await
        ));
        parts.push(format!("deployments: {:?}", self.deployments().await));
        parts.push(format!("parameter: {:?}", self.parameter_history().await));
        parts.push(format!(
            "tasks: {:?}",
            self.migration_tasks()
                .await
                .iter()
                .map(|t| t.task_arn().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        ));
        let scan = self
            .emulator
            .dynamodb()
            .scan()
            .table_name(TABLE)
            .send()
            .await
            .expect("scan");
        let mut items: Vec<String> = scan
            .items()
            .iter()
            .map(|i| {
                format!(
                    "{:?}",
                    i.iter()
                        .map(|(k, v)| (k.clone(), flatten(v)))
                        .collect::<BTreeMap<_, _>>()
                )
            })
            .collect();
        items.sort();
        parts.push(format!("ledger: {items:?}"));
        parts.join("\n")
    }
}

fn flatten(v: &aws_sdk_dynamodb::types::AttributeValue) -> String {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::S(s) | A::N(s) => s.clone(),
        A::Bool(b) => b.to_string(),
        A::Ss(v) => {
            let mut v = v.clone();
            v.sort();
            v.join(",")
        }
        A::L(l) => format!("[{}]", l.iter().map(flatten).collect::<Vec<_>>().join(",")),
        A::M(m) => {
            let sorted: BTreeMap<_, _> = m.iter().map(|(k, v)| (k.clone(), flatten(v))).collect();
            format!("{sorted:?}")
        }
        other => format!("{other:?}"),
    }
}

fn attr(name: &str) -> aws_sdk_dynamodb::types::AttributeDefinition {
    aws_sdk_dynamodb::types::AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
        .build()
        .expect("attribute")
}

fn key(
    name: &str,
    kind: aws_sdk_dynamodb::types::KeyType,
) -> aws_sdk_dynamodb::types::KeySchemaElement {
    aws_sdk_dynamodb::types::KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("key")
}

pub async fn register(
    _ecs: &aws_sdk_ecs::Client,
    request: aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder,
) -> String {
    request
        .send()
        .await
        .expect("register task definition")
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .expect("arn")
        .to_owned()
}

fn iso(t: Option<&aws_smithy_types::DateTime>) -> Value {
    t.and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
        .map(Value::String)
        .unwrap_or(Value::Null)
}

fn envelope(source: &str, detail_type: &str, resources: Vec<String>, detail: Value) -> Value {
    json!({
        "version": "0",
        "id": format!("{:08x}-0000-4000-8000-{:012x}", unique(), std::process::id()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": REGION,
        "resources": resources,
        "detail": detail,
    })
}

/// The `ECR Image Action` event ECR emits for a successful push.
pub fn ecr_push_event(repository: &str, tag: &str, digest: &str) -> Value {
    envelope(
        "aws.ecr",
        "ECR Image Action",
        vec![],
        json!({
            "result": "SUCCESS",
            "repository-name": repository,
            "image-digest": digest,
            "action-type": "PUSH",
            "image-tag": tag,
        }),
    )
}

/// The `ECS Task State Change` event ECS emits for a task, from its described state.
pub fn task_state_change(task: &ecs::Task) -> Value {
    let containers: Vec<Value> = task
        .containers()
        .iter()
        .map(|c| {
            let mut v = json!({
                "containerArn": c.container_arn(),
                "lastStatus": c.last_status(),
                "name": c.name(),
                "image": c.image(),
                "taskArn": c.task_arn(),
            });
            if let Some(code) = c.exit_code() {
                v["exitCode"] = json!(code);
            }
            if let Some(reason) = c.reason() {
                v["reason"] = json!(reason);
            }
            v
        })
        .collect();
    let mut detail = json!({
        "clusterArn": task.cluster_arn(),
        "containers": containers,
        "createdAt": iso(task.created_at()),
        "desiredStatus": task.desired_status(),
        "group": task.group(),
        "lastStatus": task.last_status(),
        "launchType": task.launch_type().map(|l| l.as_str()),
        "startedAt": iso(task.started_at()),
        "startedBy": task.started_by(),
        "stoppedAt": iso(task.stopped_at()),
        "stoppedReason": task.stopped_reason(),
        "taskArn": task.task_arn(),
        "taskDefinitionArn": task.task_definition_arn(),
        "version": 3,
    });
    if let Some(code) = task.stop_code() {
        detail["stopCode"] = json!(code.as_str());
    }
    envelope(
        "aws.ecs",
        "ECS Task State Change",
        vec![task.task_arn().unwrap_or_default().to_owned()],
        detail,
    )
}

pub fn deployment_state_change(service_arn: &str, deployment: &str, outcome: &str) -> Value {
    let (event_type, name, reason) = match outcome {
        "COMPLETED" => (
            "INFO",
            "SERVICE_DEPLOYMENT_COMPLETED",
            format!("ECS deployment {deployment} completed."),
        ),
        _ => (
            "ERROR",
            "SERVICE_DEPLOYMENT_FAILED",
            "ECS deployment circuit breaker: tasks failed to start.".to_owned(),
        ),
    };
    envelope(
        "aws.ecs",
        "ECS Deployment State Change",
        vec![service_arn.to_owned()],
        json!({
            "eventType": event_type,
            "eventName": name,
            "deploymentId": deployment,
            "updatedAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "reason": reason,
        }),
    )
}

pub fn outcome(reply: &Value) -> &str {
    reply["decisions"][0]["outcome"].as_str().unwrap_or("?")
}

pub fn release_id(reply: &Value) -> String {
    reply["decisions"][0]["release_id"]
        .as_str()
        .expect("a release id")
        .to_owned()
}

impl Shop {
    /// Pushes `tag`, delivers the push event, stops the migration with `how`.
    /// Returns (release id, gate reply).
    pub async fn push_and_migrate(&self, tag: &str, how: &str) -> (String, Value) {
        let engine = self.engine();
        let digest = self.push(tag).await;
        let reply = ferry_aws::handlers::deploy(
            &engine,
            REGION,
            ecr_push_event("shop", tag, &digest),
            now(),
        )
        .await
        .expect("deploy");
        assert_eq!(outcome(&reply), "migrating", "{reply}");
        let id = release_id(&reply);
        let task = reply["decisions"][0]["task"]
            .as_str()
            .expect("task")
            .to_owned();
        let stopped = self.stop_task(&task, how).await;
        let gate = ferry_aws::handlers::gate(&engine, REGION, stopped, now())
            .await
            .expect("gate");
        (id, gate)
    }

    /// Every service's deployment completes; returns the watch replies.
    pub async fn complete_all(&self) -> Vec<Value> {
        let engine = self.engine();
        let mut replies = Vec::new();
        for service in self.services.clone() {
            let event = self.finish_deployment(&service, "COMPLETED").await;
            replies.push(
                ferry_aws::handlers::watch(&engine, REGION, event, now())
                    .await
                    .expect("watch"),
            );
        }
        replies
    }

    /// A full release of `tag`: migration passes, every service completes.
    /// Returns the release id and what each service runs afterwards.
    pub async fn release(&self, tag: &str) -> (String, BTreeMap<String, String>) {
        let (id, gate) = self.push_and_migrate(tag, "ferry-emulator:exit=0").await;
        assert_eq!(outcome(&gate), "deploying", "{gate}");
        let replies = self.complete_all().await;
        assert_eq!(
            replies.last().map(|r| outcome(r).to_owned()).as_deref(),
            Some("baking"),
            "{replies:?}"
        );
        let ended = self.end_bake(&id).await;
        assert_eq!(outcome(&ended), "succeeded", "{ended}");
        (id, self.services_task_definitions().await)
    }

    /// The end-of-bake schedule fires: its input delivered to ferry-watch.
    pub async fn end_bake(&self, release_id: &str) -> Value {
        let engine = self.engine();
        let input = serde_json::json!({ "bake_ended": { "release_id": release_id } });
        ferry_aws::handlers::watch(&engine, REGION, input, now())
            .await
            .expect("watch")
    }

    /// The `CloudWatch Alarm State Change` event CloudWatch emits.
    pub fn alarm_event(&self, alarm: &str, state: &str, previous: &str) -> Value {
        envelope(
            "aws.cloudwatch",
            "CloudWatch Alarm State Change",
            vec![format!(
                "arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm}"
            )],
            json!({
                "alarmName": alarm,
                "state": {"value": state, "reason": "Threshold Crossed: 1 datapoint [12.0] was greater than the threshold (5.0).", "timestamp": "2026-11-23T14:00:00.000+0000"},
                "previousState": {"value": previous, "reason": "Threshold Crossed", "timestamp": "2026-11-23T13:00:00.000+0000"},
                "configuration": {"metrics": [], "description": "5xx on the shop api"}
            }),
        )
    }
}

pub fn now() -> u64 {
    ferry_aws::runtime::now()
}

/// Every AWS call the engine made: operation, start and end. Sequential round
/// trips are the longest chain of calls where each starts after the previous ended.
#[derive(Debug, Clone, Default)]
pub struct CallLog {
    calls: Arc<Mutex<Vec<Call>>>,
}

#[derive(Debug, Clone)]
pub struct Call {
    pub operation: String,
    pub started: Instant,
    pub ended: Option<Instant>,
}

impl CallLog {
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().expect("call log"))
    }

    /// Depth of the dependency chain: a call is one round after every call that
    /// had ended before it started.
    pub fn round_trips(calls: &[Call]) -> usize {
        let mut depth = vec![0usize; calls.len()];
        let mut order: Vec<usize> = (0..calls.len()).collect();
        order.sort_by_key(|&i| calls[i].started);
        for (n, &i) in order.iter().enumerate() {
            let before = order[..n]
                .iter()
                .filter(|&&j| calls[j].ended.is_some_and(|e| e <= calls[i].started))
                .map(|&j| depth[j])
                .max()
                .unwrap_or(0);
            depth[i] = before + 1;
        }
        depth.into_iter().max().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy)]
struct CallIndex(usize);

impl aws_smithy_types::config_bag::Storable for CallIndex {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// `X-Amz-Target: AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition` →
/// `ecs:RegisterTaskDefinition` (every service ferry calls speaks awsJson).
fn operation_of(target: &str) -> String {
    let (service, operation) = target.split_once('.').unwrap_or(("?", target));
    let service = if service.contains("ContainerService") {
        "ecs"
    } else if service.contains("ContainerRegistry") {
        "ecr"
    } else if service.contains("DynamoDB") {
        "dynamodb"
    } else if service.contains("SSM") {
        "ssm"
    } else if service.contains("secretsmanager") {
        "secretsmanager"
    } else if service.contains("Events") {
        "events"
    } else {
        service
    };
    format!("{service}:{operation}")
}

impl aws_sdk_ecs::config::Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }

    fn read_before_execution(
        &self,
        _context: &aws_sdk_ecs::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut aws_sdk_ecs::config::ConfigBag,
    ) -> Result<(), aws_sdk_ecs::error::BoxError> {
        let mut calls = self.calls.lock().expect("call log");
        calls.push(Call {
            operation: String::new(),
            started: Instant::now(),
            ended: None,
        });
        cfg.interceptor_state()
            .store_put(CallIndex(calls.len() - 1));
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_ecs::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_ecs::config::RuntimeComponents,
        cfg: &mut aws_sdk_ecs::config::ConfigBag,
    ) -> Result<(), aws_sdk_ecs::error::BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .to_owned();
        // CloudWatch (RPC v2 CBOR) and Scheduler (restJson) name the operation
        // in the path, not in X-Amz-Target: the SDK's operation metadata names it.
        let operation = match cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>() {
            Some(m) if target.is_empty() => {
                format!("{}:{}", m.service().to_ascii_lowercase(), m.name())
            }
            _ => operation_of(&target),
        };
        if let Some(CallIndex(i)) = cfg.load::<CallIndex>().copied() {
            if let Some(call) = self.calls.lock().expect("call log").get_mut(i) {
                call.operation = operation;
            }
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        _context: &aws_sdk_ecs::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_ecs::config::RuntimeComponents,
        cfg: &mut aws_sdk_ecs::config::ConfigBag,
    ) -> Result<(), aws_sdk_ecs::error::BoxError> {
        if let Some(CallIndex(i)) = cfg.load::<CallIndex>().copied() {
            if let Some(call) = self.calls.lock().expect("call log").get_mut(i) {
                call.ended = Some(Instant::now());
            }
        }
        Ok(())
    }
}
