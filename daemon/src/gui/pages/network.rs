//! Réseau: the pooled open needs of the networks (the local copy of each hub's view) and the
//! pooled profile classes (asked of each hub now, k-anonymous), optionally filtered.

use passerelle_proto::codes::slug_of;
use passerelle_proto::v1::{AgeBand, ContractType};

use super::super::html::{Html, html};
use super::super::labels::Label;
use super::super::{Ctx, Reply};
use super::layout;
use super::widgets::{self, Errors};
use crate::error::Result;

/// Both views, with the filter form (`?rome=K22&departement=49`: codes, not personal data).
pub(crate) async fn show(ctx: &Ctx<'_>) -> Result<Reply> {
    let rome = ctx.query.optional("rome").map(|r| r.to_uppercase());
    let departement = ctx.query.optional("departement");
    let (r, d) = (rome.clone(), departement.clone());
    let needs = ctx.node(move |node| node.list_network_needs(r.as_deref(), d.as_deref())).await?;
    let profiles = ctx.gui.app.sync.network_profiles(rome.as_deref(), departement.as_deref()).await?;
    let errors = Errors::default();
    let filter = html!(
        "<form method=\"get\" action=\"/reseau\" class=\"card filters-form\">{}{}<button type=\"submit\">Filtrer</button></form>",
        widgets::input(
            "rome",
            "Code ROME ou début (K, K22…)",
            "text",
            rome.as_deref().unwrap_or(""),
            "",
            &errors
        ),
        widgets::input(
            "departement",
            "Département",
            "text",
            departement.as_deref().unwrap_or(""),
            "",
            &errors
        )
    );
    let need_rows = Html::concat(needs.iter().map(|p| {
        let n = p.need.clone().unwrap_or_default();
        html!(
            "<tr><th scope=\"row\">{}</th><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.structure_name.as_str(),
            n.rome_code.as_str(),
            passerelle_proto::rome::label(&n.rome_code).unwrap_or(""),
            ContractType::label_of(n.contract_type),
            n.open_positions,
            n.departement.as_str(),
            n.start_date.as_str(),
            p.hubs.join(", ")
        )
    }));
    let needs_table = if needs.is_empty() {
        Html::trusted("<p>Aucun besoin mutualisé.</p>")
    } else {
        html!(
            "<table><caption>Besoins mutualisés</caption><thead><tr><th scope=\"col\">Structure</th><th scope=\"col\">ROME</th>\
             <th scope=\"col\">Contrat</th><th scope=\"col\">Postes</th><th scope=\"col\">Département</th><th scope=\"col\">Début</th>\
             <th scope=\"col\">Hubs</th></tr></thead><tbody>{}</tbody></table>",
            need_rows
        )
    };
    let class_rows = Html::concat(profiles.classes.iter().map(|c| {
        let class = c.class.clone().unwrap_or_default();
        let barriers: Vec<String> =
            class.barriers.iter().map(|b| format!("{} : {}", b.value, b.count)).collect();
        html!(
            "<tr><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.hub_id.as_str(),
            class.area_level.as_str(),
            class.area.as_str(),
            class.rome.as_str(),
            slug_of::<AgeBand>(class.age_band),
            class.count,
            barriers.join(", ")
        )
    }));
    let classes_table = if profiles.classes.is_empty() {
        Html::trusted("<p>Aucune classe de profils publiée.</p>")
    } else {
        html!(
            "<table><caption>Profils mutualisés (classes d'au moins k personnes)</caption><thead><tr><th scope=\"col\">Hub</th>\
             <th scope=\"col\">Zone</th><th scope=\"col\">ROME</th><th scope=\"col\">Âge</th><th scope=\"col\">Candidats</th>\
             <th scope=\"col\">Freins</th></tr></thead><tbody>{}</tbody></table>",
            class_rows
        )
    };
    let unreachable = if profiles.unreachable.is_empty() {
        Html::default()
    } else {
        html!(
            "<div class=\"alert\" role=\"status\"><p>Hubs non interrogés : {}</p></div>",
            profiles.unreachable.join(" ; ")
        )
    };
    let body =
        html!("{}<h2>Besoins</h2>{}<h2>Profils</h2>{}{}", filter, needs_table, unreachable, classes_table);
    Ok(layout::page(ctx, "/reseau", "Réseau", body))
}
