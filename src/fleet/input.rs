//! The fleet's input: a CSV with a header naming a `mailbox` column and optionally an
//! `ews_url` column (other columns are ignored), or one address per line. Blank lines and
//! lines starting with `#` are skipped. Invalid addresses or URLs and repeated addresses are
//! set aside, each reported once with its line number; they never stop the run.

use crate::target::Mailbox;
use std::collections::HashMap;

/// A mailbox to probe.
#[derive(Debug, Clone)]
pub struct Entry {
    pub line: usize,
    pub mailbox: Mailbox,
    /// From the CSV's `ews_url` column; else the run's `--ews-url`.
    pub ews_url: Option<url::Url>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    Invalid,
    Duplicate,
}

/// An input line that is not probed, and why.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub line: usize,
    pub kind: RejectKind,
    /// The address as written (the shard key).
    pub text: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Input {
    pub entries: Vec<Entry>,
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, thiserror::Error)]
#[error("--input: {0}")]
pub struct InputError(pub String);

fn is_csv_header(line: &str) -> bool {
    line.split(',')
        .map(|f| f.trim().trim_matches('"').to_ascii_lowercase())
        .any(|f| f == "mailbox")
        && (line.contains(',')
            || line
                .trim()
                .trim_matches('"')
                .eq_ignore_ascii_case("mailbox"))
}

/// Parses the input text. `check_url` validates an `ews_url` cell (the `--ews-url` rules).
pub fn parse(
    text: &str,
    check_url: impl Fn(&str) -> Result<url::Url, String>,
) -> Result<Input, InputError> {
    let text = text.trim_start_matches('\u{feff}');
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    let rows: Vec<(usize, String, Option<String>)> = match first {
        None => Vec::new(),
        Some(h) if is_csv_header(h) => csv_rows(text)?,
        Some(_) => text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .map(|(i, l)| (i, l.to_string(), None))
            .collect(),
    };
    let mut input = Input::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    // Each distinct URL is checked once: a tenant's rows usually share one.
    let mut checked: HashMap<String, Result<url::Url, String>> = HashMap::new();
    for (line, addr, url) in rows {
        let reject = |kind, reason: String| Rejected {
            line,
            kind,
            text: addr.clone(),
            reason,
        };
        let mailbox = match Mailbox::parse(&addr) {
            Ok(m) => m,
            Err(e) => {
                input
                    .rejected
                    .push(reject(RejectKind::Invalid, e.to_string()));
                continue;
            }
        };
        let ews_url = match url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            Some(u) => match checked
                .entry(u.to_string())
                .or_insert_with(|| check_url(u))
                .clone()
            {
                Ok(u) => Some(u),
                Err(e) => {
                    input.rejected.push(reject(RejectKind::Invalid, e));
                    continue;
                }
            },
            None => None,
        };
        let key = mailbox.address().to_lowercase();
        if let Some(first) = seen.get(&key) {
            input.rejected.push(reject(
                RejectKind::Duplicate,
                format!("{} repeats line {first}", mailbox.address()),
            ));
            continue;
        }
        seen.insert(key, line);
        input.entries.push(Entry {
            line,
            mailbox,
            ews_url,
        });
    }
    Ok(input)
}

fn csv_rows(text: &str) -> Result<Vec<(usize, String, Option<String>)>, InputError> {
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let headers = rd
        .headers()
        .map_err(|e| InputError(format!("CSV header: {e}")))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}').eq_ignore_ascii_case(name))
    };
    let mailbox = col("mailbox")
        .ok_or_else(|| InputError("the CSV header has no 'mailbox' column".into()))?;
    let url = col("ews_url");
    let mut rows = Vec::new();
    for rec in rd.records() {
        match rec {
            Ok(r) => {
                let line = r.position().map(|p| p.line() as usize).unwrap_or(0);
                let addr = r.get(mailbox).unwrap_or("").to_string();
                if addr.is_empty() && r.iter().all(str::is_empty) {
                    continue;
                }
                rows.push((line, addr, url.and_then(|c| r.get(c)).map(str::to_string)));
            }
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                // An unreadable row is an invalid entry, not the end of the run.
                rows.push((line, format!("<unreadable CSV row: {e}>"), None));
            }
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_url(u: &str) -> Result<url::Url, String> {
        url::Url::parse(u).map_err(|e| e.to_string())
    }

    #[test]
    fn one_address_per_line_with_comments_duplicates_and_invalid() {
        let text =
            "# tenant A\nalice@contoso.com\n\nnot-an-address\nAlice@Contoso.com\nbob@contoso.com\n";
        let i = parse(text, ok_url).unwrap();
        let addrs: Vec<_> = i
            .entries
            .iter()
            .map(|e| (e.line, e.mailbox.address()))
            .collect();
        assert_eq!(addrs, [(2, "alice@contoso.com"), (6, "bob@contoso.com")]);
        assert_eq!(i.rejected.len(), 2);
        assert_eq!(
            (i.rejected[0].line, i.rejected[0].kind),
            (4, RejectKind::Invalid)
        );
        assert_eq!(
            (i.rejected[1].line, i.rejected[1].kind),
            (5, RejectKind::Duplicate)
        );
        assert!(i.rejected[1].reason.contains("repeats line 2"));
    }

    #[test]
    fn csv_with_url_column_quotes_and_extra_columns() {
        let text = "mailbox,ews_url,team\nalice@contoso.com,https://mail.contoso.com/EWS/Exchange.asmx,x\n\"bob@contoso.com\",,y\ncarol@contoso.com,not a url,z\n";
        let i = parse(text, ok_url).unwrap();
        assert_eq!(i.entries.len(), 2);
        assert_eq!(
            i.entries[0].ews_url.as_ref().unwrap().host_str(),
            Some("mail.contoso.com")
        );
        assert!(i.entries[1].ews_url.is_none());
        assert_eq!(i.entries[1].line, 3);
        assert_eq!(i.rejected.len(), 1);
        assert_eq!(i.rejected[0].line, 4);
        // Column order does not matter.
        let i = parse("ews_url,Mailbox\n,dave@contoso.com\n", ok_url).unwrap();
        assert_eq!(i.entries[0].mailbox.address(), "dave@contoso.com");
    }

    #[test]
    fn header_without_mailbox_column_is_read_as_lines_and_rejected() {
        let i = parse("user,ews_url\na@b.com,\n", ok_url).unwrap();
        assert!(i.entries.is_empty());
        assert_eq!(i.rejected.len(), 2);
        let i = parse("\u{feff}mailbox\na@b.com\n", ok_url).unwrap();
        assert_eq!(i.entries.len(), 1);
        assert!(parse("mailbox\n", ok_url).unwrap().entries.is_empty());
        assert!(parse("", ok_url).unwrap().entries.is_empty());
    }
}
