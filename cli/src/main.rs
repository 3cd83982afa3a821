//! `ferry`: the operator's command line. Reads the ledger and the account;
//! every change goes through ferry's functions (Lambda Invoke).

mod args;
mod aws;
mod check;
mod diff;
mod error;
mod plan;
mod render;
mod request;
mod views;
mod wait;

use std::process::ExitCode;

use clap::Parser;
use serde_json::{json, Value};

use crate::args::{Cli, Command, ConfigCommand, Follow, LaneArg};
use crate::aws::{Aws, Reply};
use crate::error::{CliError, Exit};

fn main() -> ExitCode {
    // Usage errors exit 2 here, before anything is asked of AWS.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ferry: cannot start: {e}");
            return ExitCode::from(Exit::Aws.code());
        }
    };
    let exit = runtime.block_on(run(cli)).unwrap_or_else(|error| {
        eprintln!("ferry: {}", chain(&error));
        error.exit()
    });
    ExitCode::from(exit.code())
}

/// The error and its sources, the SDK's included, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(&format!(": {more}"));
        }
        source = s.source();
    }
    text
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    );
}

async fn run(cli: Cli) -> Result<Exit, CliError> {
    let aws = Aws::new(&cli.global).await;
    match &cli.command {
        Command::Status(a) => {
            let config = aws.config().await?;
            let lanes = views::lanes(&config, a.scope.as_ref())?;
            let ledger = aws.ledger(&aws.table().await?);
            let status = views::read_status(&ledger, &lanes, now()).await?;
            if a.json {
                print_json(&status);
            } else {
                println!("{}", views::status_table(&status));
            }
            Ok(Exit::Ok)
        }
        Command::History(a) => {
            let ledger = aws.ledger(&aws.table().await?);
            let releases = ledger
                .releases_of(&a.lane.app, &a.lane.env)
                .await
                .map_err(|e| CliError::aws(format!("listing the releases of {}", a.lane), e))?;
            let entries = views::history(releases, a.limit);
            if a.json {
                print_json(&entries);
            } else if entries.is_empty() {
                println!("no release of {} in the ledger", a.lane);
            } else {
                println!("{}", views::history_table(&entries, now()));
            }
            Ok(Exit::Ok)
        }
        Command::Plan(a) => {
            let plan = plan::plan(&aws, a).await?;
            if a.json {
                print_json(&plan);
            } else {
                println!("{}", plan::text(&plan));
            }
            Ok(plan.exit())
        }
        Command::Wait(a) => {
            let config = aws.config().await?;
            let env = environment(&config, &a.lane)?;
            let mut progress = wait::Progress::new(a.json);
            let ending = wait::follow(&aws, env, &a.digest, a.timeout, &mut progress).await?;
            finish(&ending, a.json);
            Ok(ending.exit)
        }
        Command::Config(ConfigCommand::Check(a)) => config_check(&aws, a).await,
        command => {
            let Some(request) = request::of(command) else {
                return Err(CliError::Usage("nothing to do".to_owned()));
            };
            invoke(&aws, command, &request).await
        }
    }
}

fn environment<'a>(
    config: &'a ferry_core::config::Config,
    lane: &LaneArg,
) -> Result<&'a ferry_core::config::Environment, CliError> {
    config.environment(&lane.app, &lane.env).ok_or_else(|| {
        CliError::NotFound(format!(
            "ferry's config has no environment {lane}; `ferry status` lists them"
        ))
    })
}

fn finish(ending: &wait::Ending, json: bool) {
    if json {
        print_json(&json!({
            "release": ending.release,
            "state": ending.state,
            "message": ending.message,
            "exit": ending.exit.code(),
        }));
    } else if ending.exit == Exit::Ok {
        println!("{}", ending.message);
    } else {
        eprintln!("ferry: {}", ending.message);
    }
}

fn follow_of(command: &Command) -> (Option<&Follow>, bool) {
    match command {
        Command::Deploy(a) => (Some(&a.follow), a.json),
        Command::Retry(a) => (Some(&a.follow), a.json),
        Command::Unfreeze(a) | Command::Approve(a) => (Some(&a.follow), a.json),
        Command::Promote(a) => (Some(&a.follow), a.json),
        Command::Rollback(a) => (None, a.json),
        Command::Reject(a) => (None, a.json),
        Command::Reconcile(a) => (None, a.json),
        _ => (None, false),
    }
}

