//! RESP2 encoding of the check path's two commands and in-place parsing of their replies
//! (`resp.rs` owns the connection). Lengths are capped before anything is read or allocated.

/// Longest value accepted in a reply (64 KiB). Revocation entries hold `1` or a timestamp; a
/// larger value under one of the gateway's keys is refused as a protocol error (fail closed).
const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Longest header or status line accepted (`$<len>`, `*<n>`, `+OK`, `-ERR …`), bytes.
const MAX_LINE_BYTES: usize = 1024;

/// Appends `args` as one RESP command (an array of bulk strings).
pub(super) fn encode(buf: &mut Vec<u8>, args: &[&[u8]]) {
    header(buf, b'*', args.len());
    for arg in args {
        encode_bulk(buf, arg);
    }
}

/// `<kind><n>\r\n`, the decimal digits written by hand: `core::fmt` machinery was a
/// measurable part of encoding a batch.
fn header(buf: &mut Vec<u8>, kind: u8, n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.push(kind);
    buf.extend_from_slice(&digits[at..]);
    buf.extend_from_slice(b"\r\n");
}

fn encode_bulk(buf: &mut Vec<u8>, arg: &[u8]) {
    header(buf, b'$', arg.len());
    buf.extend_from_slice(arg);
    buf.extend_from_slice(b"\r\n");
}

/// Appends one `MGET` of `count` keys.
pub(super) fn encode_mget<'k>(
    buf: &mut Vec<u8>,
    count: usize,
    keys: impl Iterator<Item = &'k [u8]>,
) {
    header(buf, b'*', count + 1);
    encode_bulk(buf, b"MGET");
    for key in keys {
        encode_bulk(buf, key);
    }
}

/// A status-like reply.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Status {
    /// `+OK` (any simple string).
    Ok,
    /// `$-1`, `*-1` or RESP3 `_`: the `SET NX` found the key.
    Nil,
    /// `-…`: the server's message.
    Error(String),
}

/// One line ending in CRLF at the start of `buf`: `Ok(None)` while incomplete.
fn line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, &'static str> {
    let window = &buf[..buf.len().min(MAX_LINE_BYTES + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(end) => Ok(Some((&window[..end], end + 2))),
        None if buf.len() > MAX_LINE_BYTES + 1 => Err("line too long"),
        None => Ok(None),
    }
}

fn number(digits: &[u8]) -> Result<i64, &'static str> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("malformed length")
}

/// Parses the reply to a `SET … NX` (or to `AUTH`/`SELECT`).
pub(super) fn parse_status(buf: &[u8]) -> Result<Option<(Status, usize)>, &'static str> {
    let Some((head, used)) = line(buf)? else {
        return Ok(None);
    };
    let status = match head.split_first() {
        Some((b'+', _)) => Status::Ok,
        Some((b'-', message)) => Status::Error(String::from_utf8_lossy(message).into_owned()),
        Some((b'_', [])) => Status::Nil,
        Some((b'$' | b'*', n)) if number(n)? == -1 => Status::Nil,
        _ => return Err("unexpected reply type"),
    };
    Ok(Some((status, used)))
}

