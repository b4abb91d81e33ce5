//! The structural guard: a semantic candidate is served only if the new question and the cached
//! one agree on everything an embedding blurs.
//!
//! Embeddings score a minimal edit that changes the answer ("What is 2+3?" / "What is 2+4?",
//! "before" / "after", one name for another, a negation) almost as high as a true paraphrase, so
//! no threshold separates them. The guard compares structure instead, one failure class at a
//! time (the CheckList capabilities of `../shared/data/checklist-dev.jsonl`):
//!
//! | check | failure class |
//! |---|---|
//! | numbers and quantities | NER: changed numbers, dates, times |
//! | operators | "5 - 3" / "5 * 3", "a == b" / "a != b", "x += 1" / "x -= 1" |
//! | quoted strings | exact strings the answer depends on, and an error's message ("TypeError: ...") |
//! | code identifiers and paths | `os.path.join` vs `os.path.split` |
//! | named entities | NER: changed names, places; Coref: a name for a pronoun |
//! | negation parity | Negation: "should worry" vs "should not worry" |
//! | order and time markers | Temporal: before / after, more / less |
//! | opposites | the opposite operation or extreme in other words: "encrypt" / "decrypt", "upload" / "download", "maximum" / "minimum"; another action on the thing (find, create, change, delete): "kill the process on port 8080" / "find which process is using port 8080" |
//! | what is asked | a place, a time, a reason, a person or a quantity for another (QQP: "Where should I promote..." / "How can I promote...") |
//! | third-person pronouns | Coref: "he would reject her" vs "she would reject him" |
//! | who does what to whom | SRL: asymmetric relations, wrong passive swaps |
//! | direction and order | "Fahrenheit to Celsius" / "Celsius to Fahrenheit", "5 minus 3" / "3 minus 5" |
//! | content words | Vocabulary: a changed or added content word in the same template |
//! | language | every rule reads English: a question in another language is left to the exact tier |
//!
//! What it lets through on purpose: word order in symmetric relations and choice questions,
//! correct active/passive swaps, antonyms under negation ("not invisible" = "visible"),
//! irrelevant intensifiers ("really", "truly"), and free rephrasing (more than two content words
//! differ, but not one short noun phrase in place of another in one frame; or one or two in a
//! question also reworded around them, or only moved around them, when the embedding puts the two
//! close or very close: see [`Closeness`]), which the similarity judges instead. Surface forms are read as one:
//! typographic and plain quotes, number words and digits ("two" / "2"), an acronym and the words
//! it stands for ("ML" / "Machine Learning"), "over 50" and "more than 50", "optional" and "not
//! required", British and American spellings ("colour" / "color"), and "the best way to..." and
//! "how to...".

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use rustc_hash::{FxHashMap, FxHashSet};

/// The word lists as sets: a question's every word is looked up in several of them, so they are
/// hashed with Fx (several times faster than SipHash on short words; their contents are fixed, so
/// collision attacks have nothing to fill).
type Words = LazyLock<FxHashSet<&'static str>>;

static STOPWORD: Words = LazyLock::new(|| STOPWORDS.iter().copied().collect());
static MARKER: Words = LazyLock::new(|| MARKERS.iter().copied().collect());
static NEGATION: Words = LazyLock::new(|| NEGATIONS.iter().copied().collect());
static PRONOUN: Words = LazyLock::new(|| PRONOUNS.iter().copied().collect());
static TOOL_NAME: Words = LazyLock::new(|| TOOL_NAMES.iter().copied().collect());
static SYMMETRIC_WORD: Words = LazyLock::new(|| SYMMETRIC.iter().copied().collect());
static NUMBER_WORD: Words = LazyLock::new(|| NUMBER_WORDS.iter().copied().collect());
static PAST_FORM: Words = LazyLock::new(|| PAST_FORMS.iter().copied().collect());
static IRREGULAR_BASE: LazyLock<FxHashMap<&'static str, &'static str>> =
    LazyLock::new(|| IRREGULAR.iter().copied().collect());
static NUMBER_OF: LazyLock<FxHashMap<&'static str, &'static str>> =
    LazyLock::new(|| NUMBER_VALUES.iter().copied().collect());
static MARKER_OF: LazyLock<FxHashMap<&'static str, &'static str>> =
    LazyLock::new(|| MARKER_ALIAS.iter().copied().collect());

/// The languages written in Latin letters whose function words (NLTK's lists) mark a text as
/// not English.
const OTHER_LANGUAGES: [&str; 16] = [
    "es", "fr", "de", "pt", "it", "nl", "sv", "da", "no", "fi", "ro", "tr", "hu", "id", "sl", "az",
];

/// Function words, each mapped to the languages it is one of, as bits: [`ENGLISH`] for the
/// guard's own list and NLTK's English one, else bit `i` for [`OTHER_LANGUAGES`]`[i]`. A word
/// English shares with another language ("a", "me", "on") is English only. One lookup a word
/// tells them apart.
static FUNCTION_WORD: LazyLock<FxHashMap<&'static str, u32>> = LazyLock::new(|| {
    let mut words: FxHashMap<&'static str, u32> = FxHashMap::default();
    words.extend(
        STOPWORDS
            .iter()
            .chain(stop_words::get("en"))
            .map(|w| (*w, ENGLISH)),
    );
    for (i, language) in OTHER_LANGUAGES.iter().enumerate() {
        for w in stop_words::get(language) {
            let languages = words.entry(*w).or_insert(0);
            if *languages != ENGLISH {
                *languages |= 1 << i;
            }
        }
    }
    words
});

/// The bit of [`FUNCTION_WORD`] that marks an English function word.
const ENGLISH: u32 = 1 << 31;

/// The (source, destination) pairs of one sentence: "from S ... to D" (either order) pairs S with
/// each destination; otherwise a destination's source is the content word before its "to".
fn directions(
    source: Option<u64>,
    destinations: &mut Vec<(Option<u64>, u64)>,
) -> impl Iterator<Item = (u64, u64)> {
    destinations
        .drain(..)
        .filter_map(move |(before, to)| Some((source.or(before)?, to)))
        .filter(|(from, to)| from != to)
        .collect::<Vec<_>>()
        .into_iter()
}

/// Whether `text` is written in another language than English: mostly in another script than
/// the Latin one, or with at least two words that are another language's function words or
/// carry accented letters, and more of them than English function words. Of the 82,552
/// distinct questions of `../shared/data/` (English), 16 read as foreign, most of them about
/// a word of another script ("What does εἶμεν mean?"); those are only ever served by the exact
/// tier.
fn foreign(text: &str, lower: &str) -> bool {
    let ascii = text.is_ascii();
    if !ascii {
        let (mut letters, mut other_script) = (0usize, 0usize);
        for c in text.chars().filter(|c| c.is_alphabetic()) {
            letters += 1;
            let latin = c.is_ascii_alphabetic()
                || ('\u{00C0}'..='\u{024F}').contains(&c)
                || ('\u{1E00}'..='\u{1EFF}').contains(&c);
            other_script += usize::from(!latin);
        }
        if other_script * 4 > letters {
            return true;
        }
    }
    // Function words of each other language, and words with accented letters (any of them).
    let (mut english, mut accented) = (0usize, 0usize);
    let mut other = [0usize; OTHER_LANGUAGES.len()];
    for raw in lower.split_whitespace() {
        let word = raw.trim_matches(|c: char| !c.is_alphanumeric());
        match FUNCTION_WORD.get(word) {
            Some(&ENGLISH) => english += 1,
            Some(&languages) => {
                for (i, count) in other.iter_mut().enumerate() {
                    *count += usize::from(languages & (1 << i) != 0);
                }
            }
            None if !ascii && word.chars().any(|c| c.is_alphabetic() && !c.is_ascii()) => {
                accented += 1;
            }
            None => {}
        }
    }
    // One language's words: English words that happen to be function words of three different
    // languages ("When did World War II end?": German "war", Romanian "ii", Danish "end") are
    // no foreign text.
    let other = other.into_iter().max().unwrap_or(0) + accented;
    other >= 2 && other > english
}

/// Why the guard refused a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Veto {
    Numbers,
    Quoted,
    Code,
    Entities,
    Negation,
    Markers,
    Asks,
    Pronouns,
    Roles,
    Content,
    /// The same two things in the other direction: "Fahrenheit to Celsius" / "Celsius to
    /// Fahrenheit", "from MySQL to PostgreSQL" / "from PostgreSQL to MySQL".
    Direction,
    /// Either question is not in English, the only language the guard reads.
    Language,
    /// Other operators between the same operands: "5 - 3" / "5 * 3", "a == b" / "a != b".
    Operators,
    /// One asks for the opposite operation or extreme of the other, in other words around it:
    /// "How do I encrypt a file with openssl?" / "What is the way to decrypt a file using
    /// openssl?", "upload" / "download", "ascending" / "descending".
    Opposite,
}

impl Veto {
    pub fn as_str(self) -> &'static str {
        match self {
            Veto::Numbers => "numbers",
            Veto::Quoted => "quoted",
            Veto::Code => "code",
            Veto::Entities => "entities",
            Veto::Negation => "negation",
            Veto::Markers => "markers",
            Veto::Asks => "asks",
            Veto::Pronouns => "pronouns",
            Veto::Roles => "roles",
            Veto::Content => "content",
            Veto::Direction => "direction",
            Veto::Language => "language",
            Veto::Operators => "operators",
            Veto::Opposite => "opposite",
        }
    }
}

/// How much above the serving threshold the embedding must place two questions for the guard
/// to leave a reworded question's changed content words to it (see [`Closeness`]).
pub const CLOSE_MARGIN: f32 = 0.10;

/// How much above the threshold the embedding must place two questions for the guard to leave
/// one or two changed content words to it in a question whose words were merely moved around
/// them (another order, few other words), so long as no changed word kept its place in the
/// frame (0.95 by default: see [`Closeness::VeryClose`]).
pub const VERY_CLOSE_MARGIN: f32 = 0.15;

/// How similar the embedding found the two questions, which decides one rule of the guard: one
/// or two changed content words in an otherwise identical question always veto, but in a
/// question that is also reworded (other function words, another order) they are part of the
/// rewording, and are left to the similarity when it is high.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closeness {
    /// At or above the serving threshold.
    Similar,
    /// At least [`CLOSE_MARGIN`] above it.
    Close,
    /// At least [`VERY_CLOSE_MARGIN`] above it.
    VeryClose,
}

impl Closeness {
    pub fn of(similarity: f32, threshold: f32) -> Self {
        if similarity >= threshold + VERY_CLOSE_MARGIN {
            Closeness::VeryClose
        } else if similarity >= threshold + CLOSE_MARGIN {
            Closeness::Close
        } else {
            Closeness::Similar
        }
    }
}

/// Checks whether a cached answer to `cached` may answer `asked`.
pub fn check(asked: &str, cached: &str, closeness: Closeness) -> Result<(), Veto> {
    check_analysed(&Analysis::of(asked), &Analysis::of(cached), closeness)
}

/// [`check`] on questions already analysed, so that one question compared with several
/// candidates is analysed once.
pub fn check_analysed(a: &Analysis, b: &Analysis, closeness: Closeness) -> Result<(), Veto> {
    // Every rule below reads English (its function words, negations, markers, pronouns). In
    // another language its articles and prepositions count as content words, so two questions
    // differ in "more than two content words" and look reworded ("¿Cuántos días tiene una
    // semana?" / "...un mes?" was served), and the default model is English-only too.
    if a.foreign || b.foreign {
        return Err(Veto::Language);
    }
    if a.numbers != b.numbers || a.counts_otherwise(b) {
        return Err(Veto::Numbers);
    }
    // The same operators in another order compare the same things in a symmetric question
    // ("the difference between == and ===" / "...between === and ==").
    if a.operators != b.operators
        && !((a.symmetric || b.symmetric) && same_words(&a.operators, &b.operators))
    {
        return Err(Veto::Operators);
    }
    if a.quoted != b.quoted {
        return Err(Veto::Quoted);
    }
    if !a.code_found_in(b) || !b.code_found_in(a) {
        return Err(Veto::Code);
    }
    if !a.entities_found_in(b) || !b.entities_found_in(a) {
        return Err(Veto::Entities);
    }
    // Antonym prefixes count as negations when the other text has the stem ("invisible" vs
    // "not ... visible").
    let (a_content, a_prefixed) = a.content_with_stems(b);
    let (b_content, b_prefixed) = b.content_with_stems(a);
    if (a.negations + a_prefixed) % 2 != (b.negations + b_prefixed) % 2 {
        return Err(Veto::Negation);
    }
    if a.markers != b.markers {
        return Err(Veto::Markers);
    }
    // "Who won the World Cup?" / "Who will win the World Cup?" (0.90 to the embedding). The
    // present answers for either ("What happens if..." / "What will happen if...").
    if (a.future && !b.future && b.past) || (b.future && !a.future && a.past) {
        return Err(Veto::Markers);
    }
    // In one short request: a passage that tells of several steps in other words takes other
    // verbs for them ("generate the dataset" / "fabricate the dataset").
    let one_action = |x: &Analysis| x.actions.count_ones() == 1 && x.tokens.len() <= ACTION_WORDS;
    if a.opposes(b) || (one_action(a) && one_action(b) && a.actions != b.actions) {
        return Err(Veto::Opposite);
    }
    // The same numbers in another order ("5 minus 3" / "3 minus 5", "2 to the power of 10" /
    // "10 to the power of 2") ask another question, unless the question offers a choice
    // between them.
    if a.number_order != b.number_order && !(a.choice || b.choice) {
        return Err(Veto::Numbers);
    }
    if !(a.symmetric || b.symmetric) && a.reverses(b) {
        return Err(Veto::Direction);
    }
    if a.asks != b.asks {
        return Err(Veto::Asks);
    }
    // Whether to do something against how to do it, what it is made of or for against how; a
    // text that asks both ("Should I...? How would...?") answers either.
    if ask_differently(a.openings, b.openings) {
        return Err(Veto::Asks);
    }
    if a.pronouns != b.pronouns {
        return Err(Veto::Pronouns);
    }
    let only_a = a_content.difference(&b_content).count();
    let only_b = b_content.difference(&a_content).count();
    // One or two content words changed or added in an otherwise identical question is a
    // different question ("fish" / "dog", "an actor" / "a bad actor", "hurt my neck" / "hurt my
    // wrist"), however long the rest. A larger difference is a rephrasing: the similarity
    // threshold judges it. So is a question reworded around the changed words ("doesn't exist
    // in" / "is not a feature of"), when the embedding puts the two close.
    let changed = only_a + only_b;
    // When the embedding puts the two very close, moving the words around the changed ones is
    // rewording enough ("Serialized datasets can be saved to cloud storage using X." / "X can
    // be used to store serialized datasets in cloud storage.", 0.97), unless a changed word
    // kept its place.
    let moved = || {
        closeness == Closeness::VeryClose
            && a.tokens.len().saturating_mul(b.tokens.len()) <= ALIGNMENT_LIMIT
            && edit_distance(&a.tokens, &b.tokens) > changed + TEMPLATE_EDIT_SLACK
            && !swapped_in_place(a, b, &a_content, &b_content)
    };
    if (1..=2).contains(&changed)
        && !(closeness != Closeness::Similar && reworded(a, b, changed))
        && !moved()
    {
        return Err(Veto::Content);
    }
    // One short phrase put in place of another in an otherwise identical question names
    // another thing, however many words it takes ("matches an email address" / "matches a
    // phone number", 0.81 to the embedding).
    if changed > 2 && only_a > 0 && only_b > 0 && a.substitutes_a_phrase(b) {
        return Err(Veto::Content);
    }
    // Two words exchanged in one frame, every other word in place: "Is a square a rectangle?" /
    // "Is a rectangle a square?", "Does the moon orbit the earth?" / "Does the earth orbit the
    // moon?" (1.0 to the embedding). With names, the reading of agents below judges too.
    if changed == 0 && !(a.symmetric || b.symmetric || a.choice || b.choice) && a.exchanges(b) {
        return Err(Veto::Roles);
    }
    // The same words, the speaker acted on in one and acting in the other: "What should I do
    // if my dog bites me?" / "What should I do if I bite my dog?" (0.95).
    let acted_on =
        |x: &Analysis, y: &Analysis| x.speaker_object && !y.speaker_object && y.speaker_subject;
    if changed == 0 && (acted_on(a, b) || acted_on(b, a)) {
        return Err(Veto::Roles);
    }
    // Two texts that share a long passage word for word (a document, then a question about
    // it) are as similar as the passage makes them, whatever the rest asks: the similarity
    // cannot judge the rest, so any changed content word there is another question.
    if changed > 0 && shares_a_passage(&a.tokens, &b.tokens) {
        return Err(Veto::Content);
    }
    // The same words in another order: is it still the same participant doing the thing?
    // (Only then is the simple agent reading reliable.)
    if only_a + only_b == 0
        && (a.role_sensitive() || b.role_sensitive())
        && !(a.symmetric || b.symmetric || a.choice || b.choice)
        && a.agent() != b.agent()
        && !(a.possession.is_some() && a.possession == b.possession)
    {
        return Err(Veto::Roles);
    }
    Ok(())
}

/// Function words, auxiliaries and fillers: none of them changes what is asked.
#[rustfmt::skip]
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "this", "that", "these", "those", "is", "are", "was", "were", "be", "been",
    "being", "am", "do", "does", "did", "doing", "done", "have", "has", "had", "having", "can",
    "could", "should", "would", "will", "shall", "may", "might", "must", "what", "which", "who",
    "whom", "whose", "when", "where", "why", "how", "i", "me", "my", "you", "your", "we", "our",
    "us", "it", "its", "to", "of", "in", "on", "at", "for", "from", "with", "about", "as", "by",
    "into", "onto", "than", "then", "so", "and", "or", "but", "if", "whether", "there", "here",
    "some", "any", "please", "tell", "explain", "know", "let", "get", "way", "ways", "thing",
    "things", "really", "truly", "actually", "very", "just", "simply", "basically", "exactly",
    "indeed", "certainly", "according", "order", "possible", "one", "someone", "somebody",
    "anyone", "anybody", "also", "too", "else", "other", "s", "t", "d", "ll", "re", "ve", "m",
    "o", "yes", "currently", "fact", "honestly", "definitely", "literally", "seriously",
    "genuinely", "somehow", "ever", "think", "thinks", "thinking", "thought", "want", "wants",
    "wanted", "wanting", "need", "needs", "needed", "needing", "wish", "wishes", "wished",
    "wishing", "knows", "knowing", "knew", "known", "gets", "getting", "got", "gotten", "tells",
    "telling", "told", "lets", "letting", "between", "among", "vs", "versus", "wonder",
    "wondering", "wondered", "u", "pls", "plz", "located", "situated",
];

/// Verbs that follow an interrogative "when", "where" or "why" (not a conditional "when").
#[rustfmt::skip]
const AUXILIARIES: &[&str] = &[
    "is", "are", "was", "were", "am", "be", "do", "does", "did", "can", "could", "should",
    "would", "will", "shall", "may", "might", "must", "has", "have", "had",
];

/// Words whose presence, count and kind change the question's meaning in time or order.
#[rustfmt::skip]
const MARKERS: &[&str] = &[
    "before", "after", "since", "until", "till", "prior", "earlier", "later", "first", "last",
    "previous", "next", "older", "younger", "more", "most", "least", "worse", "better", "best",
    "worst", "past", "future", "ago", "simultaneously",
];

/// Other words for an order marker.
#[rustfmt::skip]
const MARKER_ALIAS: &[(&str, &str)] = &[
    ("preceding", "previous"), ("prior", "before"), ("beforehand", "before"),
    ("afterwards", "after"), ("afterward", "after"), ("initial", "first"),
    ("initially", "first"), ("firstly", "first"), ("subsequent", "next"),
    ("subsequently", "later"), ("greater", "more"),
];

#[rustfmt::skip]
const NEGATIONS: &[&str] = &[
    "not", "no", "never", "cannot", "nobody", "nothing", "nowhere", "neither", "nor", "none",
    "without", "non", "absence", "absent", "lack", "lacks", "lacking", "omit", "omits",
    "omitting", "omitted", "avoid", "avoids", "avoiding", "prevent", "prevents", "preventing",
];

/// Gendered third-person pronouns: swapping them swaps who did what ("he would reject her").
/// Plural ones (they, them) are left to the similarity: rephrasings move them freely.
#[rustfmt::skip]
const PRONOUNS: &[&str] = &[
    "he", "him", "his", "himself", "she", "her", "hers", "herself",
];

/// Irregular past forms, mapped to the base form so an active question and its passive agree.
#[rustfmt::skip]
const IRREGULAR: &[(&str, &str)] = &[
    ("bought", "buy"), ("sold", "sell"), ("lost", "lose"), ("made", "make"), ("built", "build"),
    ("won", "win"), ("found", "find"), ("held", "hold"), ("left", "leave"), ("kept", "keep"),
    ("told", "tell"), ("paid", "pay"), ("sent", "send"), ("brought", "bring"),
    ("caught", "catch"), ("thought", "think"), ("written", "write"), ("wrote", "write"),
    ("seen", "see"), ("saw", "see"), ("eaten", "eat"), ("ate", "eat"), ("given", "give"),
    ("gave", "give"), ("known", "know"), ("knew", "know"), ("beaten", "beat"),
    ("chosen", "choose"), ("chose", "choose"), ("driven", "drive"), ("drove", "drive"),
    ("forgotten", "forget"), ("hidden", "hide"), ("stolen", "steal"), ("stole", "steal"),
    ("spoken", "speak"), ("spoke", "speak"), ("broken", "break"), ("broke", "break"),
    ("led", "lead"), ("fed", "feed"), ("understood", "understand"), ("taught", "teach"),
    ("fought", "fight"), ("sought", "seek"), ("felt", "feel"), ("heard", "hear"),
    ("meant", "mean"), ("struck", "strike"), ("shot", "shoot"), ("drawn", "draw"),
    ("drew", "draw"), ("thrown", "throw"), ("threw", "throw"), ("grown", "grow"),
    ("grew", "grow"), ("flown", "fly"), ("flew", "fly"), ("worn", "wear"), ("wore", "wear"),
    ("torn", "tear"), ("bitten", "bite"), ("bit", "bite"), ("ridden", "ride"), ("rode", "ride"),
    ("took", "take"), ("taken", "take"), ("done", "do"), ("gone", "go"), ("went", "go"),
    ("ran", "run"), ("began", "begin"), ("begun", "begin"), ("sang", "sing"), ("sung", "sing"),
    ("fallen", "fall"), ("frozen", "freeze"), ("woken", "wake"), ("shaken", "shake"),
    ("proven", "prove"), ("shown", "show"), ("sworn", "swear"), ("blown", "blow"),
];

