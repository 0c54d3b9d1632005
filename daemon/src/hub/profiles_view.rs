//! The network view of anonymised profiles, k-anonymous over every profile the hub holds.
//!
//! Quasi-identifiers: age band, département, ROME domaine professionnel (letter + 2 digits of the
//! first code sought). For each profile the hub picks the least generalised level at which its
//! class has at least k profiles (counting every profile it holds, from every member):
//!
//! | level | area | ROME |
//! |---|---|---|
//! | 0 | département | domaine (`K22`) |
//! | 1 | région | domaine |
//! | 2 | région | grand domaine (`K`) |
//!
//! A profile whose class is smaller than k even at level 2 is withheld. Then, within each
//! published class, the sensitive barriers (`sante`, `justice`) are kept only if the class shows
//! at least two distinct sensitive values (distinct l-diversity, l = 2); otherwise they are
//! removed from every profile of the class.

use std::collections::{HashMap, HashSet};

use passerelle_proto::geo::region_of;
use passerelle_proto::v1::{AnonymizedProfile, Barrier, PooledProfile};

use super::Hub;
use super::ingest::HubRecord;
use crate::config::MIN_K;
use crate::error::Result;
use crate::store::Tree;

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

/// Publishes `profiles` k-anonymously; returns the published ones (with their index in the input)
/// and how many were withheld.
pub(crate) fn k_anonymize(profiles: &[AnonymizedProfile], k: u32) -> (Vec<(usize, PooledProfile)>, u32) {
    let k = k.max(MIN_K) as usize;
    let mut counts: [HashMap<Qi, usize>; 3] = Default::default();
    for p in profiles {
        for level in 0..3u8 {
            *counts[level as usize].entry(qi(p, level)).or_default() += 1;
        }
    }
    let mut published: Vec<(usize, u8, PooledProfile)> = Vec::new();
    let mut withheld = 0;
    for (i, p) in profiles.iter().enumerate() {
        let Some(level) = (0..3u8).find(|l| counts[*l as usize][&qi(p, *l)] >= k) else {
            withheld += 1;
            continue;
        };
        let (age_band, area, rome) = qi(p, level);
        published.push((
            i,
            level,
            PooledProfile {
                pseudonym: p.pseudonym.clone(),
                holding_siret: p.holding_siret.clone(),
                holding_name: String::new(),
                age_band,
                area,
                area_level: if level == 0 { "departement" } else { "region" }.into(),
                rome,
                available_from: p.available_from.clone(),
                hours_band: p.hours_band,
                mobility_band: p.mobility_band,
                pass_iae_valid: p.pass_iae_valid,
                barriers: p.barriers.clone(),
            },
        ));
    }
    // l-diversity of the sensitive barriers within each published class.
    let mut values: HashMap<(u8, Qi), HashSet<Vec<i32>>> = HashMap::new();
    for (_, level, p) in &published {
        let mut sensitive: Vec<i32> = p.barriers.iter().copied().filter(|b| is_sensitive(*b)).collect();
        sensitive.sort_unstable();
        values.entry((*level, (p.age_band, p.area.clone(), p.rome.clone()))).or_default().insert(sensitive);
    }
    let out = published
        .into_iter()
        .map(|(i, level, mut p)| {
            if values[&(level, (p.age_band, p.area.clone(), p.rome.clone()))].len() < 2 {
                p.barriers.retain(|b| !is_sensitive(*b));
            }
            (i, p)
        })
        .collect();
    (out, withheld)
}

impl Hub {
    /// The pooled profiles of every member but `viewer`, k-anonymous over all profiles held.
    pub fn profiles_view(&self, viewer: &str) -> Result<(Vec<PooledProfile>, u32)> {
        let mut profiles = Vec::new();
        for (_, raw) in self.store.scan(Tree::Records, &[], None, usize::MAX)? {
            if let Ok(record) = <HubRecord as prost::Message>::decode(raw.as_slice())
                && !record.deleted
                && let Some(profile) = record.profile
            {
                profiles.push(profile);
            }
        }
        let names: HashMap<String, String> =
            self.list_members()?.into_iter().filter_map(|m| m.structure.map(|s| (m.id, s.name))).collect();
        let (published, withheld) = k_anonymize(&profiles, self.config.k_anonymity);
        let view = published
            .into_iter()
            .filter(|(_, p)| p.holding_siret != viewer)
            .map(|(_, mut p)| {
                p.holding_name = names.get(&p.holding_siret).cloned().unwrap_or_default();
                p
            })
            .collect();
        Ok((view, withheld))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use passerelle_proto::v1::AgeBand;

    fn profile(n: usize, band: AgeBand, dep: &str, rome: &str, barriers: &[Barrier]) -> AnonymizedProfile {
        AnonymizedProfile {
            pseudonym: format!("{n:032x}"),
            holding_siret: "73282932000074".into(),
            age_band: band as i32,
            departement: dep.into(),
            rome_codes: vec![rome.into()],
            barriers: barriers.iter().map(|b| *b as i32).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn small_classes_are_generalised_then_withheld() {
        let mut all = Vec::new();
        for n in 0..3 {
            all.push(profile(n, AgeBand::AgeBand2649, "49", "K2204", &[Barrier::Sante]));
        }
        for n in 3..5 {
            all.push(profile(n, AgeBand::AgeBand2649, "44", "K2201", &[Barrier::Mobilite]));
        }
        all.push(profile(5, AgeBand::AgeBand50Plus, "85", "N1103", &[]));
        let (published, withheld) = k_anonymize(&all, 3);
        assert_eq!(withheld, 1, "the only 50+ profile cannot reach k");
        let by = |i: usize| published.iter().find(|(j, _)| *j == i).map(|(_, p)| p.clone());
        let p0 = by(0).expect("published");
        assert_eq!(
            (p0.area.as_str(), p0.area_level.as_str(), p0.rome.as_str()),
            ("49", "departement", "K22")
        );
        assert!(p0.barriers.is_empty(), "three sante and nothing else: not l-diverse, stripped");
        let p3 = by(3).expect("published");
        assert_eq!((p3.area.as_str(), p3.area_level.as_str()), ("52", "region"), "44 alone is 2 < 3: région");
        assert!(by(5).is_none());
    }

    #[test]
    fn diverse_classes_keep_sensitive_barriers() {
        let all = vec![
            profile(0, AgeBand::Under26, "49", "K2204", &[Barrier::Sante]),
            profile(1, AgeBand::Under26, "49", "K2204", &[]),
            profile(2, AgeBand::Under26, "49", "K2204", &[Barrier::Justice]),
        ];
        let (published, _) = k_anonymize(&all, 3);
        assert!(published.iter().any(|(_, p)| p.barriers.contains(&(Barrier::Sante as i32))));
    }

    #[test]
    fn k_is_at_least_two() {
        let all = vec![profile(0, AgeBand::Under26, "49", "K2204", &[])];
        assert_eq!(k_anonymize(&all, 1).1, 1, "k = 1 would publish a singleton");
    }
}
