//! The hosted pages' HTML (docs/pages.md): plain, accessible, without
//! JavaScript, fitting a phone screen. Everything shown is escaped.

use super::words::Words;
use crate::domain::form::FormDefinition;
use crate::domain::purpose::Purpose;

/// The countries offered, with their calling codes (the number field also
/// takes any number in E.164).
pub const COUNTRIES: &[(&str, &str, &str)] = &[
    ("AR", "Argentina", "+54"),
    ("AT", "Österreich", "+43"),
    ("BE", "Belgique / België", "+32"),
    ("BR", "Brasil", "+55"),
    ("CA", "Canada", "+1"),
    ("CH", "Schweiz / Suisse", "+41"),
    ("CL", "Chile", "+56"),
    ("CO", "Colombia", "+57"),
    ("DE", "Deutschland", "+49"),
    ("ES", "España", "+34"),
    ("FR", "France", "+33"),
    ("GB", "United Kingdom", "+44"),
    ("IE", "Ireland", "+353"),
    ("IN", "India", "+91"),
    ("IT", "Italia", "+39"),
    ("MX", "México", "+52"),
    ("NL", "Nederland", "+31"),
    ("PE", "Perú", "+51"),
    ("PT", "Portugal", "+351"),
    ("US", "United States", "+1"),
];

