//! Secret-holding values that never print, serialise or debug-format their contents.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The placeholder printed instead of a secret value.
pub const REDACTED: &str = "[redacted]";

/// A secret string (API key, token, salt).
///
/// `Debug`, `Display` and `Serialize` all produce [`REDACTED`]; the only way to
/// get at the value is [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value itself. Call this only where the value is actually used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// A database URL whose password (if any) is a secret.
///
/// `Debug`, `Display` and `Serialize` produce [`DatabaseUrl::redacted`]: the URL
/// with the password in the user-info part and any `password=` query parameter
/// replaced by [`REDACTED`]. [`DatabaseUrl::expose`] returns the full URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a database URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The full URL, password included.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by [`REDACTED`].
    pub fn redacted(&self) -> String {
        redact_url_password(&self.0)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(DatabaseUrl)
    }
}

/// Replaces the password in `scheme://user:password@host/...` and the value of
/// any `password`/`pass`/`pwd` query parameter with [`REDACTED`].
///
/// Works on the raw text (no URL parsing), so it also handles malformed URLs
/// and schemes the `url` crate treats as opaque.
fn redact_url_password(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };

    // User info: between "://" and the last '@' of the authority.
    match before_query.split_once("://") {
        Some((scheme, rest)) => {
            out.push_str(scheme);
            out.push_str("://");
            let authority_end = rest.find(['/', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    match userinfo.split_once(':') {
                        Some((user, _password)) => {
                            out.push_str(user);
                            out.push(':');
                            out.push_str(REDACTED);
                        }
                        None => out.push_str(userinfo),
                    }
                    out.push('@');
                    out.push_str(host);
                }
                None => out.push_str(authority),
            }
            out.push_str(tail);
        }
        None => out.push_str(before_query),
    }

    if let Some(query) = query {
        out.push('?');
        let (query, fragment) = match query.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (query, None),
        };
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if ["password", "pass", "pwd"].iter().any(|p| name.eq_ignore_ascii_case(p)) => {
                    format!("{name}={REDACTED}")
                }
                _ => param.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
        if let Some(fragment) = fragment {
            out.push('#');
            out.push_str(fragment);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{:?}", Some(s.clone())), "Some([redacted])");
        #[derive(Serialize)]
        struct W {
            s: Secret,
        }
        let out = toml::to_string(&W { s }).expect("serialise");
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains(REDACTED), "{out}");
    }

    #[test]
    fn database_url_redaction() {
        let cases = [
            ("sqlite://.supportbot/review.sqlite", "sqlite://.supportbot/review.sqlite"),
            ("postgres://bot:s3cr3t@db.example:5432/review", "postgres://bot:[redacted]@db.example:5432/review"),
            ("postgres://bot:p@ss@word@db/review", "postgres://bot:[redacted]@db/review"),
            ("postgres://bot@db/review", "postgres://bot@db/review"),
            (
                "postgres://db/review?user=bot&password=s3cr3t&sslmode=require#x",
                "postgres://db/review?user=bot&password=[redacted]&sslmode=require#x",
            ),
            ("not a url", "not a url"),
        ];
        for (input, expected) in cases {
            let url = DatabaseUrl::new(input);
            assert_eq!(url.redacted(), expected, "input {input}");
            assert_eq!(url.to_string(), expected);
            assert_eq!(url.expose(), input);
            assert!(!format!("{url:?}").contains("s3cr3t"));
        }
    }
}
