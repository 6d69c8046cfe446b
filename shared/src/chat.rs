//! The chat rule, in one place for the player (who cleans what it sends), the proxy
//! (which cleans what its players say before anyone hears it) and every receiver's gate
//! (which takes only lines already clean): what a line may hold, and how long it is.
//!
//! A line is read on screen, in a panel and in a bubble above its speaker, so the rule
//! is about what shows, as the name rule is, but looser: anything printable may be said.
//! [`clean_chat`] drops what a screen does not show or shows as a change to the text
//! around it (controls, zero-width characters, bidi overrides, fillers: the invisible
//! characters of the name rule), turns any whitespace (a tab, a newline) into one space,
//! trims the ends, drops nonspacing marks past four in a row (accents stacked into
//! towers that spill over the lines around), and cuts the line at [`MAX_CHAT_LEN`]
//! bytes, on a character boundary. A line is clean ([`check_chat`]) when cleaning leaves
//! it as it is and something is left to read.

use crate::identity::{MAX_NONSPACING_MARKS_IN_A_ROW, is_invisible};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// The longest line, in bytes (UTF-8): two lines of the chat panel, and well within a
/// player's frame (1 KiB) with its channel.
pub const MAX_CHAT_LEN: usize = 200;

/// Why a line is not one anybody may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChatProblem {
    #[error("{0} bytes (at most {MAX_CHAT_LEN})")]
    TooLong(usize),
    #[error("nothing to read")]
    Empty,
    #[error("characters that do not show, or spaces at its ends or doubled")]
    NotClean,
}

/// `text` as the rule of this module's doc would have it: invisible characters dropped,
/// whitespace one space between words, stacked marks cut down, at most [`MAX_CHAT_LEN`]
/// bytes. Cleaning a clean line leaves it as it is.
pub fn clean_chat(text: &str) -> String {
    let mut clean = String::with_capacity(text.len().min(MAX_CHAT_LEN));
    let mut marks_in_a_row = 0;
    for ch in text.chars() {
        let category = ch.general_category();
        if ch.is_whitespace() {
            if clean.is_empty() || clean.ends_with(' ') {
                continue;
            }
        } else if is_invisible(ch, category) {
            continue;
        }
        if matches!(category, GeneralCategory::NonspacingMark | GeneralCategory::EnclosingMark) {
            marks_in_a_row += 1;
            if marks_in_a_row > MAX_NONSPACING_MARKS_IN_A_ROW {
                continue;
            }
        } else {
            marks_in_a_row = 0;
        }
        let ch = if ch.is_whitespace() { ' ' } else { ch };
        if clean.len() + ch.len_utf8() > MAX_CHAT_LEN {
            break;
        }
        clean.push(ch);
    }
    clean.truncate(clean.trim_end().len());
    clean
}

/// Whether `text` may be shown as a chat line: at most [`MAX_CHAT_LEN`] bytes (checked
/// before anything is read of it), not empty, and clean.
pub fn check_chat(text: &str) -> Result<(), ChatProblem> {
    if text.len() > MAX_CHAT_LEN {
        return Err(ChatProblem::TooLong(text.len()));
    }
    if text.is_empty() {
        return Err(ChatProblem::Empty);
    }
    match clean_chat(text) == text {
        true => Ok(()),
        false => Err(ChatProblem::NotClean),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_lines_in_many_scripts_are_clean() {
        let lines = [
            "hello there!",
            "meet me at (1024, 512) :)",
            "Ольга, ты где?",
            "山田さん、こんにちは",
            "مرحبا بالجميع",
            "नमस्ते",
            "Nguyễn Văn An: 100% <ok> & \"yes\"",
            "😀 emoji are text too",
        ];
        for line in lines {
            assert_eq!(check_chat(line), Ok(()), "{line}");
            assert_eq!(clean_chat(line), line);
        }
    }

    #[test]
    fn invisible_characters_go_and_whitespace_is_one_space_between_words() {
        assert_eq!(clean_chat("  hi\t\tthere \n\r you  "), "hi there you");
        assert_eq!(clean_chat("a\u{1b}[2Jb\u{7}c\u{0}"), "a[2Jbc");
        // The bidi override that shows "evil.exe" as "exe.live", and zero-width tricks.
        assert_eq!(clean_chat("click \u{202e}exe.live"), "click exe.live");
        assert_eq!(clean_chat("ad\u{200b}min\u{200d}\u{feff}\u{2066}"), "admin");
        assert_eq!(clean_chat("\u{3164}\u{ad}"), "", "fillers and soft hyphens show nothing");
        assert_eq!(clean_chat("a\u{2028}b\u{a0}\u{3000}c"), "a b c", "every kind of space is a space");
        for dirty in ["", " ", " hi", "hi ", "a  b", "a\nb", "a\u{202e}b", "\u{200b}"] {
            assert!(check_chat(dirty).is_err(), "{dirty:?}");
        }
        assert_eq!(check_chat(""), Err(ChatProblem::Empty));
        assert_eq!(check_chat("hi\u{7}"), Err(ChatProblem::NotClean));
    }

    #[test]
    fn stacked_marks_are_cut_to_four() {
        let tower = format!("Z{}", "\u{301}\u{302}\u{303}\u{304}\u{305}\u{306}".repeat(10));
        assert_eq!(clean_chat(&tower), "Z\u{301}\u{302}\u{303}\u{304}");
        // Marks that an invisible character split still stack on the same letter.
        assert_eq!(clean_chat("a\u{301}\u{301}\u{200b}\u{301}\u{301}\u{301}b"), "a\u{301}\u{301}\u{301}\u{301}b");
        assert_eq!(check_chat("क्षत्रिय"), Ok(()), "vowel signs and viramas are a script's marks");
    }

    #[test]
    fn lines_are_cut_at_the_limit_on_a_character_boundary() {
        assert_eq!(clean_chat(&"x".repeat(1000)), "x".repeat(MAX_CHAT_LEN));
        // 67 three-byte characters are 201 bytes: 66 fit.
        assert_eq!(clean_chat(&"山".repeat(67)), "山".repeat(66));
        // A space at the cut is trimmed, as any trailing space is.
        let cut = clean_chat(&format!("{} tail", "y".repeat(MAX_CHAT_LEN - 1)));
        assert_eq!(cut, "y".repeat(MAX_CHAT_LEN - 1));
        assert_eq!(check_chat(&"x".repeat(MAX_CHAT_LEN)), Ok(()));
        assert_eq!(check_chat(&"x".repeat(MAX_CHAT_LEN + 1)), Err(ChatProblem::TooLong(MAX_CHAT_LEN + 1)));
    }

    #[test]
    fn cleaning_twice_is_cleaning_once() {
        let messy = [
            " a \u{301}\u{301}\u{301}\u{301}\u{301} b\t\u{202e}c ",
            "\u{200b} \u{200b} x",
            &format!("{}\u{301}\u{301}", "é".repeat(120)),
            &format!("{} \u{7} {}", "w".repeat(150), "v".repeat(100)),
        ];
        for text in messy {
            let once = clean_chat(text);
            assert_eq!(clean_chat(&once), once, "{text:?}");
            assert!(once.is_empty() || check_chat(&once).is_ok(), "{once:?}");
        }
    }
}