/// Escapes text for HTML content and quoted attributes.
pub use crate::domain::text::escape_markup as escape;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;padding:1rem;line-height:1.5;color:#111;background:#fff}\
main{max-width:32rem;margin:0 auto}h1{font-size:1.4rem;margin:.5rem 0 1rem}\
label{display:block;font-weight:600;margin-top:1rem}input[type=tel],select{display:block;width:100%;box-sizing:border-box;font-size:1.1rem;padding:.6rem;margin-top:.3rem;border:1px solid #555;border-radius:.3rem}\
fieldset{border:1px solid #999;border-radius:.3rem;margin-top:1rem;padding:.5rem .8rem}legend{font-weight:600}\
fieldset label{font-weight:400;margin:.4rem 0}fieldset input{width:1.3rem;height:1.3rem;vertical-align:middle;margin-right:.4rem}\
button{display:block;width:100%;font-size:1.1rem;padding:.8rem;margin-top:1.2rem;border:0;border-radius:.3rem;background:#0b57d0;color:#fff}\
.consent{background:#f3f3f3;padding:.8rem;border-radius:.3rem;white-space:pre-wrap}\
.error{color:#a50e0e;font-weight:600}.hint{color:#444;font-size:.9rem}.code{font-size:2rem;letter-spacing:.3rem;font-weight:700}\
.trap{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}small{display:block;margin-top:1.5rem}";

/// The field a person never sees (off-screen, out of the tab order) and a
/// bot fills in.
const TRAP: &str =
    "<div class=\"trap\" aria-hidden=\"true\"><label for=\"website\">Website</label>\
<input type=\"text\" id=\"website\" name=\"website\" tabindex=\"-1\" autocomplete=\"off\"></div>";

fn page(lang: &str, title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><style>{STYLE}</style></head>\
<body><main>{body}</main></body></html>\n",
        lang = escape(lang),
        title = escape(title),
    )
}

/// What the number field and the country choice show, and the error of the
/// field, if any.
pub struct NumberField<'a> {
    pub number: &'a str,
    pub region: Option<&'a str>,
    pub error: Option<&'a str>,
}

fn number_field(words: &Words, field: &NumberField<'_>) -> String {
    // What the choice starts on: the page's region, even one the list does
    // not offer, or none (an international number): never silently the
    // list's first country, which a browser would otherwise post.
    let listed = COUNTRIES
        .iter()
        .any(|(code, _, _)| field.region == Some(*code));
    let mut options = match field.region {
        Some(region) if !listed => {
            let region = escape(region);
            format!("<option value=\"{region}\" selected>{region}</option>")
        }
        None => "<option value=\"\" selected>+ …</option>".to_owned(),
        Some(_) => String::new(),
    };
    for (code, name, calling) in COUNTRIES {
        let selected = if field.region == Some(*code) {
            " selected"
        } else {
            ""
        };
        options.push_str(&format!(
            "<option value=\"{code}\"{selected}>{} ({calling})</option>",
            escape(name)
        ));
    }
    let (invalid, described, error) = match field.error {
        Some(message) => (
            " aria-invalid=\"true\"",
            "number-hint number-error",
            format!(
                "<p id=\"number-error\" class=\"error\" role=\"alert\">{}</p>",
                escape(message)
            ),
        ),
        None => ("", "number-hint", String::new()),
    };
    format!(
        "<label for=\"region\">{country}</label><select id=\"region\" name=\"region\">{options}</select>\
<label for=\"number\">{label}</label>\
<input type=\"tel\" id=\"number\" name=\"number\" autocomplete=\"tel\" required value=\"{value}\" aria-describedby=\"{described}\"{invalid}>\
<p id=\"number-hint\" class=\"hint\">{hint}</p>{error}",
        country = escape(words.country),
        label = escape(words.number),
        value = escape(field.number),
        hint = escape(words.number_hint),
    )
}

/// The marker of the page shown again because the form changed since the
/// post's page was served (docs/pages.md).
pub const FORM_CHANGED: &str = "form_changed";

/// An error of an opt-in page that is not the number field's: its code
/// (`too_fast`, `no_purpose`, `form_changed`, in `data-code`) and its text.
#[derive(Debug, Clone, Copy)]
pub struct Notice<'a> {
    pub code: &'a str,
    pub text: &'a str,
}

/// An opt-in page as a person sees it.
pub struct OptInPage<'a> {
    pub words: &'static Words,
    pub tenant: &'a str,
    pub form_id: &'a str,
    pub form: &'a FormDefinition,
    /// The CSRF token (empty in the canonical render that is hashed).
    pub token: &'a str,
    pub number: NumberField<'a>,
    pub ticked: &'a [Purpose],
    /// An error not of the number field (no box ticked, too fast, the
    /// form changed).
    pub error: Option<Notice<'a>>,
}

pub fn opt_in_page(p: &OptInPage<'_>) -> String {
    let w = p.words;
    let brand = escape(&p.form.brand);
    let mut boxes = String::new();
    for purpose in &p.form.purposes {
        let checked = if p.ticked.contains(purpose) {
            " checked"
        } else {
            ""
        };
        boxes.push_str(&format!(
            "<label><input type=\"checkbox\" name=\"purpose\" value=\"{}\"{checked}>{}</label>",
            purpose.as_str(),
            escape(w.purpose(*purpose))
        ));
    }
    let error = p.error.map_or(String::new(), |e| {
        format!(
            "<p class=\"error\" role=\"alert\" data-code=\"{}\">{}</p>",
            escape(e.code),
            escape(e.text)
        )
    });
    let body = format!(
        "<h1>{title} {brand}</h1>\
<form method=\"post\" action=\"/forms/{tenant}/{form}\">\
<p class=\"consent\" id=\"consent\">{text}</p>\
<fieldset aria-describedby=\"consent\"><legend>{legend}</legend>{boxes}</fieldset>{error}\
{number}\
{TRAP}<input type=\"hidden\" name=\"token\" value=\"{token}\">\
<button type=\"submit\">{send}</button></form>\
<small>{withdraw} <a href=\"/forms/{tenant}/opt-out?lang={lang}\">{opt_out}</a> · <a href=\"{privacy_url}\">{privacy}</a></small>",
        title = escape(w.opt_in_title),
        tenant = escape(p.tenant),
        form = escape(p.form_id),
        text = escape(&p.form.consent_text),
        legend = escape(w.purposes),
        number = number_field(w, &p.number),
        token = escape(p.token),
        send = escape(w.send),
        withdraw = escape(w.withdraw),
        lang = w.lang,
        opt_out = escape(w.opt_out_link),
        privacy_url = escape(&p.form.privacy_url),
        privacy = escape(w.privacy),
    );
    let lang = p.form.language.as_deref().unwrap_or(w.lang);
    page(lang, &format!("{} {}", w.opt_in_title, p.form.brand), &body)
}

/// How the person confirms, when the opt-in waits for it.
pub struct Confirm<'a> {
    pub code: &'a str,
    pub link: Option<&'a str>,
}

