//! ROME labels: the name of a fiche (`K2204` → "Nettoyage de locaux") and of a grand domaine
//! (`K` → "Services à la personne et à la collectivité"), for people reading a need by its code.
//!
//! The fiches are France Travail's open data (ROME v3, Licence Ouverte 2.0), embedded from
//! `data/rome-v3.tsv`. Validation does not require a listed code (`validate::rome_code` checks the
//! shape only): the référentiel evolves, and a code unknown here is shown without a label rather
//! than refused.

use std::sync::OnceLock;

/// The embedded table: comment lines starting with `#`, then `CODE<TAB>LABEL`, sorted by code.
const FICHES: &str = include_str!("../data/rome-v3.tsv");

/// The fourteen grands domaines, by letter.
const GRANDS_DOMAINES: [(char, &str); 14] = [
    ('A', "Agriculture et pêche, espaces naturels et espaces verts, soins aux animaux"),
    ('B', "Arts et façonnage d'ouvrages d'art"),
    ('C', "Banque, assurance, immobilier"),
    ('D', "Commerce, vente et grande distribution"),
    ('E', "Communication, média et multimédia"),
    ('F', "Construction, bâtiment et travaux publics"),
    ('G', "Hôtellerie-restauration, tourisme, loisirs et animation"),
    ('H', "Industrie"),
    ('I', "Installation et maintenance"),
    ('J', "Santé"),
    ('K', "Services à la personne et à la collectivité"),
    ('L', "Spectacle"),
    ('M', "Support à l'entreprise"),
    ('N', "Transport et logistique"),
];

fn fiches() -> &'static [(&'static str, &'static str)] {
    static TABLE: OnceLock<Vec<(&'static str, &'static str)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        FICHES
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .filter_map(|line| line.split_once('\t'))
            .collect()
    })
}

/// The label of a ROME fiche, if the embedded référentiel lists it.
pub fn label(code: &str) -> Option<&'static str> {
    let table = fiches();
    table.binary_search_by(|(c, _)| (*c).cmp(code)).ok().map(|i| table[i].1)
}

/// The label of the grand domaine of a code or domaine (its first letter).
pub fn grand_domaine_label(code: &str) -> Option<&'static str> {
    let letter = code.chars().next()?;
    GRANDS_DOMAINES.iter().find(|(l, _)| *l == letter).map(|(_, label)| *label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_whole_sorted_and_well_formed() {
        let table = fiches();
        assert_eq!(table.len(), 532, "ROME v3 lists 532 fiches");
        assert!(table.windows(2).all(|w| w[0].0 < w[1].0), "sorted, no duplicate");
        for (code, label) in table {
            assert!(crate::validate::rome_code("rome_code", code).is_ok(), "{code}");
            assert!(!label.trim().is_empty() && label.trim() == *label, "{code}: {label:?}");
        }
    }

    #[test]
    fn labels_by_code() {
        assert_eq!(label("K2204"), Some("Nettoyage de locaux"));
        assert_eq!(label("A1101"), Some("Conduite d'engins agricoles et forestiers"));
        assert_eq!(label("N4403"), Some("Manoeuvre du réseau ferré"));
        assert_eq!(label("K9999"), None);
        assert_eq!(label(""), None);
        assert_eq!(grand_domaine_label("K2204"), Some("Services à la personne et à la collectivité"));
        assert_eq!(
            grand_domaine_label("G16"),
            Some("Hôtellerie-restauration, tourisme, loisirs et animation")
        );
        assert_eq!(grand_domaine_label("Z1"), None);
    }
}
