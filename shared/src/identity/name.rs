//! The name rule, in one place for the client (which tells the player), the proxy (which
//! refuses a join) and the store (which keeps names unique by [`name_key`]).
//!
//! A name is what other players read above a head, so the rule is about what can be
//! seen: every character shows, and looks like what it is. [`check_name`] accepts a name
//! of [`MIN_NAME_CHARS`] to [`MAX_NAME_CHARS`] characters (Unicode scalar values) and
//! at most [`MAX_NAME_LEN`] bytes, made of
//!
//! - letters, marks (accents, vowel signs) and decimal digits that Unicode recommends
//!   for identifiers (UTS #39's General Security Profile: no symbols, emoji, compatibility
//!   forms such as full-width or mathematical letters, nor scripts that are obsolete or
//!   of limited use), at least one of them a letter or a digit;
//! - `_`, `-`, `.` and `'`;
//! - single spaces (U+0020 only) between other characters: leading or trailing spaces
//!   are refused rather than trimmed, so the name a player typed is the name they get.
//!
//! Refused besides: invisible characters (controls, zero-width joiners and spaces, bidi
//! overrides, fillers), a mark that follows no letter or more than four nonspacing marks
//! in a row (UTS #39 §5.4, against accents stacked into towers), a name not in composed
//! form (NFC: é is one character, not e and an accent, so one name is spelled one way),
//! and a name that mixes scripts (UTS #39's single-script test: Latin with Cyrillic, say;
//! digits and punctuation go with any script, and Han goes with kana or Hangul as
//! Japanese and Korean write it).
//!
//! A rule on each name cannot stop two names from looking alike: "pay" in Latin and
//! "рау" in Cyrillic each pass. That is [`name_key`]'s work.

use unicode_normalization::is_nfc;
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};
use unicode_security::general_security_profile::IdentifierType;
use unicode_security::{GeneralSecurityProfile, MixedScript};

use crate::protocol::MAX_NAME_LEN;

/// The fewest characters (Unicode scalar values) a name has.
pub const MIN_NAME_CHARS: usize = 2;
/// The most characters a name has; [`MAX_NAME_LEN`] bounds its bytes as well.
pub const MAX_NAME_CHARS: usize = 20;
/// UTS #39 §5.4 suggests refusing more than four nonspacing marks in a row.
pub(crate) const MAX_NONSPACING_MARKS_IN_A_ROW: usize = 4;
/// The punctuation a name may have, besides single spaces.
const PUNCTUATION: [char; 4] = ['_', '-', '.', '\''];

/// Why a name was refused, in words the client shows the player.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name has {MIN_NAME_CHARS} to {MAX_NAME_CHARS} characters; this one has {chars}")]
    Length { chars: usize },
    #[error(
        "a name takes at most {MAX_NAME_LEN} bytes, and this one takes {bytes} (letters beyond A to Z take 2 to 4)"
    )]
    TooManyBytes { bytes: usize },
    #[error("a name cannot begin or end with a space")]
    SpaceAtEdge,
    #[error("a name cannot have two spaces in a row")]
    DoubleSpace,
    #[error("a name's spaces are ordinary spaces, not {}", code_point(.ch))]
    OtherSpace { ch: char },
    #[error("a name cannot contain an invisible character ({})", code_point(.ch))]
    Invisible { ch: char },
    #[error("a name has letters, digits, spaces and _ - . ' only, not “{ch}” ({})", code_point(.ch))]
    NotAllowed { ch: char },
    #[error("a name needs at least one letter or digit")]
    NoLetter,
    #[error("an accent or other mark must follow a letter (“{ch}”, {}, does not)", code_point(.ch))]
    StrayMark { ch: char },
    #[error("a name cannot stack so many accents or marks on one letter")]
    StackedMarks,
    #[error("a name must be written in composed form (é as one character, not e and an accent)")]
    NotComposed,
    #[error("a name mixes scripts (such as Latin and Cyrillic letters): write it in one")]
    MixedScripts,
}

fn code_point(ch: &char) -> String {
    format!("U+{:04X}", u32::from(*ch))
}

