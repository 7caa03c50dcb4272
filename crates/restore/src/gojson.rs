//! JSON exactly as Go's `encoding/json` writes it.
//!
//! etcd stores JSON written by Go in the files a restore produces (member records in the
//! backend and in the ConfChange entries of the WAL, the v2 store in the raft snapshot).
//! Go escapes more than most encoders: `<`, `>` and `&` become `\u003c`, `\u003e` and
//! `\u0026`, U+2028 and U+2029 are escaped, and control characters other than `\n`,
//! `\r` and `\t` are written as `\u00XX` with lower-case hex (Go 1.16, which built etcd
//! 3.5.1, has no short forms for backspace and form feed). Writing the same bytes keeps
//! kastellan's files identical to `etcdutl`'s.

/// Appends `s` as a Go JSON string literal, quotes included.
pub fn push_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                let b = c as u32 as u8; // below 0x80 in every arm
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a JSON array of strings, as Go writes a non-nil `[]string`.
pub fn push_str_array(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, item);
    }
    out.push(']');
}

/// `s` as a Go JSON string literal.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_str(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        // Expected values printed by Go's json.Marshal.
        assert_eq!(string("plain"), r#""plain""#);
        assert_eq!(string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(string("<&>"), r#""\u003c\u0026\u003e""#);
        assert_eq!(
            string("\n\r\t\u{8}\u{c}\u{1}"),
            r#""\n\r\t\u0008\u000c\u0001""#
        );
        assert_eq!(string("\u{2028}\u{2029}é"), "\"\\u2028\\u2029é\"");
        let mut out = String::new();
        push_str_array(&mut out, &["http://a:1".into(), "http://b:2".into()]);
        assert_eq!(out, r#"["http://a:1","http://b:2"]"#);
    }
}
