//! Editing the items of moto's XML answers in place, below the item level: nested state
//! elements (`instanceState`, `State/Code`), removed children (`Endpoint`) and removed items.
//!
//! [`rewrite`](super::rewrite) sets the text of an item's direct children in the first list
//! of an answer; the pending-state realism ([`super::pending`]) also needs every list of an
//! answer (one `instancesSet` per reservation), paths below the item and removals, which this
//! module adds. Like `rewrite`, it understands the XML moto writes (elements, text, comments,
//! declarations, CDATA) without a full parser, edits only the spans it changes (everything else
//! stays byte for byte), and leaves a document it does not understand alone.

use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagKind {
    Open,
    Close,
    SelfClose,
    /// `<?…?>`, `<!--…-->`, `<![CDATA[…]]>`, `<!…>`.
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Tag<'a> {
    kind: TagKind,
    name: &'a str,
    start: usize,
    /// One past `>`.
    end: usize,
}

/// The next tag at or after `from`, if any (and if well-formed).
fn next_tag(xml: &str, from: usize) -> Option<Tag<'_>> {
    let start = from + xml.get(from..)?.find('<')?;
    let rest = &xml[start..];
    for (open, close) in [("<!--", "-->"), ("<![CDATA[", "]]>")] {
        if rest.starts_with(open) {
            let end = start + rest.find(close)? + close.len();
            return Some(Tag {
                kind: TagKind::Other,
                name: "",
                start,
                end,
            });
        }
    }
    let close = start + rest.find('>')?;
    let end = close + 1;
    let body = &xml[start + 1..close];
    if body.starts_with('?') || body.starts_with('!') {
        return Some(Tag {
            kind: TagKind::Other,
            name: "",
            start,
            end,
        });
    }
    let (kind, body) = if let Some(name) = body.strip_prefix('/') {
        (TagKind::Close, name)
    } else if let Some(b) = body.strip_suffix('/') {
        (TagKind::SelfClose, b)
    } else {
        (TagKind::Open, body)
    };
    let name = body
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap_or_default();
    if name.is_empty() {
        return None;
    }
    Some(Tag {
        kind,
        name,
        start,
        end,
    })
}

/// One element of a document: where it is and where its content is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    name: Range<usize>,
    outer: Range<usize>,
    /// Empty (at the `/>`) for a self-closing element.
    inner: Range<usize>,
    self_closing: bool,
}

impl Element {
    fn from_self_closing(tag: &Tag<'_>, name_start: usize) -> Element {
        Element {
            name: name_start..name_start + tag.name.len(),
            outer: tag.start..tag.end,
            inner: tag.end - 2..tag.end - 2,
            self_closing: true,
        }
    }

    fn name<'a>(&self, xml: &'a str) -> &'a str {
        &xml[self.name.clone()]
    }
}

/// Where a tag's name starts (just after `<` or `</`).
fn name_start(tag: &Tag<'_>) -> usize {
    match tag.kind {
        TagKind::Close => tag.start + 2,
        _ => tag.start + 1,
    }
}

/// The element that the start tag `open` begins, up to its matching end tag.
fn closing(xml: &str, open: &Tag<'_>) -> Option<Element> {
    let mut depth = 1usize;
    let mut at = open.end;
    while let Some(tag) = next_tag(xml, at) {
        at = tag.end;
        match tag.kind {
            TagKind::Open => depth += 1,
            TagKind::Close => {
                depth -= 1;
                if depth == 0 {
                    let start = name_start(open);
                    return (tag.name == open.name).then(|| Element {
                        name: start..start + open.name.len(),
                        outer: open.start..tag.end,
                        inner: open.end..tag.start,
                        self_closing: false,
                    });
                }
            }
            TagKind::SelfClose | TagKind::Other => {}
        }
    }
    None
}

/// The direct child elements inside `range`; `None` when the nesting is broken.
fn children(xml: &str, range: Range<usize>) -> Option<Vec<Element>> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut open: Option<Tag<'_>> = None;
    let mut at = range.start;
    while let Some(tag) = next_tag(xml, at) {
        if tag.start >= range.end {
            break;
        }
        at = tag.end;
        match tag.kind {
            TagKind::Other => {}
            TagKind::SelfClose if depth == 0 => {
                out.push(Element::from_self_closing(&tag, name_start(&tag)));
            }
            TagKind::SelfClose => {}
            TagKind::Open => {
                if depth == 0 {
                    open = Some(tag);
                }
                depth += 1;
            }
            TagKind::Close => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    let start_tag = open.take()?;
                    if start_tag.name != tag.name {
                        return None;
                    }
                    let start = name_start(&start_tag);
                    out.push(Element {
                        name: start..start + start_tag.name.len(),
                        outer: start_tag.start..tag.end,
                        inner: start_tag.end..tag.start,
                        self_closing: false,
                    });
                }
            }
        }
    }
    (depth == 0).then_some(out)
}

