//! Bulk import (SPEC section 14, docs/import.md): a file of existing
//! consent records, NDJSON or CSV, read one line at a time (memory stays
//! flat whatever the file's size) into the opt-in and opt-out requests of
//! the API, always backfilled. A line that cannot be read says why, with
//! its number in the file (counted from 1; a CSV header is line 1).

use super::problem::{ErrorCode, Invalid};
use super::record::{OptInDraft, OptOutRecord};
use super::request::{OptInRequest, OptOutRequest, Requester};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io::{BufRead, Read};
use utoipa::ToSchema;

/// The longest line read, in bytes (as a JSON body of the API).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// How many refused lines an import lists (all are counted).
pub const MAX_LISTED: usize = 1_000;

/// The file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// One JSON object a line.
    Ndjson,
    /// A header line naming the fields, then one record a line.
    Csv,
}

impl ImportFormat {
    /// From a `Content-Type` (`application/x-ndjson`, `text/csv`).
    pub fn of_media_type(media_type: &str) -> Option<Self> {
        let mime = media_type.split(';').next()?.trim().to_ascii_lowercase();
        match mime.as_str() {
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
                Some(Self::Ndjson)
            }
            "text/csv" => Some(Self::Csv),
            _ => None,
        }
    }

    /// From a file name: `.csv` is CSV, anything else NDJSON.
    pub fn of_file_name(name: &str) -> Self {
        match name.to_ascii_lowercase().ends_with(".csv") {
            true => Self::Csv,
            false => Self::Ndjson,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ndjson => "ndjson",
            Self::Csv => "csv",
        }
    }
}

/// What happens to an import with refused lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// Every line is checked first; one refused line refuses the import.
    AllOrNothing,
    /// The valid lines are recorded, the refused ones listed.
    ValidLines,
}

impl ImportMode {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "all_or_nothing" => Some(Self::AllOrNothing),
            "valid_lines" => Some(Self::ValidLines),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllOrNothing => "all_or_nothing",
            Self::ValidLines => "valid_lines",
        }
    }
}

/// Whether `id` may name an import: 1 to 128 letters, digits, `.`, `_`,
/// `:` or `-` (a file's SHA-256 in hex is one).
pub fn is_import_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A refused line: its number, the problem code and what is wrong (never
/// a value of the line: it may name a person).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LineProblem {
    /// Counted from 1 in the file (a CSV header is line 1).
    pub line: u64,
    /// A problem code (`GET /problems/{code}`).
    pub code: String,
    pub detail: String,
}

impl LineProblem {
    fn new(line: u64, code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            line,
            code: code.as_str().to_owned(),
            detail: detail.into(),
        }
    }

    /// A refusal by the API's rules; the fields it names (never their
    /// values) join the detail.
    pub fn refused(line: u64, invalid: Invalid) -> Self {
        let fields: Vec<String> = invalid
            .errors
            .iter()
            .map(|e| format!("{} {}", e.field, e.code))
            .collect();
        let detail = match fields.is_empty() {
            true => invalid.detail,
            false => format!(
                "{} ({})",
                invalid.detail.trim_end_matches("; see errors"),
                fields.join(", ")
            ),
        };
        Self::new(line, invalid.code, detail)
    }
}

/// Where an import stands (`GET /v1/imports/{id}`, the CLI's last line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ImportStanding {
    pub id: String,
    /// `running`, `done` or `refused` (`all_or_nothing`: nothing recorded).
    pub status: String,
    /// Lines read by the recording so far.
    pub read: u64,
    pub recorded: u64,
    pub refused: u64,
    /// The refused lines, in order (the first 1,000; `refused` counts all).
    pub refused_lines: Vec<LineProblem>,
}

/// A line read: its number and its JSON object, or why it cannot be read.
pub type ReadLine = (u64, Result<Map<String, Value>, LineProblem>);

/// The lines of a file, whichever its format.
pub fn lines<'r>(
    format: ImportFormat,
    reader: impl BufRead + 'r,
) -> Box<dyn Iterator<Item = ReadLine> + 'r> {
    match format {
        ImportFormat::Ndjson => Box::new(NdjsonLines {
            reader,
            line: 0,
            buf: Vec::new(),
            done: false,
        }),
        ImportFormat::Csv => Box::new(CsvLines::new(reader)),
    }
}

