//! Which requests the cache may answer, and the directives a request gives the cache.
//!
//! Deterministic in intent is cacheable: `temperature` absent or at most the ceiling (0 by
//! default), one choice, no log probabilities, text output, no web search. A request for
//! something made up (a poem, a joke) or drawn at random (a password, a UUID) is a bypass
//! unless the temperature is pinned, and then served by the exact tier only. A final message
//! that asks about the present ("today", "latest", "current price"), about where the asker is
//! ("near me") or about the asker ("my order") is served only by the exact tier: a paraphrase
//! of it is too likely to be a different question.

use std::sync::LazyLock;
use std::time::Duration;

use aho_corasick::AhoCorasick;
use serde_json::Value;

/// The operator's cache settings that decide cacheability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Highest `temperature` still cached. An absent temperature counts as 0 here: the caller
    /// did not ask for variety.
    pub temperature_ceiling: f64,
    /// TTL of a stored entry unless the request says otherwise.
    pub default_ttl: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            temperature_ceiling: 0.0,
            default_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// What the cache may do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cacheability {
    /// Look up and store; `semantic` says whether the semantic tier may answer too.
    Cacheable { semantic: bool },
    /// Leave the cache alone, for this reason (a short label for logs).
    Bypass(&'static str),
}

impl Policy {
    pub fn assess(&self, request: &Value, final_user_text: Option<&str>) -> Cacheability {
        let temperature = request.get("temperature").and_then(Value::as_f64);
        if temperature.is_some_and(|t| t > self.temperature_ceiling) {
            return Cacheability::Bypass("temperature");
        }
        if request
            .get("n")
            .and_then(Value::as_u64)
            .is_some_and(|n| n != 1)
        {
            return Cacheability::Bypass("n");
        }
        if request.get("logprobs").and_then(Value::as_bool) == Some(true)
            || request.get("top_logprobs").is_some_and(|v| !v.is_null())
        {
            return Cacheability::Bypass("logprobs");
        }
        if request
            .get("modalities")
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().any(|v| v.as_str() != Some("text")))
        {
            return Cacheability::Bypass("modalities");
        }
        // A request that searches the web asks about the present, whatever its words: its
        // answer is stale as soon as it is stored. OpenAI's search models always search.
        if request
            .get("web_search_options")
            .is_some_and(|v| !v.is_null())
            || request
                .get("model")
                .and_then(Value::as_str)
                .is_some_and(|m| m.contains("search-preview") || m.contains("search-api"))
        {
            return Cacheability::Bypass("web_search");
        }
        // Something made up (a poem, a joke): a fresh one each time unless the caller pinned
        // the temperature, and then only for the very same request.
        let words = final_user_text
            .filter(|t| t.len() <= SEMANTIC_MAX_BYTES)
            .map(Words::of);
        let creative = words.as_ref().is_some_and(Words::creative);
        if creative && temperature.is_none() {
            return Cacheability::Bypass("creative");
        }
        let semantic = !creative && words.is_some_and(|w| !w.time_sensitive_or_personal());
        Cacheability::Cacheable { semantic }
    }
}

/// The longest final message the semantic tier compares (16 KiB, some 2,500 words). Longer
/// ones are served by the exact tier only: the guard's reading and comparison of a text grow
/// with its length (a lookup must stay cheap whatever a client sends), and a long text is
/// mostly a passage whose similarity says little about the question in it.
pub const SEMANTIC_MAX_BYTES: usize = 16 * 1024;

