//! French labels of the protocol's codes, for the console. The slugs (`codes.rs`) stay the
//! values forms send; only what a person reads is translated, here and nowhere else.

use passerelle_proto::codes::Code;
use passerelle_proto::v1::{
    Barrier, ConsentPurpose, ContractType, DeclineReason, IntroductionOutcome, IntroductionStatus,
    NeedStatus, SharedField,
};

/// A code with a French label.
pub(crate) trait Label: Code + TryFrom<i32> {
    /// The label.
    fn label(self) -> &'static str;

    /// The label of a wire value (`?` when unknown).
    fn label_of(raw: i32) -> &'static str {
        Self::try_from(raw).map(Label::label).unwrap_or("?")
    }
}

impl Label for ContractType {
    fn label(self) -> &'static str {
        match self {
            ContractType::Cddi => "CDD d'insertion",
            ContractType::CddUsage => "CDD d'usage",
            ContractType::Interim => "Mission d'intérim d'insertion",
            ContractType::ContratPro => "Contrat de professionnalisation",
            ContractType::CreationEntreprise => "Création d'entreprise",
            ContractType::MiseADisposition => "Mise à disposition",
            ContractType::Autre => "Autre contrat",
            ContractType::Unspecified => "?",
        }
    }
}

impl Label for NeedStatus {
    fn label(self) -> &'static str {
        match self {
            NeedStatus::Open => "Ouvert",
            NeedStatus::Filled => "Pourvu",
            NeedStatus::Cancelled => "Annulé",
            NeedStatus::Unspecified => "?",
        }
    }
}

impl Label for Barrier {
    fn label(self) -> &'static str {
        match self {
            Barrier::Numerique => "Numérique",
            Barrier::Mobilite => "Mobilité",
            Barrier::GardeEnfants => "Garde d'enfants",
            Barrier::Sante => "Santé (sensible)",
            Barrier::SavoirsDeBase => "Savoirs de base",
            Barrier::Logement => "Logement",
            Barrier::Financier => "Financier",
            Barrier::Administratif => "Administratif",
            Barrier::Justice => "Justice (sensible)",
            Barrier::Unspecified => "?",
        }
    }
}

impl Label for ConsentPurpose {
    fn label(self) -> &'static str {
        match self {
            ConsentPurpose::Placement => "Placement (profil anonymisé)",
            ConsentPurpose::PlacementSensitive => "Placement, freins sensibles",
            ConsentPurpose::Statistics => "Statistiques",
            ConsentPurpose::Introduction => "Mise en relation",
            ConsentPurpose::Unspecified => "?",
        }
    }
}

impl Label for DeclineReason {
    fn label(self) -> &'static str {
        match self {
            DeclineReason::NotInterested => "Pas intéressée",
            DeclineReason::NotAvailable => "Pas disponible",
            DeclineReason::AlreadyPlaced => "Déjà en emploi",
            DeclineReason::NotSuited => "Poste inadapté",
            DeclineReason::Other => "Autre raison",
            DeclineReason::Unspecified => "?",
        }
    }
}

impl Label for IntroductionOutcome {
    fn label(self) -> &'static str {
        match self {
            IntroductionOutcome::Hired => "Recrutée",
            IntroductionOutcome::NotHired => "Non recrutée",
            IntroductionOutcome::Unspecified => "Pas encore connu",
        }
    }
}

impl Label for IntroductionStatus {
    fn label(self) -> &'static str {
        match self {
            IntroductionStatus::Queued => "En attente du hub",
            IntroductionStatus::Open => "Ouverte",
            IntroductionStatus::Expired => "Expirée",
            IntroductionStatus::Cancelled => "Annulée",
            IntroductionStatus::Unspecified => "?",
        }
    }
}

impl Label for SharedField {
    fn label(self) -> &'static str {
        match self {
            SharedField::FirstName => "Prénom",
            SharedField::LastName => "Nom",
            SharedField::Phone => "Téléphone",
            SharedField::Email => "Courriel",
            SharedField::Unspecified => "?",
        }
    }
}

/// The French name of a protocol field, for messages shown beside it.
pub(crate) fn field(name: &str) -> &str {
    match name.split('[').next().unwrap_or(name) {
        "rome_code" | "rome_codes" => "Code ROME",
        "title" => "Intitulé",
        "contract_type" => "Contrat",
        "open_positions" => "Postes",
        "hours_per_week" => "Heures par semaine",
        "departement" => "Département",
        "commune" => "Commune (code INSEE)",
        "start_date" => "Date de début",
        "end_date" => "Date de fin",
        "first_name" => "Prénom",
        "last_name" => "Nom",
        "birth_date" => "Date de naissance",
        "phone" => "Téléphone",
        "email" => "Courriel",
        "available_from" => "Disponible à partir du",
        "mobility_km" => "Mobilité (km)",
        "pass_iae_end" => "Fin du PASS IAE",
        "period" => "Mois",
        other => other,
    }
}
