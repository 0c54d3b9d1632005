//! The network view of anonymised profiles: classes of candidates, never persons, counted over
//! the profiles of the *other* members only.
//!
//! The view exists so a structure short of candidates knows that candidates exist nearby; it must
//! not let any structure single out a person another one holds. So:
//!
//! - **Without the viewer.** Every count and every k or l test is over the profiles of other
//!   structures: a viewer that plants fakes in a class adds nothing to it (the fakes are its own).
//! - **Classes, not rows.** Quasi-identifiers: age band, area, ROME. Each profile counts in exactly
//!   one published class, the finest that reaches k, on this ladder:
//!
//!   | level | area | ROME |
//!   |---|---|---|
//!   | 0 | département | domaine (`K22`) |
//!   | 1 | région | domaine |
//!   | 2 | région | grand domaine (`K`) |
//!
//!   A coarser class counts only the profiles no finer class published (otherwise "52/K22: 8"
//!   beside "49/K22: 6" would give away a withheld class of 2). What stays under k at level 2 is
//!   withheld, and only counted in the response's `withheld`.
//! - **Breakdowns whole or not at all.** Month available, hours band, mobility band and PASS IAE
//!   validity are each shown as counts per value only when every count is at least k: a partial
//!   breakdown would give its hidden part as the class count minus the shown ones.
//! - **Barriers as counts.** Per category, only where at least k candidates have it; the sensitive
//!   ones (`sante`, `justice`, GDPR art. 10) only in a class that is distinct l-diverse (l = 2) for
//!   them and where at least k candidates also do *not* have that category (so "everyone in the
//!   class" is never published).
//! - No pseudonym, no holding structure: reaching the persons behind a class is a separate,
//!   hub-routed introduction.
//!
//! Only profiles sent for `placement` are in the view; statistics-only ones never are.

use std::collections::{BTreeMap, HashSet};

use passerelle_proto::codes::slug_of;
use passerelle_proto::geo::region_of;
use passerelle_proto::v1::{
    AnonymizedProfile, Barrier, ClassCount, ConsentPurpose, HoursBand, MobilityBand, ProfileClass,
};

use super::Hub;
use super::ingest::HubRecord;
use crate::config::MIN_K;
use crate::error::Result;
use crate::store::Tree;

/// Distinct values of the sensitive barriers a class needs before it may show them.
const L_DIVERSITY: usize = 2;

/// Generalisation levels, finest first.
const LEVELS: u8 = 3;

type Qi = (i32, String, String);

fn qi(p: &AnonymizedProfile, level: u8) -> Qi {
    let area = if level == 0 {
        p.departement.clone()
    } else {
        region_of(&p.departement).unwrap_or(&p.departement).to_string()
    };
    let rome = p
        .rome_codes
        .first()
        .map(|c| if level < 2 { c.chars().take(3).collect() } else { c.chars().take(1).collect() })
        .unwrap_or_default();
    (p.age_band, area, rome)
}

fn is_sensitive(b: i32) -> bool {
    b == Barrier::Sante as i32 || b == Barrier::Justice as i32
}

/// Whether the hub may use a profile for `purpose` (`placement`: the pooled view; `statistics`:
/// published tables). A profile without purposes was sent by a node older than the field, under a
/// `placement` consent only.
pub(crate) fn serves(profile: &AnonymizedProfile, purpose: ConsentPurpose) -> bool {
    if profile.purposes.is_empty() {
        return purpose == ConsentPurpose::Placement;
    }
    profile.purposes.contains(&(purpose as i32))
}

/// The slug of a band for a breakdown, `not-said` when the person did not give it.
fn band_value<T: passerelle_proto::codes::Code + TryFrom<i32>>(raw: i32) -> String {
    if raw == 0 { "not-said".into() } else { slug_of::<T>(raw).into() }
}

/// Counts per value of one attribute over a class, whole (every count at least `k`) or empty.
fn breakdown(values: impl Iterator<Item = String>, k: usize) -> Vec<ClassCount> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    if counts.values().any(|&c| c < k) {
        return Vec::new();
    }
    counts.into_iter().map(|(value, count)| ClassCount { value, count: count as u32 }).collect()
}