const TIME_WORDS: &[&str] = &[
    "today",
    "tonight",
    "tomorrow",
    "yesterday",
    "now",
    "currently",
    "current",
    "latest",
    "recent",
    "recently",
    "newest",
    "upcoming",
    "live",
    "breaking",
    "this week",
    "this month",
    "this year",
    "this weekend",
    "next week",
    "last week",
    "last night",
    "right now",
    "at the moment",
    "these days",
    "weather",
    "forecast",
    "news",
    "stock price",
    "share price",
    "stock worth",
    "market cap",
    "exchange rate",
    "trending",
    // Counted from today: "How many days until Christmas?", "When is the next eclipse?".
    "days until",
    "days till",
    "how long until",
    "how long till",
    "when is the next",
    "when's the next",
    // Where the asker is.
    "near me",
    "nearest",
    "nearby",
    "price of",
    "score of",
    "what time",
    "what day",
    "what date",
];

const PERSONAL_WORDS: &[&str] = &["my", "mine", "our", "ours", "myself"];

/// A request for something made up names a piece ([`CREATIVE_PIECES`]) and asks for it to be
/// made ([`CREATIVE_ASKS`]): "Write a haiku about the sea", "Tell me a joke", not "Who wrote
/// the poem?" or "What is the rhyme scheme of a sonnet?".
const CREATIVE_PIECES: &[&str] = &[
    "poem",
    "poems",
    "haiku",
    "haikus",
    "limerick",
    "limericks",
    "sonnet",
    "sonnets",
    "joke",
    "jokes",
    "riddle",
    "riddles",
    "lyrics",
    "song",
    "songs",
    "rap",
    "slogan",
    "slogans",
    "tagline",
    "taglines",
    "story",
    "stories",
];

const CREATIVE_ASKS: &[&str] = &[
    "write",
    "compose",
    "tell me",
    "tell us",
    "make up",
    "create",
    "generate",
    "come up with",
    "invent",
    "brainstorm",
    "draft",
    "give me",
    "suggest",
];

/// What a request asks to be drawn at random ("Generate a random password", "Give me a UUID"):
/// an answer served again is no longer random, and a password or a key served to another
/// caller is a secret shared. Only when the request opens with one of [`CREATIVE_ASKS`] or
/// [`DRAWS`]: "How do I generate a random number in Python?" is a question.
const RANDOM_PIECES: &[&str] = &[
    "random",
    "randomly",
    "password",
    "passwords",
    "passphrase",
    "uuid",
    "uuids",
    "guid",
    "lottery",
];

/// Asks that draw something, besides [`CREATIVE_ASKS`].
const DRAWS: &[&str] = &["pick", "choose", "roll", "flip", "shuffle", "make"];

/// Whether a question's answer depends on when it is asked or on who asks it.
pub fn is_time_sensitive_or_personal(text: &str) -> bool {
    Words::of(text).time_sensitive_or_personal()
}

/// A text's words, lower-cased and joined by single spaces between two more, so that each
/// phrase (padded with spaces) is found in one pass (every cacheable request asks).
struct Words(String);

impl Words {
    fn of(text: &str) -> Self {
        let mut joined = String::with_capacity(text.len() + 2);
        joined.push(' ');
        for word in text
            .split(|c: char| !c.is_alphanumeric() && c != '\'')
            .filter(|w| !w.is_empty())
        {
            // A final "'s" is a word of its own, so that "today's" and "this week's" mention
            // "today" and "this week" (the phrases are read the same way: "when's the next").
            match word.strip_suffix("'s").filter(|w| !w.is_empty()) {
                Some(stem) => {
                    joined.extend(stem.chars().flat_map(char::to_lowercase));
                    joined.push_str(" 's ");
                }
                None => {
                    joined.extend(word.chars().flat_map(char::to_lowercase));
                    joined.push(' ');
                }
            }
        }
        Words(joined)
    }

    fn time_sensitive_or_personal(&self) -> bool {
        static PHRASES: LazyLock<Option<AhoCorasick>> =
            LazyLock::new(|| automaton(TIME_WORDS.iter().chain(PERSONAL_WORDS)));
        self.mention(PHRASES.as_ref())
    }

