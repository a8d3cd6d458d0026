//! Reading input (standard input, token arguments) and writing output that never panics.

use std::io::{Read as _, Write as _};

/// The most read from standard input: far more than any token or `data` object.
const STDIN_LIMIT: u64 = 16 * 1024 * 1024;

/// All of standard input, up to 16 MiB.
pub fn read_stdin() -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(STDIN_LIMIT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    if buf.len() as u64 > STDIN_LIMIT {
        return Err(format!(
            "standard input is larger than {} MiB",
            STDIN_LIMIT / 1024 / 1024
        ));
    }
    Ok(buf)
}

/// The token given as an argument, or read from standard input when absent (or `-`), trimmed.
pub fn token(arg: Option<&str>) -> Result<String, String> {
    match arg {
        Some(t) if t != "-" => Ok(t.trim().to_owned()),
        _ => {
            let bytes = read_stdin()?;
            String::from_utf8(bytes)
                .map(|s| s.trim().to_owned())
                .map_err(|_| "standard input is not UTF-8 text: not a token".to_owned())
        }
    }
}

/// Writes one line to standard output and flushes it. A closed stdout (`| head`) is ignored:
/// nothing here may panic.
pub fn line(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

/// Writes one line to standard error.
pub fn note(s: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{s}");
    let _ = err.flush();
}
