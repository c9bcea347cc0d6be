//! The one XML tag scanner of the proxy, shared by [`rewrite`](super::rewrite) and
//! [`xmledit`](super::xmledit), which own the edits built on it.
//!
//! This is not a general XML parser. It understands what moto writes — elements, self-closing
//! elements, attributes, text, an `<?xml …?>` declaration, comments, CDATA — and tracks
//! nesting, so the `<item>` of a list is told apart from the `<item>`s of its own `tagSet`.
//! Every function answers with byte ranges into the document, so callers edit only the spans
//! they change, and answers `None` (or nothing) where the document is not what it expects.

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

impl Tag<'_> {
    /// Where the tag's name lies (just after `<` or `</`).
    fn name_range(&self) -> Range<usize> {
        let start = match self.kind {
            TagKind::Close => self.start + 2,
            _ => self.start + 1,
        };
        start..start + self.name.len()
    }

    /// The element of a self-closing tag (`<a/>`).
    fn self_closing(&self) -> Element {
        Element {
            name: self.name_range(),
            outer: self.start..self.end,
            inner: self.end - 2..self.end - 2,
            self_closing: true,
        }
    }

    /// The element this start tag begins and the end tag `close` ends.
    fn up_to(&self, close: &Tag<'_>) -> Option<Element> {
        (self.name == close.name).then(|| Element {
            name: self.name_range(),
            outer: self.start..close.end,
            inner: self.end..close.start,
            self_closing: false,
        })
    }
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
pub(super) struct Element {
    /// The name in the start tag.
    pub(super) name: Range<usize>,
    /// From `<` of the start tag to one past `>` of the end tag.
    pub(super) outer: Range<usize>,
    /// Between the start and the end tag; empty (at the `/>`) for a self-closing element.
    pub(super) inner: Range<usize>,
    /// `<a/>`: content is added by rewriting the whole element.
    pub(super) self_closing: bool,
}

impl Element {
    pub(super) fn name<'a>(&self, xml: &'a str) -> &'a str {
        &xml[self.name.clone()]
    }

    /// The element's content, trimmed.
    pub(super) fn text<'a>(&self, xml: &'a str) -> &'a str {
        xml[self.inner.clone()].trim()
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
                    return open.up_to(&tag);
                }
            }
            TagKind::SelfClose | TagKind::Other => {}
        }
    }
    None
}

/// The direct child elements inside `range` (which must hold whole elements and text);
/// `None` when the nesting is broken.
pub(super) fn children(xml: &str, range: Range<usize>) -> Option<Vec<Element>> {
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
            TagKind::SelfClose if depth == 0 => out.push(tag.self_closing()),
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
                    out.push(open.take()?.up_to(&tag)?);
                }
            }
        }
    }
    (depth == 0).then_some(out)
}

/// Every element called `name`, in document order, found as the caller asks for the next one;
/// one nested in another of the same name is not listed separately. Ends at the first such
/// element that is never closed.
pub(super) fn named<'a>(xml: &'a str, name: &'a str) -> impl Iterator<Item = Element> + 'a {
    let mut at = Some(0);
    std::iter::from_fn(move || {
        while let Some(tag) = next_tag(xml, at?) {
            at = Some(tag.end);
            if tag.name != name {
                continue;
            }
            match tag.kind {
                TagKind::SelfClose => return Some(tag.self_closing()),
                TagKind::Open => {
                    let element = closing(xml, &tag);
                    at = element.as_ref().map(|e| e.outer.end);
                    return element;
                }
                TagKind::Close | TagKind::Other => {}
            }
        }
        at = None;
        None
    })
}

/// The element reached from `from` by following direct children named by `path`.
pub(super) fn descend(xml: &str, from: &Element, path: &[&str]) -> Option<Element> {
    let mut at = from.clone();
    for step in path {
        at = children(xml, at.inner.clone())?
            .into_iter()
            .find(|c| c.name(xml) == *step)?;
    }
    Some(at)
}

/// Escapes text for an XML element.
pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_skip_nested_elements_comments_and_cdata() {
        let xml = r#"<?xml version="1.0"?><L a="1"><!-- <x> --><m><m>1</m></m><e/><n><![CDATA[<y>]]></n></L>"#;
        let list = named(xml, "L").next().expect("list");
        assert_eq!(list.outer, xml.find("<L").expect("L")..xml.len());
        let kids = children(xml, list.inner).expect("well nested");
        let names: Vec<&str> = kids.iter().map(|k| k.name(xml)).collect();
        assert_eq!(names, ["m", "e", "n"]);
        assert_eq!(kids[0].text(xml), "<m>1</m>");
        assert!(kids[1].self_closing);
        assert_eq!(&xml[kids[1].outer.clone()], "<e/>");
        assert_eq!(kids[2].text(xml), "<![CDATA[<y>]]>");
        let inner = descend(xml, &kids[0], &["m"]).expect("nested m");
        assert_eq!(inner.text(xml), "1");
        assert_eq!(descend(xml, &kids[0], &["x"]), None);
    }

    #[test]
    fn broken_nesting_is_refused() {
        assert_eq!(children("<m>1</n>", 0..8), None);
        assert_eq!(children("<m>1", 0..4), None);
        assert_eq!(children("</m>", 0..4), None);
        assert_eq!(children("<m>1</m>", 0..8).map(|k| k.len()), Some(1));
        // The first list closes (its depth balances); the second never does.
        let xml = "<L><m><a>1</b></m></L><L><m>";
        assert_eq!(named(xml, "L").count(), 1);
        assert_eq!(named("<L><L/>", "L").count(), 0);
        assert_eq!(named("", "L").count(), 0);
        assert_eq!(named("<a><", "a").count(), 0);
    }

    #[test]
    fn named_lists_outermost_elements_in_order() {
        let xml = "<r><s>1<s>2</s></s><t/><s/><s>3</s></r>";
        let texts: Vec<&str> = named(xml, "s").map(|e| e.text(xml)).collect();
        assert_eq!(texts, ["1<s>2</s>", "", "3"]);
        assert_eq!(escape("a&b<c>"), "a&amp;b&lt;c&gt;");
    }
}
