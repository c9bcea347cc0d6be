//! Editing the items of moto's XML answers in place, below the item level: nested state
//! elements (`instanceState`, `State/Code`), removed children (`Endpoint`) and removed items.
//!
//! [`rewrite`](super::rewrite) sets the text of an item's direct children in the first list
//! of an answer; the pending-state realism ([`super::pending`]) also needs every list of an
//! answer (one `instancesSet` per reservation), paths below the item and removals, which this
//! module owns. Both are built on the one tag scanner in [`xml`](super::xml), which understands
//! the XML moto writes (elements, text, comments, declarations, CDATA) without a full parser;
//! edits touch only the spans they change (everything else stays byte for byte), and a
//! document the scanner does not understand is left alone.

use std::ops::Range;

use super::xml::{Element, children, descend, escape, named};

/// One list item of an answer, for deciding its edits.
#[derive(Debug)]
pub struct Item<'a> {
    xml: &'a str,
    element: Element,
}

impl<'a> Item<'a> {
    /// The trimmed text of the element at `path` below the item (`["State", "Code"]`).
    pub fn text(&self, path: &[&str]) -> Option<&'a str> {
        descend(self.xml, &self.element, path).map(|e| e.text(self.xml))
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
    for list in named(xml, container) {
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
    for list in named(xml, container) {
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
