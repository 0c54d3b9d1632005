//! Besoins: the structure's recruitment needs — list with a status filter, add, edit, close,
//! delete, and a CSV upload through the same reader as `passerelle need import` and the same
//! all-or-nothing `Node::import_needs`.

use hyper::StatusCode;
use passerelle_proto::codes::Code;
use passerelle_proto::v1::{ContractType, NeedFields, NeedStatus, RecruitmentNeed};
use passerelle_proto::validate::FieldError;

use super::super::forms::Form;
use super::super::html::{Html, html};
use super::super::labels::Label;
use super::super::{Ctx, Reply};
use super::widgets::{self, Errors};
use super::{Refusal, layout, refusal, settle};
use crate::error::Result;

const HERE: &str = "/besoins";

/// The list, filtered by status (`?statut=open|filled|cancelled|tous`, open by default).
pub(crate) async fn list(ctx: &Ctx<'_>) -> Result<Reply> {
    let filter = match ctx.query.get("statut") {
        "" => "open",
        other => other,
    };
    let status = NeedStatus::from_slug(filter).map_or(0, |s| s as i32);
    let needs = ctx.node(move |node| node.list_needs(status)).await?;
    let filters = Html::concat(
        [("open", "Ouverts"), ("filled", "Pourvus"), ("cancelled", "Annulés"), ("tous", "Tous")].iter().map(
            |(slug, label)| {
                if *slug == filter {
                    html!(
                        "<li><a href=\"/besoins?statut={}\" aria-current=\"true\">{}</a></li>",
                        *slug,
                        *label
                    )
                } else {
                    html!("<li><a href=\"/besoins?statut={}\">{}</a></li>", *slug, *label)
                }
            },
        ),
    );
    let rows = Html::concat(needs.iter().map(|n| row(ctx, n)));
    let table = if needs.is_empty() {
        Html::trusted("<p>Aucun besoin ici.</p>")
    } else {
        html!(
            "<table><caption>Besoins de recrutement</caption><thead><tr><th scope=\"col\">Intitulé</th>\
             <th scope=\"col\">ROME</th><th scope=\"col\">Contrat</th><th scope=\"col\">Postes</th>\
             <th scope=\"col\">Début</th><th scope=\"col\">Statut</th><th scope=\"col\">Actions</th></tr></thead>\
             <tbody>{}</tbody></table>",
            rows
        )
    };
    let actions = if ctx.admin() {
        html!(
            "<p><a class=\"button\" href=\"/besoins/nouveau\">Ajouter un besoin</a></p>\
             <form method=\"post\" action=\"/besoins/importer\" enctype=\"multipart/form-data\" class=\"card\">{}\
             <div class=\"field\"><label for=\"fichier\">Importer un fichier CSV de besoins\
             <span class=\"hint\">Export d'un tableur ; tout ou rien : une seule ligne fausse et rien n'est enregistré.</span></label>\
             <input id=\"fichier\" name=\"fichier\" type=\"file\" accept=\".csv,text/csv\" required></div>\
             <button type=\"submit\">Importer</button></form>",
            widgets::csrf(ctx)
        )
    } else {
        Html::default()
    };
    let body = html!(
        "<nav aria-label=\"Filtrer par statut\"><ul class=\"filters\">{}</ul></nav>{}{}",
        filters,
        actions,
        table
    );
    Ok(layout::page(ctx, HERE, "Besoins", body))
}

fn row(ctx: &Ctx<'_>, n: &RecruitmentNeed) -> Html {
    let f = n.fields.clone().unwrap_or_default();
    let open = n.status == NeedStatus::Open as i32;
    let id = n.id.as_str();
    let actions = if ctx.admin() {
        let edit = html!(
            "<a href=\"/besoins/modifier?id={}\" aria-label=\"Modifier : {}\">Modifier</a>",
            id,
            f.title.as_str()
        );
        let close = if open {
            html!(
                "{}{}",
                widgets::action_button(
                    ctx,
                    "/besoins/cloturer",
                    &[("id", id), ("status", "filled")],
                    ("Pourvu", f.title.as_str()),
                    "small"
                ),
                widgets::action_button(
                    ctx,
                    "/besoins/cloturer",
                    &[("id", id), ("status", "cancelled")],
                    ("Annuler", f.title.as_str()),
                    "small"
                )
            )
        } else {
            Html::default()
        };
        html!(
            "{} {}{}",
            edit,
            close,
            widgets::action_button(
                ctx,
                "/besoins/supprimer",
                &[("id", id)],
                ("Supprimer", f.title.as_str()),
                "small danger"
            )
        )
    } else {
        Html::default()
    };
    html!(
        "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"actions\">{}</td></tr>",
        f.title.as_str(),
        f.rome_code.as_str(),
        ContractType::label_of(f.contract_type),
        f.open_positions,
        f.start_date.as_str(),
        NeedStatus::label_of(n.status),
        actions
    )
}

