//! The predefined tables, defined once: which dataset each counts, its dimensions, its measures
//! (by name, each knowing its unit, how it totals and where its value comes from) and which of
//! them the disclosure rules look at. The cells, the rules and the catalogue `ListTables`
//! reports all read these definitions.
//!
//! A cell stores one value per measure, in the order of [`Spec::measures`] (the stored bytes of
//! every existing hub); that order is read and written only through [`Spec::index`] and
//! [`Spec::values`], so no code matches a value to a measure by its position.

use std::str::FromStr;

use passerelle_proto::datasets::Dataset;
use passerelle_proto::v1::{ConsentPurpose, NeedStatus, TableDescriptor};
use passerelle_proto::validate::FieldError;

use crate::hub::ingest::HubRecord;

/// A predefined statistics table. Each counts one dataset, and is named after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    /// Monthly indicator reports, by period.
    Indicators,
    /// Recruitment needs, by start month.
    Needs,
    /// Anonymised profiles.
    Profiles,
}

impl Table {
    /// Every table, in catalogue order.
    pub(crate) const ALL: [Table; 3] = [Table::Indicators, Table::Needs, Table::Profiles];

    /// The dataset it counts.
    pub(crate) fn dataset(self) -> Dataset {
        match self {
            Table::Indicators => Dataset::Indicators,
            Table::Needs => Dataset::Needs,
            Table::Profiles => Dataset::Profiles,
        }
    }

    /// Its name in requests and answers: its dataset's slug.
    pub(crate) fn as_str(self) -> &'static str {
        self.dataset().as_str()
    }

    /// The table a record is counted in, by the payload it holds (`None`: a tombstone).
    pub(super) fn of_record(record: &HubRecord) -> Option<Table> {
        if record.indicators.is_some() {
            Some(Table::Indicators)
        } else if record.need.is_some() {
            Some(Table::Needs)
        } else {
            record.profile.as_ref().map(|_| Table::Profiles)
        }
    }

    /// How the table reads its cells.
    pub(super) fn spec(self) -> &'static Spec {
        match self {
            Table::Indicators => &INDICATORS,
            Table::Needs => &NEEDS,
            Table::Profiles => &PROFILES,
        }
    }

    /// Its entry in the catalogue: the measures are exactly those its cells carry.
    pub(crate) fn descriptor(self) -> TableDescriptor {
        let spec = self.spec();
        let derived = spec.derived.iter().map(|d| d.name());
        TableDescriptor {
            name: self.as_str().into(),
            description: spec.description.into(),
            dimensions: spec.dimensions.iter().map(|d| d.to_string()).collect(),
            measures: spec.measures.iter().map(|m| m.name()).chain(derived).map(str::to_string).collect(),
        }
    }
}

impl FromStr for Table {
    type Err = FieldError;

    fn from_str(name: &str) -> Result<Self, FieldError> {
        Self::ALL.into_iter().find(|t| t.as_str() == name).ok_or_else(|| {
            FieldError::new("table", name, "expected indicators, needs, profiles or introductions")
        })
    }
}

/// How a measure totals over months and structures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Agg {
    /// Summed over months and structures (flows).
    Sum,
    /// Averaged over the months each structure reported, then summed (stocks).
    MonthlyAverage,
}

/// A measure a record contributes to its cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Measure {
    /// ETP, in hundredths.
    Etp,
    /// Employees in insertion.
    EmployeesInInsertion,
    /// Hours worked.
    HoursWorked,
    /// Hires.
    Hires,
    /// Exits, all.
    ExitsTotal,
    /// Exits to durable employment.
    ExitsDurable,
    /// Exits to transitional employment.
    ExitsTransition,
    /// Other positive exits.
    ExitsPositive,
    /// Other exits.
    ExitsOther,
    /// Needs (one per open need).
    Needs,
    /// Open positions of the open needs.
    OpenPositions,
    /// Profiles (one per profile).
    Profiles,
}

