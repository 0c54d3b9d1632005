//! French administrative geography: which région (INSEE code, 2016 map) a département belongs to.
//!
//! Used to validate a hub's région and, later, to generalise a département to its région when a
//! class of anonymised profiles is too small.

/// Régions and their départements.
const REGIONS: &[(&str, &str, &[&str])] = &[
    ("01", "Guadeloupe", &["971"]),
    ("02", "Martinique", &["972"]),
    ("03", "Guyane", &["973"]),
    ("04", "La Réunion", &["974"]),
    ("06", "Mayotte", &["976"]),
    ("11", "Île-de-France", &["75", "77", "78", "91", "92", "93", "94", "95"]),
    ("24", "Centre-Val de Loire", &["18", "28", "36", "37", "41", "45"]),
    ("27", "Bourgogne-Franche-Comté", &["21", "25", "39", "58", "70", "71", "89", "90"]),
    ("28", "Normandie", &["14", "27", "50", "61", "76"]),
    ("32", "Hauts-de-France", &["02", "59", "60", "62", "80"]),
    ("44", "Grand Est", &["08", "10", "51", "52", "54", "55", "57", "67", "68", "88"]),
    ("52", "Pays de la Loire", &["44", "49", "53", "72", "85"]),
    ("53", "Bretagne", &["22", "29", "35", "56"]),
    ("75", "Nouvelle-Aquitaine", &["16", "17", "19", "23", "24", "33", "40", "47", "64", "79", "86", "87"]),
    ("76", "Occitanie", &["09", "11", "12", "30", "31", "32", "34", "46", "48", "65", "66", "81", "82"]),
    ("84", "Auvergne-Rhône-Alpes", &["01", "03", "07", "15", "26", "38", "42", "43", "63", "69", "73", "74"]),
    ("93", "Provence-Alpes-Côte d'Azur", &["04", "05", "06", "13", "83", "84"]),
    ("94", "Corse", &["2A", "2B"]),
];

/// The région of a département; `None` for Saint-Pierre-et-Miquelon (975), which has none.
pub fn region_of(departement: &str) -> Option<&'static str> {
    REGIONS.iter().find(|(_, _, deps)| deps.contains(&departement)).map(|(code, _, _)| *code)
}

/// The name of a région.
pub fn region_name(code: &str) -> Option<&'static str> {
    REGIONS.iter().find(|(c, _, _)| *c == code).map(|(_, name, _)| *name)
}

/// Whether `code` is a région's INSEE code.
pub fn is_region(code: &str) -> bool {
    region_name(code).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::is_departement;

    #[test]
    fn every_departement_but_975_has_exactly_one_region() {
        let mut all: Vec<String> = (1..=95).filter(|d| *d != 20).map(|d| format!("{d:02}")).collect();
        all.extend(["2A", "2B", "971", "972", "973", "974", "976"].map(String::from));
        for dep in &all {
            assert!(is_departement(dep), "{dep}");
            let count = REGIONS.iter().filter(|(_, _, deps)| deps.contains(&dep.as_str())).count();
            assert_eq!(count, 1, "{dep}");
        }
        assert_eq!(REGIONS.iter().map(|(_, _, d)| d.len()).sum::<usize>(), all.len());
        assert_eq!(region_of("49"), Some("52"));
        assert_eq!(region_of("975"), None);
        assert!(is_region("52") && !is_region("20"));
    }
}
