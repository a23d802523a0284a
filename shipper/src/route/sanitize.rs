//! CloudWatch name rules: turn any rendered text into a name CloudWatch accepts.
//!
//! Sanitising never fails and never rejects: a template that renders something odd still
//! routes somewhere valid and predictable (peer agents fall back, drop or loop here, see
//! `peer-failure-modes.md` F8). All lengths are in UTF-8 bytes, which is never more lenient
//! than CloudWatch's character count.
//!
//! **Log group** (`[A-Za-z0-9_\-/.#]{1,512}`, not starting with `aws/`):
//! 1. every character outside `A-Z a-z 0-9 _ - / . #` becomes one `_`;
//! 2. an empty name becomes `_`;
//! 3. a name starting with `aws/` in any letter case gets a `_` prefix (`aws/x` → `_aws/x`);
//! 4. the length rule below.
//!
//! **Log stream** (1–512 bytes, no `:` or `*`):
//! 1. `:`, `*` and control characters each become one `_`; anything else is kept;
//! 2. an empty name becomes `_`;
//! 3. the length rule below.
//!
//! **Length.** A name over [`MAX_NAME_BYTES`] is cut at a character boundary and ends with
//! `-` plus 8 lowercase hex digits of the SHA-256 of the *rendered* (unsanitised) name,
//! so it is deterministic and distinct long names stay distinct even when they share the
//! first 503 bytes. Names within the limit are never hashed, so a valid name of at most 512
//! bytes passes through unchanged.

use sha2::{Digest, Sha256};

/// Longest log group or log stream name CloudWatch accepts, in bytes.
pub const MAX_NAME_BYTES: usize = 512;

/// Hex digits of the hash suffix of a truncated name.
const HASH_SUFFIX_HEX_DIGITS: usize = 8;

/// Group names CloudWatch reserves for AWS services (compared ignoring ASCII case).
const RESERVED_GROUP_PREFIX: &[u8] = b"aws/";

/// Stand-in for every character a name may not contain.
const REPLACEMENT: char = '_';

/// Make `rendered` a valid CloudWatch log group name (rules in the module docs).
pub fn sanitize_group_name(rendered: &str) -> String {
    let mut name: String =
        rendered.chars().map(|c| if is_group_name_char(c) { c } else { REPLACEMENT }).collect();
    if name.is_empty() {
        name.push(REPLACEMENT);
    }
    let reserved = name
        .as_bytes()
        .get(..RESERVED_GROUP_PREFIX.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(RESERVED_GROUP_PREFIX));
    if reserved {
        name.insert(0, REPLACEMENT);
    }
    fit_length(name, rendered)
}

/// Make `rendered` a valid CloudWatch log stream name (rules in the module docs).
pub fn sanitize_stream_name(rendered: &str) -> String {
    let mut name: String = rendered
        .chars()
        .map(|c| if c == ':' || c == '*' || c.is_control() { REPLACEMENT } else { c })
        .collect();
    if name.is_empty() {
        name.push(REPLACEMENT);
    }
    fit_length(name, rendered)
}

/// The characters a log group name may contain.
fn is_group_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.' | '#')
}

/// Cut `name` to [`MAX_NAME_BYTES`] with a hash suffix of `rendered` if it is too long.
fn fit_length(mut name: String, rendered: &str) -> String {
    if name.len() <= MAX_NAME_BYTES {
        return name;
    }
    // '-' + hex digits; the suffix is ASCII, so the cut only has to respect `name`'s chars.
    let mut cut = MAX_NAME_BYTES - 1 - HASH_SUFFIX_HEX_DIGITS;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    name.truncate(cut);
    name.push('-');
    push_hex_prefix(&mut name, &Sha256::digest(rendered.as_bytes()));
    name
}

/// Append the first [`HASH_SUFFIX_HEX_DIGITS`] lowercase hex digits of `digest`.
fn push_hex_prefix(out: &mut String, digest: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in digest.iter().take(HASH_SUFFIX_HEX_DIGITS / 2) {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_replaces_each_invalid_char_with_one_underscore() {
        assert_eq!(sanitize_group_name("prod cluster:eu"), "prod_cluster_eu");
        assert_eq!(sanitize_group_name("café☕"), "caf__");
        assert_eq!(sanitize_group_name("a{b}*c\n"), "a_b__c_");
        assert_eq!(sanitize_group_name("k8s_prod/ns.app#1-x"), "k8s_prod/ns.app#1-x");
    }

    #[test]
    fn group_reserved_prefix_is_escaped_in_any_case() {
        assert_eq!(sanitize_group_name("aws/lambda"), "_aws/lambda");
        assert_eq!(sanitize_group_name("AWS/x"), "_AWS/x");
        assert_eq!(sanitize_group_name("aWs/"), "_aWs/");
        // Only the exact prefix is reserved.
        assert_eq!(sanitize_group_name("aws"), "aws");
        assert_eq!(sanitize_group_name("aws_x/y"), "aws_x/y");
        assert_eq!(sanitize_group_name("x/aws/y"), "x/aws/y");
        // Sanitising never produces a '/', so it cannot create the prefix either.
        assert_eq!(sanitize_group_name("aws:"), "aws_");
    }

    #[test]
    fn empty_names_become_underscore() {
        assert_eq!(sanitize_group_name(""), "_");
        assert_eq!(sanitize_stream_name(""), "_");
    }

    #[test]
    fn stream_replaces_only_colon_star_and_controls() {
        assert_eq!(sanitize_stream_name("pod:a*b\tc\u{7f}"), "pod_a_b_c_");
        assert_eq!(sanitize_stream_name("café ☕ {x}/#"), "café ☕ {x}/#");
    }

    #[test]
    fn long_name_is_cut_with_the_hash_of_the_rendered_name() {
        let rendered = "a".repeat(600);
        let name = sanitize_group_name(&rendered);
        assert_eq!(name.len(), MAX_NAME_BYTES);
        assert!(name.starts_with(&"a".repeat(503)));
        let digest = Sha256::digest(rendered.as_bytes());
        let expected_suffix =
            format!("-{:02x}{:02x}{:02x}{:02x}", digest[0], digest[1], digest[2], digest[3]);
        assert!(name.ends_with(&expected_suffix), "{name}");
    }

    #[test]
    fn exactly_max_length_is_not_hashed() {
        let rendered = "s".repeat(MAX_NAME_BYTES);
        assert_eq!(sanitize_stream_name(&rendered), rendered);
        assert_eq!(sanitize_group_name(&rendered), rendered);
    }

    #[test]
    fn long_stream_cut_respects_multibyte_chars() {
        // 'é' is 2 bytes: byte 503 falls inside one, so the cut moves back to 502.
        let rendered = "é".repeat(300);
        let name = sanitize_stream_name(&rendered);
        assert_eq!(name.len(), 502 + 9);
        assert!(name.starts_with(&"é".repeat(251)));
    }

    #[test]
    fn long_names_differing_after_the_cut_stay_distinct() {
        let common = "x".repeat(700);
        let a = sanitize_stream_name(&format!("{common}a"));
        let b = sanitize_stream_name(&format!("{common}b"));
        assert_ne!(a, b);
        assert_eq!(a[..503], b[..503]);
    }

    #[test]
    fn reserved_prefix_survives_truncation() {
        let name = sanitize_group_name(&format!("aws/{}", "g".repeat(600)));
        assert!(name.starts_with("_aws/"));
        assert_eq!(name.len(), MAX_NAME_BYTES);
    }
}
