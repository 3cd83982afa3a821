//! A task definition that carries AWS's own tags — CloudFormation's
//! `aws:cloudformation:*` — is still copied: ECS refuses those keys from any caller,
//! so the copy leaves them out and keeps every other tag.

mod fakes;

use fakes::*;
use ferry_core::engine::Outcome;

fn cloudformation_tags(logical_id: &str) -> Vec<(String, String)> {
    [
        ("aws:cloudformation:stack-name", "shop-prod".to_owned()),
        (
            "aws:cloudformation:stack-id",
            format!("arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/shop-prod/1"),
        ),
        ("aws:cloudformation:logical-id", logical_id.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[tokio::test]
async fn a_source_tagged_by_cloudformation_is_copied_without_its_reserved_tags() {
    let (fake, engine) = estate();
    for revisions in fake.state().task_definitions.values_mut() {
        for definition in revisions {
            let logical_id = definition.family.replace('-', "");
            definition.tags.extend(cloudformation_tags(&logical_id));
        }
    }

    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    let decisions = engine.on_push(&push, T0 + 10).await.expect("handled");

    let id = shop_release("1.0.0");
    assert!(
        matches!(decisions[0].outcome, Outcome::Migrating { .. }),
        "{decisions:?}"
    );
    let registrations = fake.registrations();
    assert_eq!(registrations.len(), 4, "three services and the migration");
    let expected: Vec<(String, String)> = vec![
        ("team".into(), "payments".into()),
        ("ferry:release".into(), id.to_string()),
        ("ferry:env".into(), "shop/prod".into()),
    ];
    for registration in &registrations {
        assert_eq!(registration.tags, expected, "{}", registration.family);
    }
    // The one-off task carries ferry's tags only.
    let migration = fake.migration_task(&id);
    assert_eq!(migration.tags, expected[1..]);
}

#[tokio::test]
async fn reserved_keys_in_any_case_are_left_out_and_the_rest_kept_in_order() {
    let (fake, engine) = estate();
    let own = [("AWS:Owner", "x"), ("cost-center", "42"), ("Aws:team", "y")];
    for revisions in fake.state().task_definitions.values_mut() {
        for definition in revisions {
            definition
                .tags
                .extend(own.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        }
    }

    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    engine.on_push(&push, T0 + 10).await.expect("handled");

    let id = shop_release("1.0.0");
    for registration in fake.registrations() {
        assert_eq!(
            registration.tags,
            vec![
                ("team".to_owned(), "payments".to_owned()),
                ("cost-center".into(), "42".into()),
                ("ferry:release".into(), id.to_string()),
                ("ferry:env".into(), "shop/prod".into()),
            ],
            "{}",
            registration.family
        );
    }
}
