//! The UI's message catalogs. English and German are complete (a test checks that every key
//! exists in both); the language comes from the user's setting, else from `Accept-Language`.

use std::sync::LazyLock;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locale {
    #[default]
    En,
    De,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::En, Locale::De];

    pub fn code(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::De => "de",
        }
    }

    /// The language's own name, for the language picker.
    pub fn native_name(self) -> &'static str {
        match self {
            Locale::En => "English",
            Locale::De => "Deutsch",
        }
    }

    pub fn parse(code: &str) -> Option<Locale> {
        let primary = code.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Locale::En),
            "de" => Some(Locale::De),
            _ => None,
        }
    }

    /// The best supported language in an `Accept-Language` header (by quality, then order).
    pub fn from_accept_language(header: &str) -> Option<Locale> {
        let mut best: Option<(f32, Locale)> = None;
        for part in header.split(',').take(20) {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or_default();
            let quality = pieces
                .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()))
                .unwrap_or(1.0);
            if let Some(locale) = Locale::parse(tag)
                && quality > 0.0
                && best.is_none_or(|(q, _)| quality > q)
            {
                best = Some((quality, locale));
            }
        }
        best.map(|(_, locale)| locale)
    }

    /// The whole catalog, for templates (`{{ t.login.title }}`).
    pub fn catalog(self) -> &'static Value {
        match self {
            Locale::En => &EN,
            Locale::De => &DE,
        }
    }

    /// One message by dotted key; the key itself when missing (which the completeness test
    /// prevents).
    pub fn text(self, key: &str) -> String {
        let mut node = self.catalog();
        for part in key.split('.') {
            match node.get(part) {
                Some(next) => node = next,
                None => return key.to_owned(),
            }
        }
        node.as_str().map(str::to_owned).unwrap_or_else(|| key.to_owned())
    }

    /// `n` with its counted word (`1 second`, `5 seconds`, `1 Stunde`): the catalog's `key.one`
    /// for 1 and `key.other` for every other number, which is the rule of every language here.
    pub fn count(self, key: &str, n: u64) -> String {
        let form = if n == 1 { "one" } else { "other" };
        self.text(&format!("{key}.{form}")).replace("{n}", &n.to_string())
    }
}

impl Locale {
    /// A message from the domain layer (written in English) in this language, when the
    /// catalog's `[messages]` has it; placeholders such as `{max}` carry the values across.
    /// Unknown messages stay as they are.
    pub fn translate(self, english: &str) -> String {
        if self == Locale::En {
            return english.to_owned();
        }
        let (Some(Value::Object(en)), Some(Value::Object(here))) =
            (Locale::En.catalog().get("messages"), self.catalog().get("messages"))
        else {
            return english.to_owned();
        };
        for (key, template) in en {
            let (Some(template), Some(target)) = (template.as_str(), here.get(key).and_then(Value::as_str)) else {
                continue;
            };
            if let Some(values) = match_template(template, english) {
                let mut out = target.to_owned();
                for (name, value) in values {
                    out = out.replace(&format!("{{{name}}}"), &value);
                }
                return out;
            }
        }
        english.to_owned()
    }
}

/// Matches `text` against a template with `{name}` placeholders; the captured values by name.
fn match_template(template: &str, text: &str) -> Option<Vec<(String, String)>> {
    // Literal pieces and placeholder names, alternating, starting with a literal.
    let mut literals = Vec::new();
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}')? + open;
        literals.push(&rest[..open]);
        names.push(&rest[open + 1..close]);
        rest = &rest[close + 1..];
    }
    literals.push(rest);
    let mut remaining = text.strip_prefix(literals[0])?;
    let mut values = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let next = literals[i + 1];
        let end = if next.is_empty() {
            if i + 1 == names.len() {
                remaining.len()
            } else {
                return None;
            }
        } else if i + 1 == names.len() {
            // The last literal anchors at the end.
            remaining.strip_suffix(next)?.len()
        } else {
            remaining.find(next)?
        };
        values.push(((*name).to_owned(), remaining[..end].to_owned()));
        remaining = &remaining[end + next.len()..];
    }
    (names.is_empty() && remaining.is_empty() || !names.is_empty()).then_some(values)
}

