//! pilotlight's ownership tags. Everything pilotlight creates carries [`MANAGED`]`=true` and
//! [`SOURCE`]`=<primary id>`; restores and drills add [`RUN`]. Deletion only ever targets
//! resources carrying [`MANAGED`].

/// Marks a resource as created and owned by pilotlight.
pub const MANAGED: &str = "pilotlight:managed";
/// The primary-region id a DR resource mirrors.
pub const SOURCE: &str = "pilotlight:source";
/// The restore or drill run that created a resource.
pub const RUN: &str = "pilotlight:run";

/// Whether a tag list marks the resource as pilotlight's own.
pub fn is_managed<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
    tags.into_iter().any(|(k, v)| k == MANAGED && v == "true")
}
