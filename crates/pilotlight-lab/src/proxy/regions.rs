//! Whole regions taken down and brought back: the disaster pilotlight exists for.
//!
//! While a region is down, every call signed for it (any service; Route 53, being global, is
//! never in a region) is read and then answered by closing the connection without a response,
//! before fault rules, rate limits or moto see it; it is counted as faulted. That is what an
//! unreachable endpoint looks like to a client: the AWS SDK for Rust reports a dispatch
//! failure whose connector error is I/O or transient (hyper's closed connection or incomplete
//! message), which its standard retry strategy retries and which no service error code can be
//! mistaken for. A 503 would instead say the service answered, which a region that is gone
//! does not do.
//!
//! Admin API: `GET /__lab/regions` (`{"down": [...]}`), `POST /__lab/regions/{region}/down`
//! and `POST /__lab/regions/{region}/up` (both answer the new list). At most
//! [`MAX_REGIONS_DOWN`] regions are down at once (further ones get 429).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{ProxyHandle, Shared, lock};
use crate::error::LabError;

/// Most regions down at once.
pub const MAX_REGIONS_DOWN: usize = 64;

/// The regions down, as the admin API answers them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionsDown {
    pub down: Vec<String>,
}

/// Why a region could not be taken down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownRefusal {
    /// Not a region name (lower-case letters, digits and `-`, at most 32 characters).
    Malformed,
    /// [`MAX_REGIONS_DOWN`] regions are down already.
    Full,
}

impl DownRefusal {
    pub fn reason(&self, region: &str) -> String {
        match self {
            DownRefusal::Malformed => format!(
                "{region:?} is not a region name (lower-case letters, digits and '-', at most \
                 32 characters)"
            ),
            DownRefusal::Full => format!("at most {MAX_REGIONS_DOWN} regions can be down at once"),
        }
    }
}

/// The set of regions down.
#[derive(Debug, Default)]
pub struct RegionTable {
    down: BTreeSet<String>,
}

impl RegionTable {
    pub fn is_down(&self, region: &str) -> bool {
        self.down.contains(region)
    }

    /// Takes `region` down (again is fine).
    ///
    /// # Errors
    ///
    /// [`DownRefusal`] for a malformed name or a full table.
    pub fn down(&mut self, region: &str) -> Result<(), DownRefusal> {
        let valid = !region.is_empty()
            && region.len() <= 32
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(DownRefusal::Malformed);
        }
        if !self.down.contains(region) && self.down.len() >= MAX_REGIONS_DOWN {
            return Err(DownRefusal::Full);
        }
        self.down.insert(region.to_owned());
        Ok(())
    }

    /// Brings `region` back; whether it was down.
    pub fn up(&mut self, region: &str) -> bool {
        self.down.remove(region)
    }

    pub fn list(&self) -> RegionsDown {
        RegionsDown {
            down: self.down.iter().cloned().collect(),
        }
    }
}

impl ProxyHandle {
    /// Takes `region` down: every call signed for it gets its connection closed unanswered
    /// until [`ProxyHandle::region_up`].
    ///
    /// # Errors
    ///
    /// [`LabError::InvalidOptions`] for a malformed region name or when
    /// [`MAX_REGIONS_DOWN`] regions are down already.
    pub fn region_down(&self, region: &str) -> Result<(), LabError> {
        lock(&self.shared.regions)
            .down(region)
            .map_err(|refusal| LabError::InvalidOptions {
                reason: refusal.reason(region),
            })?;
        tracing::info!(%region, "region down");
        Ok(())
    }

    /// Brings `region` back; returns whether it was down.
    pub fn region_up(&self, region: &str) -> bool {
        let was = lock(&self.shared.regions).up(region);
        tracing::info!(%region, was_down = was, "region up");
        was
    }

    /// The regions down now, sorted.
    pub fn regions_down(&self) -> Vec<String> {
        lock(&self.shared.regions).list().down
    }
}

/// Whether calls to `region` go unanswered now.
pub(super) fn is_down(shared: &Shared, region: &str) -> bool {
    lock(&shared.regions).is_down(region)
}

/// `POST /__lab/regions/{region}/down|up` and `GET /__lab/regions`: the status and the answer,
/// or `None` for a path or method that is not one of these.
pub(super) fn admin(
    shared: &Shared,
    method: &http::Method,
    path: &str,
) -> Option<(u16, serde_json::Value)> {
    let rest = path.strip_prefix("/__lab/regions")?;
    let answer = |table: &RegionTable| serde_json::to_value(table.list()).unwrap_or_default();
    if rest.is_empty() {
        return (method == http::Method::GET).then(|| (200, answer(&lock(&shared.regions))));
    }
    let (region, verb) = rest.strip_prefix('/')?.split_once('/')?;
    if method != http::Method::POST {
        return None;
    }
    let mut table = lock(&shared.regions);
    match verb {
        "down" => match table.down(region) {
            Ok(()) => {
                tracing::info!(%region, "region down");
                Some((200, answer(&table)))
            }
            Err(refusal) => {
                let status = match refusal {
                    DownRefusal::Malformed => 400,
                    DownRefusal::Full => 429,
                };
                Some((
                    status,
                    serde_json::json!({ "error": refusal.reason(region) }),
                ))
            }
        },
        "up" => {
            let was = table.up(region);
            tracing::info!(%region, was_down = was, "region up");
            Some((200, answer(&table)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_up_and_bounds() {
        let mut t = RegionTable::default();
        assert!(!t.is_down("us-east-1"));
        t.down("us-east-1").expect("down");
        t.down("us-east-1").expect("down again");
        assert!(t.is_down("us-east-1") && !t.is_down("us-west-2"));
        assert_eq!(t.list().down, vec!["us-east-1"]);
        assert!(t.up("us-east-1"));
        assert!(!t.up("us-east-1"));
        assert_eq!(t.down("US-EAST-1"), Err(DownRefusal::Malformed));
        assert_eq!(t.down(""), Err(DownRefusal::Malformed));
        assert_eq!(t.down("a/b"), Err(DownRefusal::Malformed));
        for n in 0..MAX_REGIONS_DOWN {
            t.down(&format!("r-{n}")).expect("fits");
        }
        assert_eq!(t.down("one-more"), Err(DownRefusal::Full));
        t.down("r-0").expect("already down is fine when full");
    }
}
