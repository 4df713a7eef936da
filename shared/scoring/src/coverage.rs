//! Feedback coverage and response rate (domain.md section 3; the seeds'
//! goal is 80%+ coverage).
//!
//! * **Coverage** of a group in a period = clients of the group's base who
//!   answered at least once in the period / clients of the base. The base is
//!   the clients who have bought: a potential client has nothing to rate.
//!   A respondent outside the base is not counted, so coverage stays 0-1.
//! * **Response rate** = invitations sent in the period that are answered
//!   (by now) / invitations sent in the period.
use std::collections::BTreeMap;

/// The counts of one group in one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub clients: u64,
    pub responding_clients: u64,
    pub invitations_sent: u64,
    pub invitations_answered: u64,
}

impl Tally {
    /// 0-1; 0 for an empty base.
    pub fn coverage(&self) -> f64 {
        ratio(self.responding_clients, self.clients)
    }

    /// 0-1; 0 when nothing was sent.
    pub fn response_rate(&self) -> f64 {
        ratio(self.invitations_answered, self.invitations_sent)
    }

    pub fn merge(&mut self, other: &Tally) {
        self.clients += other.clients;
        self.responding_clients += other.responding_clients;
        self.invitations_sent += other.invitations_sent;
        self.invitations_answered += other.invitations_answered;
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// A client of the base and whether it answered in the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseClient<K> {
    pub group: K,
    pub responded: bool,
}

/// An invitation sent in the period and whether it is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentInvitation<K> {
    pub group: K,
    pub answered: bool,
}

/// The tally of every group that has clients or invitations.
pub fn tally<K: Ord>(
    clients: impl IntoIterator<Item = BaseClient<K>>,
    invitations: impl IntoIterator<Item = SentInvitation<K>>,
) -> BTreeMap<K, Tally> {
    let mut groups: BTreeMap<K, Tally> = BTreeMap::new();
    for client in clients {
        let tally = groups.entry(client.group).or_default();
        tally.clients += 1;
        tally.responding_clients += u64::from(client.responded);
    }
    for invitation in invitations {
        let tally = groups.entry(invitation.group).or_default();
        tally.invitations_sent += 1;
        tally.invitations_answered += u64::from(invitation.answered);
    }
    groups
}

/// The sum of every group.
pub fn total<'a, K: 'a>(groups: impl IntoIterator<Item = (&'a K, &'a Tally)>) -> Tally {
    groups.into_iter().fold(Tally::default(), |mut sum, (_, tally)| {
        sum.merge(tally);
        sum
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn coverage_and_response_rate_by_hand() {
        // Class A: 4 clients, 3 answered; 5 invitations, 3 answered.
        // Class C: 10 clients, 2 answered; 10 invitations, 2 answered.
        let clients = (0..4)
            .map(|i| BaseClient { group: "A", responded: i < 3 })
            .chain((0..10).map(|i| BaseClient { group: "C", responded: i < 2 }));
        let invitations = (0..5)
            .map(|i| SentInvitation { group: "A", answered: i < 3 })
            .chain((0..10).map(|i| SentInvitation { group: "C", answered: i < 2 }));
        let groups = tally(clients, invitations);
        assert_eq!(groups["A"].coverage(), 0.75);
        assert_eq!(groups["A"].response_rate(), 0.6);
        assert_eq!(groups["C"].coverage(), 0.2);
        let all = total(&groups);
        assert_eq!(all, Tally { clients: 14, responding_clients: 5, invitations_sent: 15, invitations_answered: 5 });
        assert_eq!(all.coverage(), 5.0 / 14.0);
        assert_eq!(Tally::default().coverage(), 0.0);
        assert_eq!(Tally::default().response_rate(), 0.0);
    }

    proptest! {
        #[test]
        fn rates_stay_between_zero_and_one_and_totals_add_up(
            clients in proptest::collection::vec((0u8..4, any::<bool>()), 0..100),
            invitations in proptest::collection::vec((0u8..4, any::<bool>()), 0..100),
        ) {
            let groups = tally(
                clients.iter().map(|&(group, responded)| BaseClient { group, responded }),
                invitations.iter().map(|&(group, answered)| SentInvitation { group, answered }),
            );
            for tally in groups.values() {
                prop_assert!(tally.responding_clients <= tally.clients);
                prop_assert!((0.0..=1.0).contains(&tally.coverage()));
                prop_assert!((0.0..=1.0).contains(&tally.response_rate()));
            }
            let all = total(&groups);
            prop_assert_eq!(all.clients, clients.len() as u64);
            prop_assert_eq!(all.invitations_sent, invitations.len() as u64);
            prop_assert_eq!(all.responding_clients, clients.iter().filter(|c| c.1).count() as u64);
        }
    }
}
