//! Form fields with their label and, when the node refused a value, its message beside it
//! (`aria-invalid` and `aria-describedby` so screen readers read it with the field).

use passerelle_proto::validate::FieldError;

use super::super::html::{Html, html};
use super::super::labels;
use super::super::{Console, Ctx};

/// The error a form was sent back with, if any.
#[derive(Debug, Default)]
pub(crate) struct Errors(pub(crate) Option<FieldError>);

impl Errors {
    /// The message for form field `name` (a protocol field name; `rome_codes[2]` is `rome_codes`).
    fn of(&self, name: &str) -> Option<String> {
        let error = self.0.as_ref()?;
        let field = error.field.split('[').next().unwrap_or(&error.field);
        let field = field.rsplit('.').next().unwrap_or(field);
        (field == name || error.field.starts_with(&format!("{name}."))).then(|| error.to_string())
    }

    /// A summary at the top of the form, naming the field in French.
    pub(crate) fn summary(&self) -> Html {
        match &self.0 {
            Some(error) => html!(
                "<div class=\"alert\" role=\"alert\"><p>Le nœud a refusé ce formulaire. {} : {}</p></div>",
                labels::field(&error.field),
                error.to_string()
            ),
            None => Html::default(),
        }
    }
}

fn described(name: &str, errors: &Errors) -> (Html, Html) {
    match errors.of(name) {
        Some(message) => (
            html!(" aria-invalid=\"true\" aria-describedby=\"{}-erreur\"", name),
            html!("<p class=\"error\" id=\"{}-erreur\">{}</p>", name, message),
        ),
        None => (Html::default(), Html::default()),
    }
}

/// An `<input>` with its label; `kind` is the input type, `hint` a line of help under the label.
pub(crate) fn input(name: &str, label: &str, kind: &str, value: &str, hint: &str, errors: &Errors) -> Html {
    let (aria, message) = described(name, errors);
    let hint = if hint.is_empty() { Html::default() } else { html!("<span class=\"hint\">{}</span>", hint) };
    html!(
        "<div class=\"field\"><label for=\"{}\">{}{}</label>\
         <input id=\"{}\" name=\"{}\" type=\"{}\" value=\"{}\"{}>{}</div>",
        name,
        label,
        hint,
        name,
        name,
        kind,
        value,
        aria,
        message
    )
}

/// A `<textarea>` with its label.
pub(crate) fn textarea(name: &str, label: &str, value: &str, errors: &Errors) -> Html {
    let (aria, message) = described(name, errors);
    html!(
        "<div class=\"field\"><label for=\"{}\">{}</label><textarea id=\"{}\" name=\"{}\" rows=\"4\"{}>{}</textarea>{}</div>",
        name,
        label,
        name,
        name,
        aria,
        value,
        message
    )
}

/// A `<select>` of `(value, label)` options with its label.
pub(crate) fn select(
    name: &str,
    label: &str,
    options: &[(&str, &str)],
    selected: &str,
    errors: &Errors,
) -> Html {
    let (aria, message) = described(name, errors);
    let options = Html::concat(options.iter().map(|(value, text)| {
        if *value == selected {
            html!("<option value=\"{}\" selected>{}</option>", *value, *text)
        } else {
            html!("<option value=\"{}\">{}</option>", *value, *text)
        }
    }));
    html!(
        "<div class=\"field\"><label for=\"{}\">{}</label><select id=\"{}\" name=\"{}\"{}>{}</select>{}</div>",
        name,
        label,
        name,
        name,
        aria,
        options,
        message
    )
}

/// Checkboxes for a repeated field, in a fieldset with its legend.
pub(crate) fn checkboxes(
    name: &str,
    legend: &str,
    options: &[(&str, &str)],
    checked: &[&str],
    errors: &Errors,
) -> Html {
    let (_, message) = described(name, errors);
    let boxes = Html::concat(options.iter().map(|(value, text)| {
        let id = format!("{name}-{value}");
        let on = if checked.contains(value) { Html::trusted(" checked") } else { Html::default() };
        html!(
            "<label class=\"check\" for=\"{}\"><input type=\"checkbox\" id=\"{}\" name=\"{}\" value=\"{}\"{}> {}</label>",
            id.as_str(),
            id.as_str(),
            name,
            *value,
            on,
            *text
        )
    }));
    html!("<fieldset class=\"field\"><legend>{}</legend>{}{}</fieldset>", legend, boxes, message)
}

/// The hidden CSRF field of every form.
pub(crate) fn csrf<C: Console>(ctx: &Ctx<'_, C>) -> Html {
    html!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", ctx.session.csrf.as_str())
}

/// A one-button form posting `fields` to `action` (for admins; nothing for viewers). `about`
/// names the record, so that in a list of identical buttons a screen reader says which one
/// (`aria-label`: "Supprimer : Agent d'entretien").
pub(crate) fn action_button<C: Console>(
    ctx: &Ctx<'_, C>,
    action: &str,
    fields: &[(&str, &str)],
    (label, about): (&str, &str),
    class: &str,
) -> Html {
    if !ctx.admin() {
        return Html::default();
    }
    let hidden = Html::concat(
        fields
            .iter()
            .map(|(name, value)| html!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", *name, *value)),
    );
    let named = if about.is_empty() { label.to_string() } else { format!("{label} : {about}") };
    html!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">{}{}<button type=\"submit\" class=\"{}\" aria-label=\"{}\">{}</button></form>",
        action,
        csrf(ctx),
        hidden,
        class,
        named.as_str(),
        label
    )
}

/// `(slug, label)` pairs of a code's meaningful values.
pub(crate) fn options<T: labels::Label>() -> Vec<(&'static str, &'static str)> {
    T::ALL.iter().map(|(value, slug)| (*slug, value.label())).collect()
}

/// A date-time for people: `2026-12-02 14:05 UTC` (empty for 0).
pub(crate) fn when(ms: i64) -> String {
    if ms == 0 {
        return String::new();
    }
    let text = passerelle_proto::date::format_unix_ms(ms);
    format!("{} {} UTC", &text[..10], &text[11..16])
}
