//! Who is in the demo federation of région Pays de la Loire (52), and what they hold: four
//! structures, their recruitment needs (real ROME codes), the people they support and twelve
//! months of indicators whose exits give a believable dynamic-exit rate (about 55 to 60 %).
//!
//! Everything here is fictitious but shaped like the sector: names, SIRETs (valid Luhn), INSEE
//! commune codes of the right département, contracts that fit each kind of structure.

use passerelle_proto::date::{Date, Month};
use passerelle_proto::v1::{Barrier, ContractType, Exits, IndicatorFields, NeedFields, PersonFields};

/// The consolidation hub of the state service (DREETS Pays de la Loire).
pub(crate) const CONSOLIDATION: &str = "dreets-52";
/// The consolidation hub's network: the state's, whose CA issues its hub and analysts.
pub(crate) const CONSOLIDATION_NETWORK: &str = "consolidation";
/// The two network hubs, with their network names.
pub(crate) const NETWORKS: [(&str, &str); 2] = [("coorace-pdl", "coorace"), ("fas-pdl", "fas")];

/// A structure of the demo and the networks it belongs to.
pub(crate) struct Cast {
    /// SIRET (valid Luhn checksum).
    pub(crate) siret: &'static str,
    /// `ai`, `aci`, `ei` or `etti`, as the config spells it.
    pub(crate) kind: &'static str,
    /// Trading name.
    pub(crate) name: &'static str,
    /// Département of the structure.
    pub(crate) departement: &'static str,
    /// The network hubs it syncs with.
    pub(crate) hubs: &'static [&'static str],
    /// Its open recruitment needs.
    pub(crate) needs: &'static [Need],
    /// The people it supports.
    pub(crate) persons: &'static [Person],
    /// Its monthly activity: employees in insertion, hours per employee, hires and exits per month.
    pub(crate) activity: Activity,
}

/// A recruitment need: ROME fiche, the title the structure writes, contract, positions, hours,
/// commune and how many weeks from today it starts.
pub(crate) struct Need(
    pub(crate) &'static str,
    pub(crate) &'static str,
    pub(crate) ContractType,
    pub(crate) u32,
    pub(crate) u32,
    pub(crate) &'static str,
    pub(crate) i64,
);

/// A supported person: first and last name, birth date, commune, ROME codes sought, barriers,
/// and whether they consent to placement (with every hub of their structure) and to statistics.
pub(crate) struct Person(
    pub(crate) &'static str,
    pub(crate) &'static str,
    pub(crate) &'static str,
    pub(crate) &'static str,
    pub(crate) &'static [&'static str],
    pub(crate) &'static [Barrier],
    pub(crate) bool,
);

/// The shape of a structure's monthly indicator reports.
pub(crate) struct Activity {
    /// Employees in insertion in an average month.
    pub(crate) employees: u32,
    /// Hours worked per employee in an average month.
    pub(crate) hours_each: u32,
    /// Hires in an average month.
    pub(crate) hires: u32,
    /// Exits in an average month.
    pub(crate) exits: u32,
}

use Barrier::{Administratif, GardeEnfants, Logement, Mobilite, Numerique, SavoirsDeBase};
use ContractType::{Cddi, Interim, MiseADisposition};

