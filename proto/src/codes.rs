//! Stable lowercase slugs for the protocol's enums.
//!
//! Slugs are what people type and read (`--contract cddi`, `kind = "ai"`, JSON `"status": "open"`);
//! they are part of the CLI and config contracts, so they never change once published.

use crate::v1::{
    AgeBand, Barrier, ConsentPurpose, ContractType, DeclineReason, GuiRole, HoursBand, IntroductionOutcome,
    IntroductionStatus, MobilityBand, NeedStatus, SharedField, StructureKind,
};

/// An enum of the protocol with a human slug for each meaningful value.
pub trait Code: Sized + Copy + 'static {
    /// Every meaningful value with its slug (the `UNSPECIFIED` value has none).
    const ALL: &'static [(Self, &'static str)];
    /// What the value is, for error messages ("contract type").
    const WHAT: &'static str;

    /// The slug of a value; `"unspecified"` for the zero value.
    fn slug(self) -> &'static str;

    /// The value named by a slug, if any.
    fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, s)| *s == slug).map(|(v, _)| *v)
    }

    /// The slugs, joined by `|`, for help and error messages.
    fn choices() -> String {
        Self::ALL.iter().map(|(_, s)| *s).collect::<Vec<_>>().join("|")
    }
}

macro_rules! codes {
    ($ty:ident, $what:literal, { $($variant:ident => $slug:literal),+ $(,)? }) => {
        impl Code for $ty {
            const ALL: &'static [(Self, &'static str)] = &[$(($ty::$variant, $slug)),+];
            const WHAT: &'static str = $what;

            fn slug(self) -> &'static str {
                match self {
                    $($ty::$variant => $slug,)+
                    #[allow(unreachable_patterns)]
                    _ => "unspecified",
                }
            }
        }
    };
}

codes!(StructureKind, "structure kind", {
    Ai => "ai", Aci => "aci", Ei => "ei", Etti => "etti", Eiti => "eiti",
});

codes!(ContractType, "contract type", {
    Cddi => "cddi",
    CddUsage => "cdd-usage",
    Interim => "interim",
    ContratPro => "contrat-pro",
    CreationEntreprise => "creation-entreprise",
    MiseADisposition => "mise-a-disposition",
    Autre => "autre",
});

codes!(NeedStatus, "need status", {
    Open => "open", Filled => "filled", Cancelled => "cancelled",
});

codes!(Barrier, "barrier", {
    Numerique => "numerique",
    Mobilite => "mobilite",
    GardeEnfants => "garde-enfants",
    Sante => "sante",
    SavoirsDeBase => "savoirs-de-base",
    Logement => "logement",
    Financier => "financier",
    Administratif => "administratif",
    Justice => "justice",
});

codes!(ConsentPurpose, "consent purpose", {
    Placement => "placement",
    PlacementSensitive => "placement-sensitive",
    Statistics => "statistics",
    Introduction => "introduction",
});

codes!(DeclineReason, "decline reason", {
    NotInterested => "not-interested",
    NotAvailable => "not-available",
    AlreadyPlaced => "already-placed",
    NotSuited => "not-suited",
    Other => "other",
});

codes!(IntroductionOutcome, "outcome", {
    Hired => "hired",
    NotHired => "not-hired",
});

codes!(IntroductionStatus, "introduction status", {
    Queued => "queued",
    Open => "open",
    Expired => "expired",
    Cancelled => "cancelled",
});

codes!(GuiRole, "console role", {
    Admin => "admin",
    Viewer => "viewer",
});

codes!(SharedField, "shared field", {
    FirstName => "first-name",
    LastName => "last-name",
    Phone => "phone",
    Email => "email",
});

codes!(AgeBand, "age band", {
    Under26 => "<26",
    AgeBand2649 => "26-49",
    AgeBand50Plus => "50+",
});

codes!(HoursBand, "hours band", {
    UpTo20 => "<=20h",
    HoursBand2134 => "21-34h",
    HoursBand35Plus => "35h+",
});

codes!(MobilityBand, "mobility band", {
    UpTo10Km => "<=10km",
    MobilityBand1130Km => "11-30km",
    Over30Km => ">30km",
});

/// The slug of a raw enum number as found in a message, or `"unknown"`.
pub fn slug_of<T: Code + TryFrom<i32>>(raw: i32) -> &'static str {
    T::try_from(raw).map(Code::slug).unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Code + PartialEq + std::fmt::Debug>() {
        for (value, slug) in T::ALL {
            assert_eq!(value.slug(), *slug);
            assert_eq!(T::from_slug(slug), Some(*value));
        }
        assert_eq!(T::from_slug("unspecified"), None);
    }

    #[test]
    fn every_slug_round_trips() {
        round_trip::<StructureKind>();
        round_trip::<ContractType>();
        round_trip::<NeedStatus>();
        round_trip::<Barrier>();
        round_trip::<ConsentPurpose>();
        round_trip::<DeclineReason>();
        round_trip::<IntroductionOutcome>();
        round_trip::<SharedField>();
        assert_eq!(ContractType::Unspecified.slug(), "unspecified");
    }
}
