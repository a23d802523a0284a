//! STS `AssumeRole` (awsQuery: a form `POST /`, an XML answer) for the in-process fake, so a
//! test can check what the shipper asks for and which credentials then sign its calls.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What the fake STS has been asked and answers.
#[derive(Debug, Default)]
pub(crate) struct StsModel {
    /// How long issued credentials live.
    pub(crate) lifetime: Duration,
    /// Answer the next this-many calls with `AccessDenied`.
    pub(crate) deny_next: usize,
    /// Every call: its form parameters, plus `signer` (the access key that signed it).
    pub(crate) calls: Vec<BTreeMap<String, String>>,
    /// Credentials issued so far.
    pub(crate) issued: usize,
}

/// The access key of a SigV4 `Authorization` header (`... Credential=AKID/date/...`).
pub(crate) fn signer(headers: &HeaderMap) -> String {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    auth.split("Credential=").nth(1).and_then(|c| c.split('/').next()).unwrap_or("-").to_owned()
}

/// The access key issued by the `n`-th (1-based) successful AssumeRole.
pub(crate) fn issued_key(n: usize) -> String {
    format!("ASIAFAKESTS{n:09}")
}

/// Answer one STS request.
pub(crate) fn answer(sts: &mut StsModel, headers: &HeaderMap, body: &[u8]) -> Response {
    let mut params = form(body);
    params.insert("signer".into(), signer(headers));
    let action = params.get("Action").cloned().unwrap_or_default();
    sts.calls.push(params.clone());
    if action != "AssumeRole" {
        return xml(StatusCode::BAD_REQUEST, error("InvalidAction", &format!("not faked: {action}")));
    }
    if sts.deny_next > 0 {
        sts.deny_next -= 1;
        return xml(StatusCode::FORBIDDEN, error("AccessDenied", "not authorized to perform sts:AssumeRole"));
    }
    sts.issued += 1;
    let issued = sts.issued;
    let expires = humantime::format_rfc3339_seconds(SystemTime::now() + sts.lifetime);
    let role = params.get("RoleArn").cloned().unwrap_or_default();
    let session = params.get("RoleSessionName").cloned().unwrap_or_default();
    let body = format!(
        r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <AssumedRoleId>AROAFAKE:{session}</AssumedRoleId>
      <Arn>{role}/{session}</Arn>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>{key}</AccessKeyId>
      <SecretAccessKey>secret</SecretAccessKey>
      <SessionToken>token-{issued}</SessionToken>
      <Expiration>{expires}</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#,
        key = issued_key(issued),
    );
    xml(StatusCode::OK, body)
}

fn error(code: &str, message: &str) -> String {
    format!(
        r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fake</RequestId></ErrorResponse>"#
    )
}

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

/// `a=1&b=x%3Ay` → {a: 1, b: x:y}.
fn form(body: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