/// The four structures: an AI in Maine-et-Loire, an ACI in Vendée (member of both networks), an EI
/// in Loire-Atlantique and an ETTI in Sarthe.
pub(crate) const STRUCTURES: [Cast; 4] = [
    Cast {
        siret: "49152734700018",
        kind: "ai",
        name: "Tremplin Travail Anjou",
        departement: "49",
        hubs: &["coorace-pdl"],
        needs: &[
            Need("K2204", "Agent·e d'entretien de bureaux", MiseADisposition, 3, 20, "49007", 2),
            Need("K1304", "Aide ménager·ère chez des particuliers", MiseADisposition, 2, 15, "49099", 3),
            Need("A1203", "Entretien d'espaces verts communaux", MiseADisposition, 2, 24, "49007", 6),
        ],
        persons: &[
            Person("Inès", "Morel", "1994-03-12", "49007", &["K2204", "K1304"], &[Mobilite], true),
            Person("Karim", "Benali", "1981-07-02", "49007", &["A1203"], &[Logement, Administratif], true),
            Person("Sylvie", "Guérin", "1967-11-23", "49099", &["K1304"], &[Numerique], true),
            Person("Théo", "Lambert", "2003-01-30", "49007", &["K2204"], &[Mobilite, SavoirsDeBase], false),
        ],
        activity: Activity { employees: 110, hours_each: 46, hires: 9, exits: 8 },
    },
    Cast {
        siret: "85204617600016",
        kind: "aci",
        name: "Les Jardins du Bocage",
        departement: "85",
        hubs: &["coorace-pdl", "fas-pdl"],
        needs: &[
            Need("A1414", "Maraîcher·ère en chantier d'insertion", Cddi, 4, 26, "85191", 1),
            Need("I1203", "Agent·e de maintenance des bâtiments", Cddi, 1, 26, "85191", 4),
            Need("K2304", "Valoriste en ressourcerie", Cddi, 2, 26, "85191", 8),
        ],
        persons: &[
            Person("Nadia", "Charpentier", "1989-05-17", "85191", &["A1414"], &[GardeEnfants], true),
            Person("Jérôme", "Fabre", "1972-09-08", "85191", &["A1414", "I1203"], &[Mobilite], true),
            Person("Awa", "Diallo", "1998-12-01", "85191", &["K2304"], &[SavoirsDeBase, Administratif], true),
        ],
        activity: Activity { employees: 32, hours_each: 112, hires: 3, exits: 3 },
    },
    Cast {
        siret: "44391825500011",
        kind: "ei",
        name: "Ateliers de l'Erdre",
        departement: "44",
        hubs: &["fas-pdl"],
        needs: &[
            Need("H3302", "Opérateur·rice de conditionnement", Cddi, 3, 35, "44109", 2),
            Need("G1602", "Commis de cuisine (restaurant d'insertion)", Cddi, 2, 35, "44109", 3),
            Need("K2304", "Agent·e de tri et de réemploi", Cddi, 2, 35, "44162", 5),
        ],
        persons: &[
            Person("Mehdi", "Rousseau", "1991-02-14", "44109", &["H3302"], &[Mobilite], true),
            Person("Claire", "Le Goff", "1979-06-29", "44162", &["G1602"], &[GardeEnfants, Logement], true),
            Person("Samuel", "N'Diaye", "2001-10-05", "44109", &["K2304", "H3302"], &[Numerique], false),
        ],
        activity: Activity { employees: 18, hours_each: 148, hires: 2, exits: 2 },
    },
    Cast {
        siret: "72068349900019",
        kind: "etti",
        name: "Sarthe Intérim Insertion",
        departement: "72",
        hubs: &["coorace-pdl"],
        needs: &[
            Need("N1103", "Préparateur·rice de commandes", Interim, 5, 35, "72181", 1),
            Need("F1703", "Aide-maçon·ne", Interim, 2, 35, "72181", 3),
            Need("N4105", "Chauffeur·euse livreur·euse VL", Interim, 2, 35, "72181", 4),
        ],
        persons: &[
            Person("Laurent", "Hamon", "1975-04-19", "72181", &["N1103", "N4105"], &[], true),
            Person("Fatou", "Camara", "1996-08-11", "72181", &["N1103"], &[Mobilite, Numerique], true),
            Person("Kevin", "Bouvier", "1988-12-24", "72181", &["F1703"], &[Administratif], true),
        ],
        activity: Activity { employees: 75, hours_each: 80, hires: 10, exits: 9 },
    },
];

/// The person whose consent withdrawal the demo follows (Tremplin Travail's first person).
pub(crate) const WITHDRAWING: (usize, &str) = (0, "Inès");

