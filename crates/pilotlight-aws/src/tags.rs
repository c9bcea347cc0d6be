//! pilotlight's ownership tags. Everything pilotlight creates carries [`MANAGED`]`=true` and
//! [`SOURCE`]`=<primary id>`; restores and drills add [`RUN`]. Deletion only ever targets
//! resources carrying [`MANAGED`].

/// Marks a resource as created and owned by pilotlight.
pub const MANAGED: &str = "pilotlight:managed";
/// The primary-region id a DR resource mirrors.
pub const SOURCE: &str = "pilotlight:source";
/// The restore or drill run that created a resource.
pub const RUN: &str = "pilotlight:run";
/// `true` on everything a drill creates (SPEC D12), beside [`RUN`].
pub const DRILL: &str = "pilotlight:drill";

/// Whether a tag list marks the resource as pilotlight's own.
pub fn is_managed<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
    tags.into_iter().any(|(k, v)| k == MANAGED && v == "true")
}

/// The id of a DR resource proven to carry `pilotlight:managed=true`: the only kind of id the
/// delete methods of the DR handles accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    id: String,
}

impl Owned {
    /// Returns the id as owned if and only if `tags` mark it as pilotlight's.
    pub fn from_pairs<'a>(
        id: &str,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<Owned> {
        is_managed(tags).then(|| Owned { id: id.to_owned() })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}