/// Checks `name` against the rule of this module's doc.
pub fn check_name(name: &str) -> Result<(), NameError> {
    // Bytes first: a long hostile string is refused before it is read.
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooManyBytes { bytes: name.len() });
    }
    let chars = name.chars().count();
    if !(MIN_NAME_CHARS..=MAX_NAME_CHARS).contains(&chars) {
        return Err(NameError::Length { chars });
    }
    let mut previous = None;
    let (mut nonspacing_marks, mut has_letter_or_digit) = (0, false);
    for (index, ch) in name.chars().enumerate() {
        let (category, group) = (ch.general_category(), ch.general_category_group());
        if ch == ' ' {
            if index == 0 || index + 1 == chars {
                return Err(NameError::SpaceAtEdge);
            }
            if previous == Some(' ') {
                return Err(NameError::DoubleSpace);
            }
        } else if ch.is_whitespace() {
            return Err(NameError::OtherSpace { ch });
        } else if is_invisible(ch, category) {
            return Err(NameError::Invisible { ch });
        } else if !is_allowed(ch, category, group) {
            return Err(NameError::NotAllowed { ch });
        }
        has_letter_or_digit |= group == GeneralCategoryGroup::Letter || category == GeneralCategory::DecimalNumber;
        if group == GeneralCategoryGroup::Mark {
            let follows_a_letter = previous.is_some_and(|previous: char| {
                matches!(
                    previous.general_category_group(),
                    GeneralCategoryGroup::Letter | GeneralCategoryGroup::Mark | GeneralCategoryGroup::Number
                )
            });
            if !follows_a_letter {
                return Err(NameError::StrayMark { ch });
            }
        }
        if matches!(category, GeneralCategory::NonspacingMark | GeneralCategory::EnclosingMark) {
            nonspacing_marks += 1;
            if nonspacing_marks > MAX_NONSPACING_MARKS_IN_A_ROW || previous == Some(ch) {
                return Err(NameError::StackedMarks);
            }
        } else {
            nonspacing_marks = 0;
        }
        previous = Some(ch);
    }
    if !has_letter_or_digit {
        return Err(NameError::NoLetter);
    }
    if !is_nfc(name) {
        return Err(NameError::NotComposed);
    }
    if !name.is_single_script() {
        return Err(NameError::MixedScripts);
    }
    Ok(())
}

/// Controls, format characters (zero-width joiners, bidi overrides, the soft hyphen)
/// and the other default-ignorable characters (fillers, variation selectors): what a
/// screen does not show, or shows as a change to the characters around it.
pub(crate) fn is_invisible(ch: char, category: GeneralCategory) -> bool {
    matches!(category, GeneralCategory::Control | GeneralCategory::Format)
        || ch.identifier_type() == Some(IdentifierType::Default_Ignorable)
}

fn is_allowed(ch: char, category: GeneralCategory, group: GeneralCategoryGroup) -> bool {
    let letter_mark_or_digit = matches!(group, GeneralCategoryGroup::Letter | GeneralCategoryGroup::Mark)
        || category == GeneralCategory::DecimalNumber;
    PUNCTUATION.contains(&ch) || (letter_mark_or_digit && ch.identifier_allowed())
}