/// Predicates under which the two participants can trade places.
#[rustfmt::skip]
const SYMMETRIC: &[&str] = &[
    "married", "marry", "related", "relatives", "siblings", "sibling", "friends", "friend",
    "cousins", "cousin", "dating", "date", "partners", "partner", "similar", "same", "equal",
    "different", "differ", "difference", "compatible", "connected", "together", "versus", "vs",
    "between", "compare", "compared", "comparison", "neighbors", "neighbours", "colleagues",
    "engaged", "divorced", "met", "meet", "close", "acquaintance", "acquaintances", "acquainted",
    "alike", "far", "distance",
];

/// Simple past forms of irregular verbs that are no other word (not "saw", "rose", "left"), and
/// of a few regular ones that are seldom adjectives.
#[rustfmt::skip]
const PAST_FORMS: &[&str] = &[
    "won", "went", "ate", "began", "came", "wrote", "gave", "took", "ran", "knew", "became",
    "broke", "bought", "caught", "chose", "drew", "drank", "drove", "fell", "fought", "flew",
    "forgot", "grew", "heard", "held", "kept", "lost", "met", "paid", "rode", "said", "sold",
    "sent", "sang", "sat", "slept", "spoke", "spent", "stood", "stole", "swam", "taught", "threw",
    "told", "understood", "woke", "wore", "died", "tried", "found", "built", "invented",
    "happened", "started", "ended", "occurred", "discovered",
];

#[rustfmt::skip]
const NUMBER_WORDS: &[&str] = &[
    "zero", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    "hundred", "thousand", "million", "billion", "trillion", "half", "third", "quarter", "dozen",
    "second", "fourth", "fifth", "tenth", "hundredth", "twice", "hundreds", "thousands",
    "millions", "billions", "dozens", "sixth", "seventh", "eighth", "ninth", "eleventh",
    "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth",
    "nineteenth", "twentieth",
];

/// The words of the ordinals 1st to 20th: "1st" is "first" (an order marker), "2nd" is
/// "second" (a number word, as "third" and the rest are).
#[rustfmt::skip]
const ORDINALS: [&str; 20] = [
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
    "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth",
    "seventeenth", "eighteenth", "nineteenth", "twentieth",
];

/// Other spellings of a language, tool or place name, read as the name ("JS" / "JavaScript",
/// "Node.js" / "NodeJS", "k8s" / "Kubernetes", "Mt. Everest" / "Mount Everest"), and short forms
/// programmers type ("dict", "str", "repo", "db", "config"): case-blind when `false`; when
/// `true`, an abbreviation, in capitals as written ("mt" is a unit, "Mt" a mountain).
#[rustfmt::skip]
const SPELLINGS: &[(&str, &str, bool)] = &[
    ("js", "javascript", false), ("node.js", "nodejs", false), ("next.js", "nextjs", false),
    ("vue.js", "vue", false), ("vuejs", "vue", false), ("k8s", "kubernetes", false),
    ("postgres", "postgresql", false), ("mongo", "mongodb", false), ("ww1", "World War 1", false),
    ("ww2", "World War 2", false), ("wwi", "World War I", false), ("wwii", "World War II", false),
    ("Mt", "Mount", true), ("Ft", "Fort", true), ("dict", "dictionary", false),
    ("str", "string", false), ("int", "integer", false), ("func", "function", false),
    ("args", "arguments", false), ("repo", "repository", false), ("db", "database", false),
    ("lib", "library", false), ("docs", "documentation", false), ("img", "image", false),
    ("msg", "message", false), ("config", "configuration", false), ("e-mail", "email", false),
    ("sqrt", "square root", false), ("venv", "virtual environment", false),
    ("tv", "television", false), ("wi-fi", "wifi", false),
];

/// Number words that name one number, written as digits ("two" / "2", "a hundred" / "100").
/// Compounds stay apart ("twenty five" is 20 and 5, not 25: a miss, never a wrong answer).
#[rustfmt::skip]
const NUMBER_VALUES: &[(&str, &str)] = &[
    ("zero", "0"), ("two", "2"), ("three", "3"), ("four", "4"), ("five", "5"), ("six", "6"),
    ("seven", "7"), ("eight", "8"), ("nine", "9"), ("ten", "10"), ("eleven", "11"),
    ("twelve", "12"), ("thirteen", "13"), ("fourteen", "14"), ("fifteen", "15"),
    ("sixteen", "16"), ("seventeen", "17"), ("eighteen", "18"), ("nineteen", "19"),
    ("twenty", "20"), ("thirty", "30"), ("forty", "40"), ("fifty", "50"), ("sixty", "60"),
    ("seventy", "70"), ("eighty", "80"), ("ninety", "90"), ("hundred", "100"),
    ("thousand", "1000"), ("million", "1000000"), ("billion", "1000000000"),
    ("trillion", "1000000000000"), ("dozen", "12"),
];

/// Names of languages, tools and platforms that people type in lower case ("how do i read a file
/// in rust" / "...in golang"): names wherever they stand. Those that are also common words
/// ("go", "react", "express", "spring", "node", "swift", "excel") are left to capitals.
#[rustfmt::skip]
const TOOL_NAMES: &[&str] = &[
    "python", "java", "javascript", "typescript", "rust", "golang", "kotlin", "ruby", "php",
    "perl", "haskell", "scala", "elixir", "erlang", "clojure", "lua", "julia", "matlab",
    "fortran", "cobol", "bash", "zsh", "powershell", "sql", "mysql", "postgresql", "postgres",
    "sqlite", "mongodb", "redis", "cassandra", "elasticsearch", "kafka", "rabbitmq", "angular",
    "vue", "svelte", "django", "flask", "fastapi", "rails", "laravel", "nextjs", "nodejs",
    "deno", "npm", "yarn", "pip", "conda", "docker", "kubernetes", "terraform", "ansible",
    "git", "github", "gitlab", "aws", "azure", "gcp", "linux", "ubuntu", "debian", "fedora",
    "centos", "windows", "macos", "ios", "android", "numpy", "pandas", "pytorch", "tensorflow",
    "keras", "jquery", "html", "css", "json", "yaml", "xml", "csv", "vim", "emacs", "vscode",
    "firefox", "nginx", "iphone", "ipad",
];

/// Words for opposite operations, directions and extremes: a question with a word of one side
/// and none of the other asks something else than one with the other side only. A paraphrase
/// keeps its side ("remove" / "delete"); antonyms by prefix ("install" / "uninstall",
/// "connect" / "disconnect") are negations (see [`NEGATIVE_PREFIXES`]). Words with a common
/// other sense are left out ("right" as correct, "fall" the season, "fast" / "slow": "Why is my
/// laptop slow?" asks how to make it fast).
#[rustfmt::skip]
const OPPOSITES: &[(&[&str], &[&str])] = &[
    (&["encrypt", "encryption", "encipher"], &["decrypt", "decryption", "decipher"]),
    (&["encode", "encoding", "encoder"], &["decode", "decoding", "decoder"]),
    (&["compress", "compression"], &["decompress", "decompression", "extract", "uncompress"]),
    (&["serialize", "serialization"], &["deserialize", "deserialization"]),
    (&["upload"], &["download"]),
    (&["upgrade"], &["downgrade"]),
    (&["upstream"], &["downstream"]),
    (&["enable", "activate"], &["disable", "deactivate"]),
    (&["push"], &["pull"]),
    (&["import"], &["export"]),
    (&["inbound", "incoming"], &["outbound", "outgoing"]),
    (&["input"], &["output"]),
    (&["increase", "increment"], &["decrease", "decrement", "reduce"]),
    (&["maximize", "maximise"], &["minimize", "minimise"]),
    (&["largest", "biggest", "maximum", "max", "highest"], &["smallest", "minimum", "min", "lowest"]),
    (&["ascending"], &["descending"]),
    (&["uppercase", "upper"], &["lowercase", "lower"]),
    (&["start", "begin"], &["stop", "halt"]),
    (&["add", "insert", "append"], &["remove", "delete"]),
    (&["open"], &["close"]),
    (&["show", "unhide"], &["hide"]),
    (&["advantage", "benefit", "pro"], &["drawback", "downside", "con"]),
    (&["login", "signin"], &["logout", "signout"]),
    (&["buy", "purchase"], &["sell"]),
    // "speed up" / "slow down", "scroll up" / "scroll down", "Is GitHub up?" / "...down?".
    (&["up"], &["down"]),
    (&["win", "gain"], &["lose"]),
    (&["send"], &["receive"]),
    (&["read"], &["write"]),
    (&["merge", "combine"], &["split"]),
    (&["charge"], &["drain"]),
    (&["positive"], &["negative"]),
    (&["true"], &["false"]),
    (&["succeed", "success", "successful"], &["fail", "failure"]),
    (&["accept"], &["reject"]),
    (&["allow", "permit", "whitelist", "allowlist"], &["block", "deny", "forbid", "blacklist", "blocklist"]),
    (&["include"], &["exclude"]),
    (&["attach"], &["detach"]),
    (&["expand"], &["collapse"]),
    (&["forward", "forwards"], &["backward", "backwards"]),
    (&["inner"], &["outer"]),
    (&["internal"], &["external"]),
    (&["public"], &["private"]),
    (&["horizontal", "horizontally"], &["vertical", "vertically"]),
    (&["row"], &["column"]),
    (&["width"], &["height"]),
    (&["client"], &["server"]),
    (&["local"], &["remote", "global"]),
    (&["synchronous", "sync", "synchronously"], &["asynchronous", "async", "asynchronously"]),
    (&["static"], &["dynamic"]),
    (&["hot", "warm"], &["cold"]),
    (&["high"], &["low"]),
    (&["man", "men", "male", "boy", "boys"], &["woman", "women", "female", "girl", "girls"]),
    (&["all", "every", "always"], &["some", "sometimes"]),
];

/// What a question asks to do to a thing, read from its verbs: find or show it, create it,
/// change it, delete it. A question that asks for one of these only and another that asks for
/// another only ask for different things, however reworded ("How do I kill a process on port
/// 8080?" / "How do I find which process is using port 8080?", 0.87 to the embedding). Verbs
/// of another sense too ("make", "get", "set", "write", "list" as a noun, "check" as in "check
/// the hash", computing it) are left out.
#[rustfmt::skip]
const ACTIONS: &[&[&str]] = &[
    &["find", "locate", "identify", "show", "display", "view", "see", "inspect", "detect",
      "lookup"],
    &["create", "add", "generate", "insert", "append", "build", "initialize", "initialise"],
    &["change", "modify", "edit", "update", "rename", "alter", "adjust"],
    &["delete", "remove", "kill", "terminate", "erase", "drop", "purge", "destroy", "wipe",
      "clear", "uninstall", "discard", "eliminate"],
];

/// The longest text (in words) whose [`ACTIONS`] are compared.
const ACTION_WORDS: usize = 20;

/// Each stem of [`ACTIONS`] with its action's bit.
static ACTION: LazyLock<FxHashMap<String, u8>> = LazyLock::new(|| {
    (0u8..)
        .zip(ACTIONS)
        .flat_map(|(i, verbs)| verbs.iter().map(move |v| (stem(v), 1 << i)))
        .collect()
});

/// The words of [`OPPOSITES`] with their sides (the pair times two, plus one for the second).
fn opposite_sides() -> impl Iterator<Item = (&'static str, u32)> {
    (0u32..).zip(OPPOSITES).flat_map(|(pair, (one, other))| {
        let one = one.iter().map(move |w| (*w, pair * 2));
        let other = other.iter().map(move |w| (*w, pair * 2 + 1));
        one.chain(other)
    })
}

/// Each stem of [`OPPOSITES`] (read on content words: "pulls") with its side.
static OPPOSITE: LazyLock<FxHashMap<String, u32>> =
    LazyLock::new(|| opposite_sides().map(|(w, side)| (stem(w), side)).collect());

/// Each word of [`OPPOSITES`] as written, hashed like a token (read on every word, function
/// words too: "all" / "some").
static OPPOSITE_TOKEN: LazyLock<FxHashMap<u64, u32>> = LazyLock::new(|| {
    opposite_sides()
        .map(|(w, side)| (token_hash(w), side))
        .collect()
});

#[rustfmt::skip]
const NEGATIVE_PREFIXES: &[&str] = &[
    "un", "in", "im", "il", "ir", "dis", "non",
];

/// What the guard reads in one question (see [`Analysis::of`]). Stored questions keep theirs
/// for as long as they are cached, so it is held compactly: sorted boxed slices, not B-trees.
#[derive(Debug, Default, Clone)]
pub struct Analysis {
    /// Lower-cased words in order.
    words: Box<[Box<str>]>,
    /// Every lower-cased word in order, function words included, hashed (only compared).
    tokens: Box<[u64]>,
    numbers: Counts,
    quoted: WordSet,
    code: WordSet,
    code_lower: WordSet,
    /// The whole text, lower-cased.
    raw_lower: Box<str>,
    /// Capitalised words that are not sentence-initial function words, lower-cased.
    entities: WordSet,
    /// How many different names the entities make: a run of capitalised words ("Google Cloud
    /// Storage") or one identifier ("REUSE_DATASET_IF_EXISTS") is one, and so is the same name
    /// written twice.
    names: usize,
    /// Entities written in capitals of two to six letters ("ML", "NLP"), lower-cased: names
    /// another text may spell out ("Machine Learning").
    acronyms: WordSet,
    negations: usize,
    markers: Counts,
    pronouns: Box<[Box<str>]>,
    /// Lower-cased content words (stems), before antonym-prefix handling.
    content: WordSet,
    /// A passive construction: the agent follows "by".
    passive_agent: Option<Box<str>>,
    /// The first content word: the agent of an active question.
    first_content: Option<Box<str>>,
    /// The first content word with its owner, when the question opens on one, hashed: "Tesla's
    /// CEO" and "the CEO of Tesla" are ("ceo", "tesla").
    possession: Option<(u64, u64)>,
    symmetric: bool,
    choice: bool,
    /// "A is X-er than B": which side comes first decides the answer.
    comparative: bool,
    /// What a question opening with "where", "when", "why", "who" or "how many" asks for.
    asks: Option<Asks>,
    /// "Me" or "us" as an object (not after a preposition or a request: "to me", "show me"),
    /// and "I" or "we" anywhere: in "my dog bites me" the speaker is bitten, in "I bite my
    /// dog" the speaker bites.
    speaker_object: bool,
    speaker_subject: bool,
    /// How its openings ask, one bit each: a sentence opening with "Should" (whether to do
    /// something), with "How" and an auxiliary or "to" (how to do it), with "How" and "be",
    /// and a "What ... of?" question (see [`WHETHER`] and [`ask_differently`]).
    openings: u8,
    /// Written in another language than English (see [`foreign`]).
    foreign: bool,
    /// The numbers in the order written, hashed.
    number_order: Box<[u64]>,
    /// Asks about the future ("will", "shall").
    future: bool,
    /// Asks about the past ("did", "was", a past form of a verb).
    past: bool,
    /// What each number counts: the number hashed and the content word right after it, sorted;
    /// "how many X" counts X as "many". "5 km in miles" / "5 miles in km" have the same words.
    quantities: Box<[(u64, Box<str>)]>,
    /// The operators between operands, in the order written, one space between (see
    /// [`operators`]).
    operators: Box<str>,
    /// What goes where: (source, destination) content words of "X to Y", "X into Y" and
    /// "from X ... to Y", hashed.
    directions: Box<[(u64, u64)]>,
    /// The sides of [`OPPOSITES`] its content words take, sorted.
    opposites: Box<[u32]>,
    /// The [`ACTIONS`] its content words ask for, one bit each.
    actions: u8,
}

/// A sentence opens with "Should": "Should I jailbreak my iPhone?" asks whether to, for reasons
/// and risks, where "How do I jailbreak my iPhone?" asks for the steps (see
/// [`Analysis::openings`]).
const WHETHER: u8 = 1;
/// A sentence opens with "How" and an auxiliary other than "be", or "to" ("How do I...", "How
/// to...").
const HOW: u8 = 2;
/// A sentence opens with "How" and a form of "be" ("How is cocaine made?").
const HOW_BE: u8 = 4;
/// A question opens with "What" or "Which" and ends on a preposition ("What is cocaine made
/// of?", "What do birds build their nests with?", "What is money for?"): it asks for that
/// preposition's object, a material, a tool, a purpose, where "How..." asks for a manner.
const WHAT_PREPOSITION: u8 = 8;

/// Whether two questions' openings ask different things (see [`Analysis::openings`]):
/// whether to do something against how to do it, or what with, of or for against how. Only
/// between texts that each ask one of these.
fn ask_differently(a: u8, b: u8) -> bool {
    matches!(
        (a, b),
        (WHETHER, HOW)
            | (HOW, WHETHER)
            | (WHAT_PREPOSITION, HOW | HOW_BE)
            | (HOW | HOW_BE, WHAT_PREPOSITION)
    )
}

/// Words after which "me" or "us" is no one acted on: a preposition ("Explain recursion to
/// me", "Is it safe for me to...") or a request to the assistant ("Show me how to...").
static BEFORE_INDIRECT_OBJECT: LazyLock<FxHashSet<u64>> = LazyLock::new(|| {
    [
        "to", "for", "with", "of", "about", "from", "by", "at", "on", "in", "like", "than",
        "without", "show", "give", "help", "teach", "tell", "let",
    ]
    .into_iter()
    .map(token_hash)
    .collect()
});

/// What a question asks for, where its opening word says so. "What", "how", "which" and yes/no
/// questions are left open: paraphrases trade them freely ("How do I..." / "What is the way
/// to...").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asks {
    Place,
    Time,
    Reason,
    Person,
    Quantity,
}

/// A sorted set of words, fixed once read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct WordSet(Box<[Box<str>]>);

impl WordSet {
    fn contains(&self, word: &str) -> bool {
        self.0.binary_search_by(|w| (**w).cmp(word)).is_ok()
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|w| &**w)
    }
}

impl From<BTreeSet<String>> for WordSet {
    fn from(set: BTreeSet<String>) -> Self {
        WordSet(set.into_iter().map(String::into_boxed_str).collect())
    }
}

/// Words with how often they occur, sorted.
type Counts = Box<[(Box<str>, usize)]>;

fn counts(map: BTreeMap<String, usize>) -> Counts {
    map.into_iter()
        .map(|(w, n)| (w.into_boxed_str(), n))
        .collect()
}

fn boxed(words: Vec<String>) -> Box<[Box<str>]> {
    words.into_iter().map(String::into_boxed_str).collect()
}

/// An [`Analysis`] being read, in growable collections.
#[derive(Debug, Default)]
struct Draft {
    words: Vec<String>,
    tokens: Vec<u64>,
    numbers: BTreeMap<String, usize>,
    quoted: BTreeSet<String>,
    code: BTreeSet<String>,
    code_lower: BTreeSet<String>,
    raw_lower: String,
    entities: BTreeSet<String>,
    /// The names read so far, each a run of entity words joined by spaces; the last is open
    /// while the text continues it.
    names: Vec<String>,
    acronyms: BTreeSet<String>,
    negations: usize,
    markers: BTreeMap<String, usize>,
    pronouns: Vec<String>,
    content: BTreeSet<String>,
    passive_agent: Option<String>,
    first_content: Option<String>,
    possession: Option<(u64, u64)>,
    symmetric: bool,
    choice: bool,
    comparative: bool,
    asks: Option<Asks>,
    openings: u8,
    speaker_object: bool,
    speaker_subject: bool,
    foreign: bool,
    number_order: Vec<u64>,
    future: bool,
    past: bool,
    quantities: Vec<(u64, String)>,
    operators: String,
    directions: Vec<(u64, u64)>,
}

impl Draft {
    fn freeze(self) -> Analysis {
        // Content words by their stems ("pulls"), and every word as written.
        let mut opposites: Vec<u32> = self
            .content
            .iter()
            .filter_map(|w| OPPOSITE.get(w.as_str()).copied())
            .chain(
                self.tokens
                    .iter()
                    .filter_map(|t| OPPOSITE_TOKEN.get(t).copied()),
            )
            .collect();
        opposites.sort_unstable();
        opposites.dedup();
        let opposites = opposites.into_boxed_slice();
        let actions = self
            .content
            .iter()
            .filter_map(|w| ACTION.get(w.as_str()))
            .fold(0, |all, bit| all | bit);
        Analysis {
            actions,
            words: boxed(self.words),
            tokens: self.tokens.into_boxed_slice(),
            numbers: counts(self.numbers),
            quoted: self.quoted.into(),
            code: self.code.into(),
            code_lower: self.code_lower.into(),
            raw_lower: self.raw_lower.into_boxed_str(),
            entities: self.entities.into(),
            names: {
                let mut names = self.names;
                names.sort_unstable();
                names.dedup();
                names.len()
            },
            acronyms: self.acronyms.into(),
            negations: self.negations,
            markers: counts(self.markers),
            pronouns: boxed(self.pronouns),
            passive_agent: self.passive_agent.map(String::into_boxed_str),
            first_content: self.first_content.map(String::into_boxed_str),
            possession: self.possession,
            symmetric: self.symmetric,
            choice: self.choice,
            comparative: self.comparative,
            asks: self.asks,
            openings: self.openings,
            speaker_object: self.speaker_object,
            speaker_subject: self.speaker_subject,
            foreign: self.foreign,
            number_order: self.number_order.into_boxed_slice(),
            future: self.future,
            past: self.past,
            quantities: {
                let mut q = self.quantities;
                q.sort_unstable();
                q.into_iter()
                    .map(|(n, w)| (n, w.into_boxed_str()))
                    .collect()
            },
            operators: self.operators.into_boxed_str(),
            directions: self.directions.into_boxed_slice(),
            opposites,
            content: self.content.into(),
        }
    }
}

