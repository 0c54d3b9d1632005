//! Personnes et consentements: the persons the structure supports (personal data, which stays
//! on this node), their consents per purpose × hub, and the printable report that answers an
//! access request. Persons are named in URLs by their record id only.

use hyper::StatusCode;
use passerelle_proto::codes::Code;
use passerelle_proto::date::{Date, now_unix_ms};
use passerelle_proto::v1::{Barrier, ConsentPurpose, GrantConsentRequest, Person, PersonFields, SharedField};
use passerelle_proto::validate::FieldError;

use super::super::forms::Form;
use super::super::html::{Html, html};
use super::super::labels::Label;
use super::super::{Ctx, Reply};
use super::widgets::{self, Errors};
use super::{Refusal, layout, refusal, settle};
use crate::error::Result;

const HERE: &str = "/personnes";

fn full_name(p: &Person) -> String {
    let f = p.fields.as_ref();
    format!("{} {}", f.map_or("", |f| f.first_name.as_str()), f.map_or("", |f| f.last_name.as_str()))
}

/// The list.
pub(crate) async fn list(ctx: &Ctx<'_>) -> Result<Reply> {
    let persons = ctx.node(|node| node.list_persons()).await?;
    let rows = Html::concat(persons.iter().map(|p| {
        let f = p.fields.clone().unwrap_or_default();
        html!(
            "<tr><th scope=\"row\"><a href=\"/personnes/fiche?id={}\">{}</a></th><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.id.as_str(),
            full_name(p),
            f.rome_codes.join(", "),
            f.available_from.as_str(),
            f.commune.as_str()
        )
    }));
    let add = if ctx.admin() {
        Html::trusted("<p><a class=\"button\" href=\"/personnes/nouvelle\">Ajouter une personne</a></p>")
    } else {
        Html::default()
    };
    let table = if persons.is_empty() {
        Html::trusted("<p>Aucune personne enregistrée.</p>")
    } else {
        html!(
            "<table><caption>Personnes accompagnées</caption><thead><tr><th scope=\"col\">Nom</th>\
             <th scope=\"col\">Métiers recherchés</th><th scope=\"col\">Disponible le</th>\
             <th scope=\"col\">Commune</th></tr></thead><tbody>{}</tbody></table>",
            rows
        )
    };
    Ok(layout::page(ctx, HERE, "Personnes et consentements", html!("{}{}", add, table)))
}

/// The empty form.
pub(crate) fn new_form(ctx: &Ctx<'_>) -> Result<Reply> {
    Ok(form_page(ctx, &Form::default(), &Errors::default(), None, StatusCode::OK))
}

/// The form of an existing person.
pub(crate) async fn edit_form(ctx: &Ctx<'_>) -> Result<Reply> {
    let id = ctx.query.get("id").to_string();
    let person = match ctx.node(move |node| node.get_person(&id)).await {
        Ok(person) => person,
        Err(e) => return settle(ctx, HERE, Err::<(), _>(e), ""),
    };
    let f = person.fields.clone().unwrap_or_default();
    let mut form = Form::default();
    for (name, value) in [
        ("first_name", f.first_name),
        ("last_name", f.last_name),
        ("birth_date", f.birth_date),
        ("commune", f.commune),
        ("phone", f.phone.unwrap_or_default()),
        ("email", f.email.unwrap_or_default()),
        ("rome_codes", f.rome_codes.join(", ")),
        ("available_from", f.available_from),
        ("hours_per_week", f.hours_per_week.map(|h| h.to_string()).unwrap_or_default()),
        ("mobility_km", f.mobility_km.map(|h| h.to_string()).unwrap_or_default()),
        ("pass_iae_end", f.pass_iae_end.unwrap_or_default()),
    ] {
        form.set(name, value);
    }
    for b in f.barriers {
        if let Ok(barrier) = Barrier::try_from(b) {
            form.add("barriers", barrier.slug());
        }
    }
    Ok(form_page(ctx, &form, &Errors::default(), Some((&person.id, person.version)), StatusCode::OK))
}