/// After an opt-in: thanks, and the code to send back when one is needed.
pub fn success_page(
    words: &Words,
    lang: &str,
    brand: &str,
    confirm: Option<Confirm<'_>>,
) -> String {
    let next = match confirm {
        Some(c) => {
            let link = c.link.map_or(String::new(), |href| {
                format!(
                    "<p><a id=\"confirm-link\" href=\"{}\">{}</a></p>",
                    escape(href),
                    escape(words.confirm_link)
                )
            });
            format!(
                "<p>{}</p><p class=\"code\" id=\"code\">{}</p>{link}",
                escape(words.confirm),
                escape(c.code)
            )
        }
        None => String::new(),
    };
    let body = format!(
        "<h1>{}</h1><p id=\"done\">{} ({})</p>{next}",
        escape(words.thanks),
        escape(words.recorded),
        escape(brand)
    );
    page(lang, words.thanks, &body)
}

/// The opt-out page.
pub struct OptOutPage<'a> {
    pub words: &'static Words,
    pub tenant: &'a str,
    pub brands: &'a [String],
    pub token: &'a str,
    pub number: NumberField<'a>,
    pub done: bool,
}

pub fn opt_out_page(p: &OptOutPage<'_>) -> String {
    let w = p.words;
    let brands = escape(&p.brands.join(", "));
    let body = if p.done {
        format!(
            "<h1>{}</h1><p id=\"done\" role=\"status\">{}</p>",
            escape(w.opt_out_title),
            escape(w.opt_out_done)
        )
    } else {
        format!(
            "<h1>{title}</h1><form method=\"post\" action=\"/forms/{tenant}/opt-out?lang={lang}\">\
<p>{text} {brands}.</p>{number}{TRAP}\
<input type=\"hidden\" name=\"token\" value=\"{token}\">\
<button type=\"submit\">{send}</button></form>",
            title = escape(w.opt_out_title),
            tenant = escape(p.tenant),
            lang = w.lang,
            text = escape(w.opt_out_text),
            number = number_field(w, &p.number),
            token = escape(p.token),
            send = escape(w.opt_out_send),
        )
    };
    page(w.lang, w.opt_out_title, &body)
}

/// A page that only says something (expired, too many attempts).
pub fn message_page(words: &Words, text: &str) -> String {
    page(
        words.lang,
        text,
        &format!("<h1 role=\"alert\">{}</h1>", escape(text)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_shown_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let words = super::super::words::words("en");
        let field = NumberField {
            number: "\"><script>",
            region: Some("DE"),
            error: Some("<b>"),
        };
        let html = number_field(words, &field);
        assert!(
            !html.contains("<script>") && !html.contains("<b>"),
            "{html}"
        );
        assert!(html.contains("<option value=\"DE\" selected>"));
        assert!(html.contains("aria-invalid=\"true\""));
    }

    /// The country choice starts on the page's region, even one the list
    /// does not offer, or on none: never on the list's first country, which
    /// a browser would post for a national number.
    #[test]
    fn the_country_choice_never_defaults_to_the_first_country() {
        let words = super::super::words::words("en");
        let with = |region| {
            number_field(
                words,
                &NumberField {
                    number: "",
                    region,
                    error: None,
                },
            )
        };
        let swedish = with(Some("SE"));
        assert_eq!(swedish.matches(" selected").count(), 1, "{swedish}");
        assert!(swedish.contains("<option value=\"SE\" selected>SE</option>"));
        let none = with(None);
        assert_eq!(none.matches(" selected").count(), 1, "{none}");
        assert!(none.contains("<option value=\"\" selected>"), "{none}");
        let german = with(Some("DE"));
        assert_eq!(german.matches(" selected").count(), 1, "{german}");
        assert!(!german.contains("<option value=\"\""), "{german}");
    }
}
