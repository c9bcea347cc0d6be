//! `RunInstances` `ClientToken` idempotency, which moto lacks.
//!
//! The first successful response per (account, region, token) is kept with the call's
//! parameters; a repeat with the same parameters gets that response replayed (same
//! reservation and instance ids, nothing launched), a repeat with different parameters gets
//! `IdempotentParameterMismatch`. Calls with one token are serialised through a per-token lock,
//! so concurrent retries cannot both reach moto. At most [`MAX_TOKENS`] tokens are remembered;
//! past that the oldest is forgotten (AWS also keeps tokens only for a while).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

/// Most tokens remembered per proxy.
pub const MAX_TOKENS: usize = 65_536;

/// A response worth replaying.
#[derive(Debug, Clone)]
pub struct CachedResponse {
    /// The call's parameters (sorted, `ClientToken` excluded).
    pub fingerprint: Vec<(String, String)>,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// One token's slot: locked while its first call is in flight.
pub type Slot = Arc<tokio::sync::Mutex<Option<CachedResponse>>>;

type TokenKey = (String, String, String);

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<TokenKey, Slot>,
    order: VecDeque<TokenKey>,
}

/// The token cache.
#[derive(Debug, Default)]
pub struct ClientTokens {
    inner: Mutex<Inner>,
}

impl ClientTokens {
    /// The slot of (account, region, token), created empty if new.
    pub fn slot(&self, account: &str, region: &str, token: &str) -> Slot {
        let key = (account.to_owned(), region.to_owned(), token.to_owned());
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = inner.slots.get(&key) {
            return slot.clone();
        }
        if inner.order.len() >= MAX_TOKENS
            && let Some(oldest) = inner.order.pop_front()
        {
            inner.slots.remove(&oldest);
        }
        let slot = Slot::default();
        inner.slots.insert(key.clone(), slot.clone());
        inner.order.push_back(key);
        slot
    }
}

/// The parameters that must match for a replay: everything but the token, sorted.
pub fn fingerprint(params: &[(String, String)]) -> Vec<(String, String)> {
    let mut fp: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "ClientToken")
        .cloned()
        .collect();
    fp.sort();
    fp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_slot_and_keys_are_separate() {
        let tokens = ClientTokens::default();
        let a = tokens.slot("acct", "us-west-2", "t1");
        assert!(Arc::ptr_eq(&a, &tokens.slot("acct", "us-west-2", "t1")));
        assert!(!Arc::ptr_eq(&a, &tokens.slot("acct", "us-east-1", "t1")));
        assert!(!Arc::ptr_eq(&a, &tokens.slot("other", "us-west-2", "t1")));
    }

    #[test]
    fn fingerprint_ignores_token_and_order() {
        let p = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            fingerprint(&p(&[
                ("ClientToken", "a"),
                ("MaxCount", "2"),
                ("ImageId", "ami-1")
            ])),
            fingerprint(&p(&[
                ("ImageId", "ami-1"),
                ("MaxCount", "2"),
                ("ClientToken", "b")
            ]))
        );
        assert_ne!(
            fingerprint(&p(&[("MaxCount", "2")])),
            fingerprint(&p(&[("MaxCount", "3")]))
        );
    }
}