struct NdjsonLines<R> {
    reader: R,
    line: u64,
    buf: Vec<u8>,
    done: bool,
}

impl<R: BufRead> NdjsonLines<R> {
    /// Reads the next line into `buf` (at most [`MAX_LINE_BYTES`] of it; the
    /// rest of a longer line is read past). `None` at the end of the file.
    fn read_line(&mut self) -> Option<Result<(bool, bool), std::io::Error>> {
        self.buf.clear();
        let limit = MAX_LINE_BYTES as u64 + 1;
        match (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
        {
            Ok(0) => None,
            Ok(_) => {
                let terminated = self.buf.ends_with(b"\n");
                let too_long = !terminated && self.buf.len() > MAX_LINE_BYTES;
                if too_long {
                    if let Err(e) = skip_line(&mut self.reader) {
                        return Some(Err(e));
                    }
                }
                Some(Ok((terminated, too_long)))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

/// Reads past the rest of a line.
fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = chunk.len();
                reader.consume(n);
            }
        }
    }
}

impl<R: BufRead> Iterator for NdjsonLines<R> {
    type Item = ReadLine;

    fn next(&mut self) -> Option<ReadLine> {
        while !self.done {
            let read = self.read_line();
            self.line += 1;
            let line = self.line;
            let (terminated, too_long) = match read {
                None => return None,
                Some(Err(e)) => {
                    self.done = true;
                    return Some((line, Err(unreadable(line, &e))));
                }
                Some(Ok(read)) => read,
            };
            if too_long {
                return Some((line, Err(too_long_line(line))));
            }
            let text = match std::str::from_utf8(&self.buf) {
                // A spreadsheet's export may begin with a byte order mark.
                Ok(text) if line == 1 => text.trim_start_matches(BOM).trim(),
                Ok(text) => text.trim(),
                Err(_) => return Some((line, Err(not_utf8(line)))),
            };
            if text.is_empty() {
                continue;
            }
            let parsed = match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(object)) => Ok(object),
                Ok(_) => Err(LineProblem::new(
                    line,
                    ErrorCode::MalformedLine,
                    "the line is JSON but not an object",
                )),
                Err(_) if !terminated => Err(truncated(line)),
                Err(e) => Err(LineProblem::new(
                    line,
                    ErrorCode::MalformedLine,
                    format!("the line is not well-formed JSON (column {})", e.column()),
                )),
            };
            return Some((line, parsed));
        }
        None
    }
}

fn unreadable(line: u64, e: &std::io::Error) -> LineProblem {
    LineProblem::new(
        line,
        ErrorCode::MalformedLine,
        format!("the file could not be read from here on: {}", e.kind()),
    )
}

fn too_long_line(line: u64) -> LineProblem {
    LineProblem::new(
        line,
        ErrorCode::MalformedLine,
        "the line is longer than 1 MiB",
    )
}

fn not_utf8(line: u64) -> LineProblem {
    LineProblem::new(line, ErrorCode::InvalidEncoding, "the line is not UTF-8")
}

fn truncated(line: u64) -> LineProblem {
    LineProblem::new(
        line,
        ErrorCode::TruncatedLine,
        "the file ends inside this line: it was cut short",
    )
}

/// UTF-8's byte order mark, which some exports begin with.
const BOM: char = '\u{feff}';

/// The columns a CSV header may name, beside `evidence.<key>`.
const CSV_COLUMNS: &[&str] = &[
    "type",
    "number",
    "user_id",
    "region",
    "channel",
    "company_name_shown",
    "consent_text",
    "purposes",
    "message_channels",
    "captured_at",
    "language",
    "backfill",
];

/// Columns whose cell is a space-separated list.
const CSV_LISTS: &[&str] = &["purposes", "message_channels"];

/// Tracks whether the bytes read so far end with a line break, and
/// whether they end inside a quoted cell (an odd number of `"`: a quote
/// inside a cell is written twice).
struct LastByte<R> {
    inner: R,
    last: Option<u8>,
    quote_open: bool,
}

impl<R: Read> Read for LastByte<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.last = Some(buf[n - 1]);
            let quotes = memchr::memchr_iter(b'"', &buf[..n]).count();
            self.quote_open ^= quotes % 2 == 1;
        }
        Ok(n)
    }
}