impl Measure {
    /// Its name in cells and in the catalogue.
    pub(super) fn name(self) -> &'static str {
        match self {
            Measure::Etp => "etp",
            Measure::EmployeesInInsertion => "employees_in_insertion",
            Measure::HoursWorked => "hours_worked",
            Measure::Hires => "hires",
            Measure::ExitsTotal => "exits_total",
            Measure::ExitsDurable => "exits_durable",
            Measure::ExitsTransition => "exits_transition",
            Measure::ExitsPositive => "exits_positive",
            Measure::ExitsOther => "exits_other",
            Measure::Needs => Dataset::Needs.as_str(),
            Measure::OpenPositions => "open_positions",
            Measure::Profiles => Dataset::Profiles.as_str(),
        }
    }

    /// Its unit.
    pub(super) fn unit(self) -> &'static str {
        match self {
            Measure::Etp => "hundredths",
            _ => "count",
        }
    }

    /// How it totals.
    pub(super) fn agg(self) -> Agg {
        match self {
            Measure::Etp | Measure::EmployeesInInsertion => Agg::MonthlyAverage,
            _ => Agg::Sum,
        }
    }

    /// Whether it is an exit figure (withheld on its own under the exits rule).
    pub(super) fn is_exit(self) -> bool {
        matches!(
            self,
            Measure::ExitsTotal
                | Measure::ExitsDurable
                | Measure::ExitsTransition
                | Measure::ExitsPositive
                | Measure::ExitsOther
        )
    }

    /// The value one record contributes (the record is counted: see [`Spec::values`]).
    fn read(self, record: &HubRecord) -> i64 {
        let fields = record.indicators.as_ref().and_then(|r| r.fields.as_ref());
        let exits = fields.and_then(|f| f.exits).unwrap_or_default();
        let field = |read: fn(&passerelle_proto::v1::IndicatorFields) -> i64| fields.map_or(0, read);
        match self {
            Measure::Etp => field(|f| f.etp_hundredths as i64),
            Measure::EmployeesInInsertion => field(|f| i64::from(f.employees_in_insertion)),
            Measure::HoursWorked => field(|f| f.hours_worked as i64),
            Measure::Hires => field(|f| i64::from(f.hires)),
            Measure::ExitsTotal => i64::from(exits.total),
            Measure::ExitsDurable => i64::from(exits.durable),
            Measure::ExitsTransition => i64::from(exits.transition),
            Measure::ExitsPositive => i64::from(exits.positive),
            Measure::ExitsOther => i64::from(exits.other),
            Measure::Needs | Measure::Profiles => 1,
            Measure::OpenPositions => record.need.as_ref().map_or(0, |n| i64::from(n.open_positions)),
        }
    }
}

/// A measure computed from the others when a cell is disclosed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Derived {
    /// Dynamic exits (durable, transition, positive) over all exits, in hundredths of a percent.
    DynamicExitRate,
}

impl Derived {
    /// Its name in cells and in the catalogue.
    pub(super) fn name(self) -> &'static str {
        match self {
            Derived::DynamicExitRate => "dynamic_exit_rate",
        }
    }

    /// Its unit.
    pub(super) fn unit(self) -> &'static str {
        match self {
            Derived::DynamicExitRate => "percent-hundredths",
        }
    }

    /// Its value from a cell's totals (`None`: undefined, e.g. no exits).
    pub(super) fn value(self, spec: &Spec, totals: &[i64]) -> Option<i64> {
        match self {
            Derived::DynamicExitRate => passerelle_proto::validate::dynamic_exit_rate(
                spec.total(totals, Measure::ExitsDurable),
                spec.total(totals, Measure::ExitsTransition),
                spec.total(totals, Measure::ExitsPositive),
                spec.total(totals, Measure::ExitsTotal),
            ),
        }
    }

    /// Whether it is withheld with the exit figures.
    pub(super) fn is_exit(self) -> bool {
        matches!(self, Derived::DynamicExitRate)
    }
}

/// How a table reads its cells and what the rules look at.
#[derive(Debug)]
pub(super) struct Spec {
    /// The table.
    pub(super) table: Table,
    /// What it counts (the catalogue's description).
    pub(super) description: &'static str,
    /// The dimensions a request may group by.
    pub(super) dimensions: &'static [&'static str],
    /// The stored measures, in the order cells store their values.
    pub(super) measures: &'static [Measure],
    /// Measures computed from the others at disclosure.
    pub(super) derived: &'static [Derived],
    /// The measure that counts persons (checked against the person threshold), if any.
    pub(super) persons: Option<Measure>,
    /// The measure the dominance rule looks at.
    pub(super) dominance: Measure,
    /// The exit figures are withheld on their own under the person threshold.
    pub(super) exits_rule: bool,
}

