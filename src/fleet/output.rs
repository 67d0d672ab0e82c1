//! NDJSON output: one DESIGN §4 report per line, written with one `write_all` and flushed per
//! mailbox, so a reader (or a resumed run) only ever sees complete lines, except possibly the
//! last one if the process was killed mid-write; [`resume`] cuts that partial line off.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// What an earlier run already wrote.
#[derive(Debug, Default)]
pub struct Resumed {
    /// Lower-cased mailbox addresses with a report in the file.
    pub done: HashSet<String>,
    /// Those reports, for the summary.
    pub reports: Vec<serde_json::Value>,
    /// Bytes of a partial last line that were cut off.
    pub cut_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("cannot read {0} to resume: {1}")]
    Io(String, std::io::Error),
    #[error(
        "{0} line {1} is not an ews-probe report; --resume only continues a fleet's NDJSON output"
    )]
    NotReport(String, usize),
}

/// Reads an earlier output for `--resume`; a missing file is an empty start. A final line
/// without its newline (the process was killed mid-write) is cut off.
pub fn resume(path: &Path) -> Result<Resumed, ResumeError> {
    let shown = path.display().to_string();
    let io = |e| ResumeError::Io(shown.clone(), e);
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Resumed::default()),
        Err(e) => return Err(io(e)),
    };
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(io)?;
    let mut out = Resumed::default();
    let mut good_end = 0usize;
    let mut pos = 0usize;
    let mut line_no = 0usize;
    while pos < bytes.len() {
        line_no += 1;
        let Some(nl) = bytes[pos..].iter().position(|b| *b == b'\n') else {
            break; // partial last line
        };
        let line = &bytes[pos..pos + nl];
        pos += nl + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            good_end = pos;
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(line)
            .map_err(|_| ResumeError::NotReport(shown.clone(), line_no))?;
        let mailbox = v
            .get("mailbox")
            .and_then(|m| m.as_str())
            .filter(|_| v.get("schema").and_then(|s| s.as_str()) == Some(crate::report::SCHEMA))
            .ok_or_else(|| ResumeError::NotReport(shown.clone(), line_no))?;
        out.done.insert(mailbox.to_lowercase());
        out.reports.push(v);
        good_end = pos;
    }
    if good_end < bytes.len() {
        out.cut_bytes = (bytes.len() - good_end) as u64;
        f.set_len(good_end as u64).map_err(io)?;
        f.seek(SeekFrom::End(0)).map_err(io)?;
    }
    Ok(out)
}

/// Where lines go: a file (appended to) or stdout.
pub struct LineSink {
    out: Box<dyn Write + Send>,
    shown: String,
}

impl LineSink {
    pub fn stdout() -> Self {
        LineSink {
            out: Box::new(std::io::stdout()),
            shown: "standard output".into(),
        }
    }

    /// Opens `path` for appending (created if missing; truncated unless `append`).
    pub fn file(path: &Path, append: bool) -> std::io::Result<Self> {
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)?;
        Ok(LineSink {
            out: Box::new(f),
            shown: path.display().to_string(),
        })
    }

    /// Writes one line (a newline is added) and flushes it.
    pub fn line(&mut self, text: &str) -> Result<(), crate::app::AppError> {
        let mut buf = String::with_capacity(text.len() + 1);
        buf.push_str(text);
        buf.push('\n');
        let w = |e| crate::app::AppError::Write(self.shown.clone(), e);
        match self
            .out
            .write_all(buf.as_bytes())
            .and_then(|_| self.out.flush())
        {
            Ok(()) => Ok(()),
            // A closed pipe (| head) ends the output, not the run with an error message.
            Err(e)
                if e.kind() == std::io::ErrorKind::BrokenPipe
                    && self.shown == "standard output" =>
            {
                Ok(())
            }
            Err(e) => Err(w(e)),
        }
    }
}

/// Writes `text` to `path` atomically (a temp file in the same directory, then rename), as the
/// node_exporter textfile collector needs.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), crate::app::AppError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let w = |e| crate::app::AppError::Write(path.display().to_string(), e);
    std::fs::write(&tmp, text).map_err(w)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        w(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(m: &str) -> String {
        format!(
            "{{\"schema\":\"{}\",\"mailbox\":\"{m}\",\"status\":\"ok\"}}\n",
            crate::report::SCHEMA
        )
    }

    #[test]
    fn resume_reads_complete_lines_and_cuts_a_partial_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.ndjson");
        let partial = "{\"schema\":\"ews-probe.report.v1\",\"mailbox\":\"c@x.com\",\"sta";
        std::fs::write(
            &p,
            format!("{}{}{partial}", line("A@x.com"), line("b@x.com")),
        )
        .unwrap();
        let r = resume(&p).unwrap();
        assert_eq!(r.done.len(), 2);
        assert!(r.done.contains("a@x.com") && r.done.contains("b@x.com"));
        assert_eq!(r.cut_bytes, partial.len() as u64);
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            format!("{}{}", line("A@x.com"), line("b@x.com"))
        );
        let mut s = LineSink::file(&p, true).unwrap();
        s.line(line("c@x.com").trim_end()).unwrap();
        assert_eq!(resume(&p).unwrap().done.len(), 3);
    }

    #[test]
    fn resume_refuses_other_files_and_accepts_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(resume(&dir.path().join("none")).unwrap().done.is_empty());
        let p = dir.path().join("x");
        std::fs::write(&p, "hello\n").unwrap();
        assert!(matches!(resume(&p), Err(ResumeError::NotReport(_, 1))));
        std::fs::write(&p, "{\"mailbox\":\"a@b.c\"}\n").unwrap();
        assert!(resume(&p).is_err());
    }
}