struct CsvLines<R> {
    reader: csv::Reader<LastByte<R>>,
    header: Option<Vec<String>>,
    /// The record read ahead (to know which one is the last).
    ahead: Option<(u64, csv::ByteRecord)>,
    started: bool,
    done: bool,
}

impl<R: Read> CsvLines<R> {
    fn new(reader: R) -> Self {
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(LastByte {
                inner: reader,
                last: None,
                quote_open: false,
            });
        Self {
            reader,
            header: None,
            ahead: None,
            started: false,
            done: false,
        }
    }

    /// The next record and its line, or why the file cannot be read on.
    fn read_record(&mut self) -> Option<Result<(u64, csv::ByteRecord), LineProblem>> {
        let mut record = csv::ByteRecord::new();
        match self.reader.read_byte_record(&mut record) {
            Ok(false) => None,
            Ok(true) => {
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                Some(Ok((line, record)))
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                let why = std::io::Error::other(e.to_string());
                Some(Err(unreadable(line, &why)))
            }
        }
    }

    /// Reads the header (line 1): every column known, none twice.
    fn read_header(&mut self) -> Result<(), LineProblem> {
        let (line, record) = match self.read_record() {
            None => return Ok(()),
            Some(read) => read?,
        };
        let mut names = Vec::with_capacity(record.len());
        for (i, field) in record.iter().enumerate() {
            let name = std::str::from_utf8(field).map_err(|_| not_utf8(line))?;
            // A spreadsheet's export may begin with a byte order mark.
            let name = match i {
                0 => name.trim_start_matches(BOM),
                _ => name,
            }
            .trim();
            let known = CSV_COLUMNS.contains(&name)
                || name
                    .strip_prefix("evidence.")
                    .is_some_and(|key| !key.is_empty());
            if !known {
                return Err(LineProblem::new(
                    line,
                    ErrorCode::MalformedLine,
                    format!("the header names an unknown column `{}`", printable(name)),
                ));
            }
            if names.iter().any(|n| n == name) {
                return Err(LineProblem::new(
                    line,
                    ErrorCode::MalformedLine,
                    format!("the header names the column `{name}` twice"),
                ));
            }
            names.push(name.to_owned());
        }
        self.header = Some(names);
        Ok(())
    }

    /// A record as the JSON object of its line.
    fn object_of(&self, line: u64, record: &csv::ByteRecord, last: bool) -> ReadLine {
        let header = self.header.as_deref().unwrap_or_default();
        let read = self.reader.get_ref();
        let unterminated = last && read.last != Some(b'\n');
        // Cut inside a quoted cell, or short of its fields at the end.
        if last && read.quote_open || unterminated && record.len() != header.len() {
            return (line, Err(truncated(line)));
        }
        if record.len() != header.len() {
            return (
                line,
                Err(LineProblem::new(
                    line,
                    ErrorCode::MalformedLine,
                    format!(
                        "the line has {} fields, the header {}",
                        record.len(),
                        header.len()
                    ),
                )),
            );
        }
        let mut object = Map::new();
        let mut evidence = Map::new();
        for (name, field) in header.iter().zip(record.iter()) {
            let Ok(cell) = std::str::from_utf8(field) else {
                return (line, Err(not_utf8(line)));
            };
            if cell.is_empty() {
                continue;
            }
            let value = match CSV_LISTS.contains(&name.as_str()) {
                true => Value::Array(cell.split_whitespace().map(Value::from).collect()),
                false => Value::from(cell),
            };
            match name.strip_prefix("evidence.") {
                Some(key) => evidence.insert(key.to_owned(), value),
                None => object.insert(name.clone(), value),
            };
        }
        object.insert("evidence".to_owned(), Value::Object(evidence));
        (line, Ok(object))
    }
}

/// A column name as it may be shown: printable ASCII, at most 64 characters.
fn printable(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(64)
        .collect()
}

impl<R: Read> Iterator for CsvLines<R> {
    type Item = ReadLine;

