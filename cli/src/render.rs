//! Text for people: tables, times, durations, the functions' decisions.

use chrono::DateTime;
use serde_json::Value;

use crate::error::Exit;

/// Columns padded to their widest cell, two spaces apart, no trailing blanks.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(widths[i].saturating_sub(cell.chars().count())));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = vec![line(headers.to_vec())];
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

/// `2026-12-02 14:47:13Z` (UTC), or `-`.
pub fn time(epoch_seconds: Option<u64>) -> String {
    epoch_seconds
        .and_then(|s| i64::try_from(s).ok())
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

/// `45s`, `3m12s`, `2h05m`, `3d04h`.
pub fn duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// The digest's first 12 hex characters, as `docker images` shows them.
pub fn short_digest(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.chars().take(12).collect()
}

/// One decision of a function, as a line: `shop/prod  shop/prod/3f2a…  refused: …`.
pub fn decision(d: &Value) -> String {
    let field = |name: &str| d.get(name).and_then(Value::as_str).unwrap_or("");
    let lane = match (field("app"), field("environment")) {
        ("", _) => String::new(),
        (app, env) => format!("{app}/{env}"),
    };
    let outcome = field("outcome");
    let list = |name: &str| {
        d.get(name)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    };
    let what = match outcome {
        "refused" => format!("refused: {}", field("reason")),
        "ignored" => format!("nothing to do: {}", field("reason")),
        "failed" => format!("failed: {}", field("reason")),
        "preflight_failed" => format!("preflight failed: {}", list("problems")),
        "duplicate" => format!("nothing to do: the release is {} already", field("state")),
        "migrating" => format!("migrating: task {}", field("task")),
        "deploying" => format!("deploying: {}", list("deployments")),
        "verifying" => format!("verifying: smoke test {}", field("task")),
        "baking" => format!(
            "baking until {}",
            time(d.get("until").and_then(Value::as_u64))
        ),
        "held" => format!("{} held: the lane is frozen", field("tag")),
        "rolled_back" => format!(
            "rolled back from {} to {}: {}",
            field("from"),
            field("to"),
            field("reason")
        ),
        "progress" => format!(
            "completed {}; waiting for {}",
            list("completed"),
            list("pending")
        ),
        "reconciled" => format!("reconciled: {}", list("corrections")),
        other => {
            // An outcome this CLI does not know yet: its name and every field.
            let mut rest = d.as_object().cloned().unwrap_or_default();
            for known in ["app", "environment", "release_id", "outcome"] {
                rest.remove(known);
            }
            let name = other.replace('_', " ");
            if rest.is_empty() {
                name
            } else {
                format!("{name} {}", Value::Object(rest))
            }
        }
    };
    [lane, field("release_id").to_owned(), what]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("  ")
}

/// How a set of decisions ends the process: any refusal or failure is 1.
pub fn decisions_exit(decisions: &[Value]) -> Exit {
    let bad = decisions.iter().any(|d| {
        matches!(
            d.get("outcome").and_then(Value::as_str),
            Some("refused" | "failed" | "preflight_failed")
        )
    });
    if bad {
        Exit::Bad
    } else {
        Exit::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_pads_every_column_but_the_last_and_trims_trailing_blanks() {
        let text = table(
            &["LANE", "TAG", "STATE"],
            &[
                vec!["shop/prod".into(), "1.1.0".into(), "SUCCEEDED".into()],
                vec!["blog/prod".into(), "".into(), "".into()],
            ],
        );
        assert_eq!(
            text,
            "LANE       TAG    STATE\nshop/prod  1.1.0  SUCCEEDED\nblog/prod"
        );
    }

    #[test]
    fn times_are_utc_and_durations_read_as_units() {
        assert_eq!(time(Some(0)), "1970-01-01 00:00:00Z");
        assert_eq!(time(None), "-");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(192), "3m12s");
        assert_eq!(duration(7500), "2h05m");
        assert_eq!(duration(3 * 86400 + 4 * 3600), "3d04h");
    }

    #[test]
    fn a_digest_is_shown_by_its_first_twelve_hex_characters() {
        assert_eq!(short_digest("sha256:8b7c6d5e4f3a2b1c8b7c"), "8b7c6d5e4f3a");
    }

    #[test]
    fn a_refusal_reads_as_one_line_and_exits_1() {
        let refused = json!({"app": "shop", "environment": "prod", "release_id": "shop/prod/8b7c6d5e4f3a2b1c",
            "outcome": "refused", "reason": "tag `latest` is mutable"});
        assert_eq!(
            decision(&refused),
            "shop/prod  shop/prod/8b7c6d5e4f3a2b1c  refused: tag `latest` is mutable"
        );
        assert_eq!(decisions_exit(&[refused]), Exit::Bad);
    }

    #[test]
    fn an_outcome_the_cli_does_not_know_is_shown_with_its_fields_and_exits_0() {
        let new = json!({"app": "shop", "environment": "prod", "outcome": "awaiting_approval", "expires_at": 5});
        assert_eq!(
            decision(&new),
            "shop/prod  awaiting approval {\"expires_at\":5}"
        );
        assert_eq!(decisions_exit(&[new]), Exit::Ok);
    }

    #[test]
    fn a_migrating_release_exits_0() {
        let d = json!({"app": "shop", "environment": "prod", "outcome": "migrating", "task": "arn:task/1", "task_definitions": []});
        assert_eq!(decision(&d), "shop/prod  migrating: task arn:task/1");
        assert_eq!(decisions_exit(&[d]), Exit::Ok);
    }
}