/// Parses the reply to an `MGET` of `count` keys: the values (borrowed from `buf`) or the
/// server's error message, and the bytes used; `Ok(None)` while incomplete.
#[allow(clippy::type_complexity)]
pub(super) fn parse_values(
    buf: &[u8],
    count: usize,
) -> Result<Option<(Result<Vec<Option<&[u8]>>, String>, usize)>, &'static str> {
    let Some((head, mut at)) = line(buf)? else {
        return Ok(None);
    };
    match head.split_first() {
        Some((b'-', message)) => {
            return Ok(Some((
                Err(String::from_utf8_lossy(message).into_owned()),
                at,
            )));
        }
        Some((b'*', n)) if usize::try_from(number(n)?).ok() == Some(count) => {}
        Some((b'*', _)) => return Err("wrong number of values"),
        _ => return Err("unexpected reply type"),
    }
    let mut values = Vec::with_capacity(count);
    for _ in 0..count {
        let Some((head, used)) = line(&buf[at..])? else {
            return Ok(None);
        };
        at += used;
        match head.split_first() {
            Some((b'_', [])) => values.push(None),
            Some((b'$', n)) => {
                let n = number(n)?;
                if n == -1 {
                    values.push(None);
                    continue;
                }
                let len = usize::try_from(n).map_err(|_| "malformed length")?;
                if len > MAX_VALUE_BYTES {
                    return Err("value too large");
                }
                let Some(value) = buf.get(at..at + len + 2) else {
                    return Ok(None);
                };
                if !value.ends_with(b"\r\n") {
                    return Err("bulk string not terminated");
                }
                values.push(Some(&value[..len]));
                at += len + 2;
            }
            _ => return Err("unexpected value type"),
        }
    }
    Ok(Some((Ok(values), at)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_encoded_as_arrays_of_bulk_strings() {
        let mut buf = Vec::new();
        encode(&mut buf, &[b"SET", b"k", b"1", b"NX", b"PX", b"1500"]);
        assert_eq!(
            buf,
            b"*6\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n$2\r\nNX\r\n$2\r\nPX\r\n$4\r\n1500\r\n"
        );
        buf.clear();
        encode_mget(&mut buf, 2, [&b"revoked:a"[..], b"family:\r\n"].into_iter());
        assert_eq!(
            buf,
            b"*3\r\n$4\r\nMGET\r\n$9\r\nrevoked:a\r\n$9\r\nfamily:\r\n\r\n"
        );
    }

    #[test]
    fn lengths_are_written_in_decimal() {
        for n in [0usize, 1, 9, 10, 99, 100, 12_345, 65_536, usize::MAX] {
            let mut buf = Vec::new();
            header(&mut buf, b'$', n);
            assert_eq!(buf, format!("${n}\r\n").into_bytes());
        }
    }

    #[test]
    fn mget_replies_parse_incrementally() {
        let reply = b"*3\r\n$1\r\n1\r\n$-1\r\n$10\r\n1700000000\r\n";
        for cut in 0..reply.len() {
            assert_eq!(parse_values(&reply[..cut], 3), Ok(None), "cut at {cut}");
        }
        let (values, used) = parse_values(reply, 3).unwrap().unwrap();
        assert_eq!(used, reply.len());
        assert_eq!(
            values.unwrap(),
            vec![Some(&b"1"[..]), None, Some(&b"1700000000"[..])]
        );
        // A value may hold CRLF; RESP3 nulls are accepted.
        let (values, _) = parse_values(b"*2\r\n$4\r\na\r\nb\r\n_\r\n", 2)
            .unwrap()
            .unwrap();
        assert_eq!(values.unwrap(), vec![Some(&b"a\r\nb"[..]), None]);
    }

    #[test]
    fn malformed_replies_are_protocol_errors() {
        for bad in [
            &b"*2\r\n$1\r\n1\r\n"[..], // wrong count
            b":1\r\n",                 // not an array
            b"*1\r\n:5\r\n",           // not a bulk string
            b"*1\r\n$x\r\n",           // bad length
            b"*1\r\n$-2\r\n",          // negative length
            b"*1\r\n$1\r\n12\r\n",     // not terminated
            b"*1\r\n$70000\r\n",       // too large
        ] {
            assert!(
                parse_values(bad, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = vec![b'*'; MAX_LINE_BYTES + 10];
        assert!(parse_values(&long, 1).is_err());
        assert!(parse_status(b":1\r\n").is_err());
    }

    #[test]
    fn error_replies_fail_only_their_command() {
        let (r, used) = parse_values(b"-LOADING Redis is loading\r\n*0\r\n", 1)
            .unwrap()
            .unwrap();
        assert_eq!(r, Err("LOADING Redis is loading".to_string()));
        assert_eq!(used, 27);
        assert_eq!(parse_status(b"+OK\r\n"), Ok(Some((Status::Ok, 5))));
        assert_eq!(parse_status(b"$-1\r\n"), Ok(Some((Status::Nil, 5))));
        assert_eq!(parse_status(b"_\r\n"), Ok(Some((Status::Nil, 3))));
        assert_eq!(
            parse_status(b"-NOAUTH Authentication required.\r\n"),
            Ok(Some((
                Status::Error("NOAUTH Authentication required.".into()),
                34
            )))
        );
        assert_eq!(parse_status(b"+O"), Ok(None));
    }
}