impl Analysis {
    pub fn of(text: &str) -> Self {
        let text = plain_quotes(text);
        let text = degrees(&text);
        let text = sigiled_names(&text);
        let text = question(&text);
        let raw_lower = text.to_lowercase();
        let mut a = Draft {
            quoted: quoted_strings(text),
            operators: operators(text),
            foreign: foreign(text, &raw_lower),
            raw_lower,
            ..Draft::default()
        };
        let mut sentence_start = true;
        let mut saw_passive_aux = false;
        let mut after_by = false;
        let mut initial_how = false;
        let mut opening: Option<Asks> = None;
        // Whether the previous word was part of a name.
        let mut in_name = false;
        // Reading directions, within one sentence: the last content word, the source named
        // after "from", and the content word before each "to" or "into" whose destination is
        // still to come (`None` inside: no content word before it, as in "How to...").
        let mut last_content: Option<u64> = None;
        let mut after_from = false;
        let mut source: Option<u64> = None;
        let mut toward: Option<Option<u64>> = None;
        // The first content word of the noun phrase that ends on `last_content` ("a Word
        // document into a PDF" sends "word" and "document" to "pdf"), and that of the phrase
        // before the pending "to".
        let mut phrase_first: Option<u64> = None;
        let mut toward_first: Option<u64> = None;
        // How many destinations the last "to" added (its phrase's words, one or two).
        let mut last_destinations = 0;
        let mut destinations: Vec<(Option<u64>, u64)> = Vec::new();
        // The end named last (source or destination), while its noun phrase goes on: "to
        // degrees Celsius" goes to "celsius", not "degrees".
        let mut phrase: Option<End> = None;
        let mut after_content = false;
        // A number (or "many") whose noun may come next.
        let mut counting: Option<u64> = None;
        let shouted = shouted(text);
        let mut head = Head::Start;
        let mut raws = text.split_whitespace().peekable();
        while let Some(raw) = raws.next() {
            // "over 50k" is "more than 50k"; "under 18" is "less than 18".
            let before_number = raws
                .peek()
                .is_some_and(|next| next.starts_with(|c: char| c.is_ascii_digit()));
            let mut ends_sentence = raw.ends_with(['.', '?', '!', ':']);
            let token =
                raw.trim_matches(|c: char| !c.is_alphanumeric() && !"_/\\.-'$%".contains(c));
            let token = token.trim_end_matches(['.', '\'']).trim_start_matches('\'');
            if token.is_empty() {
                sentence_start = sentence_start || ends_sentence;
                continue;
            }
            let token = match respelled(token) {
                Some((name, abbreviation)) => {
                    // The dot of "Mt." ends no sentence: "Everest" after it is a name.
                    ends_sentence &= !abbreviation;
                    name
                }
                None => token,
            };
            if is_code(token) {
                a.code.insert(token.to_owned());
                a.code_lower.insert(token.to_lowercase());
            }
            for word in split_words(token)
                .flat_map(uncontracted)
                .flat_map(with_unit)
            {
                let word = &*undotted(word);
                let continues_name = std::mem::take(&mut in_name);
                let continues_phrase = std::mem::take(&mut after_content);
                let counted = counting.take();
                let lower = word.to_lowercase();
                let (lower, negated) = match lower.strip_suffix("n't") {
                    Some(stem) => (expand_contraction(stem).to_owned(), true),
                    None => (lower, false),
                };
                // "World War II" is "World War 2".
                let lower = roman_numeral(word).map_or(lower, |n| n.to_string());
                // "1st" is "first", "3rd" is "third".
                let lower = ordinal(&lower).map_or(lower, str::to_owned);
                // "No, ..." / "Yes, ..." opening a sentence answer a question; they negate
                // nothing in it.
                let particle = sentence_start && lower == "no" && raw.ends_with(',');
                // A question's opening word says what it asks for: "when", "where" and "why" only
                // with an auxiliary after them ("When is...?", not the conditional "When I
                // set..., will...?").
                if a.asks.is_none() {
                    if let Some(kind) = opening.take() {
                        if AUXILIARIES.contains(&lower.as_str()) {
                            a.asks = Some(kind);
                        }
                    } else if initial_how && matches!(lower.as_str(), "many" | "much") {
                        a.asks = Some(Asks::Quantity);
                    } else if sentence_start {
                        match lower.as_str() {
                            "where" => opening = Some(Asks::Place),
                            "when" => opening = Some(Asks::Time),
                            "why" => opening = Some(Asks::Reason),
                            "who" | "whom" | "whose" => a.asks = Some(Asks::Person),
                            _ => {}
                        }
                    }
                }
                initial_how = sentence_start && lower == "how";
                match lower.as_str() {
                    // Not "US" or "U.S.", the country.
                    "me" | "us"
                        if word.starts_with(char::is_lowercase)
                            && !a.tokens.last().is_some_and(|previous| {
                                BEFORE_INDIRECT_OBJECT.contains(previous)
                            }) =>
                    {
                        a.speaker_object = true;
                    }
                    "i" | "we" => a.speaker_subject = true,
                    _ => {}
                }
                if sentence_start && lower == "should" {
                    a.openings |= WHETHER;
                } else if initial_how && let Some(next) = raws.peek() {
                    let next = next
                        .trim_matches(|c: char| !c.is_alphanumeric())
                        .to_lowercase();
                    if matches!(next.as_str(), "is" | "are" | "was" | "were" | "am") {
                        a.openings |= HOW_BE;
                    } else if next == "to" || AUXILIARIES.contains(&next.as_str()) {
                        a.openings |= HOW;
                    }
                }
                a.tokens.push(token_hash(possessive_stem(&lower)));
                // Tense: "will" / "shall" ask about the future, "did", "was", "were" and past
                // forms of verbs about the past ("won", "happened"). Not any "-ed": "the
                // provided link will take you..." is no past.
                // "How many miles" counts miles, as "5 miles" does.
                match lower.as_str() {
                    "will" | "shall" => a.future = true,
                    "did" | "was" | "were" => a.past = true,
                    "many" | "much" => counting = Some(token_hash("many")),
                    w if PAST_FORM.contains(w) => a.past = true,
                    _ => {}
                }
                if (negated || NEGATION.contains(lower.as_str())) && !particle {
                    a.negations += 1;
                }
                if particle {
                    continue;
                }
                // List enumerators: "1)", "2)".
                if raw.ends_with(')')
                    && !raw.contains('(')
                    && lower.chars().all(|c| c.is_ascii_digit())
                {
                    continue;
                }
                if lower.chars().any(|c| c.is_ascii_digit()) || NUMBER_WORD.contains(lower.as_str())
                {
                    let n = lower.replace(',', "");
                    // "v2.10.0" is "version 2.10.0".
                    let n = match n.strip_prefix('v') {
                        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
                            rest.to_owned()
                        }
                        _ => n,
                    };
                    let n = match n.as_str() {
                        "hundreds" | "thousands" | "millions" | "billions" | "dozens" => {
                            n[..n.len() - 1].to_owned()
                        }
                        _ => n,
                    };
                    let n = NUMBER_OF
                        .get(n.as_str())
                        .map_or(n, |&digits| digits.to_owned());
                    // Quantities only: "S3" and "gpt-4" are names, which a rephrasing may move.
                    if n.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.') {
                        a.number_order.push(token_hash(&n));
                        counting = Some(token_hash(&n));
                    }
                    *a.numbers.entry(n).or_default() += 1;
                    // "10%" is "10 percent".
                    if raw.contains('%') {
                        a.content.insert(stem("percent"));
                        a.words.push("percent".to_owned());
                    }
                    sentence_start = false;
                    continue;
                }
                // In a text typed in capitals, capitals say nothing about names.
                let capitalised = !shouted && word.chars().next().is_some_and(char::is_uppercase);
                // A plainly capitalised first word of a sentence ("Afterwards", "Using") is
                // capitalised for the sentence's sake; a name there is still a content word,
                // and "PyTorch" or "JAX" keep their inner capitals wherever they stand.
                let plain_initial =
                    sentence_start && word.chars().skip(1).all(|c| !c.is_uppercase());
                if TOOL_NAME.contains(lower.as_str()) {
                    a.entities.insert(lower.clone());
                }
                if capitalised && !plain_initial && lower != "i" {
                    a.entities.insert(possessive_stem(&lower).to_owned());
                    match a.names.last_mut() {
                        Some(name) if continues_name => {
                            name.push(' ');
                            name.push_str(&lower);
                        }
                        _ => a.names.push(lower.clone()),
                    }
                    in_name = true;
                    if (2..=6).contains(&word.len()) && word.chars().all(|c| c.is_ascii_uppercase())
                    {
                        a.acronyms.insert(lower.clone());
                    }
                }
                sentence_start = false;
                if PRONOUN.contains(lower.as_str()) {
                    a.pronouns.push(lower.clone());
                    continue;
                }
                // "less" and "fewer" are "more" under a negation: "less patient" = "more
                // impatient".
                let lower = match lower.as_str() {
                    "less" | "fewer" => {
                        a.negations += 1;
                        "more".to_owned()
                    }
                    "over" | "above" | "exceeding" if before_number => "more".to_owned(),
                    "under" | "below" if before_number => {
                        a.negations += 1;
                        "more".to_owned()
                    }
                    // An antonym is a negation of its opposite: "optional" = "not required".
                    "optional" => {
                        a.negations += 1;
                        "required".to_owned()
                    }
                    "mandatory" | "compulsory" | "obligatory" => "required".to_owned(),
                    _ => lower,
                };
                if SYMMETRIC_WORD.contains(lower.as_str()) {
                    a.symmetric = true;
                }
                if lower == "or" {
                    a.choice = true;
                }
                if lower == "than" {
                    a.comparative = true;
                }
                if matches!(
                    lower.as_str(),
                    "is" | "was" | "are" | "were" | "be" | "been" | "being"
                ) {
                    saw_passive_aux = true;
                }
                if lower == "by" && saw_passive_aux {
                    after_by = true;
                    continue;
                }
                // "The best way to..." and "a good way to..." ask how to do it, like "How can
                // I...?": no comparison.
                if matches!(lower.as_str(), "best" | "good")
                    && raws.peek().is_some_and(|next| {
                        let next = next.trim_end_matches(|c: char| !c.is_alphanumeric());
                        ["way", "ways", "method", "methods"]
                            .iter()
                            .any(|w| next.eq_ignore_ascii_case(w))
                    })
                {
                    continue;
                }
                // A request to the assistant, "show me how to...", "give me a...", "help me
                // write...", asks what the rest asks.
                if matches!(lower.as_str(), "show" | "give" | "help" | "teach")
                    && raws.peek().is_some_and(|next| {
                        let next = next.trim_end_matches(|c: char| !c.is_alphanumeric());
                        next.eq_ignore_ascii_case("me") || next.eq_ignore_ascii_case("us")
                    })
                {
                    continue;
                }
                // Other words for the same order ("preceding" / "previous", "prior to" /
                // "before") count as that marker.
                let marker = MARKER_OF.get(lower.as_str()).copied().unwrap_or(&lower);
                if MARKER.contains(marker) {
                    *a.markers.entry(marker.to_owned()).or_default() += 1;
                    continue;
                }
                match lower.as_str() {
                    "to" | "into" | "onto" | "towards" | "toward" => {
                        toward = Some(last_content);
                        toward_first = phrase_first.filter(|&first| Some(first) != last_content);
                    }
                    "from" => after_from = true,
                    _ => {}
                }
                if STOPWORD.contains(lower.as_str()) || NEGATION.contains(lower.as_str()) {
                    head = match (head, lower.as_str()) {
                        (Head::Start, _) => Head::Start,
                        (Head::Noun(y), "of") => Head::Of(y),
                        (Head::Of(y), "the" | "a" | "an") => Head::Of(y),
                        _ => Head::Done,
                    };
                    continue;
                }
                let stem = stem(possessive_stem(&lower));
                if after_by && a.passive_agent.is_none() {
                    a.passive_agent = Some(stem.clone());
                }
                if a.first_content.is_none() {
                    a.first_content = Some(stem.clone());
                }
                let hashed = token_hash(&stem);
                // "Tesla's CEO" and "the CEO of Tesla" both read as "ceo of tesla".
                head = match head {
                    Head::Start if possessive_stem(&lower).len() < lower.len() => {
                        Head::Possessor(hashed)
                    }
                    Head::Start => Head::Noun(hashed),
                    Head::Possessor(owner) => {
                        a.possession = Some((hashed, owner));
                        Head::Done
                    }
                    Head::Of(noun) => {
                        a.possession = Some((noun, hashed));
                        Head::Done
                    }
                    Head::Noun(_) | Head::Done => Head::Done,
                };
                if let Some(number) = counted {
                    a.quantities.push((number, stem.clone()));
                }
                match (continues_phrase, phrase) {
                    (true, Some(End::Source)) => source = Some(hashed),
                    (true, Some(End::Destination)) => {
                        let n = destinations.len();
                        for last in &mut destinations[n - last_destinations..] {
                            last.1 = hashed;
                        }
                    }
                    _ => phrase = None,
                }
                if !continues_phrase {
                    phrase_first = Some(hashed);
                }
                if std::mem::take(&mut after_from) {
                    source = Some(hashed);
                    phrase = Some(End::Source);
                }
                if let Some(before) = toward.take() {
                    destinations.push((before, hashed));
                    last_destinations = 1;
                    if let Some(first) = toward_first.take() {
                        destinations.push((Some(first), hashed));
                        last_destinations = 2;
                    }
                    phrase = Some(End::Destination);
                }
                after_content = true;
                last_content = Some(hashed);
                a.content.insert(stem);
                a.words.push(lower);
            }
            if ends_sentence {
                sentence_start = true;
                a.directions
                    .extend(directions(source.take(), &mut destinations));
                (last_content, after_from, toward) = (None, false, None);
                (phrase_first, toward_first) = (None, None);
            }
            // A comma or other punctuation between two names separates them (the words of
            // one token, "REUSE_DATASET_IF_EXISTS", are one name).
            if raw.ends_with(|c: char| c.is_ascii_punctuation()) {
                in_name = false;
                after_content = false;
                counting = None;
            }
        }
        a.directions.extend(directions(source, &mut destinations));
        // Only a question asks: "How many examples are kept depends on `n`." is a statement.
        // A query typed without its question mark ("Where is the Eiffel Tower") still asks.
        // Nor is its tense compared: statements mix them ("...where it was extracted." /
        // "...will be re-extracted.").
        let last_word = text
            .trim_end()
            .strip_suffix('?')
            .and_then(|t| t.split_whitespace().next_back());
        if last_word.is_some_and(|w| ["of", "with", "for", "from"].contains(&w))
            && text
                .split_whitespace()
                .next()
                .map(|w| w.to_lowercase())
                .is_some_and(|w| matches!(w.as_str(), "what" | "what's" | "which"))
        {
            a.openings |= WHAT_PREPOSITION;
        }
        if !text.contains('?') && text.trim_end().ends_with(['.', '!', ':', ';']) {
            a.asks = None;
            a.openings = 0;
            (a.future, a.past) = (false, false);
        }
        a.freeze()
    }

    /// Whether the things two questions count traded places: a number counts something in each
    /// that the other names but does not count by it ("How many miles is 5 km?" / "How many km
    /// is 5 miles?", "cups in a gallon" / "gallons in a cup"). A thing counted under another
    /// name ("three methods" / "three approaches") or described further ("three new columns" /
    /// "three columns") is left to the content rule.
    fn counts_otherwise(&self, other: &Analysis) -> bool {
        fn counted(a: &Analysis, n: u64) -> Vec<&str> {
            let mut words: Vec<&str> = a
                .quantities
                .iter()
                .filter(|(m, _)| *m == n)
                .map(|(_, w)| &**w)
                .collect();
            words.sort_unstable();
            words
        }
        self.quantities.iter().any(|&(n, _)| {
            let (ours, theirs) = (counted(self, n), counted(other, n));
            !theirs.is_empty()
                && ours != theirs
                && ours
                    .iter()
                    .any(|w| !theirs.contains(w) && other.content.contains(w))
                && theirs
                    .iter()
                    .any(|w| !ours.contains(w) && self.content.contains(w))
        })
    }

    /// Whether `other` is this text with two of its words, or two runs of words of one length,
    /// exchanged ("a primary key" / "a unique index") and every other word in place, the two not
    /// merely coordinated ("cats and dogs" / "dogs and cats", "an actor and a singer": the same)
    /// or side by side; or, with other function words, two content words exchanged and every
    /// other content word in place, the words between them the same.
    fn exchanges(&self, other: &Analysis) -> bool {
        static COORDINATION: LazyLock<[u64; 4]> =
            LazyLock::new(|| ["and", "or", "nor", "&"].map(token_hash));
        static ARTICLES: LazyLock<[u64; 3]> = LazyLock::new(|| ["a", "an", "the"].map(token_hash));
        // Between them, nothing or a coordination ("an investigator and an assistant").
        let coordinated = |between: &[u64]| {
            between
                .iter()
                .all(|t| COORDINATION.contains(t) || ARTICLES.contains(t))
                && (between.is_empty() || between.iter().any(|t| COORDINATION.contains(t)))
        };
        let (a, b) = (&self.tokens, &other.tokens);
        if a.len() == b.len() {
            let differ: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
            let k = differ.len() / 2;
            if k > 0 && differ.len() == 2 * k {
                let (i, j) = (differ[0], differ[k]);
                let runs = differ[k - 1] == i + k - 1 && differ[2 * k - 1] == j + k - 1;
                if runs
                    && a[i..i + k] == b[j..j + k]
                    && a[j..j + k] == b[i..i + k]
                    && !coordinated(&a[i + k..j])
                {
                    return true;
                }
            }
        }
        // The same on the content words alone, one word each way, the function words around
        // them changed: "What happens if petrol is used in a diesel engine?" / "What happens
        // when diesel is used in petrol engine?" (0.99), "misconceptions boys have about girls"
        // / "...girls have about boys".
        let stems = |x: &Analysis| -> Vec<String> {
            x.words.iter().map(|w| stem(possessive_stem(w))).collect()
        };
        let (x, y) = (stems(self), stems(other));
        if x.len() != y.len() {
            return false;
        }
        let differ: Vec<usize> = (0..x.len()).filter(|&i| x[i] != y[i]).collect();
        let &[i, j] = differ.as_slice() else {
            return false;
        };
        // The words between the two, articles aside: a coordination is no exchange.
        let between = |t: &Analysis, first: &str, second: &str| {
            let at = |w: &str| {
                let w = token_hash(possessive_stem(w));
                t.tokens.iter().position(|&h| h == w)
            };
            match (at(first), at(second)) {
                (Some(p), Some(q)) if p < q && !coordinated(&t.tokens[p + 1..q]) => Some(
                    t.tokens[p + 1..q]
                        .iter()
                        .copied()
                        .filter(|h| !ARTICLES.contains(h))
                        .collect::<Vec<u64>>(),
                ),
                _ => None,
            }
        };
        if x[i] != y[j] || x[j] != y[i] {
            return false;
        }
        // In one frame: the same words between them ("boys have about girls" / "girls have
        // about boys"), or, between three or more, all but one. Otherwise the words were moved
        // around ("an example of satire" / "What is satire? What are some examples?").
        match (
            between(self, &self.words[i], &self.words[j]),
            between(other, &other.words[i], &other.words[j]),
        ) {
            (Some(p), Some(q)) => {
                p == q || (p.len().min(q.len()) >= 3 && edit_distance(&p, &q) <= 1)
            }
            _ => false,
        }
    }

    /// Whether the two texts are one frame, the same words before and after, with one short
    /// phrase in place of another: at most [`PHRASE_WORDS`] words on each side, the frame at
    /// least as long, no word but a determiner in both phrases, and a noun phrase: a
    /// determiner opens both phrases or comes one or two words before them ("matches an email
    /// address" / "matches a phone number", "the current date" / "the current time zone"), or a
    /// preposition just before them ("books on machine learning" / "...on deep neural
    /// networks"); not "iterates over" / "cycles through", a verb's synonym. Measured with
    /// `reprise eval` (twenty-second session): a determiner just before only, 68.1 % on
    /// `gptcache-mock.json`; also two words before and after a preposition, 68.0 % ("a Python
    /// library for performing" / "a Python package providing" refused), QQP 78.4 to 78.5 %
    /// precision, and more of the one-off lists' wrong answers refused (README).
    /// An acronym and its words are one name ("the UK" / "the United Kingdom").
    fn substitutes_a_phrase(&self, other: &Analysis) -> bool {
        let (a, b) = (&*self.tokens, &*other.tokens);
        if self.phrase_in_frame(other, a, b) {
            return true;
        }
        // A clause moved from the start of one to the end of the other ("On a Mac, how do I
        // take a screenshot?" / "How do I take a screen recording on a Mac?"): the frame
        // without it.
        (2..=PHRASE_WORDS).any(|n| {
            let moved =
                |x: &[u64], y: &[u64]| x.len() > n && y.len() > n && x[..n] == y[y.len() - n..];
            (moved(a, b) && self.phrase_in_frame(other, &a[n..], &b[..b.len() - n]))
                || (moved(b, a) && self.phrase_in_frame(other, &a[..a.len() - n], &b[n..]))
        })
    }

    /// [`Analysis::substitutes_a_phrase`] on the texts' words `a` and `b` as given.
    fn phrase_in_frame(&self, other: &Analysis, a: &[u64], b: &[u64]) -> bool {
        static DETERMINERS: LazyLock<[u64; 16]> = LazyLock::new(|| {
            [
                "a", "an", "the", "my", "your", "his", "her", "its", "our", "their", "this",
                "that", "these", "those", "some", "any",
            ]
            .map(token_hash)
        });
        let (prefix, suffix) = common_ends(a, b);
        let (phrase_a, phrase_b) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
        let short = |phrase: &[u64]| (1..=PHRASE_WORDS).contains(&phrase.len());
        if !short(phrase_a)
            || !short(phrase_b)
            || prefix + suffix < phrase_a.len().max(phrase_b.len())
        {
            return false;
        }
        static PREPOSITIONS: LazyLock<[u64; 9]> = LazyLock::new(|| {
            ["of", "on", "for", "about", "in", "with", "from", "by", "at"].map(token_hash)
        });
        let noun_phrase = a[prefix.saturating_sub(2)..prefix]
            .iter()
            .any(|t| DETERMINERS.contains(t))
            || (prefix > 0 && PREPOSITIONS.contains(&a[prefix - 1]))
            || (DETERMINERS.contains(&phrase_a[0]) && DETERMINERS.contains(&phrase_b[0]));
        let other_words = phrase_a
            .iter()
            .all(|t| DETERMINERS.contains(t) || !phrase_b.contains(t));
        let spelled = |x: &Analysis, phrase: &[u64], y: &Analysis| {
            x.acronyms.iter().any(|acronym| {
                phrase.contains(&token_hash(acronym)) && spelled_out(&y.words, acronym).is_some()
            })
        };
        noun_phrase
            && other_words
            && !spelled(self, phrase_a, other)
            && !spelled(other, phrase_b, self)
    }

    /// Whether the other text names one of this text's directions the other way round.
    fn reverses(&self, other: &Analysis) -> bool {
        self.directions
            .iter()
            .any(|&(from, to)| other.directions.contains(&(to, from)))
    }

    /// Every identifier or path of this text appears in the other (case aside: product names
    /// like "PyTorch" are written both ways).
    fn code_found_in(&self, other: &Analysis) -> bool {
        self.code.iter().all(|c| {
            let c = c.to_lowercase();
            other.code_lower.contains(&c)
                || other.raw_lower.contains(&c)
                // Another spelling of a name: "JavaScript" / "JS", "NodeJS" / "Node.js".
                || other.words.iter().any(|w| **w == c)
                // A qualified name or a list written out in its parts: "datasets.TextClassification"
                // / "the TextClassification class of datasets", "checksums/size/splits" /
                // "checksums, size and splits".
                || c.split(['.', '/', '\\', ':'])
                    .filter(|part| part.chars().any(char::is_alphanumeric))
                    .all(|part| contains_word(&other.raw_lower, part))
        })
    }

    fn entities_found_in(&self, other: &Analysis) -> bool {
        self.entities.iter().all(|e| {
            other.entities.contains(e)
                || other.words.iter().any(|w| possessive_stem(w) == e)
                || other.content.contains(&stem(e))
                // Inside an identifier: "TextClassification" / "datasets.TextClassification".
                || other.code_lower.iter().any(|c| contains_word(c, e))
                // A function word or an order marker in capitals is the same word in small
                // letters ("What's The best way..." / "What's the best way...", "Which book has
                // influenced YOU the most?"); a name that is also such a word ("Will") is
                // compared as written.
                || ((STOPWORD.contains(e) || MARKER.contains(e) || PRONOUN.contains(e))
                    && contains_word(&other.raw_lower, e))
                // An acronym and its words: "ML" / "Machine Learning", both ways.
                || (self.acronyms.contains(e) && spelled_out(&other.words, e).is_some())
                || other.acronyms.iter().any(|acronym| {
                    spelled_out(&self.words, acronym)
                        .is_some_and(|at| self.words[at].iter().any(|w| **w == *e))
                })
        })
    }

    /// Content words with antonym prefixes removed where the other text has the stem, and how
    /// many such prefixes there were (each counts as a negation).
    fn content_with_stems<'a>(&'a self, other: &Analysis) -> (BTreeSet<&'a str>, usize) {
        let mut prefixed = 0;
        let content = self
            .content
            .iter()
            .map(|w| {
                for prefix in NEGATIVE_PREFIXES {
                    if let Some(rest) = w.strip_prefix(prefix)
                        && rest.len() >= 3
                        && other.content.contains(rest)
                        && !self.content.contains(rest)
                    {
                        prefixed += 1;
                        return rest;
                    }
                }
                w
            })
            .collect();
        (content, prefixed)
    }

    /// Whether one text takes a side of [`OPPOSITES`] that the other does not, and the other
    /// takes its opposite, which this one does not ("encrypt" / "decrypt"; not "encrypt and
    /// decrypt" / "decrypt").
    fn opposes(&self, other: &Analysis) -> bool {
        let has = |sides: &[u32], side: u32| sides.binary_search(&side).is_ok();
        self.opposites.iter().any(|&side| {
            !has(&other.opposites, side)
                && has(&other.opposites, side ^ 1)
                && !has(&self.opposites, side ^ 1)
        })
    }

    /// Whether who-does-what-to-whom matters: two named participants, a passive, or a
    /// comparison ("Are A heavier than B?"), unless it is a choice ("A or B?").
    fn role_sensitive(&self) -> bool {
        !self.choice && (self.names >= 2 || self.passive_agent.is_some() || self.comparative)
    }

    fn agent(&self) -> Option<&str> {
        self.passive_agent
            .as_deref()
            .or(self.first_content.as_deref())
    }
}

