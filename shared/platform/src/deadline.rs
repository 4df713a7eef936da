//! The caller's deadline as gRPC carries it: the `grpc-timeout` header, at
//! most 8 digits and a unit (H, M, S, m, u, n). The gateway caps it; a
//! service bounds the database work it starts for a call by it, so a caller
//! that has given up does not leave a statement running.
use std::time::Duration;

pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The duration of a `grpc-timeout` value; `None` when it is malformed.
pub fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// `deadline` as a `grpc-timeout` value: milliseconds while they fit in 8
/// digits, else whole seconds (at most 99 999 999).
pub fn format_grpc_timeout(deadline: Duration) -> String {
    let millis = deadline.as_millis();
    if millis <= 99_999_999 { format!("{millis}m") } else { format!("{}S", deadline.as_secs().min(99_999_999)) }
}

/// The deadline the caller gave a call, if any.
pub fn of_request<T>(request: &tonic::Request<T>) -> Option<Duration> {
    request.metadata().get(GRPC_TIMEOUT).and_then(|value| value.to_str().ok()).and_then(parse_grpc_timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_parse_in_every_unit_and_refuse_nonsense() {
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("4S"), Some(Duration::from_secs(4)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(parse_grpc_timeout("5n"), Some(Duration::from_nanos(5)));
        for nonsense in ["", "m", "123456789m", "12x", "-1S", "1.5S"] {
            assert_eq!(parse_grpc_timeout(nonsense), None, "{nonsense:?}");
        }
    }

    #[test]
    fn deadlines_format_in_milliseconds_until_they_do_not_fit() {
        assert_eq!(format_grpc_timeout(Duration::from_millis(1500)), "1500m");
        assert_eq!(format_grpc_timeout(Duration::from_secs(200_000)), "200000S");
        let mut request = tonic::Request::new(());
        assert_eq!(of_request(&request), None);
        request.metadata_mut().insert(GRPC_TIMEOUT, "250m".parse().expect("ascii"));
        assert_eq!(of_request(&request), Some(Duration::from_millis(250)));
    }
}