    /// Whether a request asks for something made up, which it should get anew each time.
    fn creative(&self) -> bool {
        static PIECES: LazyLock<Option<AhoCorasick>> =
            LazyLock::new(|| automaton(CREATIVE_PIECES.iter()));
        static ASKS: LazyLock<Option<AhoCorasick>> =
            LazyLock::new(|| automaton(CREATIVE_ASKS.iter()));
        static RANDOM: LazyLock<Option<AhoCorasick>> =
            LazyLock::new(|| automaton(RANDOM_PIECES.iter()));
        (self.mention(PIECES.as_ref()) && self.mention(ASKS.as_ref()))
            || (self.mention(RANDOM.as_ref()) && self.opens_with_an_ask())
    }

    /// Whether the request opens with an ask to make or draw something ("Generate...", "Give
    /// me...", "Pick...", "Please generate...").
    fn opens_with_an_ask(&self) -> bool {
        let text = self.0.trim_start();
        let text = text.strip_prefix("please ").unwrap_or(text);
        CREATIVE_ASKS.iter().chain(DRAWS).any(|ask| {
            text.strip_prefix(ask)
                .is_some_and(|rest| rest.starts_with(' '))
        })
    }

    fn mention(&self, phrases: Option<&AhoCorasick>) -> bool {
        // The phrases are fixed, so the automaton always builds; were it not to, every text
        // would count as mentioning them (the cautious side), never the other way round.
        phrases.is_none_or(|phrases| phrases.is_match(&self.0))
    }
}

/// A matcher of `phrases` as whole words, each read as [`Words`] reads a text.
fn automaton<'a>(phrases: impl Iterator<Item = &'a &'static str>) -> Option<AhoCorasick> {
    AhoCorasick::new(phrases.map(|w| Words::of(w).0)).ok()
}

/// Whole seconds (HTTP's delta-seconds: digits only). A number too large to hold is the largest
/// there is, as RFC 9111 (1.2.2) asks, not an error: "as long as possible".
fn seconds(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(value.parse::<u64>().unwrap_or(u64::MAX))
}

/// A request's cache directives: `Cache-Control` and `x-reprise-cache-ttl`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// Do not answer from the cache (still store the fresh answer).
    pub no_cache: bool,
    /// Neither answer from nor store into the cache.
    pub no_store: bool,
    /// Answer only from entries younger than this.
    pub max_age: Option<Duration>,
    /// TTL of the entry this request stores.
    pub ttl: Option<Duration>,
}

impl CacheControl {
    /// Parses the `Cache-Control` and `x-reprise-cache-ttl` header values. Unknown directives
    /// are ignored, as HTTP caches do; malformed numbers are reported.
    pub fn parse(cache_control: Option<&str>, ttl: Option<&str>) -> Result<Self, String> {
        let mut out = CacheControl::default();
        for directive in cache_control.unwrap_or_default().split(',') {
            let directive = directive.trim().to_ascii_lowercase();
            match directive.split_once('=') {
                None if directive == "no-cache" => out.no_cache = true,
                None if directive == "no-store" => out.no_store = true,
                Some(("max-age", value)) => {
                    let secs = seconds(value.trim_matches('"')).ok_or_else(|| {
                        format!("Cache-Control max-age must be whole seconds, got {value:?}")
                    })?;
                    out.max_age = Some(Duration::from_secs(secs));
                }
                _ => {}
            }
        }
        if let Some(value) = ttl {
            let secs = seconds(value.trim()).ok_or_else(|| {
                format!("x-reprise-cache-ttl must be whole seconds, got {value:?}")
            })?;
            out.ttl = Some(Duration::from_secs(secs));
        }
        Ok(out)
    }

    /// Whether the cache may answer this request.
    pub fn may_serve(&self) -> bool {
        !self.no_cache && !self.no_store && self.max_age != Some(Duration::ZERO)
    }

