//! ferry's config and tag policies under arbitrary input: any string as a config
//! document, a valid config with a line dropped, repeated, cut or given another
//! value, and any glob, regex or semver pattern checked against any tag. No
//! input panics (a release build aborts on a panic), and every refusal names
//! what is wrong: a config error its key, a pattern or tag error the pattern or tag.
//!
//! `FERRY_FUZZ_CASES` sets the cases per target (400 by default); millions:
//! `FERRY_FUZZ_CASES=1000000 cargo test --release -p ferry-core --test fuzz_config -- --nocapture`.

mod fakes;

use std::time::Instant;

use fakes::{estate_toml, EstateOptions};
use ferry_core::config::{Config, ConfigError};
use ferry_core::tag_policy::TagPolicy;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};

fn cases() -> u32 {
    std::env::var("FERRY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

fn run<S: Strategy>(
    target: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let cases = cases();
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let started = Instant::now();
    let result = runner.run(&strategy, test);
    println!(
        "fuzz {target}: {cases} cases, {} panics or silent refusals, {:.2}s",
        u32::from(result.is_err()),
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Parses `text`: no panic, and a refusal that says where.
fn config_answers(text: &str) -> Result<(), TestCaseError> {
    let parsed = std::panic::catch_unwind(|| Config::from_toml(text))
        .map_err(|_| TestCaseError::fail(format!("from_toml panicked on {text:?}")))?;
    match parsed {
        Ok(_) => Ok(()),
        Err(ConfigError::Parse(message)) if message.trim().is_empty() => Err(TestCaseError::fail(
            format!("a parse error without a message for {text:?}"),
        )),
        Err(error @ ConfigError::Invalid { .. }) => {
            let key = error.key().unwrap_or_default();
            let message = error.to_string();
            if key.is_empty() || !message.contains(key) {
                return Err(TestCaseError::fail(format!(
                    "`{message}` names no key for {text:?}"
                )));
            }
            Ok(())
        }
        Err(_) => Ok(()),
    }
}

/// Values a mutated line may take: TOML of every type, and the config's own words.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"\"".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("true".to_owned()),
        Just("\"0s\"".to_owned()),
        Just("\"99999999999999999999h\"".to_owned()),
        Just("{ glob = \"\" }".to_owned()),
        Just("{ regex = \"(\" }".to_owned()),
        Just("{ semver = \"x\" }".to_owned()),
        Just("[{ name = \"web\" }]".to_owned()),
        Just("\"/a/{repository}/b\"".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[a-z{}/*?\\-]{0,12}".prop_map(|s| format!("\"{s}\"")),
        ".{0,10}",
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Drop(usize),
    Repeat(usize),
    /// The line's value (after `=`) replaced.
    Revalue(usize, String),
    /// The document cut at a byte.
    Cut(usize),
    Insert(usize, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Drop),
        any::<usize>().prop_map(Edit::Repeat),
        (any::<usize>(), value()).prop_map(|(i, v)| Edit::Revalue(i, v)),
        any::<usize>().prop_map(Edit::Cut),
        (any::<usize>(), ".{0,6}").prop_map(|(i, s)| Edit::Insert(i, s)),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let n = lines.len();
    if n == 0 && !matches!(edit, Edit::Cut(_) | Edit::Insert(..)) {
        return text.to_owned();
    }
    match edit {
        Edit::Drop(i) => {
            lines.remove(i % n);
        }
        Edit::Repeat(i) => {
            let line = lines[i % n].clone();
            lines.insert(i % n, line);
        }
        Edit::Revalue(i, v) => {
            let line = &mut lines[i % n];
            if let Some((key, _)) = line.split_once('=') {
                *line = format!("{key}= {v}");
            }
        }
        Edit::Cut(i) => {
            let mut at = i % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            return text[..at].to_owned();
        }
        Edit::Insert(i, s) => {
            let mut at = i % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            return format!("{}{s}{}", &text[..at], &text[at..]);
        }
    }
    lines.join("\n")
}

fn valid_configs() -> Vec<String> {
    let base = EstateOptions::default();
    vec![
        estate_toml(base),
        estate_toml(EstateOptions {
            bake: None,
            verify: true,
            keep: Some(3),
            heal_drift: true,
            restart_on_secret_change: true,
            unfreeze_on_new_digest: true,
            ..base
        }),
        estate_toml(EstateOptions {
            migration: false,
            bake: Some("10m"),
            ..base
        }),
    ]
}

#[test]
fn any_string_as_a_config_is_parsed_or_refused_with_a_message() {
    run("config: arbitrary strings", ".{0,200}", |text| {
        config_answers(&text)
    });
}

#[test]
fn a_valid_config_with_lines_dropped_repeated_cut_or_revalued_is_parsed_or_refused_naming_the_key()
{
    let configs = valid_configs();
    for config in &configs {
        Config::from_toml(config).expect("the base configs are valid");
    }
    let strategy = (0..configs.len(), prop::collection::vec(edit(), 1..4));
    run("config: mutated valid configs", strategy, |(i, edits)| {
        let text = edits
            .iter()
            .fold(configs[i].clone(), |text, edit| apply(&text, edit));
        config_answers(&text)
    });
}

fn pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,16}",
        "[a-z0-9*?.\\-]{0,10}",
        "[\\^$()\\[\\]{}+*?.|\\\\a-z0-9]{0,12}",
        "[<>=~^*, .0-9a-z\\-+]{0,16}",
    ]
}

fn tag() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,20}",
        "[a-zA-Z0-9_.\\-]{0,128}",
        "v?[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(-[a-z0-9.]{1,8})?(\\+[a-z0-9]{1,4})?",
    ]
}

#[test]
fn any_tag_policy_pattern_compiles_or_is_refused_and_any_tag_is_judged_without_a_panic() {
    let strategy = (0..3usize, pattern(), tag(), prop::option::of(tag()));
    run("tag policies", strategy, |(kind, pattern, tag, floor)| {
        let judged = std::panic::catch_unwind(|| {
            let policy = match kind {
                0 => TagPolicy::glob(&pattern),
                1 => TagPolicy::regex(&pattern),
                _ => TagPolicy::semver(&pattern),
            };
            match policy {
                Ok(policy) => {
                    let _ = policy.describe();
                    policy
                        .check(&tag, &["latest".to_owned()], floor.as_deref())
                        .err()
                        .map(|refusal| refusal.to_string())
                }
                Err(error) => Some(error.to_string()),
            }
        })
        .map_err(|_| {
            TestCaseError::fail(format!(
                "policy {kind} `{pattern}` panicked on tag {tag:?} (floor {floor:?})"
            ))
        })?;
        match judged {
            Some(message) if message.trim().is_empty() => Err(TestCaseError::fail(format!(
                "policy {kind} `{pattern}`, tag {tag:?}: a refusal without a message"
            ))),
            _ => Ok(()),
        }
    });
}
