//! Small, structure-aware edits of moto's XML answers: find the items of a list element, name
//! each by one of its child elements, and set (or add) child elements' text; and look up the
//! text of elements by name.
//!
//! This module owns those item-level edits and lookups; the tag scanner they are built on
//! (nesting, comments, CDATA, self-closing elements) is [`xml`](super::xml)'s, shared with
//! [`xmledit`](super::xmledit), which edits below the item level. Anything the scanner does not
//! understand leaves the document unchanged (the callers then pass moto's answer through as it
//! is).

use std::ops::Range;

use super::xml::{Element, children, descend, escape, named};

/// The text of the first element called `name` anywhere in `xml`, trimmed.
pub fn first_text<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    named(xml, name).next().map(|e| e.text(xml))
}

/// Every element called `name` anywhere in `xml` (not nested in each other), as text.
pub fn all_texts<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(s) = xml[at..].find(&open) {
        let start = at + s + open.len();
        let Some(e) = xml[start..].find(&close) else {
            break;
        };
        out.push(xml[start..start + e].trim());
        at = start + e + close.len();
    }
    out
}

/// `element` with each `(child, text)` set: an existing direct child's text is replaced, a
/// missing one is appended as the element's last child.
fn edit_element(xml: &str, element: &Element, edits: &[(&str, String)]) -> Option<String> {
    let kids = children(xml, element.inner.clone())?;
    let mut replacements: Vec<(Range<usize>, String)> = Vec::new();
    let mut appended = String::new();
    for (name, text) in edits {
        match kids.iter().find(|c| c.name(xml) == *name) {
            Some(c) if c.self_closing => {
                replacements.push((
                    c.outer.clone(),
                    format!("<{name}>{}</{name}>", escape(text)),
                ));
            }
            Some(c) => replacements.push((c.inner.clone(), escape(text))),
            None => appended.push_str(&format!("<{name}>{}</{name}>", escape(text))),
        }
    }
    replacements.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(element.outer.len() + 64);
    let mut at = element.outer.start;
    if element.self_closing {
        // `<a/>` → `<a>…</a>`.
        let open_end = element.inner.start;
        out.push_str(&xml[at..open_end]);
        out.push('>');
        out.push_str(&appended);
        out.push_str(&format!("</{}>", element.name(xml)));
        return Some(out);
    }
    for (range, text) in replacements {
        out.push_str(&xml[at..range.start]);
        out.push_str(&text);
        at = range.end;
    }
    out.push_str(&xml[at..element.inner.end]);
    out.push_str(&appended);
    out.push_str(&xml[element.inner.end..element.outer.end]);
    Some(out)
}