    /// Whether the fresh answer may be stored.
    pub fn may_store(&self) -> bool {
        !self.no_store && self.ttl != Some(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    proptest! {
        /// Any header value is read or refused with a message, never a panic; a refusal names
        /// the header.
        #[test]
        fn any_directives_parse_or_are_refused(cache_control in any::<String>(), ttl in any::<Option<String>>()) {
            if let Err(message) = CacheControl::parse(Some(&cache_control), ttl.as_deref()) {
                prop_assert!(message.contains("max-age") || message.contains("x-reprise-cache-ttl"));
            }
        }

        /// Directives in any case, order and spacing mean the same.
        #[test]
        fn directives_read_alike_however_written(
            no_cache in any::<bool>(),
            no_store in any::<bool>(),
            max_age in proptest::option::of(any::<u64>()),
            upper in any::<bool>(),
            reversed in any::<bool>(),
            space in prop::sample::select(vec!["", " ", "  ", "\t"]),
        ) {
            let mut parts = vec!["private".to_owned()];
            if no_cache { parts.push("no-cache".into()); }
            if no_store { parts.push("no-store".into()); }
            if let Some(secs) = max_age { parts.push(format!("max-age={secs}")); }
            if reversed { parts.reverse(); }
            let mut header = parts.join(&format!(",{space}"));
            if upper { header = header.to_uppercase(); }
            let c = CacheControl::parse(Some(&header), None).unwrap();
            prop_assert_eq!(c.no_cache, no_cache);
            prop_assert_eq!(c.no_store, no_store);
            prop_assert_eq!(c.max_age, max_age.map(Duration::from_secs));
        }
    }

    #[test]
    fn deterministic_requests_are_cacheable() {
        let p = Policy::default();
        let q = Some("What is the capital of France?");
        assert_eq!(
            p.assess(&json!({"model": "m"}), q),
            Cacheability::Cacheable { semantic: true }
        );
        assert_eq!(
            p.assess(&json!({"temperature": 0, "n": 1}), q),
            Cacheability::Cacheable { semantic: true }
        );
        assert_eq!(
            p.assess(&json!({"temperature": 0.7}), q),
            Cacheability::Bypass("temperature")
        );
        assert_eq!(p.assess(&json!({"n": 3}), q), Cacheability::Bypass("n"));
        // Something made up: a fresh one each time, unless the temperature is pinned, and then
        // for the very same request only.
        for ask in [
            "Tell me a joke about cats.",
            "Write a haiku about the sea",
            "Come up with a slogan for my shop",
            // Drawn at random: served again, it is no longer random (or a shared secret).
            "Generate a random password.",
            "Give me a random number between 1 and 10",
            "Please generate a UUID",
            "Pick a random country",
        ] {
            assert_eq!(
                p.assess(&json!({"model": "m"}), Some(ask)),
                Cacheability::Bypass("creative"),
                "{ask}"
            );
            assert_eq!(
                p.assess(&json!({"model": "m", "temperature": 0}), Some(ask)),
                Cacheability::Cacheable { semantic: false },
                "{ask}"
            );
        }
        for not_creative in [
            "What is the story of the Roman empire?",
            "Who wrote the poem The Raven?",
            "What is the rhyme scheme of a sonnet?",
            "Write a function that sorts a list.",
            "How do I generate a random number in Python?",
            "What is a UUID?",
            "How do I reset a forgotten password?",
        ] {
            assert_eq!(
                p.assess(&json!({"model": "m"}), Some(not_creative)),
                Cacheability::Cacheable { semantic: true },
                "{not_creative}"
            );
        }
        for searching in [
            json!({"model": "gpt-4o", "web_search_options": {}}),
            json!({"model": "gpt-4o-mini-search-preview"}),
        ] {
            assert_eq!(p.assess(&searching, q), Cacheability::Bypass("web_search"));
        }
        // A text longer than the semantic tier reads: the exact tier only.
        let long = "Explain this passage word for word please. ".repeat(SEMANTIC_MAX_BYTES / 40);
        assert!(long.len() > SEMANTIC_MAX_BYTES);
        assert_eq!(
            p.assess(&json!({"model": "m"}), Some(&long)),
            Cacheability::Cacheable { semantic: false }
        );
        assert_eq!(
            p.assess(&json!({"model": "m"}), Some(&long[..SEMANTIC_MAX_BYTES])),
            Cacheability::Cacheable { semantic: true }
        );
        assert_eq!(
            p.assess(&json!({"logprobs": true}), q),
            Cacheability::Bypass("logprobs")
        );
        assert_eq!(
            p.assess(&json!({"modalities": ["text", "audio"]}), q),
            Cacheability::Bypass("modalities")
        );
        let warm = Policy {
            temperature_ceiling: 0.8,
            ..Policy::default()
        };
        assert_eq!(
            warm.assess(&json!({"temperature": 0.7}), q),
            Cacheability::Cacheable { semantic: true }
        );
    }

    #[test]
    fn time_sensitive_and_personal_questions_are_exact_only() {
        let p = Policy::default();
        for q in [
            "What is the weather in Paris today?",
            "latest news about Rust",
            "What's the current price of bitcoin?",
            "Where is my order?",
            "What time is it in Tokyo",
            "Is the API down RIGHT   NOW?",
            "Which framework is popular at the moment?",
            "Where is MY parcel",
            "What are this week's top movies?",
            "What are today's top headlines?",
            "When's the next full moon?",
            "Who won last night's game?",
            "How much is AAPL stock worth?",
            "What's trending on Twitter?",
            "How many days until Christmas?",
            "When is the next solar eclipse?",
            "What are the opening hours of the nearest pharmacy?",
            "Is there a good sushi place near me?",
        ] {
            assert_eq!(
                p.assess(&json!({}), Some(q)),
                Cacheability::Cacheable { semantic: false },
                "{q}"
            );
        }
        for q in [
            "What is the capital of France?",
            "How do I reverse a list in Python?",
            "Explain knowledge cut-offs",
            // Phrases match whole words only.
            "What is a snowplow?",
            "Who wrote Myths and Legends?",
            "What is the nowcast model in meteorology?",
        ] {
            assert_eq!(
                p.assess(&json!({}), Some(q)),
                Cacheability::Cacheable { semantic: true },
                "{q}"
            );
        }
        assert_eq!(
            p.assess(&json!({}), None),
            Cacheability::Cacheable { semantic: false }
        );
    }

    #[test]
    fn cache_control_directives() {
        let c = CacheControl::parse(Some("no-cache"), None).unwrap();
        assert!(!c.may_serve() && c.may_store());
        let c = CacheControl::parse(Some("No-Store, max-age=5"), None).unwrap();
        assert!(!c.may_serve() && !c.may_store());
        let c = CacheControl::parse(Some("max-age=60"), Some("120")).unwrap();
        assert!(c.may_serve() && c.may_store());
        assert_eq!(c.max_age, Some(Duration::from_secs(60)));
        assert_eq!(c.ttl, Some(Duration::from_secs(120)));
        assert!(
            !CacheControl::parse(Some("max-age=0"), None)
                .unwrap()
                .may_serve()
        );
        assert!(CacheControl::parse(Some("max-age=soon"), None).is_err());
        assert!(CacheControl::parse(Some("max-age=+5"), None).is_err());
        assert!(CacheControl::parse(Some("max-age="), None).is_err());
        assert!(CacheControl::parse(None, Some("-1")).is_err());
        // Too large to hold: the largest there is (RFC 9111), not an error.
        let huge = "9".repeat(40);
        let c = CacheControl::parse(Some(&format!("max-age={huge}")), Some(&huge)).unwrap();
        assert_eq!(c.max_age, Some(Duration::from_secs(u64::MAX)));
        assert_eq!(c.ttl, Some(Duration::from_secs(u64::MAX)));
        assert!(c.may_serve() && c.may_store());
        assert_eq!(
            CacheControl::parse(Some("private, weird"), None).unwrap(),
            CacheControl::default()
        );
    }
}