/// The empty form.
pub(crate) fn new_form(ctx: &Ctx<'_>) -> Result<Reply> {
    Ok(form_page(ctx, &Form::default(), &Errors::default(), None, StatusCode::OK))
}

/// The form of an existing need.
pub(crate) async fn edit_form(ctx: &Ctx<'_>) -> Result<Reply> {
    let id = ctx.query.get("id").to_string();
    let need = match ctx.node(move |node| node.get_need(&id)).await {
        Ok(need) => need,
        Err(e) => return settle(ctx, HERE, Err::<(), _>(e), ""),
    };
    let f = need.fields.clone().unwrap_or_default();
    let mut form = Form::default();
    for (name, value) in [
        ("rome_code", f.rome_code),
        ("title", f.title),
        (
            "contract_type",
            ContractType::try_from(f.contract_type).map(|c| c.slug()).unwrap_or("").to_string(),
        ),
        ("open_positions", f.open_positions.to_string()),
        ("hours_per_week", f.hours_per_week.to_string()),
        ("departement", f.departement),
        ("commune", f.commune),
        ("start_date", f.start_date),
        ("end_date", f.end_date.unwrap_or_default()),
        ("client", f.client.unwrap_or_default()),
        ("description", f.description.unwrap_or_default()),
    ] {
        form.set(name, value);
    }
    Ok(form_page(ctx, &form, &Errors::default(), Some((&need.id, need.version)), StatusCode::OK))
}

fn form_page(
    ctx: &Ctx<'_>,
    form: &Form,
    errors: &Errors,
    existing: Option<(&str, u64)>,
    status: StatusCode,
) -> Reply {
    let contracts = widgets::options::<ContractType>();
    let (action, title, hidden) = match existing {
        Some((id, version)) => (
            "/besoins/modifier",
            "Modifier le besoin",
            html!(
                "<input type=\"hidden\" name=\"id\" value=\"{}\"><input type=\"hidden\" name=\"version\" value=\"{}\">",
                id,
                version
            ),
        ),
        None => ("/besoins/nouveau", "Ajouter un besoin", Html::default()),
    };
    let body = html!(
        "{}<form method=\"post\" action=\"{}\" class=\"card\" novalidate>{}{}\
         {}{}{}{}{}{}{}{}{}{}{}\
         <p><button type=\"submit\">Enregistrer</button> <a href=\"/besoins\">Annuler</a></p></form>",
        errors.summary(),
        action,
        widgets::csrf(ctx),
        hidden,
        widgets::input(
            "rome_code",
            "Code ROME",
            "text",
            form.get("rome_code"),
            "Une lettre et 4 chiffres, ex. K2204",
            errors
        ),
        widgets::input("title", "Intitulé du poste", "text", form.get("title"), "", errors),
        widgets::select("contract_type", "Contrat", &contracts, form.get("contract_type"), errors),
        widgets::input(
            "open_positions",
            "Nombre de postes",
            "number",
            form.get("open_positions"),
            "",
            errors
        ),
        widgets::input(
            "hours_per_week",
            "Heures par semaine",
            "number",
            form.get("hours_per_week"),
            "1 à 48",
            errors
        ),
        widgets::input("departement", "Département", "text", form.get("departement"), "ex. 49", errors),
        widgets::input("commune", "Commune (code INSEE)", "text", form.get("commune"), "ex. 49007", errors),
        widgets::input("start_date", "Date de début", "date", form.get("start_date"), "", errors),
        widgets::input("end_date", "Date de fin (facultative)", "date", form.get("end_date"), "", errors),
        widgets::input(
            "client",
            "Client (facultatif, reste sur ce nœud)",
            "text",
            form.get("client"),
            "",
            errors
        ),
        widgets::textarea(
            "description",
            "Description (facultative, reste sur ce nœud)",
            form.get("description"),
            errors
        )
    );
    layout::page_with_status(ctx, HERE, title, body, status)
}

/// A whole number from a form field, or the rule it breaks.
pub(crate) fn number<T: std::str::FromStr>(form: &Form, name: &str) -> std::result::Result<T, FieldError> {
    form.get(name).parse().map_err(|_| FieldError::new(name, form.get(name), "expected a whole number"))
}

