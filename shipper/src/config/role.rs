//! `role_arn`, `external_id`, `role_session_name`: a role assumed on top of the default
//! credentials chain, so a node's identity (IRSA, EKS Pod Identity, instance role) can write
//! into another account. Validated here with STS's own limits, so a typo fails at start
//! with the key's name instead of as an endless `AccessDenied` retry at the first send.

use serde::Serialize;

use super::ConfigError;

/// STS `RoleSessionName`: 2–64 characters of `[\w+=,.@-]`.
const SESSION_NAME_MAX: usize = 64;
/// STS `ExternalId`: 2–1224 characters of `[\w+=,.@:/-]`.
const EXTERNAL_ID_MAX: usize = 1224;

/// The role to assume, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssumeRole {
    /// `SHIPPER_ROLE_ARN`: `arn:<partition>:iam::<account>:role/<path/name>`.
    pub role_arn: String,
    /// `SHIPPER_EXTERNAL_ID`, if the role's trust policy asks for one.
    pub external_id: Option<String>,
    /// `SHIPPER_ROLE_SESSION_NAME`; default `shipper-<node name>`, so CloudTrail tells the
    /// nodes apart.
    pub session_name: String,
}

impl AssumeRole {
    /// Validate the three settings. `None` when no role is set; the other two without a
    /// role are an error rather than silently unused.
    pub fn new(
        role_arn: Option<String>,
        external_id: Option<String>,
        session_name: Option<String>,
        node_name: &str,
    ) -> Result<Option<AssumeRole>, ConfigError> {
        let blank_is_none = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let (role_arn, external_id, session_name) =
            (blank_is_none(role_arn), blank_is_none(external_id), blank_is_none(session_name));
        let Some(role_arn) = role_arn else {
            for (key, value) in
                [("SHIPPER_EXTERNAL_ID", &external_id), ("SHIPPER_ROLE_SESSION_NAME", &session_name)]
            {
                if let Some(value) = value {
                    return Err(ConfigError::Invalid {
                        key,
                        value: value.clone(),
                        reason: "only used with SHIPPER_ROLE_ARN, which is not set".into(),
                    });
                }
            }
            return Ok(None);
        };
        if !is_role_arn(&role_arn) {
            return Err(ConfigError::Invalid {
                key: "SHIPPER_ROLE_ARN",
                value: role_arn,
                reason: "expected arn:aws:iam::<12-digit account>:role/<name>".into(),
            });
        }
        if let Some(id) = &external_id
            && !valid_chars(id, 2, EXTERNAL_ID_MAX, "+=,.@:/-")
        {
            return Err(ConfigError::Invalid {
                key: "SHIPPER_EXTERNAL_ID",
                value: id.clone(),
                reason: format!("2 to {EXTERNAL_ID_MAX} characters of letters, digits and _+=,.@:/-"),
            });
        }
        let session_name = match session_name {
            Some(name) if valid_chars(&name, 2, SESSION_NAME_MAX, "+=,.@-") => name,
            Some(name) => {
                return Err(ConfigError::Invalid {
                    key: "SHIPPER_ROLE_SESSION_NAME",
                    value: name,
                    reason: format!("2 to {SESSION_NAME_MAX} characters of letters, digits and _+=,.@-"),
                });
            }
            None => default_session_name(node_name),
        };
        Ok(Some(AssumeRole { role_arn, external_id, session_name }))
    }
}

/// `shipper-<node>`, with characters STS refuses replaced by `-` and cut to 64 characters.
pub fn default_session_name(node_name: &str) -> String {
    let sanitized: String = format!("shipper-{node_name}")
        .chars()
        .map(|c| if allowed(c, "+=,.@-") { c } else { '-' })
        .take(SESSION_NAME_MAX)
        .collect();
    sanitized
}

fn allowed(c: char, punctuation: &str) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || punctuation.contains(c)
}

fn valid_chars(value: &str, min: usize, max: usize, punctuation: &str) -> bool {
    (min..=max).contains(&value.chars().count()) && value.chars().all(|c| allowed(c, punctuation))
}

/// `arn:<partition>:iam::<12 digits>:role/<path and name>`.
fn is_role_arn(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    partition.starts_with("aws")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty() && !name.ends_with('/'))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const ARN: &str = "arn:aws:iam::123456789012:role/log-writer";

    fn key_of(err: ConfigError) -> &'static str {
        match err {
            ConfigError::Invalid { key, .. } | ConfigError::Missing { key, .. } => key,
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn no_role_is_no_assumption() {
        assert_eq!(AssumeRole::new(None, None, None, "n").unwrap(), None);
        assert_eq!(AssumeRole::new(Some("  ".into()), None, None, "n").unwrap(), None);
    }

    #[test]
    fn a_role_gets_the_node_in_its_default_session_name() {
        let role = AssumeRole::new(Some(ARN.into()), Some("ext-42".into()), None, "ip-10-0-1-7.ec2.internal")
            .unwrap()
            .unwrap();
        assert_eq!(role.role_arn, ARN);
        assert_eq!(role.external_id.as_deref(), Some("ext-42"));
        assert_eq!(role.session_name, "shipper-ip-10-0-1-7.ec2.internal");
    }

    #[test]
    fn partitions_and_paths_are_roles() {
        for arn in
            ["arn:aws-us-gov:iam::123456789012:role/x", "arn:aws-cn:iam::123456789012:role/path/to/writer"]
        {
            assert!(AssumeRole::new(Some(arn.into()), None, None, "n").is_ok(), "{arn}");
        }
    }

    #[test]
    fn what_sts_would_refuse_is_a_config_error_naming_its_key() {
        for (arn, ext, session, key) in [
            ("arn:aws:iam::123456789012:user/bob", None, None, "SHIPPER_ROLE_ARN"),
            ("arn:aws:iam::1234:role/x", None, None, "SHIPPER_ROLE_ARN"),
            ("arn:aws:sts::123456789012:role/x", None, None, "SHIPPER_ROLE_ARN"),
            ("log-writer", None, None, "SHIPPER_ROLE_ARN"),
            (ARN, Some("x"), None, "SHIPPER_EXTERNAL_ID"),
            (ARN, Some("has space"), None, "SHIPPER_EXTERNAL_ID"),
            (ARN, None, Some("a/b"), "SHIPPER_ROLE_SESSION_NAME"),
            (ARN, None, Some(&*"s".repeat(65)), "SHIPPER_ROLE_SESSION_NAME"),
        ] {
            let err = AssumeRole::new(Some(arn.into()), ext.map(Into::into), session.map(Into::into), "n")
                .expect_err(arn);
            assert_eq!(key_of(err), key, "{arn} {ext:?} {session:?}");
        }
    }

    #[test]
    fn an_external_id_or_session_without_a_role_is_an_error() {
        let err = AssumeRole::new(None, Some("ext-42".into()), None, "n").unwrap_err();
        assert_eq!(key_of(err), "SHIPPER_EXTERNAL_ID");
        let err = AssumeRole::new(None, None, Some("me".into()), "n").unwrap_err();
        assert_eq!(key_of(err), "SHIPPER_ROLE_SESSION_NAME");
    }

    proptest! {
        /// Whatever the node is called (DNS-1123 names up to 253 characters, or anything a
        /// user types), the default session name is one STS accepts.
        #[test]
        fn default_session_names_are_valid(node in "\\PC{0,300}") {
            let name = default_session_name(&node);
            prop_assert!(valid_chars(&name, 2, SESSION_NAME_MAX, "+=,.@-"), "{name:?}");
            prop_assert!(name.starts_with("shipper-"));
        }
    }
}