/// ROME labels of the codes the demo uses, for readable listings (the wire carries codes only).
pub(crate) fn rome_label(code: &str) -> &'static str {
    match code {
        "A1203" => "Aménagement et entretien des espaces verts",
        "A1414" => "Horticulture et maraîchage",
        "F1703" => "Maçonnerie",
        "G1602" => "Personnel de cuisine",
        "H3302" => "Opérations manuelles d'assemblage, tri ou emballage",
        "I1203" => "Maintenance des bâtiments et des locaux",
        "K1304" => "Services domestiques",
        "K2204" => "Nettoyage de locaux",
        "K2304" => "Revalorisation de produits industriels",
        "N1103" => "Magasinage et préparation de commandes",
        "N4105" => "Conduite et livraison par tournées sur courte distance",
        _ => "",
    }
}

/// The twelve complete months before `today`, oldest first.
pub(crate) fn last_twelve_months(today: Date) -> Vec<Month> {
    let current = today.month_of().ordinal();
    (1..=12).rev().map(|back| Month::from_ordinal(current - back)).collect()
}

/// The last complete quarter among the reported months, e.g. `2026-Q3`.
pub(crate) fn last_quarter(today: Date) -> String {
    let last = Month::from_ordinal(today.month_of().ordinal() - 1);
    // A quarter is complete once its last month (3, 6, 9 or 12) is reported.
    let complete = Month::from_ordinal(last.ordinal() - u32::from(last.month % 3));
    format!("{}-Q{}", complete.year, (complete.month - 1) / 3 + 1)
}

/// A small deterministic generator, so every run of the demo shows the same figures.
struct Draws(u64);

impl Draws {
    fn new(siret: &str, month: Month) -> Self {
        let seed = siret
            .bytes()
            .fold(u64::from(month.ordinal()), |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A number in `0..n` (xorshift64*).
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % u64::from(n.max(1))) as u32
    }

    /// Drops `n` draws, so that independent figures use independent parts of the stream.
    fn skip(mut self, n: u32) -> Self {
        for _ in 0..n {
            self.below(2);
        }
        self
    }

    /// `base` give or take about a quarter.
    fn around(&mut self, base: u32) -> u32 {
        let spread = (base / 4).max(1);
        base + self.below(2 * spread + 1) - spread
    }
}

/// Theoretical full-time hours per month (1,607 h a year).
const FULL_TIME_HOURS_PER_MONTH: f64 = 1607.0 / 12.0;

impl Cast {
    /// The month's indicator report: employees, hours, hires and exits vary around the
    /// structure's average, and exits fall in categories as [`Cast::exits`] spreads them.
    pub(crate) fn report(&self, month: Month) -> IndicatorFields {
        let mut draws = Draws::new(self.siret, month);
        let a = &self.activity;
        let employees = draws.around(a.employees);
        let hours_worked = employees * draws.around(a.hours_each);
        IndicatorFields {
            period: month.to_string(),
            etp_hundredths: (f64::from(hours_worked) * 100.0 / FULL_TIME_HOURS_PER_MONTH).round() as u64,
            employees_in_insertion: employees,
            hours_worked: hours_worked.into(),
            hires: draws.around(a.hires),
            exits: Some(self.exits(month)),
        }
    }

    /// How many exits the structure has in `month`.
    fn exit_total(&self, month: Month) -> u32 {
        Draws::new(self.siret, month).skip(3).around(self.activity.exits)
    }

    /// The month's exits by category. The year's exits, numbered from January, are dealt to the
    /// categories in the sector's usual shares (26 % durable employment, 20 % transition, 12 %
    /// positive, 42 % other: a 58 % dynamic-exit rate) as evenly as possible, so that any quarter
    /// shows a believable rate even for a small structure.
    pub(crate) fn exits(&self, month: Month) -> Exits {
        const SHARES: [f64; 4] = [0.26, 0.20, 0.12, 0.42];
        let january = month.ordinal() - u32::from(month.month - 1);
        let before: u32 = (january..month.ordinal()).map(|o| self.exit_total(Month::from_ordinal(o))).sum();
        let total = self.exit_total(month);
        let mut dealt = [0u32; 4];
        let mut exits = Exits { total, durable: 0, transition: 0, positive: 0, other: 0 };
        for i in 0..before + total {
            // The category furthest behind its share takes the next exit.
            let deficit = |k: usize| f64::from(i + 1) * SHARES[k] - f64::from(dealt[k]);
            let k = (0..4).max_by(|&a, &b| deficit(a).total_cmp(&deficit(b))).unwrap_or(3);
            dealt[k] += 1;
            if i >= before {
                match k {
                    0 => exits.durable += 1,
                    1 => exits.transition += 1,
                    2 => exits.positive += 1,
                    _ => exits.other += 1,
                }
            }
        }
        exits
    }

