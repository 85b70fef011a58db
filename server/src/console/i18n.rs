//! The console's languages: Chinese by default (the seed's own words),
//! English when the visitor picked it (the [`LANG_COOKIE`]) or, without a
//! pick, when `Accept-Language` prefers it. One catalogue per language
//! (`server/i18n/<lang>.toml`, compiled in), looked up by key; the tests hold
//! both to the same keys and every key a page uses to being in them.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::LazyLock;

use axum::http::HeaderMap;

use crate::console::session::cookie;
use crate::http::error::ApiError;
use crate::http::field::{FieldError, Problem};

/// The cookie that holds the visitor's pick (`zh` or `en`).
pub const LANG_COOKIE: &str = "youmi_lang";

/// A language of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// 中文, the default.
    Zh,
    /// English.
    En,
}

impl Lang {
    /// Every language, the default first.
    pub const ALL: [Lang; 2] = [Lang::Zh, Lang::En];

    /// Its short code, as in the cookie and the switch's URL.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// Its name in itself, for the switch (never translated).
    pub fn name(self) -> &'static str {
        match self {
            Lang::Zh => "中文",
            Lang::En => "English",
        }
    }

    /// Its tag for `<html lang>`.
    pub fn html_tag(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The language of a short code.
    pub fn from_code(code: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|lang| lang.code() == code)
    }

    /// The language of a request: the visitor's pick, else the first of
    /// ours that `Accept-Language` ranks highest, else Chinese.
    pub fn of(headers: &HeaderMap) -> Lang {
        if let Some(lang) = cookie(headers, LANG_COOKIE).and_then(Lang::from_code) {
            return lang;
        }
        headers
            .get_all(axum::http::header::ACCEPT_LANGUAGE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(preferred)
            .unwrap_or(Lang::Zh)
    }

    /// Its catalogue.
    pub fn catalogue(self) -> &'static Catalogue {
        static ZH: LazyLock<Catalogue> =
            LazyLock::new(|| Catalogue::builtin(include_str!("../../i18n/zh.toml")));
        static EN: LazyLock<Catalogue> =
            LazyLock::new(|| Catalogue::builtin(include_str!("../../i18n/en.toml")));
        match self {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }
}

/// The language of ours an `Accept-Language` value ranks highest (ties go
/// to the one listed first), if it names either.
fn preferred(value: &str) -> Option<Lang> {
    let mut best: Option<(f32, Lang)> = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim();
        let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
        let Some(lang) = Lang::from_code(&primary) else {
            continue;
        };
        let quality = parts
            .find_map(|param| param.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
            best = Some((quality, lang));
        }
    }
    best.map(|(_, lang)| lang)
}

/// The texts of one language, by dotted key (`accounts.title`: the table
/// `[accounts]`, its key `title`).
#[derive(Debug)]
pub struct Catalogue {
    /// Key to text.
    texts: HashMap<String, String>,
}

/// A catalogue file that is not a two-level table of strings.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// Not TOML.
    #[error("not toml: {0}")]
    Toml(#[from] toml::de::Error),
    /// A value that is neither a table of strings nor a string.
    #[error("`{0}` is not a string")]
    NotText(String),
}

impl Catalogue {
    /// Reads a catalogue from TOML.
    pub fn parse(text: &str) -> Result<Catalogue, CatalogueError> {
        let table: toml::Table = text.parse()?;
        let mut texts = HashMap::new();
        for (section, value) in table {
            let toml::Value::Table(entries) = value else {
                return Err(CatalogueError::NotText(section));
            };
            for (key, value) in entries {
                let toml::Value::String(text) = value else {
                    return Err(CatalogueError::NotText(format!("{section}.{key}")));
                };
                texts.insert(format!("{section}.{key}"), text);
            }
        }
        Ok(Catalogue { texts })
    }

    /// A catalogue compiled into the binary; the tests parse each, so a
    /// failure here is a build that was never tested.
    fn builtin(text: &str) -> Catalogue {
        match Catalogue::parse(text) {
            Ok(catalogue) => catalogue,
            Err(error) => panic!("a built-in console catalogue is broken: {error}"),
        }
    }