/// The need's fields as the form gives them (numbers and codes parsed; the rules are the node's).
fn fields(form: &Form) -> std::result::Result<NeedFields, FieldError> {
    let contract = ContractType::from_slug(form.get("contract_type")).map_or(0, |c| c as i32);
    Ok(NeedFields {
        rome_code: form.get("rome_code").to_uppercase(),
        title: form.get("title").to_string(),
        contract_type: contract,
        open_positions: number(form, "open_positions")?,
        hours_per_week: number(form, "hours_per_week")?,
        departement: form.get("departement").to_string(),
        commune: form.get("commune").to_string(),
        start_date: form.get("start_date").to_string(),
        end_date: form.optional("end_date"),
        client: form.optional("client"),
        description: form.optional("description"),
    })
}

/// Records a new need, or sends the form back with the node's message beside the field.
pub(crate) async fn create(ctx: &Ctx<'_>) -> Result<Reply> {
    let outcome = match fields(&ctx.form) {
        Ok(fields) => ctx.node(move |node| node.create_need(Some(fields))).await,
        Err(e) => Err(e.into()),
    };
    saved(ctx, outcome, None, "Besoin enregistré.")
}

/// Replaces a need's fields (refused if it changed meanwhile).
pub(crate) async fn update(ctx: &Ctx<'_>) -> Result<Reply> {
    let id = ctx.form.get("id").to_string();
    let version = ctx.form.get("version").parse::<u64>().ok();
    let outcome = match fields(&ctx.form) {
        Ok(fields) => {
            let id = id.clone();
            ctx.node(move |node| node.update_need(&id, Some(fields), version)).await
        }
        Err(e) => Err(e.into()),
    };
    saved(ctx, outcome, Some((&id, version.unwrap_or_default())), "Besoin modifié.")
}

fn saved(
    ctx: &Ctx<'_>,
    outcome: Result<RecruitmentNeed>,
    existing: Option<(&str, u64)>,
    ok: &str,
) -> Result<Reply> {
    match outcome {
        Ok(_) => Ok(super::done(ctx, HERE, ok)),
        Err(e) => {
            let errors = match refusal(e)? {
                Refusal::Field(e) => Errors(Some(e)),
                Refusal::Message(m) => Errors(Some(FieldError::rule("besoin", m))),
            };
            Ok(form_page(ctx, &ctx.form, &errors, existing, StatusCode::UNPROCESSABLE_ENTITY))
        }
    }
}

/// Marks a need filled or cancelled.
pub(crate) async fn close(ctx: &Ctx<'_>) -> Result<Reply> {
    let id = ctx.form.get("id").to_string();
    let status = NeedStatus::from_slug(ctx.form.get("status")).map_or(0, |s| s as i32);
    let outcome = ctx.node(move |node| node.close_need(&id, status)).await;
    settle(ctx, HERE, outcome, "Besoin clôturé.")
}

/// Deletes a need (hubs that had it get a tombstone).
pub(crate) async fn delete(ctx: &Ctx<'_>) -> Result<Reply> {
    let id = ctx.form.get("id").to_string();
    let outcome = ctx.node(move |node| node.delete_need(&id)).await;
    settle(ctx, HERE, outcome, "Besoin supprimé.")
}

/// Imports a CSV file: every problem listed with its line and column, nothing written on error.
pub(crate) async fn import(ctx: &Ctx<'_>) -> Result<Reply> {
    let Some((_, bytes)) = ctx.files.iter().find(|(name, _)| name == "fichier") else {
        return Ok(super::done(ctx, HERE, "Aucun fichier reçu."));
    };
    let problems: Vec<String> = match passerelle_client::import::needs(bytes) {
        Err(problems) => problems.iter().map(ToString::to_string).collect(),
        Ok(rows) => match ctx.node(move |node| node.import_needs(rows)).await {
            Ok(done) => return Ok(super::done(ctx, HERE, format!("{} besoins importés.", done.created))),
            Err(crate::Error::InvalidRows(rows)) => rows.iter().map(ToString::to_string).collect(),
            Err(e) => match refusal(e)? {
                Refusal::Field(e) => vec![e.to_string()],
                Refusal::Message(m) => vec![m],
            },
        },
    };
    let items = Html::concat(problems.iter().map(|p| html!("<li>{}</li>", p.as_str())));
    let body = html!(
        "<div class=\"alert\" role=\"alert\"><p>Fichier refusé : rien n'a été enregistré. \
         Corrigez ces {} problèmes puis importez-le de nouveau.</p><ul>{}</ul></div>\
         <p><a href=\"/besoins\">Retour aux besoins</a></p>",
        problems.len(),
        items
    );
    Ok(layout::page_with_status(ctx, HERE, "Import refusé", body, StatusCode::UNPROCESSABLE_ENTITY))
}