    /// The need's fields, starting `weeks` after `today` for six months.
    pub(crate) fn need(&self, need: &Need, today: Date) -> NeedFields {
        let Need(rome, title, contract, positions, hours, commune, weeks) = need;
        let start = Date::from_days_since_epoch(today.days_since_epoch() + weeks * 7);
        let end = Date::from_days_since_epoch(start.days_since_epoch() + 182);
        NeedFields {
            rome_code: (*rome).into(),
            title: (*title).into(),
            contract_type: *contract as i32,
            open_positions: *positions,
            hours_per_week: *hours,
            departement: self.departement.into(),
            commune: (*commune).into(),
            start_date: start.to_string(),
            end_date: Some(end.to_string()),
            client: None,
            description: None,
        }
    }

    /// The person's fields, available from `today`.
    pub(crate) fn person(person: &Person, today: Date) -> PersonFields {
        let Person(first, last, birth, commune, romes, barriers, _) = person;
        PersonFields {
            first_name: (*first).into(),
            last_name: (*last).into(),
            birth_date: (*birth).into(),
            commune: (*commune).into(),
            phone: Some("06 12 34 56 78".into()),
            email: None,
            rome_codes: romes.iter().map(|r| (*r).to_string()).collect(),
            available_from: today.to_string(),
            hours_per_week: Some(26),
            mobility_km: Some(20),
            barriers: barriers.iter().map(|b| *b as i32).collect(),
            pass_iae_end: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use passerelle_proto::validate;

    fn today() -> Date {
        Date { year: 2026, month: 11, day: 22 }
    }

    #[test]
    fn every_record_of_the_cast_is_valid() {
        for s in &STRUCTURES {
            validate::siret("siret", s.siret).expect("siret");
            for n in s.needs {
                validate::need_fields(&s.need(n, today())).expect("need");
            }
            for p in s.persons {
                validate::person_fields(&Cast::person(p, today()), today()).expect("person");
            }
            for m in last_twelve_months(today()) {
                validate::indicator_fields(&s.report(m)).expect("report");
            }
        }
    }

    #[test]
    fn the_months_and_the_quarter_follow_today() {
        let months = last_twelve_months(today());
        assert_eq!(months.first().map(ToString::to_string).as_deref(), Some("2025-11"));
        assert_eq!(months.last().map(ToString::to_string).as_deref(), Some("2026-10"));
        assert_eq!(last_quarter(today()), "2026-Q3");
        assert_eq!(last_quarter(Date { year: 2026, month: 10, day: 1 }), "2026-Q3");
        assert_eq!(last_quarter(Date { year: 2026, month: 1, day: 5 }), "2025-Q4");
        assert_eq!(last_quarter(Date { year: 2026, month: 3, day: 31 }), "2025-Q4");
    }

    #[test]
    fn the_dynamic_exit_rate_is_believable() {
        let (mut dynamic, mut total) = (0, 0);
        for s in &STRUCTURES {
            // Every quarter of every structure stays plausible (a small EI has few exits a quarter).
            let months = last_twelve_months(today());
            for quarter in months.chunks(3) {
                let exits: Vec<Exits> = quarter.iter().filter_map(|m| s.report(*m).exits).collect();
                let d: u32 = exits.iter().map(|e| e.durable + e.transition + e.positive).sum();
                let t: u32 = exits.iter().map(|e| e.total).sum();
                let q = f64::from(d) / f64::from(t);
                assert!((0.3..=0.8).contains(&q), "{}: quarter rate {q:.2}", s.name);
                dynamic += d;
                total += t;
            }
        }
        let rate = f64::from(dynamic) / f64::from(total);
        assert!((0.55..0.61).contains(&rate), "dynamic-exit rate {rate:.3} is not the sector's 58 %");
    }
}