    /// The text of `key`; the key itself where the catalogue lacks it (the
    /// tests see that none is missing).
    pub fn t<'a>(&'a self, key: &'a str) -> &'a str {
        self.texts.get(key).map_or(key, String::as_str)
    }

    /// The text of `key` with `value` in place of its `{}`.
    pub fn tf(&self, key: &str, value: impl Display) -> String {
        self.t(key).replacen("{}", &value.to_string(), 1)
    }

    /// Every key, for the tests.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.texts.keys().map(String::as_str)
    }

    /// A field's broken rule, in words for the form.
    pub fn field_error(&self, error: &FieldError) -> String {
        match &error.problem {
            Problem::Empty => self.t("field.empty").to_owned(),
            Problem::TooLong { max } => self.tf("field.too_long", max),
            Problem::NotStorable(_) => self.t("field.not_storable").to_owned(),
        }
    }

    /// An error of the shared logic, in words for a person: the text of its
    /// code where the catalogue has one ([`ERROR_KEYS`]), else the API's own
    /// message (never the inside of a 500).
    pub fn api_error(&self, error: &ApiError) -> String {
        if let ApiError::TooManyAttempts { retry_after_secs } = error {
            return self.tf("error.too_many_attempts", retry_after_secs.max(&1));
        }
        match ERROR_KEYS.iter().find(|(code, _)| *code == error.code()) {
            Some((_, key)) => self.t(key).to_owned(),
            None if error.status().is_server_error() => self.t("error.internal").to_owned(),
            None => self.tf("error.other", error),
        }
    }
}