/// Where `words` spell out `acronym` by their initials ("machine learning" for "ml").
fn spelled_out(words: &[Box<str>], acronym: &str) -> Option<std::ops::Range<usize>> {
    let n = acronym.len();
    (0..words.len().saturating_sub(n - 1))
        .find(|&i| {
            words[i..i + n]
                .iter()
                .zip(acronym.bytes())
                .all(|(w, letter)| w.as_bytes().first() == Some(&letter))
        })
        .map(|i| i..i + n)
}

/// The longest phrase [`Analysis::substitutes_a_phrase`] reads as a thing named in place of
/// another.
const PHRASE_WORDS: usize = 4;

/// Words beyond the changed content words that two questions may differ by and still be one
/// template: in the words they use (counted on both sides: two substituted function words)...
const TEMPLATE_BAG_SLACK: usize = 4;
/// ...or in their sequence (edits: an auxiliary swapped, an article added, a word moved).
const TEMPLATE_EDIT_SLACK: usize = 3;
/// Longer questions (word pairs to align) are taken as one template: the content rule holds.
const ALIGNMENT_LIMIT: usize = 40_000;

/// Whether two questions that differ in `changed` content words also differ in the rest of
/// their wording, both in the words used and in their order: a rewording, not one template with
/// a word swapped. Measured on the labelled data (`reprise eval`), either measure alone lets
/// through template pairs that the other catches (reordered templates; swapped "and" / "or").
fn reworded(a: &Analysis, b: &Analysis, changed: usize) -> bool {
    let bag = bag_distance(&a.tokens, &b.tokens);
    if bag <= changed + TEMPLATE_BAG_SLACK {
        return false;
    }
    // A substitution changes the bag by two, an insertion or deletion by one.
    if bag.div_ceil(2) > changed + TEMPLATE_EDIT_SLACK {
        return true;
    }
    if a.tokens.len().saturating_mul(b.tokens.len()) > ALIGNMENT_LIMIT {
        return false;
    }
    edit_distance(&a.tokens, &b.tokens) > changed + TEMPLATE_EDIT_SLACK
}

/// Whether a changed content word (or a run of them) comes after the same word or before the
/// same word in both texts: a word swapped in its slot of one frame, however the rest was moved
/// around it ("In Python, how do I sort a list by name?" / "How do I sort a list by date in
/// Python?", "For a beginner, what is the best Python book?" / "What is the best Python course
/// for a beginner?"), where a rewording puts its other words in other places ("can be saved to
/// cloud storage using..." / "can be used to store ... in cloud storage").
fn swapped_in_place(
    a: &Analysis,
    b: &Analysis,
    a_content: &BTreeSet<&str>,
    b_content: &BTreeSet<&str>,
) -> bool {
    fn contexts(x: &Analysis, changed: Vec<u64>) -> Vec<(Option<u64>, Option<u64>)> {
        let t = &x.tokens;
        let mut out = Vec::new();
        let mut i = 0;
        while i < t.len() {
            if !changed.contains(&t[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < t.len() && changed.contains(&t[i]) {
                i += 1;
            }
            out.push((start.checked_sub(1).map(|k| t[k]), t.get(i).copied()));
        }
        out
    }
    let changed = |x: &Analysis, mine: &BTreeSet<&str>, theirs: &BTreeSet<&str>| {
        x.words
            .iter()
            .filter(|w| {
                let s = stem(w);
                mine.contains(s.as_str()) && !theirs.contains(s.as_str())
            })
            .map(|w| token_hash(possessive_stem(w)))
            .collect::<Vec<u64>>()
    };
    let in_a = contexts(a, changed(a, a_content, b_content));
    let in_b = contexts(b, changed(b, b_content, a_content));
    in_a.iter().any(|(before, after)| {
        in_b.iter().any(|(b_before, b_after)| {
            (before.is_some() && before == b_before) || (after.is_some() && after == b_after)
        })
    })
}

/// Words two texts must share, as one run at their start and one at their end, before their
/// similarity is taken to be the passage's rather than the question's.
const PASSAGE_WORDS: usize = 25;

/// Whether the words two texts share at their start and end (a passage both quote) are at
/// least [`PASSAGE_WORDS`] and at least three times the words in which either differs.
fn shares_a_passage(a: &[u64], b: &[u64]) -> bool {
    let (prefix, suffix) = common_ends(a, b);
    let shared = prefix + suffix;
    let differing = a.len().max(b.len()) - shared;
    shared >= PASSAGE_WORDS && shared >= 3 * differing
}

/// How many words two texts share as one run at their start, and then as one at their end.
fn common_ends(a: &[u64], b: &[u64]) -> (usize, usize) {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    (prefix, suffix)
}

/// How many words one multiset has that the other lacks, both ways.
fn bag_distance(a: &[u64], b: &[u64]) -> usize {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_unstable();
    b.sort_unstable();
    let (mut i, mut j, mut common) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    a.len() + b.len() - 2 * common
}

/// Word-level Levenshtein distance.
fn edit_distance(a: &[u64], b: &[u64]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            current[j + 1] = (previous[j] + usize::from(x != y))
                .min(previous[j + 1] + 1)
                .min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

fn token_hash(word: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(word)
}

/// Whether `word` occurs in `text` between non-word characters.
fn contains_word(text: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        !text[..at].chars().next_back().is_some_and(is_word)
            && !text[at + word.len()..].chars().next().is_some_and(is_word)
    })
}

/// Characters operators are written with.
fn is_operator_char(c: char) -> bool {
    matches!(
        c,
        '+' | '-' | '*' | '/' | '%' | '^' | '=' | '!' | '<' | '>' | '&' | '|'
    )
}

/// Operators that are operators wherever they stand, even with no operand beside them ("the
/// difference between == and ===", "what does && do").
#[rustfmt::skip]
const OPERATORS: &[&str] = &[
    "==", "!=", "<=", ">=", "===", "!==", "&&", "||", "+=", "-=", "*=", "/=", "%=", "^=", "|=",
    "&=", "->", "=>", "<<", ">>",
];

/// Operators written with a question mark, a dot or a colon, which are also punctuation: read
/// only as a word of their own ("the ?? operator", "what does ?. do"; a quoted one is a quoted
/// string).
const PUNCTUATION_OPERATORS: &[&str] = &["??", "?.", "?:", "??=", "::", ":="];

/// What stands beside an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operand {
    /// A number, or a term that starts with one ("2x", "3.5").
    Number,
    /// One letter, or a name with a digit in it ("x", "b", "x1").
    Variable,
    /// A bracket that closes an operand before it or opens one after it.
    Bracket,
    /// A word: the symbol is punctuation, not an operator.
    Word,
    Nothing,
}

impl Operand {
    fn of(term: &str) -> Self {
        let term = term.trim_matches('.');
        match term.chars().next() {
            None => Operand::Nothing,
            Some(c) if c.is_ascii_digit() => Operand::Number,
            Some(c) if c.is_alphabetic() && term.chars().count() == 1 => Operand::Variable,
            Some(_) if term.chars().any(|c| c.is_ascii_digit()) => Operand::Variable,
            Some(_) => Operand::Word,
        }
    }

    fn is_operand(self) -> bool {
        matches!(self, Operand::Number | Operand::Variable | Operand::Bracket)
    }
}

fn is_term_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '.'
}

/// The operand before position `at` of `chars` (spaces skipped), and whether it touches it.
fn operand_before(chars: &[char], at: usize) -> (Operand, bool) {
    let end = chars[..at]
        .iter()
        .rposition(|c| !c.is_whitespace())
        .map_or(0, |i| i + 1);
    let tight = end == at && at > 0;
    match end.checked_sub(1).map(|i| chars[i]) {
        Some(')' | ']') => (Operand::Bracket, tight),
        _ => {
            let start = chars[..end]
                .iter()
                .rposition(|&c| !is_term_char(c))
                .map_or(0, |i| i + 1);
            (
                Operand::of(&chars[start..end].iter().collect::<String>()),
                tight,
            )
        }
    }
}

/// The operand from position `at` of `chars` on (spaces skipped), and whether it touches it.
fn operand_after(chars: &[char], at: usize) -> (Operand, bool) {
    let start = chars[at..]
        .iter()
        .position(|c| !c.is_whitespace())
        .map_or(chars.len(), |i| at + i);
    let tight = start == at && at < chars.len();
    match chars.get(start) {
        Some('(' | '[') => (Operand::Bracket, tight),
        _ => {
            let end = chars[start..]
                .iter()
                .position(|&c| !is_term_char(c))
                .map_or(chars.len(), |i| start + i);
            (
                Operand::of(&chars[start..end].iter().collect::<String>()),
                tight,
            )
        }
    }
}

/// The operators of `text` in the order written, one space between: a run of operator
/// characters counts when it is one of [`OPERATORS`] or stands beside a number, a variable or
/// a bracket ("5 - 3", "x^2", "a * b", "f(x) + 1", "C++"). Not counted: a hyphen or slash joining
/// words ("two-factor", "3-year-old", "and/or", "GPT-4"), a dash between words, a percent sign
/// after a number ("10%": a quantity, which the numbers rule reads), an exclamation mark after a
/// word, a flag ("--hard", read as code), Markdown's emphasis and bullets.
fn operators(text: &str) -> String {
    // Most questions have none: a whole scan costs more than three searches.
    let mut out = if text.contains(':') || text.contains("??") || text.contains("?.") {
        let words = text
            .split_whitespace()
            .map(|w| w.trim_matches([',', '(', ')']));
        let found: Vec<&str> = words
            .filter(|w| PUNCTUATION_OPERATORS.contains(w))
            .collect();
        found.join(" ")
    } else {
        String::new()
    };
    if !text.contains(is_operator_char) {
        return out;
    }
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !is_operator_char(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_operator_char(chars[i]) {
            i += 1;
        }
        let run: String = chars[start..i].iter().collect();
        let (left, left_tight) = operand_before(&chars, start);
        let (right, right_tight) = operand_after(&chars, i);
        let counts = if OPERATORS.contains(&run.as_str()) {
            true
        } else if run == "%" && left == Operand::Number && left_tight {
            false
        } else if (run == "-" || run == "/") && left_tight && right_tight {
            // Joining two terms: an operator only between operands ("x-1", "12/4", "2024-01"),
            // a hyphen or a slash when either is a word.
            left.is_operand() && right.is_operand()
        } else {
            left.is_operand() || right.is_operand()
        };
        if counts {
            if !out.is_empty() {
                out.push(' ');
            }
            // An increment or a decrement is read with its side: "i++" returns the value
            // before, "++i" the value after.
            match run.as_str() {
                "++" | "--" if left_tight && left.is_operand() => out.push('_'),
                _ => {}
            }
            out.push_str(&run);
            match run.as_str() {
                "++" | "--" if right_tight && right.is_operand() && !left_tight => out.push('_'),
                _ => {}
            }
        }
    }
    out
}

/// Whether two space-separated lists hold the same words, in any order.
fn same_words(a: &str, b: &str) -> bool {
    let (mut a, mut b): (Vec<&str>, Vec<&str>) = (a.split(' ').collect(), b.split(' ').collect());
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

/// The text with typographic apostrophes and quotes (’ ‘ ʼ, “ ” „) written as plain ones, so
/// that "doesn’t" is a negation like "doesn't" and “::” the quoted string "::".
fn plain_quotes(text: &str) -> Cow<'_, str> {
    const APOSTROPHES: [char; 3] = ['’', '‘', 'ʼ'];
    const QUOTES: [char; 3] = ['“', '”', '„'];
    if !text.contains(APOSTROPHES) && !text.contains(QUOTES) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| match c {
                c if APOSTROPHES.contains(&c) => '\'',
                c if QUOTES.contains(&c) => '"',
                c => c,
            })
            .collect(),
    )
}

/// The text the embedding sees for a question: [`question`], with other spellings of a name
/// written as the name ("JS" as "javascript", "k8s" as "kubernetes"; see `SPELLINGS`), as the
/// guard reads them. A static embedding scores a spelling and its name far apart ("How do I
/// read a file in JS?" / "...in JavaScript?" 0.76, "What is k8s?" / "What is Kubernetes?" 0.34).
pub fn embedded(text: &str) -> Cow<'_, str> {
    match degrees(text) {
        Cow::Borrowed(text) => names_spelled_out(question(text)),
        Cow::Owned(text) => Cow::Owned(names_spelled_out(question(&text)).into_owned()),
    }
}

/// `text` with "°C" and "°F" written as "degrees Celsius" and "degrees Fahrenheit", and any
/// other "°" as "degrees": the guard drops the sign with the punctuation, and the embedding
/// scored "in °C" / "in degrees Celsius" 0.71.
fn degrees(text: &str) -> Cow<'_, str> {
    if !text.contains('°') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '°' {
            out.push(c);
            continue;
        }
        let scale = match chars.peek() {
            Some('C' | 'c') => Some(" degrees Celsius"),
            Some('F' | 'f') => Some(" degrees Fahrenheit"),
            _ => None,
        };
        let mut ahead = chars.clone();
        ahead.next();
        match scale {
            // "°C" alone, not the start of a word ("°Celsius").
            Some(words) if !ahead.peek().is_some_and(|c| c.is_alphanumeric()) => {
                chars.next();
                out.push_str(words);
            }
            _ => out.push_str(" degrees "),
        }
    }
    Cow::Owned(out)
}

/// `text` with the names written with a sigil spelled as words the guard keeps: "C#" as
/// "Csharp", "C++" as "Cpp" ("F#", "c#", "Notepad++" alike). The guard drops the sigil with the
/// punctuation, so "the difference between C++ and C#" / "...between C and C++" (0.99) read
/// the same, as "C" twice. A single lowercase letter before "++" other than "c" is a variable
/// incremented ("i++"), an operator (see [`operators`]). Only the guard reads it this way: the
/// embedding's vocabulary has the sigils, not these words.
fn sigiled_names(text: &str) -> Cow<'_, str> {
    if !text.contains('#') && !text.contains("++") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(at) = rest.find(['#', '+']) {
        let (before, from) = rest.split_at(at);
        let sigil = if from.starts_with("++") {
            "++"
        } else {
            &from[..1]
        };
        let after = &from[sigil.len()..];
        let word_start = before
            .char_indices()
            .rev()
            .take_while(|&(_, c)| c.is_alphanumeric())
            .last()
            .map_or(before.len(), |(i, _)| i);
        let word = &before[word_start..];
        let standalone = !before[..word_start].ends_with(['_', '.'])
            && !after.starts_with(|c: char| c.is_alphanumeric() || c == '+' || c == '#');
        let named = word.starts_with(|c: char| c.is_alphabetic())
            && standalone
            && match sigil {
                "#" => true,
                "++" => word.chars().count() > 1 || word == "C" || word == "c",
                _ => false,
            };
        out.push_str(before);
        if named {
            out.truncate(out.len() - word.len());
            let mut letters = word.chars();
            if let Some(first) = letters.next() {
                out.extend(first.to_uppercase());
                out.push_str(letters.as_str());
            }
            out.push_str(if sigil == "#" { "sharp" } else { "pp" });
        } else {
            out.push_str(sigil);
        }
        rest = after;
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `text` with other spellings of a name written as the name (see [`embedded`]).
fn names_spelled_out(text: &str) -> Cow<'_, str> {
    fn core(word: &str) -> &str {
        word.trim_matches(|c: char| !c.is_alphanumeric() && c != '.')
            .trim_end_matches('.')
    }
    if !text
        .split_whitespace()
        .any(|w| respelled(core(w)).is_some())
    {
        return Cow::Borrowed(text);
    }
    let words: Vec<Cow<'_, str>> = text
        .split_whitespace()
        .map(|w| {
            let trimmed = core(w);
            match respelled(trimmed) {
                // "Mt." is "Mount", without its dot.
                Some((name, true)) => Cow::Owned(w.replacen(&format!("{trimmed}."), name, 1)),
                Some((name, false)) => Cow::Owned(w.replacen(trimmed, name, 1)),
                None => Cow::Borrowed(w),
            }
        })
        .collect();
    Cow::Owned(words.join(" "))
}