fn form_page(
    ctx: &Ctx<'_>,
    form: &Form,
    errors: &Errors,
    existing: Option<(&str, u64)>,
    status: StatusCode,
) -> Reply {
    let (action, title, hidden) = match existing {
        Some((id, version)) => (
            "/personnes/modifier",
            "Modifier la personne",
            html!(
                "<input type=\"hidden\" name=\"id\" value=\"{}\"><input type=\"hidden\" name=\"version\" value=\"{}\">",
                id,
                version
            ),
        ),
        None => ("/personnes/nouvelle", "Ajouter une personne", Html::default()),
    };
    let barriers = widgets::options::<Barrier>();
    let body = html!(
        "{}<form method=\"post\" action=\"{}\" class=\"card\" novalidate>{}{}\
         {}{}{}{}{}{}{}{}{}{}{}{}\
         <p><button type=\"submit\">Enregistrer</button> <a href=\"/personnes\">Annuler</a></p></form>",
        errors.summary(),
        action,
        widgets::csrf(ctx),
        hidden,
        widgets::input("first_name", "Prénom", "text", form.get("first_name"), "", errors),
        widgets::input("last_name", "Nom", "text", form.get("last_name"), "", errors),
        widgets::input("birth_date", "Date de naissance", "date", form.get("birth_date"), "", errors),
        widgets::input(
            "commune",
            "Commune de résidence (code INSEE)",
            "text",
            form.get("commune"),
            "ex. 49007",
            errors
        ),
        widgets::input("phone", "Téléphone (facultatif)", "tel", form.get("phone"), "", errors),
        widgets::input("email", "Courriel (facultatif)", "email", form.get("email"), "", errors),
        widgets::input(
            "rome_codes",
            "Métiers recherchés (codes ROME)",
            "text",
            form.get("rome_codes"),
            "1 à 5, séparés par des virgules, ex. K2204, G1602",
            errors
        ),
        widgets::input(
            "available_from",
            "Disponible à partir du",
            "date",
            form.get("available_from"),
            "",
            errors
        ),
        widgets::input(
            "hours_per_week",
            "Heures par semaine souhaitées (facultatif)",
            "number",
            form.get("hours_per_week"),
            "",
            errors
        ),
        widgets::input(
            "mobility_km",
            "Mobilité en km (facultatif)",
            "number",
            form.get("mobility_km"),
            "",
            errors
        ),
        widgets::checkboxes("barriers", "Freins périphériques", &barriers, &form.all("barriers"), errors),
        widgets::input(
            "pass_iae_end",
            "Fin du PASS IAE (facultative)",
            "date",
            form.get("pass_iae_end"),
            "",
            errors
        )
    );
    layout::page_with_status(ctx, HERE, title, body, status)
}

fn optional_number(form: &Form, name: &str) -> std::result::Result<Option<u32>, FieldError> {
    form.optional(name)
        .map(|v| v.parse().map_err(|_| FieldError::new(name, v.as_str(), "expected a whole number")))
        .transpose()
}

fn fields(form: &Form) -> std::result::Result<PersonFields, FieldError> {
    let mut barriers = Vec::new();
    for slug in form.all("barriers") {
        let barrier =
            Barrier::from_slug(slug).ok_or_else(|| FieldError::new("barriers", slug, "unknown barrier"))?;
        barriers.push(barrier as i32);
    }
    Ok(PersonFields {
        first_name: form.get("first_name").to_string(),
        last_name: form.get("last_name").to_string(),
        birth_date: form.get("birth_date").to_string(),
        commune: form.get("commune").to_string(),
        phone: form.optional("phone"),
        email: form.optional("email"),
        rome_codes: form
            .get("rome_codes")
            .split([',', ' ', ';'])
            .filter(|c| !c.is_empty())
            .map(str::to_uppercase)
            .collect(),
        available_from: form.get("available_from").to_string(),
        hours_per_week: optional_number(form, "hours_per_week")?,
        mobility_km: optional_number(form, "mobility_km")?,
        barriers,
        pass_iae_end: form.optional("pass_iae_end"),
    })
}

/// Records a new person.
pub(crate) async fn create(ctx: &Ctx<'_>) -> Result<Reply> {
    let outcome = match fields(&ctx.form) {
        Ok(fields) => ctx.node(move |node| node.add_person(Some(fields))).await,
        Err(e) => Err(e.into()),
    };
    saved(ctx, outcome, None)
}