/// Every element called `name`, in document order; one nested in another of the same name is
/// not listed separately.
fn all_named(xml: &str, name: &str) -> Vec<Element> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(tag) = next_tag(xml, at) {
        at = tag.end;
        if tag.name != name {
            continue;
        }
        match tag.kind {
            TagKind::SelfClose => out.push(Element::from_self_closing(&tag, name_start(&tag))),
            TagKind::Open => match closing(xml, &tag) {
                Some(element) => {
                    at = element.outer.end;
                    out.push(element);
                }
                None => return out,
            },
            TagKind::Close | TagKind::Other => {}
        }
    }
    out
}

/// The element reached from `from` by following direct children named by `path`.
fn descend(xml: &str, from: &Element, path: &[&str]) -> Option<Element> {
    let mut at = from.clone();
    for step in path {
        at = children(xml, at.inner.clone())?
            .into_iter()
            .find(|c| c.name(xml) == *step)?;
    }
    Some(at)
}

/// Escapes text for an XML element.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One list item of an answer, for deciding its edits.
#[derive(Debug)]
pub struct Item<'a> {
    xml: &'a str,
    element: Element,
}

impl<'a> Item<'a> {
    /// The trimmed text of the element at `path` below the item (`["State", "Code"]`).
    pub fn text(&self, path: &[&str]) -> Option<&'a str> {
        descend(self.xml, &self.element, path).map(|e| self.xml[e.inner].trim())
    }
}

/// A change to one item. Paths lead from the item through direct children; an edit whose
/// element is missing does nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Sets the text of the element at the path.
    Text(&'static [&'static str], String),
    /// Replaces the content of the element at the path with this XML (not escaped).
    Content(&'static [&'static str], String),
    /// Removes the element at the path.
    Remove(&'static [&'static str]),
    /// Removes the whole item.
    RemoveItem,
}