/// The question in a message: `text` without a greeting or an opening aside set off before it
/// ("Hi, ...", "Hey there! ...", "Quick question: ...") or thanks and appeals after it ("...
/// Thanks!", "... Thank you in advance.", "... Any help is appreciated."). They ask nothing;
/// the guard reads this part only, and the embedding sees only it (a static embedding averages
/// every word, so "Hi there! ... Thanks in advance." around a question scored 0.78 against
/// the bare question, a miss). Inside a question they stay ("How do I say thank you in
/// French?").
pub fn question(text: &str) -> &str {
    const OPENERS: [&str; 12] = [
        "hi there",
        "hello there",
        "hey there",
        "good morning",
        "good afternoon",
        "good evening",
        "hi",
        "hello",
        "hey",
        "a quick question",
        "quick question",
        "question",
    ];
    const CLOSERS: [&str; 16] = [
        "thanks in advance",
        "thank you in advance",
        "thanks a lot",
        "thank you very much",
        "thank you",
        "thanks",
        "thx",
        "cheers",
        "any help is appreciated",
        "any help would be appreciated",
        "any help appreciated",
        "any help is much appreciated",
        "i appreciate it",
        "appreciate it",
        "please help",
        "please",
    ];
    let mut rest = text.trim();
    for opener in OPENERS {
        let Some(head) = rest.get(..opener.len()) else {
            continue;
        };
        let tail = &rest[opener.len()..];
        // Not "-": "hi-res".
        if head.eq_ignore_ascii_case(opener) && tail.starts_with([',', '!', '.', ':']) {
            let tail = tail.trim_start_matches([',', '!', '.', ':']).trim_start();
            if !tail.is_empty() {
                rest = tail;
            }
            break;
        }
    }
    // "... Any help is appreciated. Thanks!": one closer after another.
    'closers: for _ in 0..3 {
        let body = rest.trim_end_matches(['.', '!', ' ']);
        for closer in CLOSERS {
            let Some(at) = body.len().checked_sub(closer.len()) else {
                continue;
            };
            let (Some(head), Some(tail)) = (body.get(..at), body.get(at..)) else {
                continue;
            };
            let head = head.trim_end();
            if tail.eq_ignore_ascii_case(closer) && head.ends_with(['?', '.', '!']) {
                rest = head;
                continue 'closers;
            }
        }
        break;
    }
    rest
}

/// The value of a Roman numeral in capitals from II to XXXIX ("World War II", "Henry VIII"),
/// written the usual way. Only I, V and X: "CD", "MD" or "DC" are names more often than
/// numbers, and "I", "V" and "X" alone are a pronoun or letters.
fn roman_numeral(word: &str) -> Option<u32> {
    const TENS: [&str; 4] = ["", "X", "XX", "XXX"];
    const ONES: [&str; 10] = ["", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX"];
    if word.len() < 2 || !word.bytes().all(|b| matches!(b, b'I' | b'V' | b'X')) {
        return None;
    }
    (2..40u32).find(|&n| {
        let (tens, ones) = (TENS[(n / 10) as usize], ONES[(n % 10) as usize]);
        word.len() == tens.len() + ones.len() && word.starts_with(tens) && word.ends_with(ones)
    })
}

/// `can't` → `can`, `won't` → `will`, `isn't` → `is`.
fn expand_contraction(stem: &str) -> &str {
    match stem {
        "won" => "will",
        "ca" => "can",
        "sha" => "shall",
        other => other,
    }
}

/// Units written after a number ("5km", "16GB", "100ms", "5pm"), read as the number and the
/// unit as if spaced ("5 km"). Only these: "3d", "4k", "5g" or "1990s" are names or decades.
#[rustfmt::skip]
const UNITS: &[&str] = &[
    "km", "cm", "mm", "nm", "kg", "mg", "mcg", "lb", "lbs", "oz", "ft", "mi", "ml", "kb", "mb",
    "gb", "tb", "kib", "mib", "gib", "tib", "kbps", "mbps", "gbps", "ms", "ns", "sec", "secs",
    "min", "mins", "hr", "hrs", "yr", "yrs", "pm", "hz", "khz", "mhz", "ghz", "px", "fps", "dpi",
    "rpm", "mph", "kph", "kmh", "kw", "kwh", "mw", "mah", "kcal", "cal",
];

/// A number with its unit written on ("5km"), or a language or tool with its version written on
/// ("Python3", "php8"), as two words ("5", "km"; "Python", "3"); any other word as it is.
fn with_unit(word: &str) -> impl Iterator<Item = &str> {
    let digits = word
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(word.len());
    let (number, unit) = word.split_at(digits);
    let with_unit = number.starts_with(|c: char| c.is_ascii_digit())
        && !unit.is_empty()
        && UNITS.iter().any(|u| unit.eq_ignore_ascii_case(u));
    let (first, second) = if with_unit {
        (number, Some(unit))
    } else if let Some((name, version)) = versioned(word) {
        (name, Some(version))
    } else {
        (word, None)
    };
    std::iter::once(first).chain(second)
}

/// A language or tool with its version written on ("Python3", "python3.12"), as the two.
fn versioned(word: &str) -> Option<(&str, &str)> {
    let (name, version) = word.split_at(word.find(|c: char| c.is_ascii_digit())?);
    (!name.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !version.ends_with('.')
        && TOOL_NAME.contains(name.to_ascii_lowercase().as_str()))
    .then_some((name, version))
}

/// Which end of a direction a noun phrase names (see `Analysis::directions`).
#[derive(Clone, Copy)]
enum End {
    Source,
    Destination,
}

/// Reading the first content word of a question with its owner (see `Analysis::possession`),
/// named as a possessive before it or with "of" after it. Words are hashed.
#[derive(Clone, Copy)]
enum Head {
    /// No content word yet.
    Start,
    /// The first content word was a possessive ("Tesla's"): its noun follows.
    Possessor(u64),
    /// The first content word ("CEO"), which "of" may follow.
    Noun(u64),
    /// "of" after the first content word: its owner follows.
    Of(u64),
    /// The agent is read.
    Done,
}

/// The name `token` is another spelling of (see [`SPELLINGS`]), and whether it is an
/// abbreviation ("Mt").
fn respelled(token: &str) -> Option<(&'static str, bool)> {
    let find = |token: &str| {
        if token.len() > SPELLING_BYTES || !token.is_ascii() {
            return None;
        }
        let mut lower = [0u8; SPELLING_BYTES];
        let lower = &mut lower[..token.len()];
        lower.copy_from_slice(token.as_bytes());
        lower.make_ascii_lowercase();
        let &(spelling, name, cased) = SPELLING.get(std::str::from_utf8(lower).ok()?)?;
        (!cased || token == spelling).then_some((name, cased))
    };
    find(token).or_else(|| {
        // A plural of a spelled word: "dicts", "repos".
        let (name, cased) = find(token.strip_suffix('s')?)?;
        (!cased).then_some((name, cased))
    })
}

/// The longest spelling in [`SPELLINGS`] fits in this many bytes.
const SPELLING_BYTES: usize = 16;

/// [`SPELLINGS`] by their spelling in lower case.
static SPELLING: LazyLock<FxHashMap<String, (&'static str, &'static str, bool)>> =
    LazyLock::new(|| {
        SPELLINGS
            .iter()
            .map(|&(spelling, name, cased)| {
                (spelling.to_ascii_lowercase(), (spelling, name, cased))
            })
            .collect()
    });

/// The word of an ordinal from "1st" to "20th" written in digits (with its right suffix:
/// "1st", "2nd", "3rd", "11th").
fn ordinal(lower: &str) -> Option<&'static str> {
    let digits = lower.find(|c: char| !c.is_ascii_digit())?;
    let n: usize = lower[..digits].parse().ok()?;
    let suffix = match n {
        1 => "st",
        2 => "nd",
        3 => "rd",
        _ => "th",
    };
    if !(1..=20).contains(&n) || &lower[digits..] != suffix {
        return None;
    }
    Some(ORDINALS[n - 1])
}

/// Whether `text` is typed all in capitals ("WHAT IS THE CAPITAL OF AUSTRALIA?"): at least
/// three words of letters and not one lower-case letter.
fn shouted(text: &str) -> bool {
    !text.chars().any(char::is_lowercase)
        && text
            .split_whitespace()
            .filter(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 2)
            .count()
            >= 3
}

/// An abbreviation of single letters with dots ("U.S", "U.K", "e.g": the final dot is gone by
/// now) written without them ("US"), so that it meets the same abbreviation typed plain; any
/// other word as it is.
fn undotted(word: &str) -> Cow<'_, str> {
    let letters = word.split('.').count();
    if letters >= 2
        && word
            .split('.')
            .all(|part| part.len() == 1 && part.chars().all(|c| c.is_ascii_alphabetic()))
    {
        Cow::Owned(word.replace('.', ""))
    } else {
        Cow::Borrowed(word)
    }
}

/// A contraction of an auxiliary or a pronoun, as its two words: "What's" → "What", "is";
/// "I'm" → "I", "am"; "they're", "I've", "we'll", "I'd", "let's". Any other word as it is. "'s"
/// after a name is a possessive ("John's"), left to [`possessive_stem`], and "n't" is read
/// where negations are counted.
fn uncontracted(word: &str) -> impl Iterator<Item = &str> {
    let word = unmarked_contraction(word).unwrap_or(word);
    let (first, second) = match contraction(word) {
        Some((stem, full)) => (stem, Some(full)),
        None => (word, None),
    };
    std::iter::once(first).chain(second)
}

/// Contractions as chat types them without the apostrophe ("dont", "whats", "im"). Not those
/// whose bare form is a word too ("ill", "id", "well", "were", "shell"; "cant" and "wont" are
/// rare as nouns in a question).
#[rustfmt::skip]
const UNMARKED: &[&str] = &[
    "don't", "doesn't", "didn't", "isn't", "aren't", "wasn't", "weren't", "can't", "won't",
    "shouldn't", "couldn't", "wouldn't", "haven't", "hasn't", "hadn't", "i'm", "i've", "you're",
    "they're", "what's", "how's", "where's", "who's", "that's", "there's",
];

/// The contraction (from [`UNMARKED`]) that `word` is with its apostrophe left out, read then
/// as any contraction is ("don't" where negations are counted, "what's" as two words). Not in
/// capitals: "IM" is an acronym.
fn unmarked_contraction(word: &str) -> Option<&'static str> {
    if word.len() < 2
        || !word.bytes().all(|b| b.is_ascii_alphabetic())
        || word.bytes().skip(1).all(|b| b.is_ascii_uppercase())
    {
        return None;
    }
    UNMARKED.iter().copied().find(|form| {
        form.split_once('\'').is_some_and(|(head, tail)| {
            word.len() == head.len() + tail.len()
                && word[..head.len()].eq_ignore_ascii_case(head)
                && word[head.len()..].eq_ignore_ascii_case(tail)
        })
    })
}

/// Contractions read as two words: the suffix after the apostrophe, the word it stands for, and
/// the words it contracts with ("'s" after a name is a possessive, "'d" after one nothing).
#[rustfmt::skip]
const CONTRACTIONS: &[(&str, &str, &[&str])] = &[
    ("m", "am", &["i"]),
    ("re", "are", &[
        "you", "we", "they", "who", "what", "where", "how", "why", "when", "there", "here",
    ]),
    ("ve", "have", &[
        "i", "you", "we", "they", "who", "what", "could", "should", "would", "might", "must",
    ]),
    ("ll", "will", &[
        "i", "you", "he", "she", "it", "we", "they", "that", "there", "this", "who", "what",
        "where", "how", "when",
    ]),
    ("d", "would", &[
        "i", "you", "he", "she", "it", "we", "they", "that", "there", "who", "what", "where",
        "how", "why",
    ]),
    ("s", "us", &["let"]),
    ("s", "is", &[
        "it", "that", "this", "what", "where", "who", "how", "when", "why", "there", "here", "he",
        "she", "everything", "nothing", "something", "everyone", "someone", "nobody",
    ]),
];

fn contraction(word: &str) -> Option<(&str, &'static str)> {
    let (stem, suffix) = word.rsplit_once('\'')?;
    CONTRACTIONS
        .iter()
        .find(|(ending, _, stems)| {
            suffix.eq_ignore_ascii_case(ending)
                && stems.iter().any(|s| stem.eq_ignore_ascii_case(s))
        })
        .map(|&(_, full, _)| (stem, full))
}

fn possessive_stem(word: &str) -> &str {
    word.strip_suffix("'s").unwrap_or(word)
}

/// Splits a token into words on inner punctuation other than apostrophes.
fn split_words(token: &str) -> impl Iterator<Item = &str> {
    token
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '.' || c == ','))
        .map(|w| w.trim_matches(|c: char| c == '.' || c == ','))
        .filter(|w| !w.is_empty())
}

/// A light suffix stripper: enough that "movies" / "movie", "used" / "use" and "taken" /
/// "take" agree. Not a linguist's stemmer: both sides go through the same function, so it only
/// has to be consistent.
fn stem(word: &str) -> String {
    let word = word.trim_matches('\'');
    let word = IRREGULAR_BASE.get(word).copied().unwrap_or(word);
    // "-eed" is a root ("speed", "need", "exceed": not "sp" and "exc", which "speeds" and
    // "exceeds" would not meet) but for verbs in "-ee" ("agreed" / "agree").
    #[rustfmt::skip]
    const EE_VERBS: &[&str] = &[
        "agree", "disagree", "free", "guarantee", "referee", "decree", "flee", "oversee",
        "foresee", "degree",
    ];
    let mut w = word.to_owned();
    let ee = |w: &str| w.ends_with("ee") && w.len() >= 4;
    for suffix in ["ing", "ed", "es", "s"] {
        if suffix == "ed" && w.ends_with("eed") {
            // "agreed" is "agree" and a "d"; "speed" is a root.
            if EE_VERBS.contains(&&w[..w.len() - 1]) {
                w.pop();
            }
            break;
        }
        // "employees", "agrees": "-ee" and an "s".
        if suffix == "es" && w.ends_with("ees") && ee(&w[..w.len() - 1]) {
            w.pop();
            break;
        }
        if w.len() >= suffix.len() + 2 && w.ends_with(suffix) && !w.ends_with("ss") {
            w.truncate(w.len() - suffix.len());
            // "preferred" / "prefer", "stopped" / "stop".
            let b = w.as_bytes();
            if matches!(suffix, "ed" | "ing")
                && b.len() >= 3
                && b[b.len() - 1] == b[b.len() - 2]
                && !matches!(b[b.len() - 1], b's' | b'l' | b'e' | b'o')
            {
                w.pop();
            }
            // "differences", "referenced": the "-ence" the noun is derived by, whole again.
            if w.ends_with("enc") || w.ends_with("anc") {
                w.push('e');
            }
            break;
        }
    }
    derive(&mut w);
    if w.len() > 2 && w.ends_with('e') {
        w.pop();
    }
    if w.len() > 2 && w.ends_with('y') {
        w.pop();
        w.push('i');
    }
    american(&mut w);
    w
}

/// A noun made from a verb as the verb's stem, so that a question reworded around the noun
/// keeps its content words: "difference" / "differ", "installation" / "install", "deletion" /
/// "delete", "configuration" / "configure", "management" / "manage", "performance" / "perform".
/// Only where what is left is a word's length, and not for nouns whose verb means another thing
/// ("importance" / "import", "apartment" / "apart", "statement" / "state").
fn derive(w: &mut String) {
    // Only words the suffixes below would cut.
    #[rustfmt::skip]
    const NOT: &[&str] = &[
        "importance", "apartment", "department", "statement", "government", "substance",
        "conference", "question", "position", "condition", "tradition", "ambition", "nutrition",
        "function", "fraction", "collection", "direction", "election", "protection", "infection",
        "attention", "experience",
    ];
    for (suffix, min) in [
        ("ation", 4),
        ("tion", 4),
        ("sion", 4),
        ("ment", 5),
        ("ence", 5),
        ("ance", 5),
    ] {
        if w.len() >= suffix.len() + min && w.ends_with(suffix) {
            if NOT.contains(&w.as_str()) {
                return;
            }
            let keep = match suffix {
                // "connection" / "connect", "discussion" / "discuss".
                "tion" | "sion" => w.len() - 3,
                _ => w.len() - suffix.len(),
            };
            w.truncate(keep);
            return;
        }
    }
}

/// British spellings as the American ones, on a stem: "colour" / "color", "theatre" / "theater",
/// "organise" / "organize", "analyse" / "analyze", "counselling" / "counseling", "defence" /
/// "defense", "catalogue" / "catalog", "programme" / "program". Both texts' stems go through it,
/// so a word that merely looks British ("detour") meets only itself.
fn american(w: &mut String) {
    let swap = |w: &mut String, from: &str, to: &str| {
        w.truncate(w.len() - from.len());
        w.push_str(to);
    };
    if w.len() >= 5 && w.ends_with("our") {
        swap(w, "our", "or");
    } else if w.len() >= 5 && w.ends_with("tr") {
        swap(w, "tr", "ter");
    } else if w.len() >= 5 && (w.ends_with("is") || w.ends_with("ys")) {
        w.pop();
        w.push('z');
    } else if w.len() >= 6 && w.ends_with("ll") {
        w.pop();
    } else if w.len() >= 5 && w.ends_with("nc") {
        swap(w, "c", "s");
    } else if w.len() >= 6 && (w.ends_with("ogu") || w.ends_with("mm")) {
        w.pop();
    }
}

/// Identifiers, paths, file names, flags: what code questions hinge on.
fn is_code(token: &str) -> bool {
    let inner = token.trim_end_matches(['?', '!', ',', ';', ':']);
    let has_inner = |c: char| {
        inner
            .char_indices()
            .any(|(i, x)| x == c && i > 0 && i + c.len_utf8() < inner.len())
    };
    // A version ("v2.10.0") is a number (see the number check), not an identifier.
    if inner.strip_prefix(['v', 'V']).is_some_and(|r| {
        r.starts_with(|c: char| c.is_ascii_digit())
            && r.chars().all(|c| c.is_ascii_digit() || c == '.')
    }) {
        return false;
    }
    // "Python3.12" is Python's version 3.12 (see [`with_unit`]).
    if versioned(inner).is_some() {
        return false;
    }
    // "U.S." and "e.g." are abbreviations (see [`undotted`]).
    if matches!(undotted(inner.trim_end_matches('.')), Cow::Owned(_)) {
        return false;
    }
    let camel = inner
        .as_bytes()
        .windows(2)
        .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
    has_inner('_')
        || has_inner('/')
        || has_inner('\\')
        || inner.contains("::")
        || inner.contains("()")
        || inner.starts_with("--")
        || camel
        || (has_inner('.')
            && inner.chars().any(|c| c.is_ascii_alphabetic())
            && !inner.ends_with('.'))
}

/// Text between matching quotes: "…", `…`, and '…' where the quotes are not apostrophes (the
/// text's typographic quotes are plain ones by now, see [`plain_quotes`]).
fn quoted_strings(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    // A run of quotes is one quote: ""doubled"" (text escaped for CSV) and ```fences```.
    for quote in ['"', '`'] {
        let mut rest = text;
        while let Some(start) = rest.find(quote) {
            let after = rest[start..].trim_start_matches(quote);
            let Some(end) = after.find(quote) else {
                break;
            };
            let inner = after[..end].trim();
            if !inner.is_empty() {
                out.insert(inner.to_owned());
            }
            rest = after[end..].trim_start_matches(quote);
        }
    }
    // Single quotes only when they open after a space and close before a space or punctuation;
    // an apostrophe inside a word ("'He don't like apples.'") does not close the quote.
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == '\''
            && (i == 0 || bytes[i - 1].is_whitespace())
            && let Some(len) = bytes[i + 1..].iter().enumerate().position(|(j, &c)| {
                let at = i + 1 + j;
                c == '\'' && (at + 1 >= bytes.len() || !bytes[at + 1].is_alphanumeric())
            })
        {
            let end = i + 1 + len;
            if len > 0 {
                out.insert(
                    bytes[i + 1..end]
                        .iter()
                        .collect::<String>()
                        .trim()
                        .to_owned(),
                );
                i = end + 1;
                continue;
            }
        }
        i += 1;
    }
    out.extend(error_messages(text));
    out
}