    fn next(&mut self) -> Option<ReadLine> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            if let Err(problem) = self.read_header() {
                self.done = true;
                return Some((problem.line, Err(problem)));
            }
            self.ahead = match self.read_record() {
                None => None,
                Some(Ok(read)) => Some(read),
                Some(Err(problem)) => {
                    self.done = true;
                    return Some((problem.line, Err(problem)));
                }
            };
        }
        let (line, record) = self.ahead.take()?;
        let next = match self.read_record() {
            None => None,
            Some(Ok(read)) => Some(read),
            Some(Err(problem)) => {
                self.done = true;
                return Some((problem.line, Err(problem)));
            }
        };
        let item = self.object_of(line, &record, next.is_none());
        self.ahead = next;
        Some(item)
    }
}

/// What a line asks to record.
#[derive(Debug)]
pub enum ImportItem {
    OptIn(OptInDraft),
    OptOut(OptOutRecord),
}

/// A line's object as the request it is, with `backfill: true`, checked by
/// the same rules as the API's (the brand, erasure and clock rules need
/// stored state and the time: the recording checks them).
pub fn item_of(
    line: u64,
    mut object: Map<String, Value>,
    default_region: Option<&str>,
) -> Result<ImportItem, LineProblem> {
    let kind = object.remove("type");
    object.insert("backfill".to_owned(), Value::Bool(true));
    let requester = Requester {
        default_region,
        may_backfill: true,
    };
    let value = Value::Object(object);
    let parsed = match kind.as_ref().and_then(Value::as_str) {
        Some("opt_in") => request_of::<OptInRequest>(line, value)?
            .parse(requester)
            .map(ImportItem::OptIn),
        Some("opt_out") => request_of::<OptOutRequest>(line, value)?
            .parse(requester)
            .map(ImportItem::OptOut),
        _ => {
            return Err(LineProblem::new(
                line,
                ErrorCode::InvalidRequest,
                "`type` must be opt_in or opt_out",
            ))
        }
    };
    parsed.map_err(|invalid| LineProblem::refused(line, invalid))
}