/// Barrier counts of a class: categories held by at least `k`; sensitive ones only if the class
/// is l-diverse and at least `k` candidates lack that category too.
fn barrier_counts(members: &[&AnonymizedProfile], k: usize) -> Vec<ClassCount> {
    let sensitive_values: HashSet<Vec<i32>> = members
        .iter()
        .map(|p| {
            let mut s: Vec<i32> = p.barriers.iter().copied().filter(|b| is_sensitive(*b)).collect();
            s.sort_unstable();
            s.dedup();
            s
        })
        .collect();
    let diverse = sensitive_values.len() >= L_DIVERSITY;
    let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
    for p in members {
        let mut seen: Vec<i32> = p.barriers.clone();
        seen.sort_unstable();
        seen.dedup();
        for b in seen {
            *counts.entry(b).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .filter(|&(b, c)| c >= k && (!is_sensitive(b) || (diverse && members.len() - c >= k)))
        .map(|(b, count)| ClassCount { value: slug_of::<Barrier>(b).into(), count: count as u32 })
        .collect()
}

fn class(level: u8, (age_band, area, rome): Qi, members: &[&AnonymizedProfile], k: usize) -> ProfileClass {
    ProfileClass {
        age_band,
        area,
        area_level: if level == 0 { "departement" } else { "region" }.into(),
        rome,
        count: members.len() as u32,
        available_from: breakdown(members.iter().map(|p| p.available_from.clone()), k),
        hours_band: breakdown(members.iter().map(|p| band_value::<HoursBand>(p.hours_band)), k),
        mobility_band: breakdown(members.iter().map(|p| band_value::<MobilityBand>(p.mobility_band)), k),
        pass_iae_valid: breakdown(
            members.iter().map(|p| if p.pass_iae_valid { "yes" } else { "no" }.to_string()),
            k,
        ),
        barriers: barrier_counts(members, k),
    }
}

/// The published classes of `profiles` (already without the viewer's own) and how many profiles
/// were withheld. Each profile is in at most one class: the finest of the ladder reaching `k`.
pub(crate) fn classes(profiles: &[&AnonymizedProfile], k: u32) -> (Vec<ProfileClass>, u32) {
    let k = k.max(MIN_K) as usize;
    let mut remaining: Vec<&AnonymizedProfile> = profiles.to_vec();
    let mut out = Vec::new();
    for level in 0..LEVELS {
        let mut groups: BTreeMap<Qi, Vec<&AnonymizedProfile>> = BTreeMap::new();
        for p in remaining.drain(..) {
            groups.entry(qi(p, level)).or_default().push(p);
        }
        for (key, members) in groups {
            if members.len() >= k {
                out.push(class(level, key, &members, k));
            } else {
                remaining.extend(members);
            }
        }
    }
    (out, remaining.len() as u32)
}

impl Hub {
    /// The pooled view `viewer` may see: classes of the placement profiles of every *other*
    /// member, counted without the viewer's own, and how many of those profiles were withheld.
    pub fn profiles_view(&self, viewer: &str) -> Result<(Vec<ProfileClass>, u32)> {
        let mut profiles = Vec::new();
        for (_, raw) in self.store.scan(Tree::Records, &[], None, usize::MAX)? {
            if let Ok(record) = <HubRecord as prost::Message>::decode(raw.as_slice())
                && !record.deleted
                && let Some(profile) = record.profile
                && profile.holding_siret != viewer
                && serves(&profile, ConsentPurpose::Placement)
            {
                profiles.push(profile);
            }
        }
        let refs: Vec<&AnonymizedProfile> = profiles.iter().collect();
        Ok(classes(&refs, self.config.k_anonymity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use passerelle_proto::v1::AgeBand;
    use proptest::prelude::*;

    fn profile(band: AgeBand, dep: &str, rome: &str, barriers: &[Barrier]) -> AnonymizedProfile {
        AnonymizedProfile {
            pseudonym: "0".repeat(32),
            holding_siret: "73282932000074".into(),
            age_band: band as i32,
            departement: dep.into(),
            rome_codes: vec![rome.into()],
            available_from: "2027-01".into(),
            barriers: barriers.iter().map(|b| *b as i32).collect(),
            ..Default::default()
        }
    }

    fn run(all: &[AnonymizedProfile], k: u32) -> (Vec<ProfileClass>, u32) {
        classes(&all.iter().collect::<Vec<_>>(), k)
    }

    fn at<'a>(classes: &'a [ProfileClass], area: &str, rome: &str) -> Option<&'a ProfileClass> {
        classes.iter().find(|c| c.area == area && c.rome == rome)
    }

    #[test]
    fn each_profile_counts_in_the_finest_class_reaching_k() {
        let mut all = vec![profile(AgeBand::AgeBand2649, "49", "K2204", &[]); 3];
        all.extend(vec![profile(AgeBand::AgeBand2649, "44", "K2201", &[]); 2]);
        all.push(profile(AgeBand::AgeBand2649, "85", "K2202", &[]));
        all.push(profile(AgeBand::AgeBand50Plus, "85", "N1103", &[]));
        let (published, withheld) = run(&all, 3);
        assert_eq!(withheld, 1, "the only 50+ profile cannot reach k");
        let dep = at(&published, "49", "K22").expect("49/K22 reaches k at département level");
        assert_eq!((dep.count, dep.area_level.as_str()), (3, "departement"));
        let region = at(&published, "52", "K22").expect("44 and 85 together reach k in the région");
        assert_eq!(
            (region.count, region.area_level.as_str()),
            (3, "region"),
            "the région class counts only what 49/K22 did not publish"
        );
        assert_eq!(published.len(), 2);
    }

    #[test]
    fn what_no_level_publishes_is_withheld_not_folded_into_a_coarser_class() {
        // 49/K22 published; 44/K22 has 2 < 3 even in the région once 49's are taken out.
        let mut all = vec![profile(AgeBand::AgeBand2649, "49", "K2204", &[]); 3];
        all.extend(vec![profile(AgeBand::AgeBand2649, "44", "K2201", &[]); 2]);
        let (published, withheld) = run(&all, 3);
        assert_eq!(withheld, 2);
        assert_eq!(published.len(), 1, "no \"52/K22: 5\" beside \"49/K22: 3\": {published:?}");
    }

    #[test]
    fn breakdowns_are_whole_or_absent() {
        let mut all = Vec::new();
        for (i, hours) in [1, 1, 1, 3, 3, 3].into_iter().enumerate() {
            let mut p = profile(AgeBand::Under26, "49", "K2204", &[]);
            p.hours_band = hours;
            p.mobility_band = if i < 4 { 1 } else { 2 };
            p.pass_iae_valid = true;
            all.push(p);
        }
        let (published, _) = run(&all, 3);
        let c = &published[0];
        assert_eq!(c.count, 6);
        let counts = |b: &[ClassCount]| b.iter().map(|c| (c.value.clone(), c.count)).collect::<Vec<_>>();
        assert_eq!(counts(&c.hours_band), vec![("35h+".to_string(), 3), ("<=20h".to_string(), 3)]);
        assert!(c.mobility_band.is_empty(), "4 and 2: the 2 would be the class minus the 4");
        assert_eq!(counts(&c.pass_iae_valid), vec![("yes".to_string(), 6)]);
        assert_eq!(counts(&c.available_from), vec![("2027-01".to_string(), 6)]);
    }

    #[test]
    fn sensitive_barriers_need_diversity_and_k_on_both_sides() {
        let class_of = |barriers: &[&[Barrier]]| {
            let all: Vec<_> = barriers.iter().map(|b| profile(AgeBand::Under26, "49", "K2204", b)).collect();
            let (published, _) = run(&all, 3);
            published[0].barriers.iter().map(|c| (c.value.clone(), c.count)).collect::<Vec<_>>()
        };
        let j: &[Barrier] = &[Barrier::Justice, Barrier::Mobilite];
        let none: &[Barrier] = &[Barrier::Mobilite];
        assert_eq!(
            class_of(&[j, j, j, none, none, none]),
            vec![("mobilite".to_string(), 6), ("justice".to_string(), 3)]
        );
        assert_eq!(
            class_of(&[j; 6]),
            vec![("mobilite".to_string(), 6)],
            "one sensitive value: not l-diverse"
        );
        let s: &[Barrier] = &[Barrier::Sante, Barrier::Mobilite];
        assert_eq!(
            class_of(&[j, j, j, j, s, s]),
            vec![("mobilite".to_string(), 6)],
            "justice: only 2 without it; sante: 2 < k"
        );
    }

    #[test]
    fn k_is_at_least_two() {
        let all = vec![profile(AgeBand::Under26, "49", "K2204", &[])];
        assert_eq!(run(&all, 1).1, 1, "k = 1 would publish a singleton");
    }

    #[test]
    fn statistics_only_profiles_serve_statistics_only() {
        let mut p = profile(AgeBand::Under26, "49", "K2204", &[]);
        assert!(serves(&p, ConsentPurpose::Placement), "no purposes: an older node, placement only");
        assert!(!serves(&p, ConsentPurpose::Statistics));
        p.purposes = vec![ConsentPurpose::Statistics as i32];
        assert!(!serves(&p, ConsentPurpose::Placement));
        assert!(serves(&p, ConsentPurpose::Statistics));
    }

    proptest! {
        /// Whatever the profiles: every profile is counted once (published counts plus withheld
        /// make the total), every count shown is at least k, and every breakdown adds up to its
        /// class.
        #[test]
        fn every_count_reaches_k_and_profiles_count_once(
            rows in prop::collection::vec(
                (1i32..=3, prop::sample::select(vec!["49", "44", "85", "75"]),
                 prop::sample::select(vec!["K2204", "K2201", "N1103", "A1101"]),
                 0i32..=3, 0i32..=3, any::<bool>(), prop::collection::vec(1i32..=9, 0..3)),
                0..80),
            k in 2u32..6,
        ) {
            let all: Vec<AnonymizedProfile> = rows
                .into_iter()
                .map(|(band, dep, rome, hours, mobility, pass, barriers)| AnonymizedProfile {
                    age_band: band,
                    departement: dep.into(),
                    rome_codes: vec![rome.into()],
                    available_from: "2027-01".into(),
                    hours_band: hours,
                    mobility_band: mobility,
                    pass_iae_valid: pass,
                    barriers,
                    ..Default::default()
                })
                .collect();
            let (published, withheld) = run(&all, k);
            let shown: u32 = published.iter().map(|c| c.count).sum();
            prop_assert_eq!(shown + withheld, all.len() as u32);
            for c in &published {
                prop_assert!(c.count >= k);
                for b in [&c.available_from, &c.hours_band, &c.mobility_band, &c.pass_iae_valid] {
                    prop_assert!(b.iter().all(|v| v.count >= k));
                    prop_assert!(b.is_empty() || b.iter().map(|v| v.count).sum::<u32>() == c.count);
                }
                prop_assert!(c.barriers.iter().all(|v| v.count >= k));
            }
        }
    }
}