async fn invoke(
    aws: &Aws,
    command: &Command,
    request: &request::Request,
) -> Result<Exit, CliError> {
    let (follow, json) = follow_of(command);
    let reply = aws.invoke(request).await?;
    let decisions = match reply {
        Reply::Rejected { kind, message } => {
            if json {
                print_json(&json!({"ok": false, "error": {"kind": kind, "message": message}}));
            } else {
                eprintln!(
                    "ferry: {} refused the request ({kind}): {message}",
                    request.function.name(&aws.global.stack)
                );
            }
            return Ok(match kind.as_str() {
                "bad_input" | "bad_request" => Exit::Bad,
                _ => Exit::Aws,
            });
        }
        Reply::Decisions(decisions) => decisions,
    };
    if json && !follow.is_some_and(|f| f.wait) {
        print_json(&json!({"ok": true, "decisions": decisions}));
    } else if !json {
        for d in &decisions {
            println!("{}", render::decision(d));
        }
    }
    let exit = render::decisions_exit(&decisions);
    let Some(follow) = follow.filter(|f| f.wait) else {
        return Ok(exit);
    };
    if exit != Exit::Ok {
        return Ok(exit);
    }
    // Follow the release the decision names (its digest's newest generation).
    let Some((lane, digest)) = followed(aws, &decisions).await? else {
        if !json {
            println!("no release to follow");
        }
        return Ok(exit);
    };
    let config = aws.config().await?;
    let env = environment(&config, &lane)?;
    let mut progress = wait::Progress::new(json);
    let ending = wait::follow(aws, env, &digest, follow.timeout, &mut progress).await?;
    finish(&ending, json);
    Ok(ending.exit)
}

/// The lane and digest of the release the decisions name.
async fn followed(aws: &Aws, decisions: &[Value]) -> Result<Option<(LaneArg, String)>, CliError> {
    use ferry_core::ports::Ledger;
    let Some(id) = decisions
        .iter()
        .filter_map(|d| d.get("release_id").and_then(Value::as_str))
        .find_map(|id| ferry_core::release::ReleaseId::parse(id).ok())
    else {
        return Ok(None);
    };
    let ledger = aws.ledger(&aws.table().await?);
    let record = ledger
        .release(&id)
        .await
        .map_err(|e| CliError::aws(format!("reading release {id}"), e))?;
    Ok(record.map(|r| {
        (
            LaneArg {
                app: r.lane.app.clone(),
                env: r.lane.env.clone(),
            },
            r.digest,
        )
    }))
}