/// Rewrites the items of the list element `container`: each direct child is named by the text
/// of its direct child `id_element`, and `edits_for(id)` says which of its children to set.
/// Returns the new document, or `None` when nothing was changed (no container, no matching
/// item, or XML this module does not understand).
pub fn rewrite_items<F>(
    xml: &str,
    container: &str,
    id_element: &str,
    edits_for: F,
) -> Option<String>
where
    F: Fn(&str) -> Option<Vec<(&'static str, String)>>,
{
    let list = named(xml, container).next()?;
    let items = children(xml, list.inner.clone())?;
    let mut out = String::with_capacity(xml.len() + 64);
    let mut at = 0;
    let mut changed = false;
    for item in &items {
        let Some(id) = descend(xml, item, &[id_element]).map(|e| e.text(xml)) else {
            continue;
        };
        let Some(edits) = edits_for(id) else {
            continue;
        };
        let Some(new_item) = edit_element(xml, item, &edits) else {
            continue;
        };
        out.push_str(&xml[at..item.outer.start]);
        out.push_str(&new_item);
        at = item.outer.end;
        changed = true;
    }
    if !changed {
        return None;
    }
    out.push_str(&xml[at..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// moto 5.2.1's answer, verbatim (two snapshots, one with a tag).
    const SNAPSHOTS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15"><snapshotSet><item><tagSet><item><key>Name</key><value>a</value></item></tagSet><snapshotId>snap-a</snapshotId><volumeId>vol-1</volumeId><status>completed</status><startTime>2026-11-24T18:04:20.000Z</startTime><progress>100%</progress><ownerId>123456789012</ownerId><description>x</description><volumeSize>7</volumeSize><encrypted>false</encrypted></item><item><tagSet/><snapshotId>snap-b</snapshotId><volumeId>vol-1</volumeId><status>completed</status><startTime>2026-11-24T18:04:20.000Z</startTime><progress>100%</progress><ownerId>123456789012</ownerId><volumeSize>7</volumeSize><encrypted>false</encrypted></item></snapshotSet><requestId>request-id</requestId></DescribeSnapshotsResponse>"#;

    const IMAGES: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<DescribeImagesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15"><imagesSet><item><blockDeviceMapping><item><ebs><deleteOnTermination>false</deleteOnTermination><snapshotId>snap-5193aa4991290e537</snapshotId><volumeSize>15</volumeSize><volumeType>standard</volumeType></ebs><deviceName>/dev/sda1</deviceName></item></blockDeviceMapping><description/><name>img</name><rootDeviceName>/dev/sda1</rootDeviceName><rootDeviceType>standard</rootDeviceType><tagSet/><bootMode>uefi</bootMode><imageId>ami-1</imageId><imageState>available</imageState><imageOwnerId>123456789012</imageOwnerId></item></imagesSet><requestId>request-id</requestId></DescribeImagesResponse>"#;

    const DB_SNAPSHOTS: &str = r#"<DescribeDBSnapshotsResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><DescribeDBSnapshotsResult><DBSnapshots><DBSnapshot><DBSnapshotIdentifier>db1-1-dr</DBSnapshotIdentifier><DBInstanceIdentifier>db1</DBInstanceIdentifier><AllocatedStorage>25</AllocatedStorage><Status>available</Status><SnapshotType>manual</SnapshotType><TagList/></DBSnapshot></DBSnapshots></DescribeDBSnapshotsResult><ResponseMetadata><RequestId>x</RequestId></ResponseMetadata></DescribeDBSnapshotsResponse>"#;

    #[test]
    fn rewrites_only_the_named_item_and_keeps_the_rest_byte_for_byte() {
        let out = rewrite_items(SNAPSHOTS, "snapshotSet", "snapshotId", |id| {
            (id == "snap-b").then(|| {
                vec![
                    ("status", "pending".to_owned()),
                    ("progress", "42%".to_owned()),
                ]
            })
        })
        .expect("changed");
        let expected = SNAPSHOTS.replacen(
            "<snapshotId>snap-b</snapshotId><volumeId>vol-1</volumeId><status>completed</status><startTime>2026-11-24T18:04:20.000Z</startTime><progress>100%</progress>",
            "<snapshotId>snap-b</snapshotId><volumeId>vol-1</volumeId><status>pending</status><startTime>2026-11-24T18:04:20.000Z</startTime><progress>42%</progress>",
            1,
        );
        assert_ne!(expected, SNAPSHOTS);
        assert_eq!(out, expected);
        // No item matches: no rewrite.
        assert_eq!(
            rewrite_items(SNAPSHOTS, "snapshotSet", "snapshotId", |_| None),
            None
        );
        assert_eq!(
            rewrite_items(SNAPSHOTS, "imagesSet", "imageId", |_| Some(vec![])),
            None
        );
    }

    #[test]
    fn nested_items_do_not_confuse_the_item_boundaries() {
        // snap-a's tagSet holds an <item> too; only the outer item is edited.
        let out = rewrite_items(SNAPSHOTS, "snapshotSet", "snapshotId", |id| {
            (id == "snap-a").then(|| vec![("status", "pending".to_owned())])
        })
        .expect("changed");
        assert!(out.contains("<item><key>Name</key><value>a</value></item>"));
        assert_eq!(out.matches("<status>pending</status>").count(), 1);
        assert!(out.contains(
            "<snapshotId>snap-a</snapshotId><volumeId>vol-1</volumeId><status>pending</status>"
        ));
        // An image is named by its own imageId, not by its mappings' snapshotIds.
        let img = rewrite_items(IMAGES, "imagesSet", "imageId", |id| {
            (id == "ami-1").then(|| vec![("imageState", "pending".to_owned())])
        })
        .expect("changed");
        assert!(img.contains("<imageState>pending</imageState>"));
        assert!(!img.contains("available"));
        assert_eq!(
            rewrite_items(IMAGES, "imagesSet", "snapshotId", |_| Some(vec![(
                "imageState",
                "pending".to_owned()
            )])),
            None
        );
    }

    #[test]
    fn missing_children_are_appended_and_empty_ones_filled() {
        let out = rewrite_items(DB_SNAPSHOTS, "DBSnapshots", "DBSnapshotIdentifier", |id| {
            (id == "db1-1-dr").then(|| {
                vec![
                    ("Status", "copying".to_owned()),
                    ("PercentProgress", "37".to_owned()),
                    ("TagList", "x<y".to_owned()),
                ]
            })
        })
        .expect("changed");
        assert!(out.contains("<Status>copying</Status>"));
        assert!(out.contains("<TagList>x&lt;y</TagList>"));
        assert!(out.contains("<PercentProgress>37</PercentProgress></DBSnapshot>"));
        assert!(out.ends_with("</DescribeDBSnapshotsResponse>"));
    }

    #[test]
    fn lookups_by_name() {
        assert_eq!(first_text(SNAPSHOTS, "snapshotId"), Some("snap-a"));
        assert_eq!(first_text(SNAPSHOTS, "volumeSize"), Some("7"));
        assert_eq!(first_text(SNAPSHOTS, "nope"), None);
        assert_eq!(all_texts(IMAGES, "volumeSize"), vec!["15"]);
        assert_eq!(all_texts(SNAPSHOTS, "volumeSize"), vec!["7", "7"]);
        assert_eq!(first_text(DB_SNAPSHOTS, "AllocatedStorage"), Some("25"));
    }

    #[test]
    fn broken_xml_is_left_alone() {
        let broken = "<snapshotSet><item><snapshotId>snap-a</snapshotId><status>completed</status></snapshotSet>";
        assert_eq!(
            rewrite_items(broken, "snapshotSet", "snapshotId", |_| Some(vec![(
                "status",
                "pending".to_owned()
            )])),
            None
        );
        assert_eq!(rewrite_items("<a><b", "a", "b", |_| Some(vec![])), None);
        assert_eq!(first_text("", "a"), None);
    }
}