/// The message after an error's name, to the end of its line: as literal as a quoted string
/// ("TypeError: undefined is not a function" / "TypeError: null is not an object", 0.81 to the
/// embedding). The name is a word ending in "Error:" or "Exception:" ("TypeError:",
/// "NullPointerException:"; "error:" as a compiler prints it), the last on its line.
fn error_messages(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines().filter_map(|line| {
        // Most lines have no colon, so none of this to do.
        if !line.contains(':') {
            return None;
        }
        let lower = line.to_ascii_lowercase();
        let at = ["error:", "exception:"]
            .iter()
            .filter_map(|name| lower.rfind(name).map(|at| at + name.len()))
            .max()?;
        let message = line[at..].trim().trim_end_matches(['.', '?', '!']).trim();
        (!message.is_empty()).then(|| message.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn vetoes(a: &str, b: &str) -> Option<Veto> {
        check(a, b, Closeness::Similar).err()
    }

    /// What a generated question is made of: the pieces the guard reads (numbers and number
    /// words, quotes of every kind, identifiers, names and acronyms, negations, order markers,
    /// pronouns), ordinary words and odd Unicode.
    #[rustfmt::skip]
    const PIECES: &[&str] = &[
        "What", "is", "the", "a", "How", "do", "I", "sort", "list", "in", "Rust", "Python", "2",
        "2.5", "-3", "1,000", "two", "a hundred", "thousands", "½", "\"", "'", "`", "\"\"", "’",
        "“", "”", "„", "`foo::bar`", "src/main.rs", "load_dataset()", "REUSE_DATASET_IF_EXISTS",
        "Google Cloud Storage", "ML", "Machine Learning", "Alice", "Bob", "not", "n't", "doesn’t",
        "never", "without", "before", "after", "over", "under", "more", "less", "than", "first",
        "last", "he", "she", "his", "her", "optional", "required", "Where", "When", "Why", "Who",
        "?", ".", ",", "-", "/", "İ", "ß", "ﬁ", "e\u{301}", "\u{200b}", "\u{202e}", "🦀", "日本語",
        "\n", "\t", "°C", "°", "100°F", "1st", "21st", "Tesla's", "CEO", "of", "JS", "Node.js",
        "Mt.", "Python3", "python3.12", "WW2", "5km", "km", "miles", "many", "Hi,", "Thanks!",
        "Quick question:", "WHAT", "IS", "THE",
    ];

    /// A question made of [`PIECES`], and now and then any text at all.
    fn question() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(PIECES.to_vec());
        prop_oneof![
            4 => prop::collection::vec(piece, 0..16).prop_map(|words| words.join(" ")),
            1 => any::<String>(),
        ]
    }

    proptest! {
        /// A question always agrees with itself, at either closeness, whatever it contains,
        /// unless it is not English (then nothing is served from the semantic tier): the same
        /// request asked twice is never refused by the guard's reading of it.
        #[test]
        fn any_question_passes_against_itself(q in question()) {
            let alone = if Analysis::of(&q).foreign { Err(Veto::Language) } else { Ok(()) };
            prop_assert_eq!(check(&q, &q, Closeness::Similar), alone);
            prop_assert_eq!(check(&q, &q, Closeness::Close), alone);
            prop_assert_eq!(check(&q, &q, Closeness::VeryClose), alone);
        }

        /// What the embedding sees is never empty for a text with words in it, and reading it
        /// never fails.
        #[test]
        fn the_embedded_text_keeps_the_question(q in question()) {
            let seen = embedded(&q);
            prop_assert!(seen.trim().is_empty() == q.trim().is_empty(), "{q:?} -> {seen:?}");
        }

        /// The guard's verdict does not depend on which of two questions was cached first.
        #[test]
        fn the_guard_is_symmetric(a in question(), b in question(), close in 0..3u8) {
            let closeness = match close {
                0 => Closeness::Similar,
                1 => Closeness::Close,
                _ => Closeness::VeryClose,
            };
            prop_assert_eq!(check(&a, &b, closeness), check(&b, &a, closeness));
        }
    }

    #[test]
    fn questions_about_one_long_passage_must_ask_the_same() {
        // A document quoted in full, then a question: the passage makes any two such texts
        // similar, so the questions must agree word for word in content.
        let passage = "Reprise is a gateway that sits between applications and model providers. \
            It speaks the OpenAI API, answers repeated and paraphrased questions from a cache, \
            routes requests across providers with failover and retries, and keeps accounts of \
            spend and savings for every key and team that uses it.";
        let questions = [
            "List the configuration keys described in the text above.",
            "Write a short poem about the gateway described above.",
            "Summarize the main risks mentioned above.",
            "What does the text say about future growth opportunities?",
            "Translate the first paragraph above into French.",
        ];
        for (i, a) in questions.iter().enumerate() {
            for b in &questions[i + 1..] {
                let (a, b) = (format!("{passage}\n\n{a}"), format!("{passage}\n\n{b}"));
                assert!(check(&a, &b, Closeness::Close).is_err(), "{a} / {b}");
            }
        }
        // The same question, reworded in its function words only, still passes; a passage
        // after the question counts the same as one before it.
        let same = |q: &str, r: &str| {
            check(
                &format!("{passage} {q}"),
                &format!("{passage} {r}"),
                Closeness::Close,
            )
        };
        assert_eq!(
            same(
                "How is the cache kept correct?",
                "How can the cache be kept correct?"
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &format!("Summarize this: {passage}"),
                &format!("List the providers in this: {passage}"),
                Closeness::Close
            ),
            Err(Veto::Content)
        );
        // Short questions sharing a few words are not a passage: the usual rules judge them.
        assert_eq!(
            check(
                "How do I sort a list in Rust without changing the original one?",
                "What is the way to sort a list in Rust without altering the original one?",
                Closeness::Close
            ),
            Ok(())
        );
    }

    /// Every pair passes the guard at the lower closeness.
    fn all_pass(pairs: &[(&str, &str)]) {
        for (a, b) in pairs {
            assert_eq!(check(a, b, Closeness::Similar), Ok(()), "{a} / {b}");
        }
    }

    /// Every pair is refused for `veto`, both ways round.
    fn vetoed_both_ways(veto: Veto, pairs: &[(&str, &str)]) {
        for (a, b) in pairs {
            assert_eq!(vetoes(a, b), Some(veto), "{a} / {b}");
            assert_eq!(vetoes(b, a), Some(veto), "{b} / {a}");
        }
    }

    /// Every pair is refused for its reason, even at the higher closenesses.
    fn all_vetoed(pairs: &[(&str, &str, Veto)]) {
        for (a, b, veto) in pairs {
            assert_eq!(check(a, b, Closeness::Close), Err(*veto), "{a} / {b}");
            assert_eq!(check(a, b, Closeness::VeryClose), Err(*veto), "{a} / {b}");
        }
    }

    #[test]
    fn a_contraction_is_its_two_words() {
        // "What's" was one content word that "What is" lacks, and "Who's" / "Where's" opened no
        // question: every such pair was refused.
        all_pass(&[
            (
                "What is the capital of France?",
                "What's the capital of France?",
            ),
            ("Where is the Eiffel Tower?", "Where's the Eiffel Tower?"),
            (
                "Who is the president of France?",
                "Who’s the president of France?",
            ),
            (
                "How is the weather in Paris?",
                "How's the weather in Paris?",
            ),
            (
                "I am learning Rust, what book should I read?",
                "I'm learning Rust, what book should I read?",
            ),
            (
                "They are late, what should I do?",
                "They're late, what should I do?",
            ),
            (
                "I have lost my keys, what should I do?",
                "I've lost my keys, what should I do?",
            ),
            (
                "What will happen if I delete the file?",
                "What'll happen if I delete the file?",
            ),
            (
                "I would like to know how to bake bread",
                "I'd like to know how to bake bread",
            ),
            (
                "Let us write a haiku about autumn",
                "Let's write a haiku about autumn",
            ),
            ("He is a doctor, is he rich?", "He's a doctor, is he rich?"),
            // Typed without the apostrophe, as chat is.
            (
                "whats the capital of france",
                "What's the capital of France?",
            ),
            ("Why doesnt my code work?", "Why doesn't my code work?"),
            ("hows the weather in paris", "How is the weather in Paris?"),
            (
                "im learning rust, what book should i read",
                "I'm learning Rust, what book should I read?",
            ),
        ]);
        // What the contraction leaves is read as before: another name, number or person.
        all_vetoed(&[
            (
                "What's the capital of France?",
                "What's the capital of Spain?",
                Veto::Entities,
            ),
            ("What's 2+2?", "What's 2+3?", Veto::Numbers),
            (
                "He's a doctor, is he rich?",
                "She's a doctor, is she rich?",
                Veto::Pronouns,
            ),
            (
                "Where's the station?",
                "Why's the station closed?",
                Veto::Asks,
            ),
            // "doesnt" is still a negation; "IM" in capitals an acronym.
            (
                "Why doesnt my code work?",
                "Why does my code work?",
                Veto::Negation,
            ),
            (
                "What is an IM client?",
                "What is an I am client?",
                Veto::Entities,
            ),
        ]);
        // A name's "'s" stays a possessive.
        assert_eq!(
            check(
                "What is John's favourite colour?",
                "What is the favourite colour of John?",
                Closeness::Similar
            ),
            Ok(())
        );
        assert_eq!(
            check(
                "What is John's favourite colour?",
                "What is Mary's favourite colour?",
                Closeness::Close
            ),
            Err(Veto::Entities)
        );
    }

    #[test]
    fn the_question_is_the_text_without_what_is_said_around_it() {
        for (text, asked) in [
            (
                "Hi there! How do I reverse a list in Python? Thanks in advance.",
                "How do I reverse a list in Python?",
            ),
            (
                "Quick question: how do I undo a commit? Any help is appreciated. Thanks!",
                "how do I undo a commit?",
            ),
            ("hey, what is rust", "what is rust"),
            ("Good morning. Where is Lyon? Cheers", "Where is Lyon?"),
            (
                "What does 'please' mean? Please.",
                "What does 'please' mean?",
            ),
            // Said inside the question, or nothing else there: it stays.
            (
                "How do I say thank you in French?",
                "How do I say thank you in French?",
            ),
            ("Why do people say thanks?", "Why do people say thanks?"),
            ("Hi!", "Hi!"),
            ("Thanks!", "Thanks!"),
            ("Hello world in Rust?", "Hello world in Rust?"),
            ("hi-res images, where?", "hi-res images, where?"),
            (
                "Thanks to whom was it built? thanks",
                "Thanks to whom was it built?",
            ),
        ] {
            assert_eq!(super::question(text), asked, "{text}");
        }
    }

    /// Conversions and containers with the same words the other way round: the embedding
    /// scores them 0.87 to 1.0, and all but the last were served before these readings.
    #[test]
    fn the_things_a_question_counts_or_converts_may_not_trade_places() {
        all_vetoed(&[
            // The destination of "to" is the noun its phrase ends on, not "degrees".
            (
                "Convert 100 degrees Fahrenheit to degrees Celsius",
                "Convert 100 degrees Celsius to degrees Fahrenheit",
                Veto::Direction,
            ),
            (
                "Convert 100°F to °C",
                "Convert 100°C to °F",
                Veto::Direction,
            ),
            // Every word of the phrase before "to" is its source: "a Word document" is Word.
            (
                "How do I convert a PDF to Word?",
                "What's the best way to turn a Word document into a PDF?",
                Veto::Direction,
            ),
            // What a number counts.
            (
                "How many miles is 5 km?",
                "How many km is 5 miles?",
                Veto::Numbers,
            ),
            (
                "What is 5 miles in km?",
                "What is 5 km in miles?",
                Veto::Numbers,
            ),
            (
                "How many miles per hour is 100 km per hour?",
                "How many km per hour is 100 miles per hour?",
                Veto::Numbers,
            ),
            (
                "How many cups are in a gallon?",
                "How many gallons are in a cup?",
                Veto::Numbers,
            ),
            (
                "How much is 1 USD in EUR?",
                "How much is 1 EUR in USD?",
                Veto::Numbers,
            ),
        ]);
        all_pass(&[
            (
                "Convert 100°F to °C",
                "Convert 100 degrees Fahrenheit to degrees Celsius",
            ),
            (
                "What is the boiling point of water in °C?",
                "What is the boiling point of water in degrees Celsius?",
            ),
            // A number that counts nothing named in one of them; the same things counted.
            (
                "Who won the 2018 World Cup?",
                "Who won the World Cup in 2018?",
            ),
            (
                "The two fields in the NYU Depth V2 dataset are image and depth.",
                "The NYU Depth V2 dataset has two fields, image and depth.",
            ),
        ]);
        assert_eq!(
            super::embedded("Is 30°C hot?"),
            "Is 30 degrees Celsius hot?"
        );
        assert_eq!(super::embedded("a 90° angle"), "a 90 degrees  angle");
    }

    /// The same words with two of them exchanged in one frame: 1.0 to the embedding, and
    /// served before unless they were names.
    #[test]
    fn two_things_exchanged_in_one_frame_ask_something_else() {
        all_vetoed(&[
            (
                "Is a square a rectangle?",
                "Is a rectangle a square?",
                Veto::Roles,
            ),
            (
                "Does the moon orbit the earth?",
                "Does the earth orbit the moon?",
                Veto::Roles,
            ),
            ("Do cats chase mice?", "Do mice chase cats?", Veto::Roles),
            (
                "Can a dog eat a cat's food?",
                "Can a cat eat a dog's food?",
                Veto::Roles,
            ),
            (
                "Does a primary key imply a unique index?",
                "Does a unique index imply a primary key?",
                Veto::Roles,
            ),
            // Read as data going from one to the other.
            (
                "Can the server send data to the client without a request?",
                "Can the client send data to the server without a request?",
                Veto::Direction,
            ),
            (
                "Why is the sky blue and the sea green?",
                "Why is the sky green and the sea blue?",
                Veto::Roles,
            ),
            // The function words around them changed too (0.97 to 0.999, all served before
            // the twenty-third session).
            (
                "What happens if petrol is used in a diesel engine?",
                "What happens when diesel is used in petrol engine?",
                Veto::Roles,
            ),
            (
                "What are the common misconceptions boys have about girls?",
                "What are common misconception girls have about boys?",
                Veto::Roles,
            ),
            (
                "How do I install Mac on Windows?",
                "How should I install Windows on Mac?",
                Veto::Roles,
            ),
            // Two other words changed as well, in another place.
            (
                "What are some good Android app ideas (no games)?",
                "What are some good Android game ideas (no apps)?",
                Veto::Roles,
            ),
        ]);
        all_pass(&[
            // Coordinated, offered as a choice, or in a symmetric relation: the same question.
            ("Are cats and dogs mammals?", "Are dogs and cats mammals?"),
            (
                "Is Noah Bell an actress and an accountant?",
                "Is Noah Bell an accountant and an actress?",
            ),
            (
                "Is a whale a fish or a mammal?",
                "Is a whale a mammal or a fish?",
            ),
            (
                "What is the difference between a virus and bacteria?",
                "What is the difference between bacteria and a virus?",
            ),
            // Words moved around, not exchanged in one frame.
            (
                "What is an example of satire?",
                "What is satire? What are some examples?",
            ),
            (
                "Which question on Quora has the most views?",
                "Which question has the most views on Quora?",
            ),
            (
                "How did Justin Bieber break up with Selena Gomez?",
                "How did Justin Bieber and Selena Gomez break up?",
            ),
            // A distance is the same both ways.
            (
                "How far is earth from the sun?",
                "How far is the Sun from Earth?",
            ),
        ]);
    }

    /// The past and the future are other questions (0.87 to 0.91 to the embedding); the
    /// present answers for the future ("what will happen if..."), and statements are not read
    /// for tense.
    #[test]
    fn a_question_about_the_past_is_not_one_about_the_future() {
        all_vetoed(&[
            (
                "Who won the World Cup?",
                "Who will win the World Cup?",
                Veto::Markers,
            ),
            (
                "When did the war end?",
                "When will the war end?",
                Veto::Markers,
            ),
            (
                "What happened to the stock market?",
                "What will happen to the stock market?",
                Veto::Markers,
            ),
        ]);
        all_pass(&[
            (
                "What will happen if I delete System32?",
                "What happens if I delete System32?",
            ),
            (
                "How will I know if I have the flu?",
                "How do I know if I have the flu?",
            ),
            (
                "The archive is extracted again where it was extracted before.",
                "The archive will be extracted again where it was extracted before.",
            ),
        ]);
    }

    #[test]
    fn the_embedding_sees_the_question_with_names_spelled_out() {
        for (text, seen) in [
            (
                "Hi! How do I read a file in JS? Thanks",
                "How do I read a file in javascript?",
            ),
            ("What is k8s?", "What is kubernetes?"),
            ("How tall is Mt. Everest?", "How tall is Mount Everest?"),
            (
                "Is (Node.js) faster than Deno?",
                "Is (nodejs) faster than Deno?",
            ),
            // Nothing to spell out: the text itself, spacing and all.
            (
                "How  do I read a file in Rust?",
                "How  do I read a file in Rust?",
            ),
            ("How many mt of CO2?", "How many mt of CO2?"),
        ] {
            assert_eq!(super::embedded(text), seen, "{text}");
        }
        assert!(matches!(
            super::embedded("Hey, what is Rust?"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn how_a_question_is_typed_does_not_change_it() {
        all_pass(&[
            // A function word or an order marker in capitals, another spelling (QQP
            // duplicates refused before the twenty-second session).
            (
                "What's The best way to stay healthy?",
                "What is the best way to stay healthy?",
            ),
            (
                "What are the Best books about quantitative finance?",
                "What are the best books about quantitative finance?",
            ),
            (
                "Which book has influenced YOU the most?",
                "Which book has influenced you the most?",
            ),
            (
                "What is it like to be a TV news anchor?",
                "What is it like to be a television news anchor?",
            ),
            ("Can I hack Wi-Fi?", "Can I hack wifi?"),
            (
                "What is the difference between knowledge and information?",
                "What are the differences between knowledge and information?",
            ),
            // No question mark: still a question, asking for a place or a quantity.
            ("Where is the Eiffel Tower?", "Where is the Eiffel Tower"),
            (
                "How many legs does a spider have?",
                "how many legs does a spider have",
            ),
            // A greeting before it, thanks after it.
            (
                "How do I reverse a list in Python?",
                "hey, how do I reverse a list in python?",
            ),
            (
                "How do I reverse a list in Python?",
                "Hi there! How do I reverse a list in Python? Thanks in advance.",
            ),
            (
                "How do I reverse a list in Python?",
                "How do I reverse a list in Python? Thank you!",
            ),
            (
                "How do I reverse a list in Python?",
                "Quick question: how do I reverse a list in Python? Any help appreciated.",
            ),
            (
                "How do I reverse a list in Python?",
                "I was wondering how to reverse a list in Python.",
            ),
            // A request to the assistant around the question; "vs" as "and".
            (
                "How do I reverse a string in Python?",
                "Show me how to reverse a string in Python.",
            ),
            ("Help me write a cover letter", "Write a cover letter"),
            (
                "Explain the difference between a process and a thread.",
                "Process vs thread: what's the difference?",
            ),
            // Abbreviations with or without dots, units written on or spaced, "%" or "percent".
            (
                "What is the population of the U.S.?",
                "What is the population of the US?",
            ),
            ("Convert 5km to miles", "Convert 5 km to miles"),
            (
                "Is 16GB of RAM enough for gaming?",
                "Is 16 GB RAM enough for gaming?",
            ),
            ("What is 10% of 250?", "What is 10 percent of 250?"),
            // The same operators in another order, in a symmetric question.
            (
                "What is the difference between == and === in JavaScript?",
                "What's the difference between === and == in JavaScript?",
            ),
            // Ordinals in digits or words; other spellings of a name; a text in capitals; chat
            // spellings; a possessive or "of".
            ("What is the 1st amendment?", "What is the first amendment?"),
            (
                "What happened in the 5th century?",
                "What happened in the fifth century?",
            ),
            ("How tall is Mt. Everest?", "How tall is Mount Everest?"),
            (
                "How do I read a file in Node.js?",
                "How do I read a file in NodeJS?",
            ),
            (
                "How do I read a file in JS?",
                "How do I read a file in JavaScript?",
            ),
            (
                "How do I connect to postgres from python?",
                "How do I connect to PostgreSQL from Python?",
            ),
            ("What is k8s?", "What is Kubernetes?"),
            (
                "How do I sort a dict by value in Python?",
                "How do I sort a dictionary by value in Python?",
            ),
            (
                "How do I convert a str to an int in Python?",
                "How do I convert a string to an integer in Python?",
            ),
            ("How do I clone a repo?", "How do I clone a repository?"),
            (
                "How do I merge two dicts in Python?",
                "How do I merge two dictionaries in Python?",
            ),
            ("What year did WW2 end?", "What year did World War 2 end?"),
            ("What year did WWII end?", "What year did World War II end?"),
            (
                "How do I sort a dictionary by value in Python 3?",
                "How do I sort a dictionary by value in Python3?",
            ),
            ("What is new in Python3.12?", "What is new in python 3.12"),
            (
                "WHAT IS THE CAPITAL OF AUSTRALIA?",
                "What is the capital of Australia?",
            ),
            ("WHAT DOES NASA DO?", "What does NASA do?"),
            ("Can u explain recursion pls", "Can you explain recursion?"),
            (
                "Where is the Eiffel Tower located?",
                "Where is the Eiffel Tower?",
            ),
            ("Who is Tesla's CEO?", "Who is the CEO of Tesla?"),
            ("Is John's sister Mary?", "Is the sister of John Mary?"),
            // A Roman numeral is its number.
            ("When did World War 2 end?", "When did World War II end?"),
            (
                "What is the plot of Final Fantasy VII?",
                "What is the plot of Final Fantasy 7?",
            ),
        ]);
        all_vetoed(&[
            // Another number, in either writing.
            (
                "When did World War I end?",
                "When did World War II end?",
                Veto::Numbers,
            ),
            ("Who was Henry VIII?", "Who was Henry VII?", Veto::Numbers),
            ("Who was Henry VIII?", "Who was Henry 7?", Veto::Numbers),
            // Ordinals in either writing.
            (
                "What is the 1st amendment?",
                "What is the 2nd amendment?",
                Veto::Numbers,
            ),
            (
                "What is the first amendment?",
                "What is the 2nd amendment?",
                Veto::Numbers,
            ),
            (
                "Who won the 21st Super Bowl?",
                "Who won the 22nd Super Bowl?",
                Veto::Numbers,
            ),
            (
                "What is the 3rd planet from the Sun?",
                "What is the last planet from the Sun?",
                Veto::Numbers,
            ),
            // Another mountain, language, database, agency; another role.
            (
                "How tall is Mt. Everest?",
                "How tall is Mount Fuji?",
                Veto::Entities,
            ),
            (
                "How do I read a file in JS?",
                "How do I read a file in TypeScript?",
                Veto::Code,
            ),
            (
                "How do I connect to postgres from python?",
                "How do I connect to MySQL from Python?",
                Veto::Code,
            ),
            ("WHAT DOES NASA DO?", "What does ESA do?", Veto::Entities),
            (
                "What year did WWI end?",
                "What year did World War II end?",
                Veto::Numbers,
            ),
            (
                "How do I sort a dictionary by value in Python 3?",
                "How do I sort a dictionary by value in python2?",
                Veto::Numbers,
            ),
            (
                "What is new in Python3.12?",
                "What is new in Python 3.11?",
                Veto::Numbers,
            ),
            // In capitals, a quoted string is still compared as typed.
            (
                "HOW DO I PRINT \"HELLO\" IN PYTHON?",
                "How do I print \"hello\" in Python?",
                Veto::Quoted,
            ),
            (
                "Is John's sister Mary?",
                "Is Mary's sister John?",
                Veto::Roles,
            ),
            (
                "Is Mary's son taller than John?",
                "Is John taller than Mary's son?",
                Veto::Roles,
            ),
            // A question typed without its mark still asks what it asks.
            (
                "Where should I promote my business online",
                "How can I promote my business online?",
                Veto::Asks,
            ),
            (
                "What's the GDP of the U.K.?",
                "What is the GDP of the U.S.?",
                Veto::Entities,
            ),
            (
                "Is 16GB of RAM enough for gaming?",
                "Is 32GB of RAM enough for gaming?",
                Veto::Numbers,
            ),
            // A decade, a name with a number in it: no unit to split off.
            (
                "What happened in the 1990s?",
                "What happened in 1990?",
                Veto::Numbers,
            ),
            (
                "What is a 3D printer?",
                "What is a 3 printer?",
                Veto::Numbers,
            ),
            ("What is 10% of 250?", "What is 10 of 250?", Veto::Content),
            (
                "What does a == b do in Python?",
                "What does a != b do in Python?",
                Veto::Operators,
            ),
            (
                "Why is 5 - 3 not equal to 3 - 5?",
                "Why is 5 - 3 not equal to 3 + 5?",
                Veto::Operators,
            ),
            // "Show" is a content word unless it asks the assistant ("show me").
            (
                "How do I show hidden files on Mac?",
                "How do I hide files on Mac?",
                Veto::Content,
            ),
            (
                "Show me a picture of a cat",
                "Show me a picture of a dog",
                Veto::Content,
            ),
            // Greetings and thanks are only set aside around a question, not inside one.
            (
                "How do I say hello in French?",
                "How do I say thanks in French?",
                Veto::Content,
            ),
        ]);
        // English words that are also function words of other languages (German "war",
        // Romanian "ii", Danish "end") do not make a question foreign; another language does.
        assert_eq!(
            check(
                "When did World War II end?",
                "When did World War II end?",
                Closeness::Close
            ),
            Ok(())
        );
        for q in [
            "Was ist die Hauptstadt von Frankreich?",
            "Quelle est la capitale de la France?",
            "¿Cuántos días tiene una semana?",
        ] {
            assert_eq!(check(q, q, Closeness::Close), Err(Veto::Language), "{q}");
        }
    }

    #[test]
    fn a_root_in_eed_keeps_its_letters_and_a_verb_in_ee_loses_its_d() {
        for (a, b) in [
            ("speed", "speeds"),
            ("exceed", "exceeding"),
            ("need", "needs"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} / {b}");
        }
        assert_eq!(stem("speed"), "speed");
        for (a, b) in [
            ("differences", "difference"),
            ("difference", "differ"),
            ("performances", "performance"),
            ("referenced", "reference"),
            ("sentences", "sentence"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} / {b}");
        }
        for (a, b) in [
            ("agreed", "agree"),
            ("agrees", "agree"),
            ("guaranteed", "guarantees"),
            ("employees", "employee"),
            ("trees", "tree"),
            ("fees", "fee"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} / {b}");
        }
    }

    #[test]
    fn a_noun_ending_in_en_is_its_plural_and_a_participle_its_verb() {
        // "-en" is no suffix to strip: "token" / "tokens", "kitchen" / "kitchens", "open" /
        // "opened" were two words each.
        assert_eq!(stem("token"), stem("tokens"));
        assert_eq!(stem("kitchen"), stem("kitchens"));
        assert_eq!(stem("open"), stem("opened"));
        assert_eq!(stem("between"), "between");
        // Participles in "-en" read as their verb from the table of irregular forms.
        for (participle, verb) in [("written", "write"), ("shown", "show"), ("taken", "take")] {
            assert_eq!(stem(participle), stem(verb), "{participle}");
        }
        assert_eq!(
            check(
                "How do I count the tokens of a prompt?",
                "How do I count the token of a prompt?",
                Closeness::Similar
            ),
            Ok(())
        );
    }

    #[test]
    fn a_noun_made_from_a_verb_is_the_verb_and_between_is_no_content() {
        // Reworded around the noun, the same question.
        for (a, b) in [
            (
                "How do I configure nginx?",
                "What is the configuration of nginx?",
            ),
            ("How do I install numpy?", "numpy installation"),
            (
                "How do I delete a branch in git?",
                "Deletion of a branch in git",
            ),
            (
                "How does a list differ from a tuple?",
                "What is the difference between a list and a tuple?",
            ),
        ] {
            assert_eq!(check(a, b, Closeness::Similar), Ok(()), "{a} / {b}");
        }
        // So another object in a question reworded around the same comparison is a change of
        // content words in one frame, not a rewording: "list" / "dictionary".
        assert_eq!(
            check(
                "What is the difference between a list and a tuple in python?",
                "In python, how does a tuple differ from a dictionary?",
                Closeness::Similar
            ),
            Err(Veto::Content)
        );
        // Nouns whose verb means another thing stay themselves.
        assert_eq!(
            check(
                "What is the importance of unit tests?",
                "How do I import unit tests?",
                Closeness::Similar
            ),
            Err(Veto::Content)
        );
    }

    #[test]
    fn numbers_quotes_code_and_entities_must_agree() {
        // Answer particles, list enumerators, version prefixes and sentence capitals are
        // surface, not substance.
        assert_eq!(
            vetoes(
                "No, LOAD_HU doesn't exist in release v2.10.0.",
                "LOAD_HU does not exist in release 2.10.0."
            ),
            None
        );
        assert_eq!(
            vetoes(
                "It works in two steps: 1) it downloads the files, and 2) it builds the dataset.",
                "It works in two steps: it downloads the files and then builds the dataset."
            ),
            None
        );
        assert_eq!(
            vetoes(
                "Furthermore, the library supports streaming large datasets from remote storage.",
                "The library can also stream big datasets from remote storage."
            ),
            None
        );
        // ... while a name inside a sentence, a quantity and a negation still count.
        assert_eq!(
            vetoes(
                "Is one cup of coffee enough?",
                "Are two cups of coffee enough?"
            ),
            Some(Veto::Numbers)
        );
        assert_eq!(
            vetoes(
                "No, is it safe to swim today?",
                "Is it not safe to swim today?"
            ),
            Some(Veto::Negation)
        );
        assert_eq!(vetoes("What is 2+3?", "What is 2+4?"), Some(Veto::Numbers));
        assert_eq!(
            vetoes(
                "What happened in 1999?",
                "What happened in nineteen ninety?"
            ),
            Some(Veto::Numbers)
        );
        assert_eq!(
            vetoes(
                "Translate \"good morning\" to French",
                "Translate \"good night\" to French"
            ),
            Some(Veto::Quoted)
        );
        assert_eq!(
            vetoes("What does os.path.join do?", "What does os.path.split do?"),
            Some(Veto::Code)
        );
        // A qualified name written out in its parts is the same identifier; a part missing is
        // not.
        assert_eq!(
            vetoes(
                "What are the parameters of datasets.TextClassification?",
                "What are the parameters of the TextClassification class of datasets?"
            ),
            None
        );
        assert_eq!(
            vetoes(
                "What are the parameters of datasets.TextClassification?",
                "What are the parameters of the TextClassification class?"
            ),
            Some(Veto::Code)
        );
        assert_eq!(
            vetoes(
                "What does the os.path module join?",
                "What does the ospath module join?"
            ),
            Some(Veto::Code)
        );
        assert_eq!(
            vetoes("Is Jacob Howard Muslim?", "Is Angela Perez Muslim?"),
            Some(Veto::Entities)
        );
        assert_eq!(
            vetoes(
                "When is the best time to visit Japan?",
                "When is the best time to visit Peru?"
            ),
            Some(Veto::Entities)
        );
        // A number is the same number in digits or in words.
        assert_eq!(vetoes("What is two plus two?", "What is 2 plus 2?"), None);
        assert_eq!(
            vetoes(
                "Are there a hundred languages on the Hub?",
                "Are there 100 languages on the Hub?"
            ),
            None
        );
        assert_eq!(
            vetoes("What is two plus three?", "What is 2 plus 2?"),
            Some(Veto::Numbers)
        );
        // "over" and "under" before a number compare like "more than" and "less than".
        all_pass(&[
            (
                "Does the Hub host over 100 models?",
                "Does the Hub host more than 100 models?",
            ),
            (
                "Does the Hub host under 100 models?",
                "Does the Hub host fewer than 100 models?",
            ),
        ]);
        assert_eq!(
            vetoes(
                "Can I drink alcohol in Spain over 18?",
                "Can I drink alcohol in Spain under 18?"
            ),
            Some(Veto::Negation)
        );
        // An acronym is the name its initials spell out, either way round; other initials are
        // another name.
        for (a, b) in [
            (
                "Which universities are best for ML research?",
                "Which universities are best for Machine Learning research?",
            ),
            (
                "Is the Hub a collection of datasets for NLP and audio?",
                "Is the Hub a collection of datasets for Natural Language Processing and audio?",
            ),
        ] {
            assert_eq!(vetoes(a, b), None, "{a} / {b}");
            assert_eq!(vetoes(b, a), None, "{b} / {a}");
        }
        assert_eq!(
            vetoes(
                "Which universities are best for ML research?",
                "Which universities are best for Machine Translation research?"
            ),
            Some(Veto::Entities)
        );
    }

    #[test]
    fn an_error_message_and_an_operator_written_with_punctuation_are_literal() {
        all_vetoed(&[
            (
                "Fix this error: TypeError: undefined is not a function",
                "Fix this error: TypeError: null is not an object",
                Veto::Quoted,
            ),
            (
                "Why do I get java.lang.NullPointerException: name is null?",
                "Why do I get java.lang.NullPointerException: id is null?",
                Veto::Quoted,
            ),
            (
                "What does the ?? operator do in JavaScript?",
                "What does the ?. operator do in JavaScript?",
                Veto::Operators,
            ),
        ]);
        all_pass(&[
            (
                "Fix this error: TypeError: undefined is not a function",
                "How do I fix this error: TypeError: undefined is not a function?",
            ),
            (
                "What does the ?? operator do in JavaScript?",
                "In JavaScript, what does the ?? operator do?",
            ),
        ]);
        assert!(operators("How are you ?").is_empty());
    }

    #[test]
    fn a_name_that_is_also_a_common_word_is_still_a_name() {
        all_vetoed(&[
            (
                "Is Will Smith an actor?",
                "Is Jaden Smith an actor?",
                Veto::Entities,
            ),
            ("What About BuzzFeed?", "What is BuzzFeed?", Veto::Entities),
        ]);
    }

    #[test]
    fn typographic_apostrophes_and_quotes_read_like_plain_ones() {
        // Phones and word processors type ’ and “…”: a negation or a quoted string written with
        // them is the same as with ' and "...".
        for not in ["doesn’t", "doesnʼt", "doesn‘t"] {
            assert_eq!(
                vetoes(
                    "Why does my build fail on CI?",
                    &format!("Why {not} my build fail on CI?")
                ),
                Some(Veto::Negation),
                "{not}"
            );
            assert_eq!(
                vetoes(
                    "Why doesn't my build fail on CI?",
                    &format!("Why {not} my build fail on CI?")
                ),
                None,
                "{not}"
            );
        }
        assert_eq!(
            vetoes(
                "What does the “::” separator do in a path?",
                "What does the \"::\" separator do in a path?"
            ),
            None
        );
        assert_eq!(
            vetoes(
                "What does the “::” separator do in a path?",
                "What does the \"//\" separator do in a path?"
            ),
            Some(Veto::Quoted)
        );
        assert_eq!(vetoes("Is it John’s car?", "Is it John's car?"), None);
        // A run of quotes is one quote (text escaped for CSV doubles them).
        let phrase = |p: &str| format!("What is the meaning of the phrase \"\"{p}\"\"?");
        assert_eq!(
            vetoes(&phrase("mind over matter"), &phrase("peace of mind")),
            Some(Veto::Quoted)
        );
        assert_eq!(
            vetoes(
                &phrase("mind over matter"),
                "What is the meaning of the phrase \"mind over matter\"?"
            ),
            None
        );
    }

    #[test]
    fn negation_order_pronouns_and_roles() {
        assert_eq!(
            vetoes(
                "What should an author worry about?",
                "What should an author not worry about?"
            ),
            Some(Veto::Negation)
        );
        // "Optional" is "not required" (or "not mandatory").
        assert_eq!(
            vetoes(
                "Is the dataset script optional for CSV files?",
                "Is the dataset script not mandatory for CSV files?"
            ),
            None
        );
        assert_eq!(
            vetoes(
                "Is the dataset script optional for CSV files?",
                "Is the dataset script required for CSV files?"
            ),
            Some(Veto::Negation)
        );
        // Words that negate by meaning count like "not", both ways.
        all_pass(&[
            (
                "How do I stop the parser from not creating copies?",
                "How do I stop the parser from avoiding creating copies?",
            ),
            (
                "How do I extract archives in non-streaming mode?",
                "How do I extract archives without streaming mode?",
            ),
            (
                "What happens when there is no dataset script?",
                "What happens in the absence of a dataset script?",
            ),
        ]);
        assert_eq!(
            vetoes("How can I avoid overfitting?", "How can I get overfitting?"),
            Some(Veto::Negation)
        );
        assert_eq!(
            vetoes(
                "Is it safe to pray in Chad?",
                "Is it safe not to pray in Chad?"
            ),
            Some(Veto::Negation)
        );
        assert_eq!(
            vetoes(
                "How can I become more patient?",
                "How can I become less patient?"
            ),
            Some(Veto::Negation)
        );
        assert_eq!(
            vetoes(
                "Do you weigh your dog before clipping it?",
                "Do you weigh your dog after clipping it?"
            ),
            Some(Veto::Markers)
        );
        assert_eq!(
            vetoes(
                "If Ian and Michelle were alone, would he reject her?",
                "If Ian and Michelle were alone, would she reject him?"
            ),
            Some(Veto::Pronouns)
        );
        // "Jacob loyal to Justin": Jacob is read as going to Justin.
        assert_eq!(
            vetoes("Is Jacob loyal to Justin?", "Is Justin loyal to Jacob?"),
            Some(Veto::Direction)
        );
        assert_eq!(
            vetoes("Does Andrea support Kyle?", "Is Andrea supported by Kyle?"),
            Some(Veto::Roles)
        );
        assert_eq!(
            vetoes(
                "Did Zachary want the newspaper?",
                "Was Zachary wanted by the newspaper?"
            ),
            Some(Veto::Roles)
        );
        // A name of several words, or of one identifier, is one participant: a sentence that
        // names only one has no roles to swap.
        assert_eq!(
            vetoes(
                "Is Jacob Miller loyal to Justin Brown?",
                "Is Justin Brown loyal to Jacob Miller?"
            ),
            Some(Veto::Roles)
        );
        assert_eq!(
            vetoes(
                "Is Jacob, Justin's brother, loyal?",
                "Is Justin, Jacob's brother, loyal?"
            ),
            Some(Veto::Roles)
        );
        // The same name twice is one participant.
        assert_eq!(
            vetoes(
                "What does a poke mean on Facebook? How do you poke someone on Facebook?",
                "What does it mean when you poke someone on Facebook? How do you poke on Facebook?"
            ),
            None
        );
        all_pass(&[
            (
                "The default value of the `download_mode` parameter is `REUSE_DATASET_IF_EXISTS`.",
                "The `download_mode` parameter has `REUSE_DATASET_IF_EXISTS` as its default value.",
            ),
            (
                "You can clone the repository using Git LFS and the git clone command.",
                "Git LFS and the git clone command can be used to clone the repository.",
            ),
        ]);
    }

    #[test]
    fn the_same_things_in_the_other_direction_or_order_ask_something_else() {
        // The embedding gives each pair 1.0: the same words.
        for (a, b, veto) in [
            (
                "How do I convert Fahrenheit to Celsius?",
                "How do I convert Celsius to Fahrenheit?",
                Veto::Direction,
            ),
            // What 5 counts is read first.
            (
                "Convert 5 km to miles",
                "Convert 5 miles to km",
                Veto::Numbers,
            ),
            (
                "How do I migrate from MySQL to PostgreSQL?",
                "How do I migrate from PostgreSQL to MySQL?",
                Veto::Direction,
            ),
            (
                "How do I cast an int to a string in Java?",
                "How do I cast a string to an int in Java?",
                Veto::Direction,
            ),
            (
                "How to copy files from local to remote with scp?",
                "How to copy files from remote to local with scp?",
                Veto::Direction,
            ),
            (
                "Translate this into French from German.",
                "Translate this into German from French.",
                Veto::Direction,
            ),
            ("What is 5 minus 3?", "What is 3 minus 5?", Veto::Numbers),
            (
                "What is 2 to the power of 10?",
                "What is 10 to the power of 2?",
                Veto::Numbers,
            ),
        ] {
            assert_eq!(vetoes(a, b), Some(veto), "{a} / {b}");
            assert_eq!(vetoes(b, a), Some(veto), "{b} / {a}");
        }
        // The same direction written another way, a symmetric relation, a choice, and
        // identifiers with digits moved by a rephrasing.
        all_pass(&[
            (
                "How do I go to Paris from London?",
                "How do I go from London to Paris?",
            ),
            (
                "How do I convert Fahrenheit to Celsius?",
                "How can I convert to Celsius from Fahrenheit?",
            ),
            (
                "Is a tomato similar to a potato?",
                "Is a potato similar to a tomato?",
            ),
            ("Compare Python to Java", "Compare Java to Python"),
            ("Which is bigger, 5 or 3?", "Which is bigger, 3 or 5?"),
            ("How do I use S3 with s3fs?", "With s3fs, how do I use S3?"),
        ]);
    }

    #[test]
    fn a_name_written_with_a_sigil_is_a_name_of_its_own() {
        // "C#" and "C++" are not "C": the guard drops the sigils with the punctuation.
        vetoed_both_ways(
            Veto::Entities,
            &[
                (
                    "What is the difference between C++ and C#?",
                    "What is the difference between C and C++?",
                ),
                ("How do I learn C#?", "How do I learn C++?"),
                ("How do I learn c#?", "How do I learn c?"),
                (
                    "Why is C++ faster than Python?",
                    "Why is C faster than Python?",
                ),
                ("What is Notepad++?", "What is Notepad?"),
                ("Is F# worth learning?", "Is C# worth learning?"),
            ],
        );
        all_pass(&[
            (
                "What's the best way to learn C#?",
                "What is the best way to learn C#?",
            ),
            (
                "How do I learn C++ programming?",
                "How can I learn C++ programming?",
            ),
            (
                "How does C# compare to Java?",
                "How does Java compare to C#?",
            ),
        ]);
        assert_eq!(sigiled_names("x += 1; i++; #tag"), "x += 1; i++; #tag");
        assert_eq!(sigiled_names("C++, c# and F#."), "Cpp, Csharp and Fsharp.");
    }

    #[test]
    fn operators_between_the_same_operands_ask_something_else() {
        // Symbols are not words: the embedding barely sees them.
        vetoed_both_ways(
            Veto::Operators,
            &[
                ("What is 5 - 3?", "What is 5 * 3?"),
                ("What is 12 / 4?", "What is 12 + 4?"),
                (
                    "In C, what does a == b return?",
                    "In C, what does a != b return?",
                ),
                ("What does x += 1 do?", "What does x -= 1 do?"),
                (
                    "In bash, what does cmd1 && cmd2 do?",
                    "In bash, what does cmd1 || cmd2 do?",
                ),
                (
                    "Is x <= 10 true when x is 10?",
                    "Is x < 10 true when x is 10?",
                ),
                ("What does a << 2 give?", "What does a >> 2 give?"),
                // The side of an increment: "i++" is the value before, "++i" the value after.
                (
                    "How do I use the i++ operator?",
                    "How do I use the ++i operator?",
                ),
                ("How do I use i++ in a loop?", "How do I use i-- in a loop?"),
            ],
        );
        // Hyphens in words and names, a slash between words, a percentage, and the same
        // expression written with other spacing are no operators.
        all_pass(&[
            (
                "What is two-factor authentication?",
                "Explain two-factor authentication.",
            ),
            ("What is GPT-4?", "Tell me what GPT-4 is."),
            ("What is 10% of 50?", "Tell me what 10% of 50 is."),
            ("What is 5-3?", "What is 5 - 3?"),
            ("What is TCP/IP?", "Explain TCP/IP."),
            (
                "Should I write and/or in a contract?",
                "In a contract, should I write and/or?",
            ),
        ]);
    }

    #[test]
    fn the_opposite_operation_in_other_words_asks_something_else() {
        // Reworded around the changed verb, so the content-word rule leaves these to the
        // similarity, which scores them 0.82 to 0.90.
        vetoed_both_ways(
            Veto::Opposite,
            &[
                (
                    "How do I encrypt a file with openssl on Linux?",
                    "What is the way to decrypt a file using openssl in Linux?",
                ),
                (
                    "How can I upload a file to S3 using boto3?",
                    "What's the way to download a file from S3 with boto3?",
                ),
                (
                    "How do I enable SSH on Ubuntu server?",
                    "What steps disable SSH on an Ubuntu server?",
                ),
                (
                    "How do I push changes to a remote git repository?",
                    "What command pulls changes from a remote git repository?",
                ),
                (
                    "How do I sort a list in descending order in Python?",
                    "What's the way to sort a Python list in ascending order?",
                ),
                (
                    "How do I start the docker daemon on Linux?",
                    "What command stops the docker daemon on Linux?",
                ),
                (
                    "What is the maximum value of an int in Java?",
                    "What is the minimum value of an int in Java?",
                ),
                // Function words too.
                (
                    "How do I delete all rows in a table in SQL?",
                    "What is the way to delete some rows from a SQL table?",
                ),
            ],
        );
        // Both sides on one side, or one side the same in both: no opposite.
        for (a, b) in [
            (
                "How do I encrypt and decrypt a file with openssl?",
                "With openssl, how do I decrypt and encrypt a file?",
            ),
            (
                "What is the difference between push and pull in git?",
                "In git, how does pull differ from push?",
            ),
            (
                "How do I upload a file to S3 and then download it?",
                "What is the way to upload a file to S3 and later download it?",
            ),
        ] {
            assert_ne!(vetoes(a, b), Some(Veto::Opposite), "{a} / {b}");
        }
    }

    #[test]
    fn finding_creating_changing_and_deleting_are_different_requests() {
        // Reworded around the verb, 0.82 to 0.92 to the embedding; the first and the last
        // were served before the twenty-second session.
        vetoed_both_ways(
            Veto::Opposite,
            &[
                (
                    "How do I kill a process on port 8080?",
                    "How do I find which process is using port 8080?",
                ),
                (
                    "How do I find large files on Linux?",
                    "What is the way to remove large files on Linux?",
                ),
                (
                    "How do I view my crontab entries?",
                    "What's the best way to edit my crontab entries?",
                ),
                (
                    "How do I add an SSH key to GitHub?",
                    "Where do I find my SSH key for GitHub?",
                ),
                (
                    "How do I update a column value in SQL?",
                    "How can I insert a column value in SQL?",
                ),
                (
                    "How to speed up a slow laptop?",
                    "How to slow down a fast laptop?",
                ),
            ],
        );
        // One action in other words, or several in a passage.
        for (a, b) in [
            (
                "How do I delete a git branch?",
                "What's the command to remove a git branch?",
            ),
            (
                "How do I find which process is using port 8080?",
                "How can I identify the process listening on port 8080?",
            ),
            (
                "How do I find and delete large files on Linux?",
                "What is the way to remove large files on Linux?",
            ),
            (
                "You will learn how to create a dataset builder class, add dataset metadata, \
                 generate the dataset, and upload the dataset to the Hub.",
                "You will be taught to construct a dataset builder class, attach dataset \
                 metadata, fabricate the dataset, determine its splits and upload it to the Hub.",
            ),
        ] {
            assert_ne!(
                check(a, b, Closeness::Close).err(),
                Some(Veto::Opposite),
                "{a} / {b}"
            );
        }
    }

    #[test]
    fn tools_named_in_lower_case_are_names() {
        assert_eq!(
            vetoes(
                "how to read a file line by line in rust",
                "what's the way to read a file line by line in golang"
            ),
            Some(Veto::Entities)
        );
        assert_eq!(
            vetoes(
                "how do i reverse a string in python?",
                "what is the way to reverse a string using java?"
            ),
            Some(Veto::Entities)
        );
        // The same name in capitals, or first in the sentence, is the same name.
        all_pass(&[
            (
                "how do i reverse a string in python?",
                "How do I reverse a string in Python?",
            ),
            (
                "Python: how do I reverse a string?",
                "how do i reverse a string in python",
            ),
        ]);
    }

    #[test]
    fn an_apostrophe_inside_a_word_does_not_close_a_quote() {
        assert_eq!(
            vetoes(
                "Is 'He don't like apples.' correct?",
                "Is 'He doesn't like apples.' correct?"
            ),
            Some(Veto::Quoted)
        );
    }

    #[test]
    fn questions_in_another_language_are_left_to_the_exact_tier() {
        // Each pair differs in what it asks; the embedding puts most of them above the
        // threshold, and the first two passed the English rules (their function words counted
        // as content words, so they looked reworded).
        for (a, b) in [
            (
                "¿Cuántos días tiene una semana?",
                "¿Cuántos días tiene un mes?",
            ),
            ("प्रधानमंत्री कौन है?", "राष्ट्रपति कौन है?"),
            (
                "Wie viele Tage hat eine Woche?",
                "Wie viele Tage hat ein Monat?",
            ),
            (
                "Quelle est la capitale de la France ?",
                "Quelle est la capitale de l'Italie ?",
            ),
            (
                "Wat is de hoofdstad van Frankrijk?",
                "Wat is de hoofdstad van Duitsland?",
            ),
            (
                "Qual é a capital da França?",
                "Qual é a capital da Alemanha?",
            ),
            ("今天天气怎么样？", "明天天气怎么样？"),
            ("Какая столица Франции?", "Какая столица Германии?"),
            ("서울의 인구는 얼마입니까?", "부산의 인구는 얼마입니까?"),
            (
                "Bao nhiêu ngày trong một tuần?",
                "Bao nhiêu ngày trong một tháng?",
            ),
        ] {
            assert_eq!(vetoes(a, b), Some(Veto::Language), "{a} / {b}");
            // Not even the same question: it is the exact tier's to serve.
            assert_eq!(vetoes(a, a), Some(Veto::Language), "{a}");
        }
        // English with a few foreign words (a name, a loanword, a quoted word) is English.
        for q in [
            "What does 'déjà vu' mean?",
            "How do I make a café latte at home?",
            "Who founded Zürich and when?",
            "What is the meaning of the Japanese word 木漏れ日 in English?",
            "Why do men die in war?",
            "Could One Punch Man kill Wolverine?",
        ] {
            assert_eq!(vetoes(q, q), None, "{q}");
        }
    }

    #[test]
    fn changed_or_added_content_words() {
        assert_eq!(
            vetoes("Can I feed my fish soup?", "Can I feed my dog soup?"),
            Some(Veto::Content)
        );
        assert_eq!(
            vetoes(
                "Is Tyler Johnson an actor?",
                "Is Tyler Johnson a bad actor?"
            ),
            Some(Veto::Content)
        );
        assert_eq!(
            vetoes(
                "Is Sara Walker an actress?",
                "Is Sara Walker becoming an actress?"
            ),
            Some(Veto::Content)
        );
    }

    #[test]
    fn a_phrase_in_place_of_another_in_one_frame_names_another_thing() {
        // However close, and however many words the phrases take.
        for (a, b) in [
            (
                "Write a regex that matches an email address.",
                "Write a regex that matches a phone number.",
            ),
            (
                "How do I validate an email address in JavaScript?",
                "How do I validate a phone number in JavaScript?",
            ),
            (
                "How do I get the current date in Java?",
                "How do I get the current time zone in Java?",
            ),
            (
                "What are some good books on machine learning?",
                "What are some good books on deep neural networks?",
            ),
            (
                "What are the side effects of ibuprofen tablets?",
                "What are the side effects of blood pressure medication?",
            ),
            // The same with a clause moved from the start to the end.
            (
                "On a Mac, how do I take a screenshot?",
                "How do I take a screen recording on a Mac?",
            ),
        ] {
            assert_eq!(
                check(a, b, Closeness::Close).err(),
                Some(Veto::Content),
                "{a} / {b}"
            );
            assert_eq!(vetoes(b, a), Some(Veto::Content), "{b} / {a}");
        }
        // Not when the phrases share a word, name one thing (an acronym and its words, one
        // spelling and another), or are a verb's synonyms; nor a longer rewording.
        for (a, b) in [
            (
                "What is the GDP of the UK?",
                "What is the GDP of the United Kingdom?",
            ),
            (
                "How do I validate an email address in JavaScript?",
                "How do I validate an e-mail address in JavaScript?",
            ),
            (
                "The `iter_files` method iterates over files.",
                "The `iter_files` method cycles through files.",
            ),
            (
                "The parameters of the datasets.AudioClassification class are task and label_column.",
                "The parameters of the AudioClassification class of datasets are task and label_column.",
            ),
            ("What is the square root of 144?", "What's the sqrt of 144?"),
        ] {
            assert_eq!(check(a, b, Closeness::Close).err(), None, "{a} / {b}");
        }
    }

    #[test]
    fn other_words_for_an_order_count_as_its_marker() {
        all_pass(&[
            (
                "What did the previous method return?",
                "What did the preceding method return?",
            ),
            (
                "What happens prior to caching the file?",
                "What happens before caching the file?",
            ),
            ("What is the initial step?", "What is the first step?"),
        ]);
        assert_eq!(
            vetoes(
                "What happens prior to caching the file?",
                "What happens after caching the file?"
            ),
            Some(Veto::Markers)
        );
    }

    #[test]
    fn other_spellings_are_found_in_any_case_and_in_the_plural() {
        assert!(SPELLINGS.iter().all(|(s, _, _)| s.len() <= SPELLING_BYTES));
        assert_eq!(respelled("K8S"), Some(("kubernetes", false)));
        assert_eq!(respelled("Node.js"), Some(("nodejs", false)));
        assert_eq!(respelled("dicts"), Some(("dictionary", false)));
        assert_eq!(respelled("repos"), Some(("repository", false)));
        // A cased spelling only as written, and never in the plural.
        assert_eq!(respelled("Mt"), Some(("Mount", true)));
        assert_eq!(respelled("mt"), None);
        assert_eq!(respelled("Mts"), None);
        assert_eq!(respelled("dictionaryish-and-more"), None);
        assert_eq!(respelled("jš"), None);
    }

    #[test]
    fn british_and_american_spellings_are_one_word() {
        all_pass(&[
            (
                "Why do people go to the theatre?",
                "Why do people go to the theater?",
            ),
            (
                "Does counselling really work?",
                "Does counseling really work?",
            ),
            (
                "How do I organise my colour palette?",
                "How do I organize my color palette?",
            ),
            (
                "How do I analyse a programme's logs?",
                "How do I analyze a program's logs?",
            ),
            (
                "Is a driving licence a valid ID?",
                "Is a driving license a valid ID?",
            ),
            (
                "Where is the IAS coaching centre?",
                "Where is the IAS coaching center?",
            ),
            (
                "What is in the product catalogue?",
                "What is in the product catalog?",
            ),
        ]);
        // Still one word each, not the other's.
        assert_eq!(
            vetoes("Is a detour shorter?", "Is a tour shorter?"),
            Some(Veto::Content)
        );
        assert_eq!(
            vetoes(
                "What is in the product catalogue?",
                "What is in the product dialogue?"
            ),
            Some(Veto::Content)
        );
    }

    #[test]
    fn the_speaker_acted_on_is_not_the_speaker_acting() {
        vetoed_both_ways(
            Veto::Roles,
            &[
                (
                    "What should I do if my dog bites me?",
                    "What should I do if I bite my dog?",
                ),
                ("Does my boss hate me?", "Do I hate my boss?"),
                (
                    "How do I know if a shy guy likes me?",
                    "How do I know if a guy I like is shy?",
                ),
            ],
        );
        // "Me" after a preposition or a request, or "US" the country, is no one acted on.
        all_pass(&[
            ("Explain recursion to me", "Explain recursion"),
            (
                "Is it safe for me to eat raw eggs?",
                "Is it safe to eat raw eggs?",
            ),
            (
                "Show me how to reverse a list in Python",
                "How do I reverse a list in Python?",
            ),
            (
                "Where can I get a database of U.S. family offices?",
                "Where can I get a database of family offices in the U.S.?",
            ),
        ]);
    }

    #[test]
    fn whether_to_do_something_is_not_how_to_do_it() {
        // Reasons and risks against steps (0.93 to 0.97 with the default model).
        vetoed_both_ways(
            Veto::Asks,
            &[
                (
                    "Should I jailbreak my iPhone 6?",
                    "How do I jailbreak my iPhone 6?",
                ),
                (
                    "Should I add a blog to my website?",
                    "How do I add a blog to my website?",
                ),
                (
                    "Should Tibet gain independence?",
                    "How can Tibet gain independence?",
                ),
                ("Should I learn Java?", "How to learn Java?"),
                // What with, of or for against how (0.98 and 0.99).
                ("What is cocaine made of?", "How is cocaine made?"),
                ("What's cheese made from?", "How is cheese made?"),
                (
                    "What do birds build their nests with?",
                    "How do birds build their nests?",
                ),
                ("What is Python used for?", "How is Python used?"),
            ],
        );
        for (a, b) in [
            // Either both or neither way round.
            ("Should I learn Java?", "Is it worth learning Java?"),
            (
                "How do I learn Java?",
                "What is the best way to learn Java?",
            ),
            (
                "Should India join CPEC? How would it benefit India?",
                "Should India join the CPEC?",
            ),
            // "How is..." asks what something is like, not how to do it.
            ("Should I buy a Tesla?", "How is a Tesla to drive?"),
            ("What is cheese made from?", "What is cheese made of?"),
            ("What is Python used for?", "What is the purpose of Python?"),
        ] {
            assert_ne!(vetoes(a, b), Some(Veto::Asks), "{a} / {b}");
            assert_ne!(vetoes(b, a), Some(Veto::Asks), "{b} / {a}");
        }
    }

    #[test]
    fn the_best_way_to_do_something_asks_how_to_do_it() {
        all_pass(&[
            (
                "What is the best way to learn networking?",
                "How can I learn networking?",
            ),
            (
                "What are the best ways to make candles?",
                "How do you make candles?",
            ),
            (
                "What is a good way to learn Java?",
                "What is the best way to learn Java?",
            ),
        ]);
        // Another order or another way is still another question.
        for (a, b, veto) in [
            (
                "What is the best way to learn Java?",
                "What is the worst way to learn Java?",
                Veto::Markers,
            ),
            (
                "What is the best way to learn Java?",
                "What is the fastest way to learn Java?",
                Veto::Content,
            ),
            (
                "What is the best book to learn Java?",
                "How can I learn Java?",
                Veto::Markers,
            ),
        ] {
            assert_eq!(vetoes(a, b), Some(veto), "{a} / {b}");
        }
    }

    #[test]
    fn a_place_time_reason_person_or_quantity_is_not_asked_for_by_another_question() {
        for (a, b) in [
            (
                "Where should I promote my business online?",
                "How can I promote my business online?",
            ),
            ("Who has invested in SpaceX?", "Can I invest in SpaceX?"),
            (
                "When should I water a cactus?",
                "Why should I water a cactus?",
            ),
            (
                "How many hours should I study for the exam?",
                "How should I study hours for the exam?",
            ),
        ] {
            assert_eq!(vetoes(a, b), Some(Veto::Asks), "{a} / {b}");
        }
        all_pass(&[
            // "What", "how" and yes/no questions trade places in paraphrases.
            (
                "How do I reverse a list in Python?",
                "What is the way to reverse a list in Python?",
            ),
            // A conditional "when" asks for no time; nor does a statement.
            (
                "When I sort a list in Python, is the original kept?",
                "If I sort a list in Python, is the original kept?",
            ),
            (
                "When sorting a list in Python the original is kept.",
                "Sorting a list in Python keeps the original.",
            ),
        ]);
    }

    #[test]
    fn changed_content_words_in_a_reworded_question_are_left_to_a_close_similarity() {
        let close = |a: &str, b: &str| check(a, b, Closeness::Close).err();
        // Reworded around the changed words ("exist" / "feature"): served when close, not when
        // merely similar.
        let (a, b) = (
            "No, LOAD_HU doesn't exist in v2.10.0.",
            "LOAD_HU is not a feature of v2.10.0.",
        );
        assert_eq!(close(a, b), None);
        assert_eq!(vetoes(a, b), Some(Veto::Content));
        // One template with a word swapped stays a different question however close: the
        // same words otherwise, in the same order, reordered, or with an auxiliary or an
        // article changed.
        for (a, b) in [
            ("Can I feed my fish soup?", "Can I feed my dog soup?"),
            (
                "How do I sort a list by name in Python?",
                "In Python, how do I sort a list by date?",
            ),
            (
                "How do I sort a list by name?",
                "How can I sort the list by date?",
            ),
            (
                "What are things a doctor should worry about?",
                "What are the things that a lawyer should worry about?",
            ),
        ] {
            assert_eq!(close(a, b), Some(Veto::Content), "{a} / {b}");
        }
        // The other checks hold whatever the closeness.
        assert_eq!(
            close(
                "No, LOAD_HU doesn't exist in v2.10.0.",
                "LOAD_HU is not a feature of v2.11.0."
            ),
            Some(Veto::Numbers)
        );
        assert_eq!(Closeness::of(0.91, 0.80), Closeness::Close);
        assert_eq!(Closeness::of(0.951, 0.80), Closeness::VeryClose);
        assert_eq!(Closeness::of(0.89, 0.80), Closeness::Similar);
    }

    #[test]
    fn changed_words_with_the_rest_moved_around_them_are_left_to_a_very_close_similarity() {
        let very = |a: &str, b: &str| check(a, b, Closeness::VeryClose).err();
        // The same statement turned around (0.96 to 0.99 to the embedding), a word or two of it
        // said another way: refused below a very close similarity, served at it.
        for (a, b) in [
            (
                "Serialized datasets can be saved to cloud storage using `Dataset.save_to_disk()`.",
                "`Dataset.save_to_disk()` can be used to store serialized datasets in cloud storage.",
            ),
            (
                "The default value of the `save_infos` parameter is `False`.",
                "The `save_infos` parameter is set to `False` by default.",
            ),
            (
                "The `get_dataset_split_names` function returns a list of split names for a given dataset.",
                "A list of split names for a given dataset is yielded by the `get_dataset_split_names` function.",
            ),
        ] {
            assert_eq!(very(a, b), None, "{a} / {b}");
            assert_eq!(vetoes(a, b), Some(Veto::Content), "{a} / {b}");
        }
        // A changed word that kept its place (its word before or after), the rest moved round
        // it, is a swapped word, however close; so is one whose question barely moved.
        for (a, b) in [
            (
                "In Python, how do I sort a list by name?",
                "How do I sort a list by date in Python?",
            ),
            (
                "For a beginner, what is the best Python book?",
                "What is the best Python course for a beginner?",
            ),
            (
                "In Java, how do I convert an int to a String?",
                "How do I convert a long to a String in Java?",
            ),
            ("Can I feed my fish soup?", "Can I feed my dog soup?"),
        ] {
            assert_eq!(very(a, b), Some(Veto::Content), "{a} / {b}");
        }
    }

    #[test]
    fn paraphrases_pass() {
        for (a, b) in [
            (
                "Is Heather married to Ethan?",
                "Is Ethan married to Heather?",
            ),
            ("Did Lisa use the castle?", "Was the castle used by Lisa?"),
            // A filler verb in another form is still filler.
            ("Did Lisa need the farm?", "Was the farm needed by Lisa?"),
            ("Does Ryan know the answer?", "Is the answer known by Ryan?"),
            ("Does Ryan blame Eric?", "Is Eric blamed by Ryan?"),
            (
                "Is that pig down on the table?",
                "Is that pig really down on the table?",
            ),
            (
                "Is that lizard jumping on the table?",
                "Is that lizard somehow jumping on the table?",
            ),
            (
                "How can I become a visible person?",
                "How can I become a person who is not invisible?",
            ),
            (
                "How can I become more impatient?",
                "How can I become less patient?",
            ),
            (
                "Are apes better than bacteria?",
                "What is better, apes or bacteria?",
            ),
            (
                "Is Benjamin Cook a producer or an organizer?",
                "Is Benjamin Cook an organizer or a producer?",
            ),
            (
                "Is Nicole Rivera a Chinese adviser?",
                "Is Nicole Rivera an adviser and Chinese?",
            ),
            (
                "How do I reverse a list in Python?",
                "How do I reverse a list in Python?",
            ),
            (
                "Diffusers are state-of-the-art diffusion models for image and audio generation in PyTorch.",
                "PyTorch has cutting-edge diffusers for the production of images and sound.",
            ),
        ] {
            assert_eq!(check(a, b, Closeness::Similar), Ok(()), "{a} / {b}");
        }
    }

    #[test]
    fn helpers() {
        assert!(is_code("os.path.join"));
        assert!(is_code("snake_case"));
        assert!(is_code("camelCase"));
        assert!(is_code("/etc/hosts"));
        assert!(!is_code("hello"));
        assert!(!is_code("end."));
        assert_eq!(stem("movies"), stem("movie"));
        assert_eq!(stem("cities"), stem("city"));
        assert_eq!(stem("used"), stem("use"));
        assert_eq!(stem("taken"), stem("take"));
        assert_eq!(stem("glass"), "glass");
        assert_eq!(stem("preferred"), stem("prefer"));
        assert_eq!(stem("bought"), stem("buy"));
        assert_eq!(stem("liked"), stem("like"));
        assert_eq!(
            quoted_strings("say 'hi there' and \"bye\""),
            ["bye", "hi there"].iter().map(|s| s.to_string()).collect()
        );
        assert!(quoted_strings("it's John's dog").is_empty());
        assert!(contains_word("the os.path module", "os"));
        assert!(contains_word("use torch_utils now", "torch_utils"));
        assert!(!contains_word("use torch_utils now", "torch"));
        assert!(!contains_word("datasets", "data"));
        assert_eq!(bag_distance(&[1, 2, 2, 3], &[2, 3, 4]), 3);
        assert_eq!(edit_distance(&[1, 2, 3], &[3, 2, 1]), 2);
        assert_eq!(edit_distance(&[1, 2, 3, 4], &[1, 3, 4, 5]), 2);
        assert_eq!(edit_distance(&[], &[1, 2]), 2);
        // Four function words swapped and the rest reversed: reworded, unless past the
        // alignment limit, where a question counts as one template (the content rule holds).
        let pair = |filler: usize| {
            let words: Vec<String> = (0..filler).map(|i| format!("w{i}")).collect();
            let reversed: Vec<String> = words.iter().rev().cloned().collect();
            (
                Analysis::of(&format!("pears the the the the {}", words.join(" "))),
                Analysis::of(&format!("{} a a a a apples", reversed.join(" "))),
            )
        };
        let (a, b) = pair(6);
        assert!(reworded(&a, &b, 2));
        let (a, b) = pair(300);
        assert!(!reworded(&a, &b, 2));
    }
}
