//! Instance sizes: parsing the part of a type after its family (`2xlarge` of `r5.2xlarge`),
//! ordering sizes within a family, and finding a type's neighbouring sizes in a catalog.

use std::collections::BTreeMap;

use crate::inventory::{InstanceTypeInfo, family};

/// The size of an instance type, the part after the first `.`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    Nano,
    Micro,
    Small,
    Medium,
    Large,
    /// `xlarge` (1) and `<n>xlarge` (n ≥ 2): the multiple of `xlarge`.
    XLarge(u32),
    /// `metal`, or `metal-<n>xl` (0 for plain `metal`).
    Metal(u32),
}

impl Size {
    /// The size's position within a family: `nano` 1, `micro` 2, `small` 3, `medium` 4,
    /// `large` 5, `<n>xlarge` 5 + n (`xlarge` 6, `2xlarge` 7, …, `48xlarge` 53), and
    /// `metal`/`metal-<n>xl` 100,000 + n, above every virtualised size.
    pub fn rank(self) -> u32 {
        match self {
            Size::Nano => 1,
            Size::Micro => 2,
            Size::Small => 3,
            Size::Medium => 4,
            Size::Large => 5,
            Size::XLarge(n) => 5 + n,
            Size::Metal(n) => 100_000 + n,
        }
    }

    /// Whether this is a bare-metal size.
    pub fn is_metal(self) -> bool {
        matches!(self, Size::Metal(_))
    }
}

/// The size of `instance_type` (`r5.2xlarge` → `XLarge(2)`, `m7i.metal-24xl` → `Metal(24)`);
/// `None` when there is no `.` or the size is not one AWS uses (`huge`, `1xlarge`,
/// `02xlarge`, `0xlarge`, `xlarge` multiples above 100,000).
pub fn parse_size(instance_type: &str) -> Option<Size> {
    let (_, size) = instance_type.split_once('.')?;
    match size {
        "nano" => Some(Size::Nano),
        "micro" => Some(Size::Micro),
        "small" => Some(Size::Small),
        "medium" => Some(Size::Medium),
        "large" => Some(Size::Large),
        "xlarge" => Some(Size::XLarge(1)),
        "metal" => Some(Size::Metal(0)),
        _ => {
            if let Some(n) = size.strip_suffix("xlarge") {
                multiple(n).filter(|&n| n >= 2).map(Size::XLarge)
            } else if let Some(n) = size
                .strip_prefix("metal-")
                .and_then(|rest| rest.strip_suffix("xl"))
            {
                multiple(n).map(Size::Metal)
            } else {
                None
            }
        }
    }
}

/// A positive decimal without a leading zero, below 100,000.
fn multiple(digits: &str) -> Option<u32> {
    let plain = !digits.is_empty()
        && !digits.starts_with('0')
        && digits.len() <= 5
        && digits.bytes().all(|b| b.is_ascii_digit());
    if !plain {
        return None;
    }
    digits.parse::<u32>().ok().filter(|&n| n < 100_000)
}

/// [`Size::rank`] of the size of `instance_type`; `None` when the size does not parse.
pub fn size_rank(instance_type: &str) -> Option<u32> {
    parse_size(instance_type).map(Size::rank)
}

/// The neighbouring sizes of `instance_type` within its family, among the types `catalog`
/// lists: the next smaller size, then the next larger size, each when there is one. "Next"
/// follows [`size_rank`], so gaps in the catalog are skipped (`r5.xlarge`'s larger neighbour
/// is `r5.4xlarge` when the catalog has no `r5.2xlarge`).
///
/// Bare-metal sizes are neither neighbours nor given any: a metal instance is chosen for
/// hardware access or licensing, which a virtualised size does not give, and a virtualised
/// instance gains nothing but a slower boot from becoming metal. A type whose size does not
/// parse has no neighbours; `instance_type` itself need not be in the catalog.
pub fn neighbours(
    instance_type: &str,
    catalog: &BTreeMap<String, InstanceTypeInfo>,
) -> Vec<String> {
    let Some(size) = parse_size(instance_type) else {
        return Vec::new();
    };
    if size.is_metal() {
        return Vec::new();
    }
    let own_rank = size.rank();
    let fam = family(instance_type);
    let mut smaller: Option<(u32, &str)> = None;
    let mut larger: Option<(u32, &str)> = None;
    let same_family = catalog
        .keys()
        .filter(|name| name.as_str() != instance_type && family(name) == fam);
    for name in same_family {
        let Some(other) = parse_size(name).filter(|s| !s.is_metal()) else {
            continue;
        };
        let rank = other.rank();
        if rank < own_rank && smaller.is_none_or(|(best, _)| rank > best) {
            smaller = Some((rank, name));
        }
        if rank > own_rank && larger.is_none_or(|(best, _)| rank < best) {
            larger = Some((rank, name));
        }
    }
    smaller
        .into_iter()
        .chain(larger)
        .map(|(_, name)| name.to_owned())
        .collect()
}
