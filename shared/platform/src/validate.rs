//! Collects every problem of a request before answering, so a caller fixes
//! them all in one round trip.
use crate::error::{AppError, FieldViolation};

/// Accumulates field violations; `finish` turns them into INVALID_ARGUMENT.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

/// ERP identifiers: 1-64 characters of `[A-Za-z0-9._:-]`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

impl Violations {
    pub fn new() -> Self {
        Violations::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation { field: field.into(), description: description.into() });
    }

    /// Records a violation when `ok` is false.
    pub fn check(&mut self, ok: bool, field: impl FnOnce() -> String, description: &str) {
        if !ok {
            self.add(field(), description);
        }
    }

    /// Checks that `value` is an ERP identifier.
    pub fn id(&mut self, field: impl FnOnce() -> String, value: &str) {
        self.check(is_valid_id(value), field, "must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    }

    /// Checks that `value` is non-blank and at most `max` characters.
    pub fn text(&mut self, field: impl FnOnce() -> String, value: &str, max: usize) {
        let ok = !value.trim().is_empty() && value.chars().count() <= max;
        if !ok {
            self.add(field(), format!("must be non-blank and at most {max} characters"));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<FieldViolation> {
        self.0
    }

    pub fn finish(self) -> Result<(), AppError> {
        if self.0.is_empty() { Ok(()) } else { Err(AppError::invalid(self.0)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_erp_alphabet() {
        assert!(is_valid_id("C-000123"));
        assert!(is_valid_id("waw:01.a_b"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("has space"));
        assert!(!is_valid_id(&"x".repeat(65)));
    }

    #[test]
    fn all_problems_are_reported_together() {
        let mut v = Violations::new();
        v.id(|| "a".into(), "");
        v.text(|| "b".into(), "  ", 10);
        v.text(|| "c".into(), "ok", 10);
        let err = v.finish().expect_err("two problems");
        assert_eq!(err.violations.len(), 2);
        assert_eq!(err.violations[1].field, "b");
    }
}