/// Edits the items of every list element called `container`: each direct child is named by
/// the text at `id_path` below it, and `edits_for(id, item)` says what to change. Returns the
/// new document, or `None` when nothing changed (no such list, no edit, or XML this module
/// does not understand).
pub fn edit_items<F>(
    xml: &str,
    container: &str,
    id_path: &[&str],
    mut edits_for: F,
) -> Option<String>
where
    F: FnMut(&str, &Item<'_>) -> Vec<Edit>,
{
    let mut replacements: Vec<(Range<usize>, String)> = Vec::new();
    for list in all_named(xml, container) {
        let Some(items) = children(xml, list.inner.clone()) else {
            continue;
        };
        for element in items {
            let item = Item { xml, element };
            let Some(id) = item.text(id_path) else {
                continue;
            };
            for edit in edits_for(id, &item) {
                let (path, text): (&[&str], Option<String>) = match edit {
                    Edit::RemoveItem => {
                        replacements.push((item.element.outer.clone(), String::new()));
                        continue;
                    }
                    Edit::Remove(path) => (path, None),
                    Edit::Text(path, text) => (path, Some(escape(&text))),
                    Edit::Content(path, raw) => (path, Some(raw)),
                };
                let Some(target) = descend(xml, &item.element, path) else {
                    continue;
                };
                match text {
                    None => replacements.push((target.outer, String::new())),
                    Some(content) if target.self_closing => {
                        let name = target.name(xml);
                        replacements.push((target.outer, format!("<{name}>{content}</{name}>")));
                    }
                    Some(content) => replacements.push((target.inner, content)),
                }
            }
        }
    }
    if replacements.is_empty() {
        return None;
    }
    // Outer spans first, so a span inside an already replaced one (an edit of a removed item)
    // is dropped.
    replacements.sort_by(|(a, _), (b, _)| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out = String::with_capacity(xml.len() + 64);
    let mut at = 0;
    for (range, text) in replacements {
        if range.start < at {
            continue;
        }
        out.push_str(&xml[at..range.start]);
        out.push_str(&text);
        at = range.end;
    }
    out.push_str(&xml[at..]);
    Some(out)
}

/// The text at `id_path` of every item of every list called `container`, in document order.
pub fn item_ids(xml: &str, container: &str, id_path: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for list in all_named(xml, container) {
        let Some(items) = children(xml, list.inner.clone()) else {
            continue;
        };
        for element in items {
            if let Some(id) = (Item { xml, element }).text(id_path) {
                ids.push(id.to_owned());
            }
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    /// moto 5.2.1's DescribeInstances answer, shortened: two reservations, the first with two
    /// instances; nested `item`s and `state` elements that must not be confused with the
    /// instance's own.
    const INSTANCES: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15"><reservationSet><item><reservationId>r-1</reservationId><groupSet/><instancesSet><item><blockDeviceMapping><item><deviceName>/dev/sda1</deviceName><ebs><status>attached</status></ebs></item></blockDeviceMapping><metadataOptions><state>applied</state></metadataOptions><instanceId>i-a</instanceId><instanceState><code>16</code><name>running</name></instanceState><placement><availabilityZone>us-west-2b</availabilityZone></placement></item><item><instanceId>i-b</instanceId><instanceState><code>16</code><name>running</name></instanceState></item></instancesSet></item><item><reservationId>r-2</reservationId><instancesSet><item><instanceId>i-c</instanceId><instanceState><code>48</code><name>terminated</name></instanceState></item></instancesSet></item></reservationSet><requestId>request-id</requestId></DescribeInstancesResponse>"#;

    const PENDING: &str = "<code>0</code><name>pending</name>";

    #[test]
    fn nested_elements_of_items_in_every_list_are_edited() {
        let out = edit_items(INSTANCES, "instancesSet", &["instanceId"], |id, item| {
            if id == "i-b" || id == "i-c" {
                assert!(item.text(&["instanceState", "name"]).is_some());
            }
            if item.text(&["instanceState", "name"]) == Some("running") && id != "i-a" {
                vec![Edit::Content(&["instanceState"], PENDING.to_owned())]
            } else {
                Vec::new()
            }
        })
        .expect("changed");
        let expected = INSTANCES.replacen(
            "<instanceId>i-b</instanceId><instanceState><code>16</code><name>running</name>",
            "<instanceId>i-b</instanceId><instanceState><code>0</code><name>pending</name>",
            1,
        );
        assert_ne!(expected, INSTANCES);
        assert_eq!(out, expected);
        // An item of the second reservation's list is reached too.
        let out = edit_items(INSTANCES, "instancesSet", &["instanceId"], |id, _| {
            if id == "i-c" {
                vec![Edit::Text(&["instanceState", "name"], "gone".to_owned())]
            } else {
                Vec::new()
            }
        })
        .expect("changed");
        assert!(out.contains("<code>48</code><name>gone</name>"));
        assert_eq!(
            item_ids(INSTANCES, "instancesSet", &["instanceId"]),
            vec!["i-a", "i-b", "i-c"]
        );
        assert_eq!(
            edit_items(INSTANCES, "instancesSet", &["instanceId"], |_, _| Vec::new(
            )),
            None
        );
    }

    #[test]
    fn items_and_children_are_removed() {
        let out = edit_items(
            INSTANCES,
            "instancesSet",
            &["instanceId"],
            |id, _| match id {
                // The text edit inside the removed item is dropped with it.
                "i-a" => vec![
                    Edit::RemoveItem,
                    Edit::Text(&["instanceState", "name"], "x".to_owned()),
                ],
                "i-b" => vec![Edit::Remove(&["instanceState"])],
                _ => Vec::new(),
            },
        )
        .expect("changed");
        assert!(!out.contains("i-a"));
        assert!(!out.contains("<name>x</name>"));
        assert!(
            out.contains("<instancesSet><item><instanceId>i-b</instanceId></item></instancesSet>")
        );
        assert!(out.contains("<instanceId>i-c</instanceId><instanceState><code>48</code>"));
    }

    #[test]
    fn text_is_escaped_and_self_closing_elements_filled() {
        let xml = "<R><L><m><Id>a</Id><S/><T>1</T></m></L></R>";
        let out = edit_items(xml, "L", &["Id"], |_, _| {
            vec![
                Edit::Text(&["S"], "x<y".to_owned()),
                Edit::Content(&["T"], "<b>2</b>".to_owned()),
                Edit::Text(&["Missing"], "ignored".to_owned()),
            ]
        })
        .expect("changed");
        assert_eq!(
            out,
            "<R><L><m><Id>a</Id><S>x&lt;y</S><T><b>2</b></T></m></L></R>"
        );
    }

    #[test]
    fn unusual_xml_is_left_alone() {
        let broken = "<L><item><Id>a</Id><S>1</S></L>";
        assert_eq!(
            edit_items(broken, "L", &["Id"], |_, _| vec![Edit::RemoveItem]),
            None
        );
        assert_eq!(
            edit_items("", "L", &["Id"], |_, _| vec![Edit::RemoveItem]),
            None
        );
        assert!(item_ids("<L><item", "L", &["Id"]).is_empty());
        // Comments and CDATA with markup in them do not confuse the scanner.
        let odd = "<R><!-- <L> --><L><m><Id><![CDATA[x>]]></Id></m><m><Id>b</Id></m></L></R>";
        let out = edit_items(odd, "L", &["Id"], |id, _| {
            if id == "b" {
                vec![Edit::RemoveItem]
            } else {
                Vec::new()
            }
        })
        .expect("changed");
        assert_eq!(
            out,
            "<R><!-- <L> --><L><m><Id><![CDATA[x>]]></Id></m></L></R>"
        );
    }
}