/// Replaces a person's fields.
pub(crate) async fn update(ctx: &Ctx<'_>) -> Result<Reply> {
    let id = ctx.form.get("id").to_string();
    let version = ctx.form.get("version").parse::<u64>().ok();
    let outcome = match fields(&ctx.form) {
        Ok(fields) => {
            let id = id.clone();
            ctx.node(move |node| node.update_person(&id, Some(fields), version)).await
        }
        Err(e) => Err(e.into()),
    };
    saved(ctx, outcome, Some((&id, version.unwrap_or_default())))
}

fn saved(ctx: &Ctx<'_>, outcome: Result<Person>, existing: Option<(&str, u64)>) -> Result<Reply> {
    match outcome {
        Ok(person) => {
            Ok(super::done(ctx, &format!("/personnes/fiche?id={}", person.id), "Personne enregistrée."))
        }
        Err(e) => {
            let errors = match refusal(e)? {
                Refusal::Field(e) => Errors(Some(e)),
                Refusal::Message(m) => Errors(Some(FieldError::rule("personne", m))),
            };
            Ok(form_page(ctx, &ctx.form, &errors, existing, StatusCode::UNPROCESSABLE_ENTITY))
        }
    }
}

/// Erases a person (consents in force are withdrawn in the same commit).
pub(crate) async fn delete(ctx: &Ctx<'_>) -> Result<Reply> {
    let id = ctx.form.get("id").to_string();
    let outcome = ctx.node(move |node| node.delete_person(&id)).await;
    settle(ctx, HERE, outcome, "Personne effacée ; ses consentements en vigueur sont retirés.")
}

/// One person: fields, consents with withdraw buttons, and the form to grant one.
pub(crate) async fn show(ctx: &Ctx<'_>) -> Result<Reply> {
    let id = ctx.query.get("id").to_string();
    let lookup = id.clone();
    let found =
        ctx.node(move |node| Ok((node.get_person(&lookup)?, node.list_consents(Some(&lookup))?))).await;
    let (person, consents) = match found {
        Ok(found) => found,
        Err(e) => return settle(ctx, HERE, Err::<(), _>(e), ""),
    };
    let f = person.fields.clone().unwrap_or_default();
    let barriers: Vec<&str> = f.barriers.iter().map(|b| Barrier::label_of(*b)).collect();
    let details = html!(
        "<dl class=\"details\"><dt>Date de naissance</dt><dd>{}</dd><dt>Commune</dt><dd>{}</dd>\
         <dt>Téléphone</dt><dd>{}</dd><dt>Courriel</dt><dd>{}</dd><dt>Métiers recherchés</dt><dd>{}</dd>\
         <dt>Disponible le</dt><dd>{}</dd><dt>Freins</dt><dd>{}</dd><dt>Fin du PASS IAE</dt><dd>{}</dd></dl>",
        f.birth_date.as_str(),
        f.commune.as_str(),
        f.phone.clone().unwrap_or_default(),
        f.email.clone().unwrap_or_default(),
        f.rome_codes.join(", "),
        f.available_from.as_str(),
        barriers.join(", "),
        f.pass_iae_end.clone().unwrap_or_default()
    );
    let pid = person.id.as_str();
    let rows = Html::concat(consents.iter().map(|c| {
        let purpose = ConsentPurpose::try_from(c.purpose).map(|p| p.slug()).unwrap_or("");
        let state = match c.withdrawn_at_ms {
            Some(at) => html!("retiré le {}", widgets::when(at)),
            None if c.purpose == ConsentPurpose::Introduction as i32 => Html::trusted("en vigueur"),
            None => html!(
                "en vigueur {}",
                widgets::action_button(
                    ctx,
                    "/consentements/retirer",
                    &[("person_id", pid), ("purpose", purpose), ("hub_id", c.hub_id.as_str())],
                    ("Retirer", &format!("{} pour {}", ConsentPurpose::label_of(c.purpose), c.hub_id)),
                    "small danger"
                )
            ),
        };
        html!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ConsentPurpose::label_of(c.purpose),
            c.hub_id.as_str(),
            c.text_version.as_str(),
            c.collected_by.as_str(),
            widgets::when(c.granted_at_ms),
            state
        )
    }));
    let consents_table = if consents.is_empty() {
        Html::trusted("<p>Aucun consentement.</p>")
    } else {
        html!(
            "<table><caption>Consentements</caption><thead><tr><th scope=\"col\">Finalité</th><th scope=\"col\">Hub</th>\
             <th scope=\"col\">Version du texte</th><th scope=\"col\">Recueilli par</th><th scope=\"col\">Donné le</th>\
             <th scope=\"col\">État</th></tr></thead><tbody>{}</tbody></table>",
            rows
        )
    };
    let grant = if ctx.admin() { grant_form(ctx, pid) } else { Html::default() };
    let actions = html!(
        "<p class=\"actions\"><a href=\"/personnes/rapport?id={}\">Rapport imprimable (demande d'accès)</a>{}{}</p>",
        pid,
        if ctx.admin() {
            html!(" · <a href=\"/personnes/modifier?id={}\">Modifier</a> ", pid)
        } else {
            Html::default()
        },
        widgets::action_button(
            ctx,
            "/personnes/supprimer",
            &[("id", pid)],
            ("Effacer la personne", ""),
            "small danger"
        )
    );
    let body = html!("{}{}<h2>Consentements</h2>{}{}", actions, details, consents_table, grant);
    Ok(layout::page(ctx, HERE, &full_name(&person), body))
}

