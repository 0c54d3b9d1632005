//! Form bodies: `application/x-www-form-urlencoded` and, for file uploads,
//! `multipart/form-data` (parsed here: one small, bounded parser rather than a dependency).

/// A form's fields in order (a name may repeat: checkboxes).
#[derive(Debug, Clone, Default)]
pub(crate) struct Form(Vec<(String, String)>);

/// Most fields one form may carry (a bound on what a client controls).
const MAX_FIELDS: usize = 256;

impl Form {
    /// Decodes `a=1&b=x+y%21`.
    pub(crate) fn urlencoded(body: &[u8]) -> Self {
        Self(
            body.split(|b| *b == b'&')
                .filter(|pair| !pair.is_empty())
                .take(MAX_FIELDS)
                .map(|pair| {
                    let mut parts = pair.splitn(2, |b| *b == b'=');
                    let name = decode(parts.next().unwrap_or_default());
                    let value = decode(parts.next().unwrap_or_default());
                    (name, value)
                })
                .collect(),
        )
    }

    /// The first value of `name`, trimmed; empty if absent.
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.trim())
    }

    /// The first value of `name`, trimmed, `None` if absent or empty.
    pub(crate) fn optional(&self, name: &str) -> Option<String> {
        Some(self.get(name)).filter(|v| !v.is_empty()).map(str::to_string)
    }

    /// Every value of `name` (checkboxes, multiple selects).
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.trim()).collect()
    }

    /// Adds a field (tests, and forms rebuilt from a record).
    pub(crate) fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.to_string(), value.into()));
    }

    /// Adds one more value of a repeated field.
    pub(crate) fn add(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_string(), value.into()));
    }
}

/// Percent-decoding with `+` as space; invalid UTF-8 is replaced, never an error.
fn decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < raw.len() => match (hex(raw[i + 1]), hex(raw[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Uploaded files: the field name and the content.
pub(crate) type Files = Vec<(String, Vec<u8>)>;

/// Splits a `multipart/form-data` body into its text fields and its files (by field name).
/// `None` when the body is not the multipart its content type announces.
pub(crate) fn multipart(content_type: &str, body: &[u8]) -> Option<(Form, Files)> {
    let boundary = content_type.split(';').find_map(|p| p.trim().strip_prefix("boundary="))?;
    let boundary = boundary.trim_matches('"');
    if boundary.is_empty() || boundary.len() > 200 {
        return None;
    }
    let delimiter = format!("--{boundary}").into_bytes();
    let mut form = Form::default();
    let mut files = Vec::new();
    let mut rest = body.get(find(body, &delimiter)? + delimiter.len()..)?;
    for _ in 0..MAX_FIELDS {
        if rest.starts_with(b"--") {
            return Some((form, files));
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let end = find(rest, &delimiter)?;
        let part = rest.get(..end)?.strip_suffix(b"\r\n")?;
        rest = rest.get(end + delimiter.len()..)?;
        let split = find(part, b"\r\n\r\n")?;
        let (head, content) = (String::from_utf8_lossy(&part[..split]), &part[split + 4..]);
        let disposition =
            head.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
        let name = param(disposition, "name")?;
        if param(disposition, "filename").is_some() {
            files.push((name, content.to_vec()));
        } else {
            form.add(&name, String::from_utf8_lossy(content).into_owned());
        }
    }
    None
}

/// A `key="value"` parameter of a header line.
fn param(line: &str, key: &str) -> Option<String> {
    line.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_fields_decode() {
        let form = Form::urlencoded(b"a=1&title=Agent+d%27entretien&b=%E9%&a=2");
        assert_eq!(form.get("a"), "1");
        assert_eq!(form.all("a"), vec!["1", "2"]);
        assert_eq!(form.get("title"), "Agent d'entretien");
        assert_eq!(form.get("b"), "\u{fffd}%");
        assert_eq!(form.get("missing"), "");
    }

    #[test]
    fn multipart_fields_and_files_split() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\ntok\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.csv\"\r\nContent-Type: text/csv\r\n\r\nrome;title\r\nK2204;x\r\n\r\n--XyZ--\r\n";
        let (form, files) = multipart("multipart/form-data; boundary=XyZ", body).expect("parsed");
        assert_eq!(form.get("csrf"), "tok");
        assert_eq!(files, vec![("file".to_string(), b"rome;title\r\nK2204;x\r\n".to_vec())]);
        assert!(multipart("multipart/form-data; boundary=XyZ", b"garbage").is_none());
    }
}
