//! Mises en relation: requests routed here with the persons they matched (accept with the
//! fields to share, or decline with a reason), and the structure's own requests with their
//! accepted candidates and outcomes. Same calls as the gRPC API: the node records the answer,
//! then the sync engine delivers it to the hub at once (or at the next sync).

use passerelle_proto::codes::Code;
use passerelle_proto::v1::{
    AcceptIntroductionRequest, ContractType, DeclineReason, Introduction, IntroductionOutcome,
    IntroductionStatus, NeedStatus, SharedField,
};

use super::super::html::{Html, html};
use super::super::labels::Label;
use super::super::{Ctx, Reply};
use super::widgets::{self, Errors};
use super::{layout, settle};
use crate::error::Result;
use crate::node::introductions::Direction;

const HERE: &str = "/mises-en-relation";

/// Both directions, refreshed from every reachable hub first.
pub(crate) async fn show(ctx: &Ctx<'_>) -> Result<Reply> {
    let unreachable = ctx.gui.app.sync.refresh_introductions().await;
    let (incoming, outgoing, open_needs) = ctx
        .node(|node| {
            Ok((
                node.list_introductions(Direction::In)?,
                node.list_introductions(Direction::Out)?,
                node.list_needs(NeedStatus::Open as i32)?,
            ))
        })
        .await?;
    let warning = if unreachable.is_empty() {
        Html::default()
    } else {
        html!(
            "<div class=\"alert\" role=\"status\"><p>Hubs injoignables (copie locale affichée) : {}</p></div>",
            unreachable.join(" ; ")
        )
    };
    let incoming_html = if incoming.is_empty() {
        Html::trusted("<p>Aucune demande reçue.</p>")
    } else {
        Html::concat(incoming.iter().rev().map(|i| incoming_request(ctx, i)))
    };
    let outgoing_html = if outgoing.is_empty() {
        Html::trusted("<p>Aucune demande envoyée.</p>")
    } else {
        Html::concat(outgoing.iter().rev().map(|i| outgoing_request(ctx, i)))
    };
    let ask = if ctx.admin() && !open_needs.is_empty() {
        let options: Vec<(String, String)> = open_needs
            .iter()
            .map(|n| {
                let f = n.fields.clone().unwrap_or_default();
                (n.id.clone(), format!("{} ({}, début {})", f.title, f.rome_code, f.start_date))
            })
            .collect();
        let refs: Vec<(&str, &str)> = options.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        html!(
            "<form method=\"post\" action=\"/mises-en-relation/demander\" class=\"card\">{}{}\
             <button type=\"submit\">Demander des candidats au réseau</button></form>",
            widgets::csrf(ctx),
            widgets::select("need_id", "Besoin ouvert", &refs, "", &Errors::default())
        )
    } else {
        Html::default()
    };
    let body = html!(
        "{}<h2>Demandes reçues</h2>{}<h2>Nos demandes</h2>{}{}",
        warning,
        incoming_html,
        ask,
        outgoing_html
    );
    Ok(layout::page(ctx, HERE, "Mises en relation", body))
}

fn need_line(i: &Introduction) -> Html {
    let need = i.need.clone().unwrap_or_default();
    html!(
        "{} {} · {} · {} poste(s) · {} h/sem. · département {} · début {}",
        need.rome_code.as_str(),
        passerelle_proto::rome::label(&need.rome_code).unwrap_or(""),
        ContractType::label_of(need.contract_type),
        need.open_positions,
        need.hours_per_week,
        need.departement.as_str(),
        need.start_date.as_str()
    )
}

fn incoming_request(ctx: &Ctx<'_>, i: &Introduction) -> Html {
    let requester = i.requester.clone().unwrap_or_default();
    let open = i.status == IntroductionStatus::Open as i32;
    let persons = Html::concat(i.persons.iter().map(|p| {
        let answer = if p.state == "pending" && open && ctx.admin() {
            answer_forms(ctx, &i.id, &p.person_id)
        } else {
            Html::default()
        };
        let state = match p.state.as_str() {
            "pending" => "en attente de réponse",
            "accepted" => "acceptée",
            "declined" => "refusée",
            "withdrawn" => "retirée",
            "refused" => "refusée par le hub (expirée)",
            other => other,
        };
        html!("<li><strong>{}</strong> — {}{}</li>", p.name.as_str(), state, answer)
    }));
    html!(
        "<section class=\"card\"><h3>{} ({})</h3><p>{}</p><p>Statut : {} · via {} · expire le {}</p><ul class=\"persons\">{}</ul></section>",
        requester.name.as_str(),
        requester.siret.as_str(),
        need_line(i),
        IntroductionStatus::label_of(i.status),
        i.hub_id.as_str(),
        widgets::when(i.expires_at_ms),
        persons
    )
}

