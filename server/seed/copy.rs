//! Bulk writes with `COPY .. FROM STDIN` (text format).

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// Bytes buffered before a CopyData message is sent.
const CHUNK_BYTES: usize = 1 << 20;

/// One row of COPY text: fields separated by tabs, `\N` for NULL.
#[derive(Default)]
pub struct Row {
    buf: String,
    fields: usize,
}

impl Row {
    fn sep(&mut self) {
        if self.fields > 0 {
            self.buf.push('\t');
        }
        self.fields += 1;
    }

    fn end(&mut self) {
        self.buf.push('\n');
        self.fields = 0;
    }

    pub fn null(&mut self) -> &mut Self {
        self.sep();
        self.buf.push_str("\\N");
        self
    }

    pub fn text(&mut self, s: &str) -> &mut Self {
        self.sep();
        for c in s.chars() {
            match c {
                '\\' => self.buf.push_str("\\\\"),
                '\t' => self.buf.push_str("\\t"),
                '\n' => self.buf.push_str("\\n"),
                '\r' => self.buf.push_str("\\r"),
                c => self.buf.push(c),
            }
        }
        self
    }

    pub fn opt_text(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }

    pub fn uuid(&mut self, id: Uuid) -> &mut Self {
        self.sep();
        let _ = write!(self.buf, "{id}");
        self
    }

    pub fn opt_uuid(&mut self, id: Option<Uuid>) -> &mut Self {
        match id {
            Some(id) => self.uuid(id),
            None => self.null(),
        }
    }

    pub fn int(&mut self, v: i64) -> &mut Self {
        self.sep();
        let _ = write!(self.buf, "{v}");
        self
    }

    /// Shortest representation that reads back to the same f64.
    pub fn float(&mut self, v: f64) -> &mut Self {
        self.sep();
        let _ = write!(self.buf, "{v}");
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.sep();
        self.buf.push(if v { 't' } else { 'f' });
        self
    }

    pub fn date(&mut self, d: NaiveDate) -> &mut Self {
        self.sep();
        let _ = write!(self.buf, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
        self
    }

    pub fn opt_date(&mut self, d: Option<NaiveDate>) -> &mut Self {
        match d {
            Some(d) => self.date(d),
            None => self.null(),
        }
    }

    pub fn ts(&mut self, t: DateTime<Utc>) -> &mut Self {
        self.sep();
        let _ = write!(
            self.buf,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}+00",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        self
    }

    pub fn opt_ts(&mut self, t: Option<DateTime<Utc>>) -> &mut Self {
        match t {
            Some(t) => self.ts(t),
            None => self.null(),
        }
    }
}

/// Copies `rows` into `target` ("table (col, ...)"), `write` filling one row per item.
/// Returns the number of rows written.
pub async fn copy_rows<T>(
    conn: &mut PgConnection,
    target: &str,
    rows: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut Row, T),
) -> anyhow::Result<u64> {
    let mut copy = conn
        .copy_in_raw(&format!("COPY {target} FROM STDIN"))
        .await?;
    let mut row = Row::default();
    for item in rows {
        write(&mut row, item);
        row.end();
        if row.buf.len() >= CHUNK_BYTES {
            copy.send(row.buf.as_bytes()).await?;
            row.buf.clear();
        }
    }
    if !row.buf.is_empty() {
        copy.send(row.buf.as_bytes()).await?;
    }
    Ok(copy.finish().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_escaped_copy_text() {
        let mut row = Row::default();
        row.text("a\tb\\c\nd")
            .null()
            .int(-5)
            .bool(true)
            .float(9.512345)
            .date(NaiveDate::from_ymd_opt(2026, 1, 5).expect("date"))
            .ts(NaiveDate::from_ymd_opt(2026, 1, 5)
                .expect("date")
                .and_hms_opt(8, 3, 9)
                .expect("time")
                .and_utc());
        row.end();
        assert_eq!(
            row.buf,
            "a\\tb\\\\c\\nd\t\\N\t-5\tt\t9.512345\t2026-01-05\t2026-01-05 08:03:09+00\n"
        );
    }
}
