//! Units in values: durations (`"30s"`, `"5m"`, `"1h30m"`) and sizes (`"8KiB"`, `"1MiB"`).

use std::time::Duration;

/// Parses a human duration (`humantime` syntax: `250ms`, `30s`, `5m`, `1h`).
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v)
        .map_err(|e| format!("{v:?} is not a duration such as \"30s\" ({e})"))
}

/// Parses a size: an integer followed by `B`, `KiB` or `MiB` (`"8KiB"`).
pub fn parse_size(v: &str) -> Result<usize, String> {
    let bad = || format!("{v:?} is not a size such as \"8KiB\" (units: B, KiB, MiB)");
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = v.split_at(digits);
    let n: usize = num.parse().map_err(|_| bad())?;
    let mult = match unit.trim() {
        "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_need_a_unit() {
        assert_eq!(parse_size("8KiB"), Ok(8192));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("12B"), Ok(12));
        assert!(parse_size("8").is_err());
        assert!(parse_size("8kb").is_err());
        assert!(parse_size("KiB").is_err());
    }

    #[test]
    fn durations_use_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("30").is_err());
    }
}
