//! The task-definition diff of `ferry plan`: what ferry would register next to
//! what the service runs, field by field.
//!
//! Both sides are the RegisterTaskDefinition input the ECS adapter builds
//! (`registration_input`, the same copy `register_copy` sends): the base with
//! its own tags, and the copy with the planned image changes and ferry's tags.
//! Each side's debug rendering is flattened to one `path: value` line per leaf,
//! so the diff names the field that changes (`container_definitions[0].image`).

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub path: String,
    /// `None`: the field is new in the copy.
    pub before: Option<String>,
    /// `None`: the copy does not have it.
    pub after: Option<String>,
}

/// Flattens Rust's pretty debug output (`{:#?}`) to `(path, value)` leaves.
/// `Some(...)` is transparent, a list item is `[i]`, a map entry is `["key"]`.
pub fn flatten(pretty: &str) -> Vec<(String, String)> {
    /// An open `{`, `(` or `[`: the name it has in the path (none for
    /// `Some(`), and for a list the index of its next item.
    struct Frame {
        name: Option<String>,
        list: Option<usize>,
    }
    fn path(stack: &[Frame], last: Option<&str>) -> String {
        let mut out = String::new();
        for name in stack.iter().filter_map(|f| f.name.as_deref()).chain(last) {
            if !out.is_empty() && !name.starts_with('[') {
                out.push('.');
            }
            out.push_str(name);
        }
        out
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut leaves = Vec::new();
    for raw in pretty.lines() {
        let line = raw.trim().trim_end_matches(',');
        if line.is_empty() {
            continue;
        }
        if matches!(line, "}" | "]" | ")") {
            stack.pop();
            continue;
        }
        // In a list, every item is `[i]`.
        let item = match stack.last_mut().and_then(|f| f.list.as_mut()) {
            Some(next) => {
                *next += 1;
                Some(format!("[{}]", *next - 1))
            }
            None => None,
        };
        // `name: value` (a struct field) or `"key": value` (a map entry).
        let (key, value) = split_field(line);
        let key = match (item, key) {
            (Some(i), Some(k)) => Some(format!("{i}.{k}")),
            (None, k) => k,
            (i, None) => i,
        };
        if value.ends_with('{') || value.ends_with('[') || value.ends_with('(') {
            stack.push(Frame {
                name: key,
                list: value.ends_with('[').then_some(0),
            });
            continue;
        }
        leaves.push((path(&stack, key.as_deref()), value.to_owned()));
    }
    leaves
}

/// `name: value` → (Some(name), value); `"key": value` → (Some(["key"]), value);
/// a bare value → (None, value).
fn split_field(line: &str) -> (Option<String>, &str) {
    if let Some(rest) = line.strip_prefix('"') {
        // a map entry `"key": value`: find the key's closing quote
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    let after = &rest[i + 1..];
                    if let Some(value) = after.strip_prefix(": ") {
                        return (Some(format!("[\"{}\"]", &rest[..i])), value);
                    }
                    return (None, line);
                }
                _ => escaped = false,
            }
        }
        return (None, line);
    }
    match line.split_once(": ") {
        Some((name, value))
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            (Some(name.to_owned()), value)
        }
        _ => (None, line),
    }
}

/// The fields whose values differ, in the order of the copy (then the base's
/// removed ones).
pub fn diff(before: &str, after: &str) -> Vec<FieldChange> {
    let old: BTreeMap<String, String> = flatten(before).into_iter().collect();
    let new = flatten(after);
    let mut changes = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (path, value) in &new {
        seen.insert(path.clone());
        match old.get(path) {
            Some(v) if v == value => {}
            other => changes.push(FieldChange {
                path: path.clone(),
                before: other.cloned(),
                after: Some(value.clone()),
            }),
        }
    }
    for (path, value) in &old {
        if !seen.contains(path) {
            changes.push(FieldChange {
                path: path.clone(),
                before: Some(value.clone()),
                after: None,
            });
        }
    }
    changes
}

