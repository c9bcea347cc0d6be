//! Reads the secrets a config names by path: API tokens, static AWS keys, the store URL file,
//! the restore hooks' signing secrets.
//! Every unreadable or empty file is reported, all at once, like config errors.

use std::collections::BTreeMap;
use std::path::Path;

use pilotlight_core::config::{Config, ConfigError, ConfigErrors, Source};
use pilotlight_core::secret::Secret;

/// A token read from its file.
#[derive(Debug)]
pub struct LoadedToken {
    pub name: String,
    pub role: pilotlight_core::config::Role,
    pub token: Secret,
}

/// The secrets of a config.
#[derive(Debug, Default)]
pub struct Secrets {
    pub tokens: Vec<LoadedToken>,
    /// Static AWS keys, when both key files are configured.
    pub aws_keys: Option<(Secret, Secret)>,
    /// The store URL read from `store.url_file`.
    pub store_url: Option<Secret>,
    /// Each restore hook's signing secret, by hook name (`restore.hooks[].secret_file`).
    pub hook_secrets: BTreeMap<String, Secret>,
}

fn read(path: &Path, key: &str, errors: &mut Vec<ConfigError>) -> Option<Secret> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let s = Secret::from_file_contents(text);
            if s.is_empty() {
                errors.push(ConfigError {
                    path: key.to_owned(),
                    source_kind: Source::Validation,
                    message: format!("secret file {} is empty", path.display()),
                });
                None
            } else {
                Some(s)
            }
        }
        Err(e) => {
            errors.push(ConfigError {
                path: key.to_owned(),
                source_kind: Source::Validation,
                message: format!("cannot read secret file {}: {e}", path.display()),
            });
            None
        }
    }
}

/// Reads every secret file the config names.
///
/// # Errors
/// Every file that cannot be read or is empty.
pub fn load(config: &Config) -> Result<Secrets, ConfigErrors> {
    let mut errors = Vec::new();
    let mut out = Secrets::default();
    for (i, t) in config.api.tokens.iter().enumerate() {
        if let Some(token) = read(
            &t.token_file,
            &format!("api.tokens[{i}].token_file"),
            &mut errors,
        ) {
            out.tokens.push(LoadedToken {
                name: t.name.clone(),
                role: t.role,
                token,
            });
        }
    }
    if let (Some(a), Some(s)) = (
        &config.aws.access_key_id_file,
        &config.aws.secret_access_key_file,
    ) {
        let a = read(a, "aws.access_key_id_file", &mut errors);
        let s = read(s, "aws.secret_access_key_file", &mut errors);
        if let (Some(a), Some(s)) = (a, s) {
            out.aws_keys = Some((a, s));
        }
    }
    if let Some(p) = &config.store.url_file {
        out.store_url = read(p, "store.url_file", &mut errors);
    }
    for (i, hook) in config.restore.hooks.iter().enumerate() {
        let key = format!("restore.hooks[{i}].secret_file");
        if let Some(secret) = read(&hook.secret_file, &key, &mut errors) {
            out.hook_secrets.insert(hook.name.clone(), secret);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}
