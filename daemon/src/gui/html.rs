//! HTML escaped by construction.
//!
//! A page is an [`Html`]: a string that only this module can make from trusted text. Values
//! reach it through [`Render`], which escapes text (`&str`, `String`) and passes numbers and
//! other [`Html`] through, so a name typed by a user can never become markup. The [`html!`]
//! macro is `format!` over a literal template whose arguments are rendered that way; templates
//! never capture variables inline (`{name}`), which would bypass [`Render`] — arguments are
//! always passed positionally.

use std::fmt::Write as _;

/// Markup that is safe to send: literal templates and escaped values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Html(String);

impl Html {
    /// Markup from a template literal the program wrote (never from a value).
    pub(crate) fn trusted(template: &'static str) -> Self {
        Self(template.to_string())
    }

    /// Used by [`html!`] only: the output of `format!` over a literal template and rendered
    /// arguments.
    #[doc(hidden)]
    pub(crate) fn from_rendered(text: String) -> Self {
        Self(text)
    }

    /// Appends more markup.
    pub(crate) fn push(&mut self, more: Html) {
        self.0.push_str(&more.0);
    }

    /// The markup.
    pub(crate) fn into_string(self) -> String {
        self.0
    }

    /// Markup made of many pieces.
    pub(crate) fn concat(parts: impl IntoIterator<Item = Html>) -> Html {
        let mut out = Html::default();
        for part in parts {
            out.push(part);
        }
        out
    }
}

/// How a value goes into markup.
pub(crate) trait Render {
    /// The value as markup: escaped text, or markup as it is.
    fn render(&self) -> String;
}

impl Render for Html {
    fn render(&self) -> String {
        self.0.clone()
    }
}

impl Render for str {
    fn render(&self) -> String {
        escape(self)
    }
}

impl Render for &str {
    fn render(&self) -> String {
        escape(self)
    }
}

impl Render for String {
    fn render(&self) -> String {
        escape(self)
    }
}

impl<T: Render> Render for &T {
    fn render(&self) -> String {
        (*self).render()
    }
}

macro_rules! render_display {
    ($($t:ty),*) => {
        $(impl Render for $t {
            fn render(&self) -> String {
                self.to_string()
            }
        })*
    };
}

render_display!(u32, u64, i32, i64, usize);

/// Escapes text for an element's content or a double-quoted attribute.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => {
                let _ = write!(out, "{c}");
            }
        }
    }
    out
}

/// `format!` into [`Html`]: a literal template, every argument rendered by [`Render`].
macro_rules! html {
    ($template:literal $(, $arg:expr)* $(,)?) => {
        $crate::gui::html::Html::from_rendered(format!(
            $template $(, $crate::gui::html::Render::render(&$arg))*
        ))
    };
}
pub(crate) use html;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_markup_is_not() {
        let name = "<script>alert('x')</script> & \"co\"";
        let page = html!("<p title=\"{}\">{}</p>{}", name, name, Html::trusted("<br>"));
        assert_eq!(
            page.into_string(),
            "<p title=\"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;\">\
             &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;</p><br>"
        );
    }
}
