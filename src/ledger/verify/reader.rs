//! Reading lines in batches of whole lines (1 MiB blocks) and checking a
//! batch on every core, in order.

use super::entry_check::{check_line, CheckedLine};
use super::failure::*;
use std::io::{BufRead, Read};

/// Entry lines read together: one text and where each line lies in it.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) text: String,
    pub(super) lines: Vec<(u64, std::ops::Range<usize>)>,
}

impl Batch {
    pub(super) fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Checks a batch of lines on all cores, keeping their order. Workers take
/// small chunks from a shared counter, so none idles while another works.
pub(super) fn check_batch(batch: &Batch, log: &str) -> Vec<Result<CheckedLine, Failure>> {
    const CHUNK: usize = 256;
    let check = |(n, range): &(u64, std::ops::Range<usize>)| {
        check_line(*n, &batch.text[range.clone()], log)
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(batch.lines.len().div_ceil(CHUNK).max(1));
    if workers <= 1 {
        return batch.lines.iter().map(check).collect();
    }
    let chunks: Vec<&[(u64, std::ops::Range<usize>)]> = batch.lines.chunks(CHUNK).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, Vec<Result<CheckedLine, Failure>>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(chunk) = chunks.get(i) else { break };
                        mine.push((i, chunk.iter().map(check).collect::<Vec<_>>()));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a verification worker panicked"))
            .collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().flat_map(|(_, results)| results).collect()
}

/// Lines per parallel batch.
pub(super) const BATCH: usize = 16_384;

/// The longest line (and receipt, and tail) read: a bound on memory for
/// hostile input.
pub(super) const MAX_LINE: usize = 64 << 20;

pub(super) fn too_long() -> VerifyError {
    VerifyError::Unreadable(format!(
        "a line or document longer than {} MiB",
        MAX_LINE >> 20
    ))
}

/// Appends everything left of `input`, at most [`MAX_LINE`] bytes.
pub(super) fn read_rest(input: &mut impl BufRead, buf: &mut Vec<u8>) -> Result<(), VerifyError> {
    let start = buf.len();
    input
        .take(MAX_LINE as u64 + 1)
        .read_to_end(buf)
        .map_err(|e| VerifyError::Unreadable(e.to_string()))?;
    if buf.len() - start > MAX_LINE {
        return Err(too_long());
    }
    Ok(())
}

/// Reads one line (without its end) into `buf`; `false` at the end of input.
pub(super) fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> Result<bool, VerifyError> {
    buf.clear();
    let n = input
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(|e| VerifyError::Unreadable(e.to_string()))?;
    if buf.len() > MAX_LINE {
        return Err(too_long());
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(n > 0)
}

pub(super) fn utf8(bytes: Vec<u8>) -> Result<String, VerifyError> {
    String::from_utf8(bytes).map_err(|_| VerifyError::Unreadable("the file is not UTF-8".into()))
}

/// Reads entry lines in batches, a block at a time straight into one
/// reused buffer; the first line that is not an entry starts the tail.
pub(super) struct BatchReader<R> {
    pub(super) input: R,
    pub(super) line_no: u64,
    pub(super) tail: Vec<String>,
    pub(super) done: bool,
    /// A partial line left over from the last block.
    pub(super) carry: Vec<u8>,
    /// The buffer of a batch already checked, reused.
    pub(super) spare: Vec<u8>,
}

/// Bytes read per block.
pub(super) const BLOCK: usize = 1 << 20;

impl<R: BufRead> BatchReader<R> {
    pub(super) fn new(input: R, line_no: u64) -> Self {
        Self {
            input,
            line_no,
            tail: Vec::new(),
            done: false,
            carry: Vec::new(),
            spare: Vec::new(),
        }
    }

    pub(super) fn is_entry_line(line: &[u8]) -> bool {
        let starts = |p: &[u8]| line.starts_with(p);
        starts(b"{\"entry\"")
            || (!starts(b"{\"checkpoint\"")
                && !starts(b"{\"consistency\"")
                && memchr::memmem::find(line, b"\"entry\"").is_some())
    }

    /// Gives back a checked batch's buffer for the next read.
    pub(super) fn recycle(&mut self, batch: Batch) {
        self.spare = batch.text.into_bytes();
    }

    pub(super) fn next_batch(&mut self) -> Result<Batch, VerifyError> {
        let mut bytes = std::mem::take(&mut self.spare);
        bytes.clear();
        bytes.append(&mut self.carry);
        let mut lines = Vec::with_capacity(BATCH);
        let mut pos = 0;
        'fill: while !self.done {
            while let Some(nl) = memchr::memchr(b'\n', &bytes[pos..]) {
                let (start, mut end) = (pos, pos + nl);
                pos = end + 1;
                if end > start && bytes[end - 1] == b'\r' {
                    end -= 1;
                }
                self.line_no += 1;
                if Self::is_entry_line(&bytes[start..end]) {
                    lines.push((self.line_no, start..end));
                    if lines.len() == BATCH {
                        self.carry.extend_from_slice(&bytes[pos..]);
                        bytes.truncate(pos);
                        break 'fill;
                    }
                } else {
                    // The tail: this line and everything after it.
                    let mut rest = bytes.split_off(start);
                    read_rest(&mut self.input, &mut rest)?;
                    let rest = utf8(rest)?;
                    self.tail.extend(rest.lines().map(str::to_owned));
                    self.done = true;
                    break 'fill;
                }
            }
            if bytes.len() - pos > MAX_LINE {
                return Err(too_long());
            }
            // Appends up to a block without zero-filling it first.
            let n = (&mut self.input)
                .take(BLOCK as u64)
                .read_to_end(&mut bytes)
                .map_err(|e| VerifyError::Unreadable(e.to_string()))?;
            if n == 0 {
                // A last line without a newline.
                if pos < bytes.len() {
                    bytes.push(b'\n');
                    continue;
                }
                self.done = true;
            }
        }
        Ok(Batch {
            text: utf8(bytes)?,
            lines,
        })
    }
}