pub fn render(changes: &[FieldChange]) -> Vec<String> {
    changes
        .iter()
        .map(|c| match (&c.before, &c.after) {
            (Some(b), Some(a)) => format!("~ {}: {b} -> {a}", c.path),
            (None, Some(a)) => format!("+ {}: {a}", c.path),
            (Some(b), None) => format!("- {}: {b}", c.path),
            (None, None) => format!("  {}", c.path),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{
        ContainerDefinition, KeyValuePair, NetworkMode, PortMapping, Secret, TaskDefinition,
    };
    use ferry_core::image::{release_tags, ImageChange};

    const OLD: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:1.0.0";
    const NEW: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop@sha256:8b7c";

    fn base() -> TaskDefinition {
        let container = |name: &str, image: &str| {
            ContainerDefinition::builder()
                .name(name)
                .image(image)
                .cpu(256)
                .essential(true)
                .command("serve")
                .command("--port=8080")
                .environment(
                    KeyValuePair::builder()
                        .name("MODE")
                        .value("web {x}")
                        .build(),
                )
                .secrets(
                    Secret::builder()
                        .name("DATABASE_URL")
                        .value_from("arn:aws:secretsmanager:eu-west-1:123456789012:secret:db")
                        .build()
                        .unwrap(),
                )
                .port_mappings(PortMapping::builder().container_port(8080).build())
                .docker_labels("team", "checkout")
                .build()
        };
        TaskDefinition::builder()
            .family("shop-api")
            .task_role_arn("arn:aws:iam::123456789012:role/shop")
            .network_mode(NetworkMode::Awsvpc)
            .cpu("512")
            .memory("1024")
            .container_definitions(container("api", OLD))
            .container_definitions(container("sidecar", "public.ecr.aws/nginx:1.25"))
            .build()
    }

    fn registration(changes: &[ImageChange], tags: &[(String, String)]) -> String {
        let input = ferry_aws::ecs::registration_input(&base(), changes, tags).unwrap();
        format!("{input:#?}")
    }

    #[test]
    fn flattening_names_each_leaf_by_its_path() {
        let leaves = flatten(&registration(&[], &[]));
        let get = |p: &str| {
            leaves
                .iter()
                .find(|(path, _)| path == p)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("no {p} in {leaves:#?}"))
        };
        assert_eq!(get("family"), "\"shop-api\"");
        assert_eq!(get("container_definitions[0].image"), format!("\"{OLD}\""));
        assert_eq!(get("container_definitions[1].name"), "\"sidecar\"");
        assert_eq!(
            get("container_definitions[0].command[1]"),
            "\"--port=8080\""
        );
        assert_eq!(
            get("container_definitions[0].docker_labels[\"team\"]"),
            "\"checkout\""
        );
    }

    #[test]
    fn the_copy_differs_from_the_base_only_in_the_image_and_ferrys_tags() {
        let own = vec![("team".to_owned(), "checkout".to_owned())];
        let change = ImageChange {
            container: "api".into(),
            from: OLD.into(),
            to: NEW.into(),
        };
        let tags = release_tags(&own, "shop/prod/8b7c6d5e4f3a2b1c", "shop", "prod").unwrap();
        let changes = diff(
            &registration(&[], &own),
            &registration(&[change], &tags.tags),
        );
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "container_definitions[0].image",
                "tags[1].key",
                "tags[1].value",
                "tags[2].key",
                "tags[2].value"
            ],
            "{changes:#?}"
        );
        assert_eq!(
            render(&changes[..1]),
            [format!(
                "~ container_definitions[0].image: \"{OLD}\" -> \"{NEW}\""
            )]
        );
    }

    #[test]
    fn an_unchanged_copy_has_no_diff() {
        let text = registration(&[], &[]);
        assert!(diff(&text, &text).is_empty());
    }
}