async fn config_check(aws: &Aws, a: &args::ConfigCheckArgs) -> Result<Exit, CliError> {
    let (origin, text) = match &a.file {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path).map_err(|source| {
                CliError::from(ferry_aws::config_source::ConfigSourceError::File {
                    path: path.display().to_string(),
                    source,
                })
            })?,
        ),
        None => {
            let name = aws.config_parameter().await?;
            use ferry_core::ports::Parameters;
            let text = aws
                .parameters()
                .get(&name)
                .await
                .map_err(|e| CliError::aws(format!("reading config parameter {name}"), e))?
                .ok_or_else(|| {
                    CliError::from(
                        ferry_aws::config_source::ConfigSourceError::MissingParameter {
                            name: name.clone(),
                        },
                    )
                })?;
            (format!("SSM parameter {name}"), text)
        }
    };
    let config = match ferry_core::config::Config::from_toml(&text) {
        Ok(config) => config,
        Err(source) => {
            eprintln!(
                "ferry: {}",
                ferry_aws::config_source::ConfigSourceError::Invalid { origin, source }
            );
            return Ok(Exit::Aws);
        }
    };
    let count = config.environments().count();
    println!("{origin}: valid ({count} environment(s))");
    if a.offline {
        return Ok(Exit::Ok);
    }
    let report = check::against_account(aws, &config).await?;
    for line in &report.checked {
        println!("  ok  {line}");
    }
    for warning in &report.warnings {
        println!("  note  {warning}");
    }
    for problem in &report.problems {
        eprintln!("  problem  {problem}");
    }
    if report.problems.is_empty() {
        println!("the account has everything the config names");
        Ok(Exit::Ok)
    } else {
        eprintln!(
            "ferry: {} problem(s): releases in these environments would fail preflight",
            report.problems.len()
        );
        Ok(Exit::Aws)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(line.split_whitespace())
    }

    fn payload(line: &str) -> (request::Function, Value) {
        let cli = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let r = request::of(&cli.command).expect("an invoke");
        (r.function, r.payload)
    }

    #[test]
    fn deploy_invokes_ferry_deploy_with_the_deploy_payload() {
        let (f, p) = payload("ferry deploy shop/prod --tag 1.1.0");
        assert_eq!(f, request::Function::Deploy);
        assert_eq!(
            p,
            json!({"deploy": {"app": "shop", "environment": "prod", "tag": "1.1.0"}})
        );
        let digest = format!("sha256:{}", "8b7c6d5e4f3a2b1c".repeat(4));
        let (_, p) = payload(&format!("ferry deploy shop/prod --digest {digest}"));
        assert_eq!(
            p,
            json!({"deploy": {"app": "shop", "environment": "prod", "digest": digest}})
        );
    }

    #[test]
    fn the_payloads_match_the_functions_fixtures() {
        let fixture = |name: &str| -> Value {
            let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        };
        let digest = "sha256:8b7c6d5e4f3a2b1c8b7c6d5e4f3a2b1c8b7c6d5e4f3a2b1c8b7c6d5e4f3a2b1c";
        for (line, name) in [
            (
                "ferry deploy shop/prod --tag 1.1.0".to_owned(),
                "invoke-deploy-tag.json",
            ),
            (
                format!("ferry deploy shop/prod --digest {digest}"),
                "invoke-deploy-digest.json",
            ),
            (
                "ferry retry shop/prod --tag 1.0.0".to_owned(),
                "invoke-retry.json",
            ),
            (
                "ferry unfreeze shop/prod".to_owned(),
                "invoke-unfreeze.json",
            ),
            (
                "ferry promote shop staging prod".to_owned(),
                "invoke-promote.json",
            ),
            (
                "ferry reconcile shop/prod --repository shop".to_owned(),
                "invoke-reconcile.json",
            ),
        ] {
            assert_eq!(payload(&line).1, fixture(name), "{line}");
        }
        let cli = Cli::try_parse_from([
            "ferry",
            "rollback",
            "shop/prod",
            "--to",
            "1.0.0",
            "--reason",
            "back to 1.0.0 while checkout errors after 1.1.0 are investigated",
        ])
        .unwrap();
        let r = request::of(&cli.command).unwrap();
        assert_eq!(r.function, request::Function::Rollback);
        assert_eq!(r.payload, fixture("invoke-rollback-to-tag.json"));
    }

    #[test]
    fn promote_approve_and_reject_invoke_ferry_deploy_with_their_payloads() {
        assert_eq!(
            payload("ferry promote shop staging prod"),
            (
                request::Function::Deploy,
                json!({"promote": {"app": "shop", "from": "staging", "to": "prod"}})
            )
        );
        assert_eq!(
            payload("ferry approve shop/prod"),
            (
                request::Function::Deploy,
                json!({"approve": {"app": "shop", "environment": "prod"}})
            )
        );
        let cli = Cli::try_parse_from([
            "ferry",
            "reject",
            "shop/prod",
            "--reason",
            "not on a Friday",
        ])
        .unwrap();
        let r = request::of(&cli.command).unwrap();
        assert_eq!(r.function, request::Function::Deploy);
        assert_eq!(
            r.payload,
            json!({"reject": {"app": "shop", "environment": "prod", "reason": "not on a Friday"}})
        );
        let (_, p) = payload("ferry reject shop/prod");
        assert_eq!(
            p["reject"]["reason"],
            "rejected by an operator (ferry reject)"
        );
    }

    #[test]
    fn rollback_without_to_asks_for_the_previous_known_good_with_a_default_reason() {
        let (f, p) = payload("ferry rollback shop/prod");
        assert_eq!(f, request::Function::Rollback);
        assert_eq!(
            p,
            json!({"rollback": {"app": "shop", "environment": "prod", "reason": "rolled back by an operator (ferry rollback)"}})
        );
    }

    #[test]
    fn retry_without_an_image_retries_the_lanes_last_failed_release() {
        let (_, p) = payload("ferry retry shop/prod --force");
        assert_eq!(
            p,
            json!({"retry": {"app": "shop", "environment": "prod", "force": true}})
        );
    }

    #[test]
    fn reconcile_of_everything_sends_an_empty_request() {
        assert_eq!(
            payload("ferry reconcile"),
            (request::Function::Reconcile, json!({"reconcile": {}}))
        );
        assert_eq!(
            payload("ferry reconcile shop").1,
            json!({"reconcile": {"app": "shop"}})
        );
    }

    #[test]
    fn functions_are_named_after_the_stack() {
        assert_eq!(request::Function::Deploy.name("ferry"), "ferry-deploy");
        assert_eq!(
            request::Function::Rollback.name("ferry-local"),
            "ferry-local-rollback"
        );
        assert_eq!(request::Function::Reconcile.name("x"), "x-reconcile");
        let cli = parse("ferry --stack ferry-local status").unwrap();
        assert_eq!(cli.global.stack, "ferry-local");
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for (line, kind) in [
            ("ferry deploy shop --tag 1.0.0", ErrorKind::ValueValidation),
            ("ferry deploy shop/prod", ErrorKind::MissingRequiredArgument),
            ("ferry deploy shop/prod --tag 1.0.0 --digest sha256:00", ErrorKind::ValueValidation),
            ("ferry wait shop/prod --digest 1234", ErrorKind::ValueValidation),
            ("ferry wait shop/prod --digest sha256:8b7c6d5e4f3a2b1c8b7c6d5e4f3a2b1c8b7c6d5e4f3a2b1c8b7c6d5e4f3a2b1c --timeout soon", ErrorKind::ValueValidation),
            ("ferry history shop/prod --limit 0", ErrorKind::ValueValidation),
            ("ferry promote shop staging", ErrorKind::MissingRequiredArgument),
            ("ferry approve shop/pr@d", ErrorKind::ValueValidation),
            ("ferry status a/b/c", ErrorKind::ValueValidation),
            ("ferry frobnicate", ErrorKind::InvalidSubcommand),
            ("ferry --stack 9lives status", ErrorKind::ValueValidation),
            ("ferry deploy shop/prod --tag 1.0.0 --timeout 5m", ErrorKind::MissingRequiredArgument),
        ] {
            let error = parse(line).err().unwrap_or_else(|| panic!("{line} parsed"));
            assert_eq!(error.kind(), kind, "{line}: {error}");
            assert_eq!(error.exit_code(), 2, "{line}");
        }
    }

    #[test]
    fn tag_and_digest_exclude_each_other() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let error = Cli::try_parse_from([
            "ferry",
            "deploy",
            "shop/prod",
            "--tag",
            "1.0.0",
            "--digest",
            &digest,
        ])
        .err()
        .unwrap();
        assert_eq!(error.kind(), ErrorKind::ArgumentConflict);
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn every_command_has_help() {
        use clap::CommandFactory;
        let command = Cli::command();
        command.clone().debug_assert();
        for sub in command.get_subcommands() {
            assert!(sub.get_about().is_some(), "{} has no help", sub.get_name());
        }
        let help = command.clone().render_long_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
    }

    #[test]
    fn wait_takes_a_timeout_in_the_configs_duration_syntax() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let cli = Cli::try_parse_from([
            "ferry",
            "wait",
            "shop/prod",
            "--digest",
            &digest,
            "--timeout",
            "90s",
        ])
        .unwrap();
        let Command::Wait(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.timeout, std::time::Duration::from_secs(90));
        let cli = Cli::try_parse_from(["ferry", "wait", "shop/prod", "--digest", &digest]).unwrap();
        let Command::Wait(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.timeout, std::time::Duration::from_secs(1800));
    }

    #[test]
    fn a_function_error_and_a_refusal_are_told_apart() {
        let failed = aws::parse_reply(
            "ferry-deploy",
            Some("Unhandled"),
            r#"{"errorMessage": "throttled", "errorType": "x"}"#,
        );
        assert!(
            matches!(failed, Err(CliError::FunctionFailed { ref message, .. }) if message == "throttled")
        );
        assert_eq!(failed.unwrap_err().exit(), Exit::Aws);
        let refused = aws::parse_reply("ferry-deploy", None, r#"{"ok": false, "error": {"kind": "bad_request", "message": "no environment shop/qa"}}"#).unwrap();
        assert_eq!(
            refused,
            Reply::Rejected {
                kind: "bad_request".into(),
                message: "no environment shop/qa".into()
            }
        );
        let ok = aws::parse_reply(
            "ferry-deploy",
            None,
            r#"{"ok": true, "decisions": [{"outcome": "unfrozen"}]}"#,
        )
        .unwrap();
        assert_eq!(ok, Reply::Decisions(vec![json!({"outcome": "unfrozen"})]));
        assert!(matches!(
            aws::parse_reply("f", None, "null"),
            Err(CliError::Unreadable { .. })
        ));
    }
}