impl Spec {
    /// Where `measure`'s value is in a cell's values.
    pub(super) fn index(&self, measure: Measure) -> usize {
        self.measures.iter().position(|m| *m == measure).unwrap_or(usize::MAX)
    }

    /// `measure`'s value in a cell's totals (0 if it has none).
    pub(super) fn total(&self, totals: &[i64], measure: Measure) -> i64 {
        totals.get(self.index(measure)).copied().unwrap_or(0)
    }

    /// The values a counted record contributes, in stored order; `None` if it is not counted
    /// (a tombstone, an indicators report without fields, a need no longer open).
    pub(super) fn values(&self, record: &HubRecord) -> Option<Vec<i64>> {
        let counted = !record.deleted
            && match self.table {
                Table::Indicators => record.indicators.as_ref().is_some_and(|r| r.fields.is_some()),
                Table::Needs => record.need.as_ref().is_some_and(|n| n.status == NeedStatus::Open as i32),
                // Only under a `statistics` consent: `placement` alone never puts a person in a
                // published table.
                Table::Profiles => record
                    .profile
                    .as_ref()
                    .is_some_and(|p| crate::hub::profiles_view::serves(p, ConsentPurpose::Statistics)),
            };
        counted.then(|| self.read(record))
    }

    /// The values `record` holds for this table's measures, counted or not: what a record with a
    /// `stat_key` contributed to that cell (its payload has not changed since).
    pub(super) fn read(&self, record: &HubRecord) -> Vec<i64> {
        self.measures.iter().map(|m| m.read(record)).collect()
    }
}

pub(super) const INDICATORS: Spec = Spec {
    table: Table::Indicators,
    description: "monthly indicators of member structures, by period",
    dimensions: &["departement", "region", "kind", "network"],
    measures: &[
        Measure::Etp,
        Measure::EmployeesInInsertion,
        Measure::HoursWorked,
        Measure::Hires,
        Measure::ExitsTotal,
        Measure::ExitsDurable,
        Measure::ExitsTransition,
        Measure::ExitsPositive,
        Measure::ExitsOther,
    ],
    derived: &[Derived::DynamicExitRate],
    persons: Some(Measure::EmployeesInInsertion),
    dominance: Measure::HoursWorked,
    exits_rule: true,
};

pub(super) const NEEDS: Spec = Spec {
    table: Table::Needs,
    description: "open recruitment needs of member structures",
    dimensions: &["rome-grand-domaine", "rome-domaine", "rome", "departement", "start-month", "contract"],
    measures: &[Measure::Needs, Measure::OpenPositions],
    derived: &[],
    persons: None,
    dominance: Measure::OpenPositions,
    exits_rule: false,
};

pub(super) const PROFILES: Spec = Spec {
    table: Table::Profiles,
    description: "available anonymised profiles shared under a statistics consent",
    dimensions: &["rome-domaine", "departement", "age-band"],
    measures: &[Measure::Profiles],
    derived: &[],
    persons: Some(Measure::Profiles),
    dominance: Measure::Profiles,
    exits_rule: false,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_parse_their_names_and_count_their_dataset() {
        for table in Table::ALL {
            assert_eq!(table.as_str().parse::<Table>(), Ok(table));
            assert_eq!(table.spec().table, table, "each table's spec is its own");
            assert!(table.spec().persons.is_none_or(|p| table.spec().index(p) < table.spec().measures.len()));
            assert!(table.spec().index(table.spec().dominance) < table.spec().measures.len());
        }
        let err = "commune".parse::<Table>().expect_err("not a table");
        assert_eq!(
            err.to_string(),
            r#"table "commune": expected indicators, needs, profiles or introductions"#
        );
    }

    #[test]
    fn the_catalogue_lists_the_measures_cells_carry() {
        let indicators = Table::Indicators.descriptor();
        assert_eq!(indicators.measures.len(), INDICATORS.measures.len() + 1);
        assert!(indicators.measures.iter().any(|m| m == "exits_total"));
        assert_eq!(indicators.measures.last().map(String::as_str), Some("dynamic_exit_rate"));
        assert_eq!(Table::Needs.descriptor().measures, ["needs", "open_positions"]);
        assert_eq!(Table::Profiles.descriptor().dimensions, ["rome-domaine", "departement", "age-band"]);
    }
}
