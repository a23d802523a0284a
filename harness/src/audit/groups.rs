//! Reading back each log group's settings (retention, class, KMS key, tags) from the backend
//! directly, and comparing them with `[expect.group_settings]`.
//!
//! moto 5.x keeps retention, KMS key and tags but drops `logGroupClass`, so the class comes
//! from the gateway's record of the CreateLogGroup calls it forwarded (`STANDARD` when the
//! call named none, as CloudWatch defaults), passed in by the caller.

use std::collections::BTreeMap;

use aws_sdk_cloudwatchlogs::Client;

use super::read::ReadError;
use crate::report::Check;
use crate::scenario::GroupSettingsExpect;

/// One group's settings as the backend holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GroupSettingsRead {
    /// `retentionInDays` (`None`: never expire).
    pub retention_days: Option<u32>,
    /// `logGroupClass`.
    pub class: Option<String>,
    /// `kmsKeyId`.
    pub kms_key_id: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

fn read_error<E: std::error::Error>(operation: &'static str, target: &str, error: E) -> ReadError {
    ReadError {
        operation,
        target: target.to_owned(),
        message: aws_sdk_cloudwatchlogs::error::DisplayErrorContext(&error).to_string(),
    }
}

/// Every group's settings (all pages). `classes`: the class of each group as created.
pub async fn read_group_settings(
    client: &Client,
    classes: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, GroupSettingsRead>, ReadError> {
    let mut out = BTreeMap::new();
    let mut next: Option<String> = None;
    loop {
        let page = client
            .describe_log_groups()
            .set_next_token(next.clone())
            .send()
            .await
            .map_err(|e| read_error("DescribeLogGroups", "*", e))?;
        for group in page.log_groups() {
            let Some(name) = group.log_group_name() else { continue };
            let arn = group
                .log_group_arn()
                .map(str::to_owned)
                .or_else(|| group.arn().map(|a| a.strip_suffix(":*").unwrap_or(a).to_owned()));
            let tags = match arn {
                Some(arn) => client
                    .list_tags_for_resource()
                    .resource_arn(&arn)
                    .send()
                    .await
                    .map_err(|e| read_error("ListTagsForResource", name, e))?
                    .tags()
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                None => BTreeMap::new(),
            };
            let class = group
                .log_group_class()
                .map(|c| c.as_str().to_owned())
                .or_else(|| classes.get(name).cloned())
                .or_else(|| Some("STANDARD".to_owned()));
            out.insert(
                name.to_owned(),
                GroupSettingsRead {
                    retention_days: group.retention_in_days().and_then(|d| u32::try_from(d).ok()),
                    class,
                    kms_key_id: group.kms_key_id().map(str::to_owned),
                    tags,
                },
            );
        }
        next = page.next_token().map(str::to_owned);
        // LocalStack ignores nextToken and answers the same page again: stop on a repeat.
        if next.is_none() || page.log_groups().is_empty() {
            break;
        }
    }
    Ok(out)
}

/// Creates a log group in the backend directly (an operator's action); one that exists
/// already is fine.
pub async fn create_group(client: &Client, group: &str) -> Result<(), ReadError> {
    match client.create_log_group().log_group_name(group).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_already_exists_exception()) => Ok(()),
        Err(e) => Err(read_error("CreateLogGroup", group, e)),
    }
}

/// What a group must carry, as read back.
fn wanted(expect: &GroupSettingsExpect) -> GroupSettingsRead {
    GroupSettingsRead {
        retention_days: expect.retention_days,
        class: Some(expect.class.clone().unwrap_or_else(|| "STANDARD".to_owned())),
        kms_key_id: expect.kms_key_id.clone(),
        tags: expect.tags.clone(),
    }
}

/// Compares the groups of `layout` with `expect` (key: exact name, else the longest matching
/// glob). Fails when a matched group differs, is missing, or a key matches no group.
pub fn group_settings_check<'a>(
    expect: &BTreeMap<String, GroupSettingsExpect>,
    groups: impl IntoIterator<Item = &'a String>,
    read: &BTreeMap<String, GroupSettingsRead>,
) -> Check {
    let mut wrong = Vec::new();
    let mut matched: BTreeMap<&str, u32> = expect.keys().map(|k| (k.as_str(), 0)).collect();
    let mut checked = 0;
    for group in groups {
        // An exact key wins over globs; then the longest (most specific) matching glob.
        let key = expect.keys().find(|k| *k == group).or_else(|| {
            expect
                .keys()
                .filter(|k| glob::Pattern::new(k).is_ok_and(|p| p.matches(group)))
                .max_by_key(|k| k.len())
        });
        let Some(key) = key else { continue };
        *matched.entry(key.as_str()).or_default() += 1;
        checked += 1;
        let want = wanted(&expect[key]);
        match read.get(group) {
            Some(got) if *got == want => {}
            Some(got) => wrong.push(format!("{group}: got {got:?}, want {want:?} ({key})")),
            None => wrong.push(format!("{group}: not in the backend ({key})")),
        }
    }
    let unmatched: Vec<&str> = matched.iter().filter(|(_, n)| **n == 0).map(|(k, _)| *k).collect();
    let ok = wrong.is_empty() && unmatched.is_empty();
    let mut detail = format!("{checked} groups read back, {} differ", wrong.len());
    if !wrong.is_empty() {
        detail.push_str(&format!(": {}", wrong.join("; ")));
    }
    if !unmatched.is_empty() {
        detail.push_str(&format!("; keys matching no group: {}", unmatched.join(", ")));
    }
    Check { name: "group settings as expected".into(), ok, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_compared_exactly_by_the_most_specific_key() {
        let expect: BTreeMap<String, GroupSettingsExpect> = toml::from_str(
            r#"
            "k8s_local_shop_*" = { retention_days = 30, tags = { team = "shop" } }
            "k8s_local_shop_db_pg" = { retention_days = 3653, class = "STANDARD" }
            "k8s_*" = { retention_days = 7, class = "INFREQUENT_ACCESS" }
            "#,
        )
        .expect("parses");
        let groups: Vec<String> =
            ["k8s_local_shop_web_nginx", "k8s_local_shop_db_pg", "k8s_local_jobs_etl_etl"]
                .map(String::from)
                .into();
        let mut read = BTreeMap::new();
        read.insert(
            groups[0].clone(),
            GroupSettingsRead {
                retention_days: Some(30),
                class: Some("STANDARD".into()),
                kms_key_id: None,
                tags: [("team".to_owned(), "shop".to_owned())].into(),
            },
        );
        read.insert(
            groups[1].clone(),
            GroupSettingsRead {
                retention_days: Some(3653),
                class: Some("STANDARD".into()),
                ..Default::default()
            },
        );
        read.insert(
            groups[2].clone(),
            GroupSettingsRead {
                retention_days: Some(7),
                class: Some("INFREQUENT_ACCESS".into()),
                ..Default::default()
            },
        );
        let check = group_settings_check(&expect, &groups, &read);
        assert!(check.ok, "{}", check.detail);

        read.get_mut(&groups[2]).expect("present").retention_days = None;
        let check = group_settings_check(&expect, &groups, &read);
        assert!(!check.ok);
        assert!(check.detail.contains("k8s_local_jobs_etl_etl"), "{}", check.detail);

        let check = group_settings_check(&expect, &groups[..1], &read);
        assert!(!check.ok, "keys matching nothing fail: {}", check.detail);
    }
}
