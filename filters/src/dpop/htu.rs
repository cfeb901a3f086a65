//! `htu` comparison: RFC 3986 §6.2.2 syntax-based normalisation of an absolute http(s) URI,
//! without its query and fragment (RFC 9449 §4.3 check 9).

/// Normalises an absolute `http`/`https` URI for comparison: scheme and host lowercased; the
/// default port (80/443) and an empty port removed; percent-encodings of unreserved
/// characters decoded and the others written with uppercase hex; dot segments removed; an
/// empty path becomes `/`; query and fragment dropped.
///
/// `None` for anything else: another scheme, userinfo, an empty host, a bad port, a bad
/// percent-encoding, or a byte that cannot appear in a URI (space, control, non-ASCII).
pub fn normalize_htu(uri: &str) -> Option<String> {
    if uri.len() > 8 * 1024 || !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let uri = uri.split(['#', '?']).next().unwrap_or("");
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return None;
    }
    let (host, port) = split_host_port(authority)?;
    if host.is_empty() || host.contains('%') {
        return None;
    }
    let mut out = String::with_capacity(uri.len());
    out.push_str(&scheme);
    out.push_str("://");
    out.push_str(&host.to_ascii_lowercase());
    if let Some(port) = port {
        if !port.is_empty() {
            if !port.bytes().all(|b| b.is_ascii_digit()) || port.len() > 5 {
                return None;
            }
            let n: u32 = port.parse().ok()?;
            if n == 0 || n > 65535 {
                return None;
            }
            let canonical = n.to_string();
            if canonical != default_port {
                out.push(':');
                out.push_str(&canonical);
            }
        }
    }
    let path = normalize_percent(path)?;
    let path = remove_dot_segments(&path);
    if path.is_empty() {
        out.push('/');
    } else {
        out.push_str(&path);
    }
    Some(out)
}

/// Splits `host[:port]`, keeping an IPv6 literal (`[::1]`) whole.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => Some((host, Some(port))),
            None => Some((authority, None)),
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes `%XX` of unreserved characters, uppercases the hex of the others, and encodes
/// raw bytes that a path may not hold.
fn normalize_percent(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hi = char::from(hex[0]).to_digit(16)?;
            let lo = char::from(hex[1]).to_digit(16)?;
            let v = u8::try_from(hi * 16 + lo).ok()?;
            if is_unreserved(v) {
                out.push(char::from(v));
            } else {
                out.push('%');
                out.push(char::from(hex[0]).to_ascii_uppercase());
                out.push(char::from(hex[1]).to_ascii_uppercase());
            }
            i += 3;
        } else if is_unreserved(b) || b"!$&'()*+,;=:@/".contains(&b) {
            out.push(char::from(b));
            i += 1;
        } else {
            // A byte a URI path may not hold raw (`{`, `|`, `^`, `"` …): compare it in the
            // percent-encoded form a client would write in `htu`.
            out.push_str(&format!("%{b:02X}"));
            i += 1;
        }
    }
    Some(out)
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    fn pop(output: &mut String) {
        match output.rfind('/') {
            Some(i) => output.truncate(i),
            None => output.clear(),
        }
    }
    let mut input = path;
    let mut output = String::with_capacity(path.len());
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            pop(&mut output);
        } else if input == "/.." {
            input = "/";
            pop(&mut output);
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    output
}