fn grant_form(ctx: &Ctx<'_>, person_id: &str) -> Html {
    let purposes: Vec<(&str, &str)> = ConsentPurpose::ALL
        .iter()
        .filter(|(p, _)| *p != ConsentPurpose::Introduction)
        .map(|(p, slug)| (*slug, p.label()))
        .collect();
    let hubs: Vec<String> = ctx.gui.app.sync.hub_ids();
    let hub_options: Vec<(&str, &str)> = hubs.iter().map(|h| (h.as_str(), h.as_str())).collect();
    let errors = Errors::default();
    html!(
        "<form method=\"post\" action=\"/consentements/accorder\" class=\"card\"><h3>Recueillir un consentement</h3>{}\
         <input type=\"hidden\" name=\"person_id\" value=\"{}\">{}{}{}\
         <p class=\"hint\">Recueilli par : {} (votre compte).</p><button type=\"submit\">Enregistrer le consentement</button></form>",
        widgets::csrf(ctx),
        person_id,
        widgets::select("purpose", "Finalité", &purposes, "placement", &errors),
        widgets::select("hub_id", "Hub destinataire", &hub_options, "", &errors),
        widgets::input("text_version", "Version du texte présenté", "text", "", "ex. 2026-01", &errors),
        ctx.session.user.as_str()
    )
}

/// Records a consent collected by the logged-in user.
pub(crate) async fn grant(ctx: &Ctx<'_>) -> Result<Reply> {
    let person_id = ctx.form.get("person_id").to_string();
    let request = GrantConsentRequest {
        person_id: person_id.clone(),
        purpose: ConsentPurpose::from_slug(ctx.form.get("purpose")).map_or(0, |p| p as i32),
        hub_id: ctx.form.get("hub_id").to_string(),
        text_version: ctx.form.get("text_version").to_string(),
        collected_by: ctx.session.user.clone(),
    };
    let outcome = ctx.node(move |node| node.grant_consent(request)).await;
    settle(ctx, &format!("/personnes/fiche?id={person_id}"), outcome, "Consentement enregistré.")
}

/// Withdraws the consent in force for a person × purpose × hub.
pub(crate) async fn withdraw(ctx: &Ctx<'_>) -> Result<Reply> {
    let person_id = ctx.form.get("person_id").to_string();
    let purpose = ConsentPurpose::from_slug(ctx.form.get("purpose")).map_or(0, |p| p as i32);
    let hub = ctx.form.get("hub_id").to_string();
    let id = person_id.clone();
    let outcome = ctx.node(move |node| node.withdraw_consent(&id, purpose, &hub)).await;
    settle(ctx, &format!("/personnes/fiche?id={person_id}"), outcome, "Consentement retiré.")
}