fn answer_forms(ctx: &Ctx<'_>, id: &str, person_id: &str) -> Html {
    let suffix = format!("{id}-{person_id}");
    let reasons = widgets::options::<DeclineReason>();
    let reason_id = format!("reason-{suffix}");
    let version_id = format!("text_version-{suffix}");
    let last_id = format!("share-last-{suffix}");
    let email_id = format!("share-email-{suffix}");
    html!(
        "<div class=\"answer\"><form method=\"post\" action=\"/mises-en-relation/accepter\">{}\
         <input type=\"hidden\" name=\"id\" value=\"{}\"><input type=\"hidden\" name=\"person_id\" value=\"{}\">\
         <fieldset><legend>La personne accepte : champs transmis (prénom et téléphone toujours)</legend>\
         <label class=\"check\" for=\"{}\"><input type=\"checkbox\" id=\"{}\" name=\"share\" value=\"last-name\"> Nom</label>\
         <label class=\"check\" for=\"{}\"><input type=\"checkbox\" id=\"{}\" name=\"share\" value=\"email\"> Courriel</label></fieldset>\
         <label for=\"{}\">Version du texte présenté</label><input id=\"{}\" name=\"text_version\" type=\"text\" required>\
         <button type=\"submit\">Accepter</button></form>\
         <form method=\"post\" action=\"/mises-en-relation/refuser\">{}\
         <input type=\"hidden\" name=\"id\" value=\"{}\"><input type=\"hidden\" name=\"person_id\" value=\"{}\">\
         <label for=\"{}\">Motif du refus</label><select id=\"{}\" name=\"reason\">{}</select>\
         <button type=\"submit\" class=\"danger\">Refuser</button></form></div>",
        widgets::csrf(ctx),
        id,
        person_id,
        last_id.as_str(),
        last_id.as_str(),
        email_id.as_str(),
        email_id.as_str(),
        version_id.as_str(),
        version_id.as_str(),
        widgets::csrf(ctx),
        id,
        person_id,
        reason_id.as_str(),
        reason_id.as_str(),
        Html::concat(reasons.iter().map(|(v, l)| html!("<option value=\"{}\">{}</option>", *v, *l)))
    )
}

fn outgoing_request(ctx: &Ctx<'_>, i: &Introduction) -> Html {
    let candidates = Html::concat(i.candidates.iter().map(|c| {
        let who = match &c.fields {
            Some(f) => {
                let mut parts = vec![f.first_name.clone()];
                parts.extend(f.last_name.clone());
                parts.extend(f.phone.clone());
                parts.extend(f.email.clone());
                parts.join(" · ")
            }
            None => "(champs effacés)".to_string(),
        };
        let outcome = if c.outcome == IntroductionOutcome::Unspecified as i32 && !c.withdrawn {
            html!(
                "{}{}",
                widgets::action_button(
                    ctx,
                    "/mises-en-relation/resultat",
                    &[("id", i.id.as_str()), ("candidate", c.candidate.as_str()), ("outcome", "hired")],
                    ("Recrutée", who.as_str()),
                    "small"
                ),
                widgets::action_button(
                    ctx,
                    "/mises-en-relation/resultat",
                    &[("id", i.id.as_str()), ("candidate", c.candidate.as_str()), ("outcome", "not-hired")],
                    ("Non recrutée", who.as_str()),
                    "small"
                )
            )
        } else {
            html!("{}", IntroductionOutcome::label_of(c.outcome))
        };
        html!(
            "<li><strong>{}</strong> ({}){} — {}</li>",
            who,
            c.holder_name.as_str(),
            if c.withdrawn { " — retirée" } else { "" },
            outcome
        )
    }));
    html!(
        "<section class=\"card\"><h3>Demande du {}</h3><p>{}</p><p>Statut : {} · via {} · {} refus</p><ul class=\"persons\">{}</ul></section>",
        widgets::when(i.created_at_ms),
        need_line(i),
        IntroductionStatus::label_of(i.status),
        i.hub_id.as_str(),
        i.declined,
        if i.candidates.is_empty() {
            Html::trusted("<li>Aucun candidat pour l'instant.</li>")
        } else {
            candidates
        }
    )
}

/// The person agreed: records the consent (collected by the logged-in user) and sends the fields.
pub(crate) async fn accept(ctx: &Ctx<'_>) -> Result<Reply> {
    let mut share = vec![SharedField::FirstName as i32, SharedField::Phone as i32];
    for slug in ctx.form.all("share") {
        if let Some(field) = SharedField::from_slug(slug) {
            share.push(field as i32);
        }
    }
    let request = AcceptIntroductionRequest {
        id: ctx.form.get("id").to_string(),
        person_id: ctx.form.get("person_id").to_string(),
        share,
        text_version: ctx.form.get("text_version").to_string(),
        collected_by: ctx.session.user.clone(),
    };
    let outcome = ctx.node(move |node| node.accept_introduction(request)).await;
    if let Ok(intro) = &outcome {
        ctx.gui.app.sync.deliver(&intro.hub_id).await;
    }
    settle(ctx, HERE, outcome, "Acceptation enregistrée et transmise.")
}

/// The person declined.
pub(crate) async fn decline(ctx: &Ctx<'_>) -> Result<Reply> {
    let (id, person) = (ctx.form.get("id").to_string(), ctx.form.get("person_id").to_string());
    let reason = DeclineReason::from_slug(ctx.form.get("reason")).map_or(0, |r| r as i32);
    let outcome = ctx.node(move |node| node.decline_introduction(&id, &person, reason)).await;
    if let Ok(intro) = &outcome {
        ctx.gui.app.sync.deliver(&intro.hub_id).await;
    }
    settle(ctx, HERE, outcome, "Refus enregistré.")
}

/// What became of a candidate of one of our requests.
pub(crate) async fn outcome(ctx: &Ctx<'_>) -> Result<Reply> {
    let (id, candidate) = (ctx.form.get("id").to_string(), ctx.form.get("candidate").to_string());
    let value = IntroductionOutcome::from_slug(ctx.form.get("outcome")).map_or(0, |o| o as i32);
    let outcome = ctx.node(move |node| node.record_introduction_outcome(&id, &candidate, value)).await;
    if let Ok(intro) = &outcome {
        ctx.gui.app.sync.deliver(&intro.hub_id).await;
    }
    settle(ctx, HERE, outcome, "Résultat enregistré.")
}

/// Asks the network for candidates for an open need.
pub(crate) async fn ask(ctx: &Ctx<'_>) -> Result<Reply> {
    let need = ctx.form.get("need_id").to_string();
    let outcome = ctx.gui.app.sync.introduce(&need, None).await;
    settle(ctx, HERE, outcome, "Demande envoyée au réseau.")
}