/// Deserialises a line's object, naming the field at fault (never its value).
fn request_of<T: serde::de::DeserializeOwned>(line: u64, value: Value) -> Result<T, LineProblem> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let named = message.split('`').nth(1).filter(|_| {
            message.starts_with("unknown field") || message.starts_with("missing field")
        });
        let field = match (named, path.as_str()) {
            (Some(name), ".") => name.to_owned(),
            (Some(name), parent) if !parent.ends_with(name) => format!("{parent}.{name}"),
            (_, parent) => parent.to_owned(),
        };
        let detail = if message.starts_with("unknown field") {
            format!("unknown field `{field}`")
        } else if message.starts_with("missing field") {
            format!("`{field}` is required")
        } else if message.starts_with("invalid type") {
            format!("`{field}` has the wrong JSON type")
        } else {
            format!("`{field}` has a value that is not allowed")
        };
        LineProblem::new(line, ErrorCode::InvalidRequest, detail)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Read = (u64, Result<Map<String, Value>, String>);

    fn read(format: ImportFormat, bytes: &[u8]) -> Vec<Read> {
        lines(format, bytes)
            .map(|(line, read)| (line, read.map_err(|p| p.code)))
            .collect()
    }

    #[test]
    fn ndjson_lines_are_numbered_from_one_and_blank_lines_skipped() {
        let file = b"{\"a\":1}\n\n{\"b\":2}\r\n[1]\n{oops\n\xff\n{\"c\":3}";
        let got = read(ImportFormat::Ndjson, file);
        let codes: Vec<(u64, Option<String>)> =
            got.iter().map(|(l, r)| (*l, r.clone().err())).collect();
        assert_eq!(
            codes,
            vec![
                (1, None),
                (3, None),
                (4, Some("malformed_line".into())),
                (5, Some("malformed_line".into())),
                (6, Some("invalid_encoding".into())),
                (7, None),
            ]
        );
    }

    #[test]
    fn an_ndjson_file_may_begin_with_a_byte_order_mark() {
        let got = read(ImportFormat::Ndjson, "\u{feff}{\"a\":1}\n".as_bytes());
        assert_eq!(got[0].1.as_ref().unwrap()["a"], 1);
    }

    #[test]
    fn an_ndjson_file_cut_inside_its_last_line_is_truncated() {
        let got = read(ImportFormat::Ndjson, b"{\"a\":1}\n{\"b\":");
        assert_eq!(got[1], (2, Err("truncated_line".into())));
    }

    #[test]
    fn a_line_longer_than_the_limit_is_refused_and_the_next_read() {
        let mut file = b"{\"a\":\"".to_vec();
        file.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        file.extend(b"\"}\n{\"b\":2}\n");
        let got = read(ImportFormat::Ndjson, &file);
        assert_eq!(got[0], (1, Err("malformed_line".into())));
        assert_eq!(got[1].0, 2);
        assert!(got[1].1.is_ok());
    }

    #[test]
    fn csv_cells_become_fields_lists_and_evidence() {
        let file = "type,number,purposes,evidence.form_id,language\n\
                    opt_in,+491701234567,marketing utility,f-1,\n";
        let got = read(ImportFormat::Csv, file.as_bytes());
        assert_eq!(got.len(), 1);
        let (line, object) = &got[0];
        assert_eq!(*line, 2);
        assert_eq!(
            Value::Object(object.clone().unwrap()),
            serde_json::json!({
                "type": "opt_in",
                "number": "+491701234567",
                "purposes": ["marketing", "utility"],
                "evidence": {"form_id": "f-1"},
            })
        );
    }

    #[test]
    fn csv_quoted_line_breaks_keep_line_numbers_right() {
        let file = "type,consent_text\nopt_in,\"two\nlines\"\nopt_out,x\n";
        let got = read(ImportFormat::Csv, file.as_bytes());
        assert_eq!(got.iter().map(|(l, _)| *l).collect::<Vec<_>>(), vec![2, 4]);
    }

    #[test]
    fn csv_problems_name_their_line() {
        let file = b"type,number\nopt_in\nopt_in,\xff\nopt_in,+4917";
        let got = read(ImportFormat::Csv, file);
        assert_eq!(got[0], (2, Err("malformed_line".into())));
        assert_eq!(got[1], (3, Err("invalid_encoding".into())));
        assert!(got[2].1.is_ok(), "an unterminated last line that is whole");
        let cut = read(ImportFormat::Csv, b"type,number,channel\nopt_in,+4917");
        assert_eq!(cut[0], (2, Err("truncated_line".into())));
        let bom = read(
            ImportFormat::Csv,
            "\u{feff}type,number\nopt_in,+4917\n".as_bytes(),
        );
        assert_eq!(
            bom[0].1.as_ref().unwrap()["type"],
            "opt_in",
            "a byte order mark"
        );
        let open_quote = read(ImportFormat::Csv, b"type,number\nopt_in,\"+4917");
        assert_eq!(open_quote[0], (2, Err("truncated_line".into())));
        let closed = read(ImportFormat::Csv, b"type,number\nopt_in,\"+49\"\"17\"");
        assert!(closed[0].1.is_ok(), "a whole quoted cell at the end");
        let unknown = read(ImportFormat::Csv, b"type,phone\nopt_in,1\n");
        assert_eq!(unknown, vec![(1, Err("malformed_line".into()))]);
    }

    #[test]
    fn items_are_backfilled_requests_and_refusals_never_echo_values() {
        let line = |json: Value| match json {
            Value::Object(object) => object,
            _ => unreachable!(),
        };
        let opt_out = line(serde_json::json!({
            "type": "opt_out", "number": "+491701234567", "channel": "api",
            "captured_at": "2020-01-01T00:00:00Z", "evidence": {"reason": "a letter"},
        }));
        match item_of(9, opt_out, None) {
            Ok(ImportItem::OptOut(record)) => assert!(record.backfill),
            other => panic!("{other:?}"),
        }
        let bad_number = line(serde_json::json!({
            "type": "opt_out", "number": "+49 secret", "channel": "api",
            "captured_at": "2020-01-01T00:00:00Z", "evidence": {},
        }));
        let problem = item_of(4, bad_number, None).unwrap_err();
        assert_eq!((problem.line, problem.code.as_str()), (4, "invalid_number"));
        assert!(!problem.detail.contains("secret"), "{}", problem.detail);
        let wrong_type = line(serde_json::json!({"type": "opt_in", "number": 491701234567u64}));
        let problem = item_of(5, wrong_type, None).unwrap_err();
        assert_eq!(problem.code, "invalid_request");
        assert!(!problem.detail.contains("4917"), "{}", problem.detail);
        let no_type = line(serde_json::json!({"number": "+491701234567"}));
        assert_eq!(
            item_of(6, no_type, None).unwrap_err().code,
            "invalid_request"
        );
    }
}
