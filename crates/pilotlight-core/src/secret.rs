//! Secret values and redaction. A [`Secret`] holds a credential the binary read from a
//! `*_file` (API bearer tokens, AWS keys, a store URL with a password) and can only be printed
//! as `[redacted]`: it has no `Serialize` and its `Debug`/`Display` never show the value.
//! [`redact_url`] masks the password part of a connection URL for logs and `config check`.

use std::fmt;

/// What a redacted value prints as.
pub const REDACTED: &str = "[redacted]";

/// A secret string. `Debug` and `Display` print `[redacted]`; the value is only reachable
/// through [`Secret::expose`], so every place that uses it is easy to find.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value as is.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Wraps the contents of a secret file: one trailing line ending (`\n` or `\r\n`), as
    /// written by `echo` or an editor, is not part of the secret and is removed.
    pub fn from_file_contents(contents: impl Into<String>) -> Self {
        let mut value = contents.into();
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        Self(value)
    }

    /// The secret value. Call this only where the value is handed to its consumer (an HTTP
    /// header, a credentials provider, a database driver), never to format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True if the secret is the empty string (an empty secret file is a configuration error).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares `candidate` with the secret in time that depends only on their lengths, not on
    /// where they first differ (for bearer-token checks).
    pub fn matches(&self, candidate: &str) -> bool {
        let secret = self.0.as_bytes();
        let candidate = candidate.as_bytes();
        if secret.len() != candidate.len() {
            return false;
        }
        secret
            .iter()
            .zip(candidate)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
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

/// Returns `url` with its password replaced by `[redacted]`: the password of the userinfo
/// part (`scheme://user:password@host/...`) and the value of every query parameter whose name
/// contains `password` (`?password=...`, `&sslpassword=...`). Anything without a password is
/// returned unchanged. When unsure where the userinfo ends (an unencoded `@` in the password),
/// it redacts up to the last `@`, so it errs towards hiding more.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len());
    match base.split_once("://") {
        Some((scheme, rest)) => {
            out.push_str(scheme);
            out.push_str("://");
            match rest.rfind('@') {
                Some(at) => {
                    let (userinfo, host) = rest.split_at(at);
                    match userinfo.split_once(':') {
                        Some((user, _password)) => {
                            out.push_str(user);
                            out.push(':');
                            out.push_str(REDACTED);
                        }
                        None => out.push_str(userinfo),
                    }
                    out.push_str(host);
                }
                None => out.push_str(rest),
            }
        }
        None => out.push_str(base),
    }
    if let Some(query) = query {
        out.push('?');
        for (index, pair) in query.split('&').enumerate() {
            if index > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, _value)) if name.to_ascii_lowercase().contains("password") => {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(pair),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret:#?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        #[derive(Debug)]
        #[allow(dead_code)] // only read through Debug
        struct Holder {
            token: Secret,
        }
        let holder = format!(
            "{:?}",
            Holder {
                token: secret.clone()
            }
        );
        assert!(!holder.contains("hunter2"), "{holder}");
        assert_eq!(secret.expose(), "hunter2-very-secret");
    }

    #[test]
    fn file_contents_lose_one_trailing_line_ending_only() {
        assert_eq!(Secret::from_file_contents("abc\n").expose(), "abc");
        assert_eq!(Secret::from_file_contents("abc\r\n").expose(), "abc");
        assert_eq!(Secret::from_file_contents("abc\n\n").expose(), "abc\n");
        assert_eq!(Secret::from_file_contents(" abc ").expose(), " abc ");
        assert!(Secret::from_file_contents("\n").is_empty());
        assert!(!Secret::new("x").is_empty());
    }

    #[test]
    fn matches_compares_whole_values() {
        let secret = Secret::new("token-123");
        assert!(secret.matches("token-123"));
        assert!(!secret.matches("token-124"));
        assert!(!secret.matches("token-12"));
        assert!(!secret.matches("token-1234"));
        assert!(!secret.matches(""));
    }

    #[test]
    fn redact_url_hides_passwords_and_keeps_the_rest() {
        assert_eq!(
            redact_url("postgres://pilot:s3cret@db.internal:5432/pilotlight"),
            "postgres://pilot:[redacted]@db.internal:5432/pilotlight"
        );
        assert_eq!(
            redact_url("postgresql://pilot:p@ss:w@rd@db/x?sslmode=require"),
            "postgresql://pilot:[redacted]@db/x?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/x?user=pilot&password=s3cret&sslpassword=k3y"),
            "postgres://db/x?user=pilot&password=[redacted]&sslpassword=[redacted]"
        );
        for plain in [
            "sqlite:///var/lib/pilotlight/pilotlight.db",
            "sqlite://./data/pilotlight.db?mode=rwc",
            "postgres://pilot@db/x",
            "postgres://db/x",
        ] {
            assert_eq!(redact_url(plain), plain);
        }
    }
}