/// The error codes of the shared logic that the console words itself, and
/// their keys.
pub const ERROR_KEYS: &[(&str, &str)] = &[
    ("invalid_credentials", "error.invalid_credentials"),
    ("too_many_attempts", "error.too_many_attempts"),
    ("employee_disabled", "error.employee_disabled"),
    (
        "operator_account_not_found",
        "error.operator_account_not_found",
    ),
    (
        "operator_account_disabled",
        "error.operator_account_disabled",
    ),
    ("wecom_user_id_taken", "error.wecom_user_id_taken"),
    ("bind_code_not_found", "error.bind_code_not_found"),
    ("notification_not_found", "error.notification_not_found"),
    ("task_not_found", "error.task_not_found"),
    ("invalid_filter", "error.invalid_filter"),
    ("storage_unavailable", "error.storage_unavailable"),
    ("empty_selection", "error.empty_selection"),
    ("device_not_found", "error.device_not_found"),
    ("empty_patch", "error.empty_patch"),
    ("invalid_setting", "error.invalid_setting"),
    ("empty_filter", "error.empty_filter"),
    ("invalid_filter", "error.invalid_filter"),
    ("device_log_not_found", "error.device_log_not_found"),
    ("route_not_found", "error.not_found"),
    ("internal", "error.internal"),
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use axum::http::HeaderValue;

    use super::*;

    fn keys(lang: Lang) -> BTreeSet<String> {
        lang.catalogue().keys().map(str::to_owned).collect()
    }

    #[test]
    fn both_catalogues_hold_the_same_keys() {
        let zh = keys(Lang::Zh);
        let en = keys(Lang::En);
        assert!(zh.len() > 50, "{zh:?}");
        let only_zh: Vec<_> = zh.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&zh).collect();
        assert!(
            only_zh.is_empty() && only_en.is_empty(),
            "only in zh.toml: {only_zh:?}; only in en.toml: {only_en:?}"
        );
        for key in &zh {
            assert!(!Lang::Zh.catalogue().t(key).is_empty(), "{key} is empty");
            assert!(!Lang::En.catalogue().t(key).is_empty(), "{key} is empty");
        }
    }

    /// Every `t("key")` and `tf("key"` in the templates and in the console's
    /// Rust code (the kit and every feature's `pages.rs`).
    fn used_keys() -> BTreeSet<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        collect(
            &root.join("templates"),
            &mut |path| path.extension().is_some_and(|ext| ext == "html"),
            &mut files,
        );
        collect(
            &root.join("src"),
            &mut |path| {
                path.ends_with("pages.rs")
                    || path.components().any(|part| part.as_os_str() == "console")
            },
            &mut files,
        );
        let mut keys = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for opening in ["t(\"", "tf(\""] {
                for (at, _) in text.match_indices(opening) {
                    // `t(` itself, not the end of another name (`asset(`).
                    let before = text[..at].chars().next_back().unwrap_or(' ');
                    if before.is_alphanumeric() || before == '_' {
                        continue;
                    }
                    let rest = &text[at + opening.len()..];
                    let key = &rest[..rest.find('"').unwrap()];
                    if key.contains('.') && !key.contains(' ') {
                        keys.insert(key.to_owned());
                    }
                }
            }
        }
        keys.extend(ERROR_KEYS.iter().map(|(_, key)| (*key).to_owned()));
        keys
    }

    fn collect(dir: &Path, keep: &mut dyn FnMut(&Path) -> bool, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                collect(&path, keep, out);
            } else if keep(&path) {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_key_a_page_uses_is_in_the_catalogues() {
        let used = used_keys();
        // The scan must find the pages' keys, or it proves nothing.
        for known in [
            "login.job_no",
            "accounts.title",
            "bind.code",
            "field.too_long",
        ] {
            assert!(used.contains(known), "{known} not found in {used:?}");
        }
        let zh = keys(Lang::Zh);
        let missing: Vec<_> = used.difference(&zh).collect();
        assert!(missing.is_empty(), "used but in no catalogue: {missing:?}");
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn the_pick_wins_then_the_browser_then_chinese() {
        assert_eq!(Lang::of(&headers(&[])), Lang::Zh);
        assert_eq!(
            Lang::of(&headers(&[("accept-language", "en-US,en;q=0.9")])),
            Lang::En
        );
        assert_eq!(
            Lang::of(&headers(&[("accept-language", "zh-CN,zh;q=0.9,en;q=0.8")])),
            Lang::Zh
        );
        assert_eq!(
            Lang::of(&headers(&[("accept-language", "fr, zh;q=0.5, en;q=0.7")])),
            Lang::En
        );
        assert_eq!(
            Lang::of(&headers(&[("accept-language", "fr, de")])),
            Lang::Zh
        );
        assert_eq!(
            Lang::of(&headers(&[
                ("accept-language", "en"),
                ("cookie", "a=b; youmi_lang=zh")
            ])),
            Lang::Zh
        );
        assert_eq!(Lang::of(&headers(&[("cookie", "youmi_lang=en")])), Lang::En);
        assert_eq!(Lang::of(&headers(&[("cookie", "youmi_lang=xx")])), Lang::Zh);
    }

    #[test]
    fn errors_and_fields_are_worded_per_language() {
        let zh = Lang::Zh.catalogue();
        let en = Lang::En.catalogue();
        assert_eq!(
            zh.api_error(&ApiError::InvalidCredentials),
            "工号或密码错误"
        );
        assert_eq!(
            en.api_error(&ApiError::InvalidCredentials),
            "Wrong job number or password"
        );
        let too_long = FieldError {
            field: "name",
            problem: Problem::TooLong { max: 64 },
        };
        assert_eq!(zh.field_error(&too_long), "最多 64 个字符");
        assert_eq!(
            en.api_error(&ApiError::TooManyAttempts {
                retry_after_secs: 9
            }),
            "Too many failed attempts; try again in 9 s"
        );
        assert_eq!(
            en.api_error(&ApiError::Internal("secret".into())),
            en.t("error.internal")
        );
        assert!(Catalogue::parse("[a]\nb = 1").is_err());
        assert!(Catalogue::parse("a = \"b\"").is_err());
    }
}