/// The person report, printable: what the structure holds and what each hub received.
pub(crate) async fn report(ctx: &Ctx<'_>) -> Result<Reply> {
    let id = ctx.query.get("id").to_string();
    let lookup = id.clone();
    let found = ctx
        .node(move |node| {
            let report = node.person_report(&lookup)?;
            let person = if report.erased { None } else { node.get_person(&lookup).ok() };
            Ok((report, person))
        })
        .await;
    let (report, person) = match found {
        Ok(found) => found,
        Err(e) => return settle(ctx, HERE, Err::<(), _>(e), ""),
    };
    let today = Date::from_unix_ms(now_unix_ms());
    let who = match &person {
        Some(p) => {
            html!("<p>Personne : <strong>{}</strong> (identifiant {}).</p>", full_name(p), p.id.as_str())
        }
        None => html!(
            "<p>Personne effacée (identifiant {}) : ses données personnelles ne sont plus détenues.</p>",
            report.person_id.as_str()
        ),
    };
    let consents = Html::concat(report.consents.iter().map(|c| {
        html!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ConsentPurpose::label_of(c.purpose),
            c.hub_id.as_str(),
            c.text_version.as_str(),
            c.collected_by.as_str(),
            widgets::when(c.granted_at_ms),
            c.withdrawn_at_ms.map(widgets::when).unwrap_or_default()
        )
    }));
    let shares = Html::concat(report.shares.iter().map(|s| {
        html!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.hub_id.as_str(),
            widgets::when(s.first_sent_at_ms),
            widgets::when(s.last_sent_at_ms),
            s.categories.join(", "),
            widgets::when(s.purge_requested_at_ms),
            if s.held { "oui" } else { "non" }
        )
    }));
    let intros = Html::concat(report.introductions.iter().map(|i| {
        let shared: Vec<&str> = i.shared.iter().map(|f| SharedField::label_of(*f)).collect();
        html!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i.recipient_name.as_str(),
            shared.join(", "),
            widgets::when(i.shared_at_ms),
            widgets::when(i.withdrawn_at_ms),
            widgets::when(i.purged_at_ms)
        )
    }));
    let audit = Html::concat(report.audit.iter().map(|a| {
        html!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.seq,
            widgets::when(a.at_ms),
            a.kind.as_str(),
            a.detail.as_str()
        )
    }));
    let body = html!(
        "<p class=\"noprint\"><a href=\"/personnes/fiche?id={}\">Retour à la fiche</a> — imprimez cette page depuis le navigateur.</p>\
         <p>Établi le {} par {} pour {}.</p>{}\
         <h2>Consentements</h2><table><thead><tr><th scope=\"col\">Finalité</th><th scope=\"col\">Hub</th><th scope=\"col\">Texte</th>\
         <th scope=\"col\">Recueilli par</th><th scope=\"col\">Donné le</th><th scope=\"col\">Retiré le</th></tr></thead><tbody>{}</tbody></table>\
         <h2>Profil anonymisé transmis aux hubs</h2><table><thead><tr><th scope=\"col\">Hub</th><th scope=\"col\">Premier envoi</th>\
         <th scope=\"col\">Dernier envoi</th><th scope=\"col\">Contenu</th><th scope=\"col\">Effacement demandé</th><th scope=\"col\">Détenu</th></tr></thead><tbody>{}</tbody></table>\
         <h2>Mises en relation</h2><table><thead><tr><th scope=\"col\">Destinataire</th><th scope=\"col\">Champs transmis</th>\
         <th scope=\"col\">Le</th><th scope=\"col\">Retiré le</th><th scope=\"col\">Effacé le</th></tr></thead><tbody>{}</tbody></table>\
         <h2>Journal d'audit</h2><table><thead><tr><th scope=\"col\">N°</th><th scope=\"col\">Quand</th><th scope=\"col\">Quoi</th>\
         <th scope=\"col\">Détail</th></tr></thead><tbody>{}</tbody></table>",
        id.as_str(),
        today.to_string(),
        ctx.session.user.as_str(),
        ctx.gui.app.node.structure().name.as_str(),
        who,
        consents,
        shares,
        intros,
        audit
    );
    Ok(layout::page(ctx, HERE, "Rapport sur une personne", body))
}