/// The form of a name that must be unique: two names with the same key are one name, as
/// far as who may have it goes. Made in three steps:
///
/// 1. Case-folded (lowercase of the uppercase form, so that "ß" and "ss", "ς" and "σ"
///    fold alike). The rest works on this alone, so case never tells two names apart:
///    "Ann" and "ANN" are one name.
/// 2. Reduced to its UTS #39 confusable skeleton: each character replaced by the
///    prototype of those that look like it (Cyrillic "а" by Latin "a", "0" by "O", "m" by
///    "rn"), in decomposed form, invisible characters dropped. Names that look alike in
///    lowercase collide: "paypal" and "pаypal" (with a Cyrillic а), "Bob" and "B0B".
/// 3. Uppercased and reduced to its skeleton again, then lowercased: names that look
///    alike in capitals collide too, "Ilya" and "llya" (a capital I is a lowercase l).
///
/// The skeleton is broad on purpose: some names that are merely similar collide as well
/// ("Arnold" and "Amold", "iris" and "lrls"), and the second to ask picks another. The
/// key is compared, never shown.
pub fn name_key(name: &str) -> String {
    let folded = name.to_uppercase().to_lowercase();
    let lowercase_shapes: String = unicode_security::skeleton(&folded).collect();
    let uppercase_shapes: String = unicode_security::skeleton(&lowercase_shapes.to_uppercase()).collect();
    uppercase_shapes.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn refused(name: &str) -> NameError {
        match check_name(name) {
            Err(error) => error,
            Ok(()) => panic!("{name:?} was accepted"),
        }
    }

    #[test]
    fn ordinary_names_in_many_scripts_pass() {
        let names = [
            "Ann",
            "Ann Lee",
            "ann_lee-2",
            "O'Brien",
            "J.R. Smith",
            "Émile",
            "Zoë",
            "Łukasz",
            "Ольга",
            "Νίκος",
            "山田太郎",
            "やまだ たろう",
            "김민준",
            "مريم",
            "דוד",
            "राहुल",
            "Nguyễn Văn An",
            "x9",
        ];
        for name in names {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn length_is_counted_in_characters_and_bounded_in_bytes() {
        assert_eq!(refused(""), NameError::Length { chars: 0 });
        assert_eq!(refused("A"), NameError::Length { chars: 1 });
        assert_eq!(check_name("Al"), Ok(()));
        assert_eq!(check_name(&"a".repeat(MAX_NAME_CHARS)), Ok(()));
        assert_eq!(refused(&"a".repeat(MAX_NAME_CHARS + 1)), NameError::Length { chars: MAX_NAME_CHARS + 1 });
        // Sixteen two-byte letters fill MAX_NAME_LEN exactly.
        assert_eq!(check_name(&"é".repeat(MAX_NAME_LEN / 2)), Ok(()));
        assert_eq!(refused(&"é".repeat(MAX_NAME_LEN / 2 + 1)), NameError::TooManyBytes { bytes: MAX_NAME_LEN + 2 });
        // Eleven Han characters are 33 bytes, though only 11 characters.
        assert_eq!(refused(&"山".repeat(11)), NameError::TooManyBytes { bytes: 33 });
        assert_eq!(refused(&"x".repeat(1 << 20)), NameError::TooManyBytes { bytes: 1 << 20 });
    }

    #[test]
    fn spaces_are_single_inner_and_ordinary() {
        assert_eq!(refused(" Ann"), NameError::SpaceAtEdge);
        assert_eq!(refused("Ann "), NameError::SpaceAtEdge);
        assert_eq!(refused("Ann  Lee"), NameError::DoubleSpace);
        for space in ['\u{a0}', '\u{3000}', '\u{2003}', '\u{2028}'] {
            assert_eq!(refused(&format!("Ann{space}Lee")), NameError::OtherSpace { ch: space }, "{space:?}");
        }
        assert_eq!(refused("Ann\t"), NameError::OtherSpace { ch: '\t' });
    }

    #[test]
    fn invisible_characters_are_refused() {
        let invisible = [
            '\u{0}',     // NUL
            '\u{7}',     // bell
            '\u{1b}',    // escape
            '\u{ad}',    // soft hyphen
            '\u{200b}',  // zero-width space
            '\u{200c}',  // zero-width non-joiner
            '\u{200d}',  // zero-width joiner
            '\u{200e}',  // left-to-right mark
            '\u{202e}',  // right-to-left override
            '\u{2066}',  // left-to-right isolate
            '\u{2060}',  // word joiner
            '\u{feff}',  // byte order mark
            '\u{3164}',  // Hangul filler
            '\u{ffa0}',  // half-width Hangul filler
            '\u{fe0f}',  // variation selector 16
            '\u{e0041}', // tag letter A
        ];
        for ch in invisible {
            assert_eq!(refused(&format!("An{ch}n")), NameError::Invisible { ch }, "{ch:?}");
        }
        // The bidi override that shows "Annilla" as "Ann" + "alli" reversed.
        assert_eq!(refused("Ann\u{202e}alli"), NameError::Invisible { ch: '\u{202e}' });
    }

    #[test]
    fn only_letters_marks_digits_and_four_punctuation_marks() {
        for ch in ['@', '!', ':', '/', '\\', '"', '<', '·', '★', '😀', '€', '½', '²', '\u{e000}', '\u{378}'] {
            assert_eq!(refused(&format!("Ann{ch}")), NameError::NotAllowed { ch }, "{ch:?}");
        }
        // Compatibility forms, which NFKC would turn into plain letters.
        for ch in ['Ａ', '𝐀', 'ﬁ', 'Ⅻ'] {
            assert_eq!(refused(&format!("Ann{ch}")), NameError::NotAllowed { ch }, "{ch:?}");
        }
        // Letters of scripts Unicode does not recommend for identifiers (Gothic, runes).
        for ch in ['𐌰', 'ᚠ'] {
            assert_eq!(refused(&format!("{ch}{ch}")), NameError::NotAllowed { ch }, "{ch:?}");
        }
        for name in ["__", "-.", "' '"] {
            assert_eq!(refused(name), NameError::NoLetter, "{name}");
        }
    }

    #[test]
    fn marks_follow_letters_and_do_not_stack() {
        assert_eq!(refused("\u{301}Ann"), NameError::StrayMark { ch: '\u{301}' });
        assert_eq!(refused("Ann \u{301}x"), NameError::StrayMark { ch: '\u{301}' });
        assert_eq!(refused("An-\u{301}n"), NameError::StrayMark { ch: '\u{301}' });
        // Vowel signs and a virama, as Hindi writes (NFC already).
        assert_eq!(check_name("क्षत्रिय"), Ok(()));
        // Five different nonspacing marks in a row, and the same one twice.
        assert_eq!(refused("a\u{300}\u{301}\u{302}\u{303}\u{304}n"), NameError::StackedMarks);
        assert_eq!(refused("a\u{323}\u{323}n"), NameError::StackedMarks);
        assert_eq!(refused("a\u{323}\u{300}n"), NameError::NotComposed, "two marks are not too many");
    }

    #[test]
    fn names_are_composed() {
        assert_eq!(check_name("Ren\u{e9}e"), Ok(()));
        assert_eq!(refused("Rene\u{301}e"), NameError::NotComposed);
    }

    #[test]
    fn names_keep_to_one_script() {
        // "paypal" with a Cyrillic а, and with a Greek ο in "bob".
        assert_eq!(refused("p\u{430}ypal"), NameError::MixedScripts);
        assert_eq!(refused("b\u{3bf}b"), NameError::MixedScripts);
        assert_eq!(refused("Ann Ольга"), NameError::MixedScripts);
        // Digits and punctuation go with any script; Japanese mixes Han and kana.
        for name in ["Ольга-2", "山田たろう", "ヤマダ_99"] {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn every_error_reads_as_a_sentence_for_the_player() {
        assert_eq!(NameError::Length { chars: 1 }.to_string(), "a name has 2 to 20 characters; this one has 1");
        assert_eq!(
            NameError::Invisible { ch: '\u{202e}' }.to_string(),
            "a name cannot contain an invisible character (U+202E)"
        );
        assert_eq!(
            NameError::NotAllowed { ch: '@' }.to_string(),
            "a name has letters, digits, spaces and _ - . ' only, not “@” (U+0040)"
        );
    }

    #[test]
    fn keys_fold_case() {
        for name in ["Ann", "Émile", "Ilya", "Ольга", "Νίκος", "J.R. Smith"] {
            let key = name_key(name);
            assert_eq!(name_key(&name.to_uppercase()), key, "{name}");
            assert_eq!(name_key(&name.to_lowercase()), key, "{name}");
        }
        assert_eq!(name_key("Ann"), name_key("ANN"));
        assert_eq!(name_key("Ann"), name_key("aNn"));
        assert_eq!(name_key("Émile"), name_key("éMILE"));
        assert_eq!(name_key("Straße"), name_key("STRASSE"));
        assert_eq!(name_key("ΟΔΟΣ"), name_key("οδοσ"));
        assert_ne!(name_key("Ann"), name_key("Anna"));
        assert_ne!(name_key("Ann Lee"), name_key("AnnLee"));
    }

    #[test]
    fn keys_join_confusables() {
        let pairs = [
            ("paypal", "p\u{430}ypal"),       // Cyrillic а
            ("pay", "\u{440}\u{430}\u{443}"), // all Cyrillic: each name passes, the pair collides
            ("Bob", "B0B"),
            ("llya", "Ilya"),
            ("ILYA", "llya"),
            ("Arnold", "Amold"),
            ("iris", "lrls"),
            ("Ann", "An\u{200b}n"),         // for a name that skipped check_name
            ("Ren\u{e9}e", "Rene\u{301}e"), // composed or not
        ];
        for (one, other) in pairs {
            assert_eq!(name_key(one), name_key(other), "{one} / {other}");
        }
        assert_eq!(check_name("\u{440}\u{430}\u{443}"), Ok(()));
    }
}
