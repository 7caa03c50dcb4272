//! Plain tables and wrapped text that fit a given width.
//!
//! Widths are display widths: ANSI escape sequences (colour) count for nothing, and
//! wide characters for two columns. A table wider than the width has its widest
//! columns narrowed, one column at a time, and a cell longer than its column is cut
//! with `…`; a cell never wraps onto a second line.

use std::fmt::Write as _;

use unicode_width::UnicodeWidthChar as _;

/// The narrowest a column is cut to (or its natural width, if that is smaller).
const MIN_COLUMN: usize = 4;

/// The ellipsis that ends a cut cell.
const ELLIPSIS: char = '…';

/// A simple table: header plus rows of cells, one line per row, no borders. Each cell
/// has one space of padding on either side (so each line starts with a space and
/// columns are two spaces apart); trailing blanks are trimmed.
#[derive(Debug, Default, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with the given column names (none: no header line).
    pub fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends one row.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Renders the table into `out`, fitting `style.width` when one is known (see
    /// [`Table::render_width`]).
    pub fn render_into(&self, out: &mut String, style: &crate::Style) {
        self.render_width(out, style.width);
    }

    /// Renders the table into `out`. With `width`, every line fits it: the widest
    /// columns are narrowed (never below four columns, or their natural width) and cut
    /// cells end in `…`. Without one, nothing is cut. A line can only be wider than
    /// `width` when every column is already at its narrowest.
    pub fn render_width(&self, out: &mut String, width: Option<usize>) {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0);
        if columns == 0 {
            return;
        }
        let mut widths = vec![0usize; columns];
        for row in self.lines() {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(display_width(cell));
            }
        }
        if let Some(limit) = width {
            narrow(&mut widths, limit);
        }
        for row in self.lines() {
            let mut line = String::new();
            for (i, w) in widths.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                let cell = truncate(cell, *w);
                let pad = w.saturating_sub(display_width(&cell));
                let _ = write!(line, " {cell}{} ", " ".repeat(pad));
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }

    /// The header (when there is one) then the rows.
    fn lines(&self) -> impl Iterator<Item = &Vec<String>> {
        (!self.header.is_empty())
            .then_some(&self.header)
            .into_iter()
            .chain(&self.rows)
    }
}

/// Narrows the widest column by one until the table's lines fit `limit` (each column
/// takes its width plus two blanks, the last one's trailing blank trimmed) or no column
/// can give more.
fn narrow(widths: &mut [usize], limit: usize) {
    let total = |w: &[usize]| w.iter().map(|w| w + 2).sum::<usize>().saturating_sub(1);
    let floor: Vec<usize> = widths.iter().map(|w| (*w).min(MIN_COLUMN)).collect();
    while total(widths) > limit {
        // The widest column that can still give; the rightmost of equals (details and
        // endpoints sit on the right, names on the left).
        let Some(i) = (0..widths.len())
            .filter(|&i| widths[i] > floor[i])
            .max_by_key(|&i| (widths[i], i))
        else {
            return;
        };
        widths[i] -= 1;
    }
}

/// The number of terminal columns `text` takes: escape sequences take none.
pub fn display_width(text: &str) -> usize {
    let mut w = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            skip_escape(&mut chars);
        } else {
            w += c.width().unwrap_or(0);
        }
    }
    w
}

/// Skips the rest of an escape sequence whose `ESC` was just read (CSI sequences such
/// as colours, `ESC [ ... m`; otherwise the one character after `ESC`).
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut seq = String::from('\x1b');
    match chars.next() {
        Some('[') => {
            seq.push('[');
            for c in chars.by_ref() {
                seq.push(c);
                if ('\x40'..='\x7e').contains(&c) {
                    break;
                }
            }
        }
        Some(c) => seq.push(c),
        None => {}
    }
    seq
}

/// `text` cut to `width` columns, ending in `…` when something was cut. Escape
/// sequences are kept; a cut text that carried any ends with a reset (`ESC [0m`), so
/// a colour does not run on into the next cell.
pub fn truncate(text: &str, width: usize) -> String {
    if display_width(text) <= width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let room = width.saturating_sub(1);
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            out.push_str(&skip_escape(&mut chars));
            escaped = true;
            continue;
        }
        let w = c.width().unwrap_or(0);
        if used + w > room {
            break;
        }
        used += w;
        out.push(c);
    }
    if width > 0 {
        out.push(ELLIPSIS);
    }
    if escaped {
        out.push_str("\x1b[0m");
    }
    out
}

