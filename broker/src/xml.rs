//! XML documents: escaping text (MNS-style push notifications, SQS, SNS and MNS
//! answers), writing answers, and reading MNS request bodies.

/// `text` with the characters XML gives meaning to escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A literal CR would be normalised away by the reader.
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

/// Builds an XML answer element by element.
#[derive(Default)]
pub struct Writer(pub String);

impl Writer {
    /// `<name>value</name>`, the value escaped.
    pub fn field(&mut self, name: &str, value: &str) -> &mut Self {
        self.0
            .push_str(&format!("<{name}>{}</{name}>", escape(value)));
        self
    }

    pub fn open(&mut self, name: &str) -> &mut Self {
        self.0.push_str(&format!("<{name}>"));
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.0.push_str(&format!("</{name}>"));
        self
    }

    /// A string map as AWS writes it: `<entry><key/><value/></entry>` items.
    pub fn map(&mut self, name: &str, map: &std::collections::BTreeMap<&str, String>) -> &mut Self {
        self.open(name);
        for (k, v) in map {
            self.open("entry")
                .field("key", k)
                .field("value", v)
                .close("entry");
        }
        self.close(name)
    }

    /// What was written, leaving the writer empty.
    pub fn done(&mut self) -> Option<String> {
        Some(std::mem::take(&mut self.0))
    }
}

/// An element of a small XML document (an MNS request body): its local name (without
/// namespace prefix), its text, and its child elements in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The text of the first child named `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the XML body is malformed: {0}")]
pub struct XmlError(String);

/// Reads a document into its root element.
pub fn parse(document: &[u8]) -> Result<Element, XmlError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(document);
    let mut stack: Vec<Element> = Vec::new();
    let mut buf = Vec::new();
    let name_of = |raw: &[u8]| String::from_utf8_lossy(raw).into_owned();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| XmlError(e.to_string()))?;
        match event {
            Event::Start(start) => stack.push(Element {
                name: name_of(start.local_name().as_ref()),
                ..Element::default()
            }),
            Event::Empty(empty) => {
                let element = Element {
                    name: name_of(empty.local_name().as_ref()),
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            Event::Text(text) => {
                if let Some(top) = stack.last_mut() {
                    let text = text.decode().map_err(|e| XmlError(e.to_string()))?;
                    let text =
                        quick_xml::escape::unescape(&text).map_err(|e| XmlError(e.to_string()))?;
                    top.text.push_str(&text);
                }
            }
            Event::GeneralRef(reference) => {
                if let Some(top) = stack.last_mut() {
                    let name = reference.decode().map_err(|e| XmlError(e.to_string()))?;
                    let entity = format!("&{name};");
                    let text = quick_xml::escape::unescape(&entity)
                        .map_err(|e| XmlError(e.to_string()))?;
                    top.text.push_str(&text);
                }
            }
            Event::CData(data) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&data));
                }
            }
            Event::End(_) => {
                let done = stack
                    .pop()
                    .ok_or_else(|| XmlError("an end tag without a start".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Ok(done),
                }
            }
            Event::Eof => {
                return Err(XmlError(
                    "the document ends before its root element closes".into(),
                ));
            }
            _ => {}
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_elements_text_and_entities() {
        let doc = parse(
            br#"<?xml version="1.0" encoding="UTF-8"?>
<Messages xmlns="http://mns.aliyuncs.com/doc/v1/"><Message><MessageBody>a &lt;b&gt; &amp; c</MessageBody><Priority>3</Priority></Message><Message><MessageBody><![CDATA[<raw>]]></MessageBody><Empty/></Message></Messages>"#,
        )
        .expect("parses");
        assert_eq!(doc.name, "Messages");
        assert_eq!(doc.children.len(), 2);
        assert_eq!(doc.children[0].text_of("MessageBody"), Some("a <b> & c"));
        assert_eq!(doc.children[0].text_of("Priority"), Some("3"));
        assert_eq!(doc.children[1].text_of("MessageBody"), Some("<raw>"));
        assert_eq!(doc.children[1].text_of("Empty"), Some(""));
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a>").is_err());
    }
}
