//! Which identity wrote the data (`expect.written_by`): the gateway counts accepted
//! PutLogEvents per signing access key; the backend's STS says whose key each one is.
//!
//! moto and LocalStack do not check signatures, but their STS remembers the keys it issued:
//! `GetCallerIdentity` signed with an assumed-role key answers that role's session ARN.

use std::collections::BTreeMap;

use crate::report::Check;

/// Why a key's owner could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The backend's STS did not answer.
    #[error("GetCallerIdentity for {key} at {endpoint}: {source}")]
    Request {
        /// The access key asked about.
        key: String,
        /// The backend.
        endpoint: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// It answered without an `<Arn>`.
    #[error("GetCallerIdentity for {key}: HTTP {status}, no <Arn> in {body:?}")]
    Answer {
        /// The access key asked about.
        key: String,
        /// HTTP status.
        status: u16,
        /// The answer, cut to 300 bytes.
        body: String,
    },
}

/// The caller ARN the backend's STS reports for `access_key`.
pub async fn caller_arn(endpoint: &str, access_key: &str) -> Result<String, IdentityError> {
    // A signature the emulators parse but do not verify: the credential scope is what they
    // read (service `sts`, and the key whose identity to answer).
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={access_key}/20260101/us-east-1/sts/aws4_request, \
         SignedHeaders=host, Signature=0"
    );
    let request =
        |e| IdentityError::Request { key: access_key.to_owned(), endpoint: endpoint.to_owned(), source: e };
    let response = reqwest::Client::new()
        .post(format!("{}/", endpoint.trim_end_matches('/')))
        .header("authorization", authorization)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("Action=GetCallerIdentity&Version=2011-06-15")
        .send()
        .await
        .map_err(request)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(request)?;
    arn_of(&body).map(str::to_owned).ok_or_else(|| IdentityError::Answer {
        key: access_key.to_owned(),
        status,
        body: body.chars().take(300).collect(),
    })
}

/// The text of the first `<Arn>` element.
fn arn_of(xml: &str) -> Option<&str> {
    let start = xml.find("<Arn>")? + "<Arn>".len();
    let len = xml[start..].find("</Arn>")?;
    Some(&xml[start..start + len])
}

/// Every accepted PutLogEvents (`signers`: access key → requests) must be signed by a key
/// whose owner is `want`, and there must be some.
pub fn written_by_check(
    want: &str,
    owners: &BTreeMap<String, Result<String, String>>,
    signers: &BTreeMap<String, u64>,
) -> Check {
    let mut wrong = Vec::new();
    let mut by_want = 0;
    for (key, requests) in signers {
        match owners.get(key) {
            Some(Ok(arn)) if arn == want => by_want += requests,
            Some(Ok(arn)) => wrong.push(format!("{requests} requests signed by {key} ({arn})")),
            Some(Err(e)) => wrong.push(format!("{requests} requests signed by {key} (unknown: {e})")),
            None => wrong.push(format!("{requests} requests signed by {key} (not looked up)")),
        }
    }
    let ok = wrong.is_empty() && by_want > 0;
    let mut detail = format!("{by_want} accepted PutLogEvents signed as {want}");
    if !wrong.is_empty() {
        detail.push_str(&format!("; {}", wrong.join("; ")));
    }
    Check { name: "written by the expected identity".into(), ok, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:sts::123456789012:assumed-role/log-writer/shipper-node-a";

    fn owners(pairs: &[(&str, Result<&str, &str>)]) -> BTreeMap<String, Result<String, String>> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.map(str::to_owned).map_err(str::to_owned))).collect()
    }

    fn signers(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn every_request_signed_by_the_role_passes() {
        let check = written_by_check(
            ROLE,
            &owners(&[("ASIA1", Ok(ROLE)), ("ASIA2", Ok(ROLE))]),
            &signers(&[("ASIA1", 3), ("ASIA2", 4)]),
        );
        assert!(check.ok, "{}", check.detail);
        assert!(check.detail.starts_with("7 accepted"), "{}", check.detail);
    }

    #[test]
    fn one_request_signed_by_the_node_fails() {
        let check = written_by_check(
            ROLE,
            &owners(&[("ASIA1", Ok(ROLE)), ("harness", Ok("arn:aws:sts::123456789012:user/moto"))]),
            &signers(&[("ASIA1", 3), ("harness", 1)]),
        );
        assert!(!check.ok);
        assert!(check.detail.contains("1 requests signed by harness"), "{}", check.detail);
    }

    #[test]
    fn nothing_written_or_an_unknown_key_fails() {
        assert!(!written_by_check(ROLE, &owners(&[]), &signers(&[])).ok);
        assert!(!written_by_check(ROLE, &owners(&[("K", Err("HTTP 500"))]), &signers(&[("K", 1)])).ok);
    }

    #[test]
    fn the_arn_is_read_from_the_sts_answer() {
        let xml = "<GetCallerIdentityResponse><GetCallerIdentityResult><UserId>AROA:s</UserId>\
                   <Account>123456789012</Account><Arn>arn:aws:sts::1:assumed-role/r/s</Arn>";
        assert_eq!(arn_of(xml), Some("arn:aws:sts::1:assumed-role/r/s"));
        assert_eq!(arn_of("<Error/>"), None);
    }
}