/// Writes `first` then the words of `text` into `out`, a line break before a word that
/// would pass `width` columns, and lines after the first indented by `indent` blanks.
/// A word longer than a line stays whole (an address is not cut). Without a width,
/// `first` and `text` make one line.
pub fn wrap(out: &mut String, first: &str, indent: usize, text: &str, width: Option<usize>) {
    let mut line = first.to_string();
    let mut empty = true;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !empty && width.is_some_and(|w| display_width(&line) + 1 + display_width(word) > w) {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(indent);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &Table, width: Option<usize>) -> String {
        let mut out = String::new();
        t.render_width(&mut out, width);
        out
    }

    fn sample() -> Table {
        let mut t = Table::new(["NODE", "STATE", "DETAIL", "ENDPOINT"]);
        t.row([
            "cp1",
            "down",
            "connection failed: Connection refused (os error 111)",
            "http://127.0.0.1:10248/healthz",
        ]);
        t.row(["w1", "up", "ok", "http://127.0.0.1:10249/healthz"]);
        t
    }

    #[test]
    fn without_a_width_nothing_is_cut() {
        let out = render(&sample(), None);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        // One blank, then each column padded to its widest cell plus two blanks.
        let endpoint = 1 + (4 + 2) + (5 + 2) + (52 + 2);
        assert_eq!(lines[0].find("ENDPOINT"), Some(endpoint), "{out}");
        assert_eq!(lines[1].find("http"), Some(endpoint), "{out}");
        assert_eq!(lines[2].find("http"), Some(endpoint), "{out}");
        assert!(lines[1].ends_with("(os error 111)  http://127.0.0.1:10248/healthz"));
        assert!(lines[2].starts_with(" w1    up     ok "), "{out}");
        assert!(!out.contains('…'));
    }

    #[test]
    fn a_width_cuts_the_widest_columns_with_an_ellipsis() {
        for width in [40, 60, 80] {
            let out = render(&sample(), Some(width));
            for line in out.lines() {
                assert!(display_width(line) <= width, "{width}: {line:?}\n{out}");
            }
            assert_eq!(out.lines().count(), 3, "one line per row:\n{out}");
            assert!(out.contains('…'), "{out}");
            // Short columns keep their text; the long ones are cut, not wrapped.
            assert!(
                out.lines()
                    .nth(1)
                    .unwrap()
                    .starts_with(" cp1   down   conn")
            );
        }
        // Wide enough: the same as without a width.
        assert_eq!(render(&sample(), Some(200)), render(&sample(), None));
    }

    #[test]
    fn columns_stop_at_their_narrowest() {
        let out = render(&sample(), Some(5));
        let header = out.lines().next().unwrap();
        assert_eq!(header, " NODE  STA…  DET…  END…", "{out}");
    }

    #[test]
    fn colour_takes_no_width_and_a_cut_colour_is_reset() {
        let green = "\x1b[32mok\x1b[0m";
        assert_eq!(display_width(green), 2);
        let mut t = Table::new(["A", "B"]);
        t.row([green, "x"]);
        t.row(["long", "y"]);
        let out = render(&t, None);
        assert_eq!(out.lines().nth(1).unwrap(), format!(" {green}    x"));
        let cut = truncate("\x1b[31mdown and out\x1b[0m", 5);
        assert_eq!(cut, "\x1b[31mdown…\x1b[0m");
        assert_eq!(display_width(&cut), 5);
        assert_eq!(truncate("abcdef", 3), "ab…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(display_width("日本"), 4);
        assert_eq!(truncate("日本語", 4), "日…");
    }

    #[test]
    fn wraps_words_with_a_hanging_indent() {
        let mut out = String::new();
        wrap(&mut out, "  x: ", 4, &"word ".repeat(30), Some(40));
        assert!(out.lines().count() > 2, "{out}");
        assert!(out.lines().all(|l| l.len() <= 40), "{out}");
        assert!(
            out.lines().skip(1).all(|l| l.starts_with("    word")),
            "{out}"
        );
        let mut one = String::new();
        wrap(&mut one, "  x: ", 4, &"word ".repeat(30), None);
        assert_eq!(one.lines().count(), 1);
        let mut long = String::new();
        wrap(
            &mut long,
            "at ",
            2,
            &format!("x {}", "u".repeat(50)),
            Some(20),
        );
        assert_eq!(
            long,
            format!("at x\n  {}\n", "u".repeat(50)),
            "a long word stays whole"
        );
    }
}
