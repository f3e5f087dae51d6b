//! Text in XML documents (MNS-style push notifications, SQS query answers).

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