fn load(source: &str) -> Value {
    let table: toml::Table = toml::from_str(source).expect("the embedded message catalog is valid TOML");
    serde_json::to_value(table).expect("a TOML table converts to JSON")
}

static EN: LazyLock<Value> = LazyLock::new(|| load(include_str!("../i18n/en.toml")));
static DE: LazyLock<Value> = LazyLock::new(|| load(include_str!("../i18n/de.toml")));

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(prefix: &str, value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    keys(&path, v, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }

    #[test]
    fn counted_words_agree_with_their_number() {
        assert_eq!(Locale::En.count("units.seconds", 1), "1 second");
        assert_eq!(Locale::En.count("units.seconds", 0), "0 seconds");
        assert_eq!(Locale::En.count("units.seconds", 30), "30 seconds");
        assert_eq!(Locale::De.count("units.seconds", 1), "1 Sekunde");
        assert_eq!(Locale::De.count("units.hours", 2), "2 Stunden");
        assert_eq!(Locale::En.count("units.days", 1), "1 day");
        assert_eq!(Locale::De.count("units.days", 7), "7 Tage");
        assert_eq!(Locale::De.count("units.days_dative", 7), "7 Tagen");
        let locked = Locale::En
            .text("login.locked")
            .replace("{seconds}", &Locale::En.count("units.seconds", 1));
        assert_eq!(locked, "Too many attempts. Try again in 1 second.");
    }

    #[test]
    fn every_language_has_every_message() {
        let mut en = Vec::new();
        keys("", Locale::En.catalog(), &mut en);
        assert!(en.len() > 50, "the catalog is loaded");
        for locale in Locale::ALL {
            let mut other = Vec::new();
            keys("", locale.catalog(), &mut other);
            en.sort();
            other.sort();
            let missing: Vec<_> = en.iter().filter(|k| !other.contains(k)).collect();
            let extra: Vec<_> = other.iter().filter(|k| !en.contains(k)).collect();
            assert!(missing.is_empty(), "{} lacks {missing:?}", locale.code());
            assert!(extra.is_empty(), "{} has unknown keys {extra:?}", locale.code());
        }
    }

    #[test]
    fn accept_language_picks_the_best_supported() {
        assert_eq!(
            Locale::from_accept_language("de-DE,de;q=0.9,en;q=0.8"),
            Some(Locale::De)
        );
        assert_eq!(
            Locale::from_accept_language("fr-FR, en;q=0.5, de;q=0.7"),
            Some(Locale::De)
        );
        assert_eq!(Locale::from_accept_language("fr, it"), None);
        assert_eq!(Locale::from_accept_language("en-GB"), Some(Locale::En));
        assert_eq!(Locale::from_accept_language("de;q=0"), None);
        assert_eq!(Locale::from_accept_language(""), None);
    }

    #[test]
    fn domain_messages_are_translated_with_their_values() {
        assert_eq!(Locale::De.translate("must not be empty"), "darf nicht leer sein");
        assert_eq!(
            Locale::De.translate("must be at most 100 characters"),
            "darf höchstens 100 Zeichen lang sein"
        );
        assert_eq!(
            Locale::De.translate("must be between 0 and 100"),
            "muss zwischen 0 und 100 liegen"
        );
        assert_eq!(Locale::En.translate("must not be empty"), "must not be empty");
        assert_eq!(
            Locale::De.translate("something nobody wrote down"),
            "something nobody wrote down"
        );
        assert_eq!(match_template("exact", "exact"), Some(vec![]));
        assert_eq!(match_template("exact", "exactly"), None);
    }

    #[test]
    fn text_looks_up_dotted_keys() {
        assert_eq!(Locale::De.text("nav.sign_out"), "Abmelden");
        assert_eq!(Locale::En.text("no.such.key"), "no.such.key");
    }
}
