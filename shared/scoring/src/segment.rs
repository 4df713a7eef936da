//! Target segments of the ideal client portrait (seed 003): which segment a
//! client belongs to, from its birth attributes.
//!
//! A segment lists criteria on kind, size band and industry; an empty list
//! accepts any value. A client belongs to the first segment it matches, in
//! (priority, id) order, so overlapping definitions resolve the same way
//! whatever order they are stored in; a client matching none has no segment
//! (and so no maturity).
use serde::{Deserialize, Serialize};

/// What a segment asks of a client. Values are the caller's codes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SegmentCriteria {
    pub kinds: Vec<i32>,
    pub size_bands: Vec<i32>,
    pub industries: Vec<String>,
}

/// A client's birth attributes that segments look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BirthAttributes<'a> {
    pub kind: i32,
    pub size_band: i32,
    pub industry: &'a str,
}

impl SegmentCriteria {
    pub fn matches(&self, client: &BirthAttributes<'_>) -> bool {
        let accepts = |values: &[i32], value: i32| values.is_empty() || values.contains(&value);
        accepts(&self.kinds, client.kind)
            && accepts(&self.size_bands, client.size_band)
            && (self.industries.is_empty() || self.industries.iter().any(|i| i.eq_ignore_ascii_case(client.industry)))
    }
}

/// Segments in matching order.
#[derive(Debug, Clone)]
pub struct Segmentation<S> {
    ordered: Vec<(i32, S, SegmentCriteria)>,
}

impl<S: Ord + Clone> Segmentation<S> {
    /// `(priority, id, criteria)` in any order.
    pub fn new(segments: impl IntoIterator<Item = (i32, S, SegmentCriteria)>) -> Self {
        let mut ordered: Vec<_> = segments.into_iter().collect();
        ordered.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        Segmentation { ordered }
    }

    /// The client's segment, if any.
    pub fn segment_of(&self, client: &BirthAttributes<'_>) -> Option<&S> {
        self.ordered.iter().find(|(_, _, criteria)| criteria.matches(client)).map(|(_, id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn criteria(kinds: &[i32], size_bands: &[i32], industries: &[&str]) -> SegmentCriteria {
        SegmentCriteria {
            kinds: kinds.to_vec(),
            size_bands: size_bands.to_vec(),
            industries: industries.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn first_match_by_priority_then_id_and_empty_lists_match_anything() {
        let segments = Segmentation::new([
            (20, "b2b", criteria(&[1], &[], &[])),
            (10, "retail-sme", criteria(&[1], &[1, 2], &["retail"])),
            (20, "any", criteria(&[], &[], &[])),
        ]);
        let small_shop = BirthAttributes { kind: 1, size_band: 2, industry: "Retail" };
        let big_factory = BirthAttributes { kind: 1, size_band: 4, industry: "manufacturing" };
        let person = BirthAttributes { kind: 2, size_band: 0, industry: "" };
        assert_eq!(segments.segment_of(&small_shop), Some(&"retail-sme"));
        // Priority 20 twice: "any" sorts before "b2b".
        assert_eq!(segments.segment_of(&big_factory), Some(&"any"));
        assert_eq!(segments.segment_of(&person), Some(&"any"));
        let strict = Segmentation::new([(1, "b2b", criteria(&[1], &[], &[]))]);
        assert_eq!(strict.segment_of(&person), None);
    }
}
