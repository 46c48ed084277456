//! Sums of money said in a transcript: "five thousand dollars", "5k",
//! "five grand", "$5,000", 百五十万, 150万円, 1万5千. Callers repeat the
//! sum they demand in ever shorter forms ("Fifteen thousand by Friday.",
//! 百五十万。), and only the value says it is the same demand again.
//!
//! Deliberately small: Arabic digits (with `,` separators), English number
//! words, kanji numerals, and the multipliers k / grand / thousand / million
//! / 千 / 万 / 億. Values below [`MIN_AMOUNT`] are left out (counts, dates,
//! "two weeks").

/// Smaller numbers are counts and days, not sums worth comparing.
pub const MIN_AMOUNT: u64 = 100;

/// Every sum of at least [`MIN_AMOUNT`] in `text`, in order of appearance.
pub fn amounts(text: &str) -> Vec<u64> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    let mut latin: Vec<&str> = Vec::new();
    let flush = |words: &mut Vec<&str>, out: &mut Vec<u64>| {
        if let Some(v) = english_value(words) {
            if v >= MIN_AMOUNT {
                out.push(v);
            }
        }
        words.clear();
    };
    let mut rest = lower.as_str();
    while let Some(c) = rest.chars().next() {
        if is_cjk_numeral(c) || (c.is_ascii_digit() && cjk_follows(rest)) {
            flush(&mut latin, &mut out);
            let len = rest
                .char_indices()
                .find(|&(_, ch)| !(is_cjk_numeral(ch) || ch.is_ascii_digit() || ch == ','))
                .map_or(rest.len(), |(i, _)| i);
            if let Some(v) = kanji_value(&rest[..len]) {
                if v >= MIN_AMOUNT {
                    out.push(v);
                }
            }
            rest = &rest[len..];
            continue;
        }
        if c.is_ascii_alphanumeric() {
            let len = rest
                .char_indices()
                .find(|&(_, ch)| !(ch.is_ascii_alphanumeric() || ch == ',' || ch == '.'))
                .map_or(rest.len(), |(i, _)| i);
            let word = rest[..len].trim_end_matches([',', '.']);
            if is_number_word(word) {
                latin.push(word);
            } else if word != "and" || latin.is_empty() {
                flush(&mut latin, &mut out);
            }
            rest = &rest[len..];
            continue;
        }
        if !matches!(c, ' ' | '-' | '$' | '£' | '€' | '¥' | '￥') {
            flush(&mut latin, &mut out);
        }
        rest = &rest[c.len_utf8()..];
    }
    flush(&mut latin, &mut out);
    out
}

/// 150万 and 1万5千 mix Arabic digits with kanji multipliers.
fn cjk_follows(rest: &str) -> bool {
    rest.chars()
        .find(|c| !(c.is_ascii_digit() || *c == ','))
        .is_some_and(|c| matches!(c, '十' | '百' | '千' | '万' | '億'))
}

fn is_cjk_numeral(c: char) -> bool {
    "〇一二三四五六七八九十百千万億".contains(c)
}

/// 百五十万, 三千, 1万5千, 一億二千万 (a lone 一 or 十 is not a sum).
fn kanji_value(s: &str) -> Option<u64> {
    let (mut total, mut section, mut digit): (u64, u64, Option<u64>) = (0, 0, None);
    let mut any_multiplier = false;
    let mut chars = s.chars().filter(|&c| c != ',').peekable();
    while let Some(c) = chars.next() {
        let d = match c {
            '〇' => Some(0),
            '一' => Some(1),
            '二' => Some(2),
            '三' => Some(3),
            '四' => Some(4),
            '五' => Some(5),
            '六' => Some(6),
            '七' => Some(7),
            '八' => Some(8),
            '九' => Some(9),
            '0'..='9' => {
                let mut n = u64::from(c as u8 - b'0');
                while let Some(&next) = chars.peek() {
                    if !next.is_ascii_digit() {
                        break;
                    }
                    n = n
                        .checked_mul(10)?
                        .checked_add(u64::from(next as u8 - b'0'))?;
                    chars.next();
                }
                digit = Some(n);
                continue;
            }
            _ => None,
        };
        if let Some(d) = d {
            digit = Some(digit.unwrap_or(0).checked_mul(10)?.checked_add(d)?);
            continue;
        }
        any_multiplier = true;
        match c {
            '十' | '百' | '千' => {
                let unit = match c {
                    '十' => 10,
                    '百' => 100,
                    _ => 1000,
                };
                section = section.checked_add(digit.take().unwrap_or(1).checked_mul(unit)?)?;
            }
            '万' | '億' => {
                let unit = if c == '万' { 10_000 } else { 100_000_000 };
                let part = section.checked_add(digit.take().unwrap_or(0))?;
                total = total.checked_add(part.max(1).checked_mul(unit)?)?;
                section = 0;
            }
            _ => return None,
        }
    }
    let value = total
        .checked_add(section)?
        .checked_add(digit.unwrap_or(0))?;
    (any_multiplier || value >= MIN_AMOUNT).then_some(value)
}

fn small_word(w: &str) -> Option<u64> {
    const WORDS: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 8] = [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    if let Some(i) = WORDS.iter().position(|&x| x == w) {
        return Some(i as u64);
    }
    TENS.iter()
        .position(|&x| x == w)
        .map(|i| (i as u64 + 2) * 10)
}

fn multiplier(w: &str) -> Option<u64> {
    match w {
        "hundred" => Some(100),
        "thousand" | "grand" | "k" => Some(1000),
        "million" | "mil" | "m" => Some(1_000_000),
        _ => None,
    }
}

fn is_number_word(w: &str) -> bool {
    small_word(w).is_some() || multiplier(w).is_some() || digits_value(w).is_some() || w == "a"
}

/// "5,000", "5000", "5k", "1.5m" as one word.
fn digits_value(w: &str) -> Option<u64> {
    let split = w.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(w.len());
    let (number, suffix) = w.split_at(split);
    if number.is_empty() || !number.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let scale = if suffix.is_empty() {
        1
    } else {
        multiplier(suffix)?
    };
    let plain: String = number.chars().filter(|&c| c != ',').collect();
    match plain.split_once('.') {
        Some((whole, frac)) if !frac.is_empty() && frac.len() <= 2 && scale > 1 => {
            let whole: u64 = whole.parse().ok()?;
            let frac_value: u64 = frac.parse().ok()?;
            let frac_scale = 10u64.pow(frac.len() as u32);
            Some(whole * scale + frac_value * scale / frac_scale)
        }
        Some((whole, _)) => whole.parse::<u64>().ok()?.checked_mul(scale),
        None => plain.parse::<u64>().ok()?.checked_mul(scale),
    }
}

/// "five thousand", "fifteen grand", "a hundred and twenty", "5 thousand".
fn english_value(words: &[&str]) -> Option<u64> {
    if words.is_empty() || words == ["a"] {
        return None;
    }
    let (mut total, mut current) = (0u64, 0u64);
    let mut seen_number = false;
    for &w in words {
        if w == "a" {
            current = current.max(1);
        } else if let Some(v) = small_word(w) {
            current = current.checked_add(v)?;
            seen_number = true;
        } else if let Some(v) = digits_value(w) {
            current = current.checked_add(v)?;
            seen_number = true;
        } else if w == "hundred" {
            current = current.max(1).checked_mul(100)?;
            seen_number = true;
        } else if let Some(m) = multiplier(w) {
            if current == 0 {
                return None; // "k" or "m" alone is a letter
            }
            total = total.checked_add(current.checked_mul(m)?)?;
            current = 0;
            seen_number = true;
        }
    }
    seen_number.then(|| total + current)
}

#[cfg(test)]
mod tests {
    use super::amounts;

    #[test]
    fn sums_said_every_way_callers_say_them() {
        let cases: &[(&str, &[u64])] = &[
            ("I want five thousand dollars for my time", &[5000]),
            ("Five grand.", &[5000]),
            ("Fifteen thousand by Friday or it goes up", &[15_000]),
            ("a thousand-dollar gift card", &[1000]),
            ("that's $5,000, not 5k, not five", &[5000, 5000]),
            ("a hundred and fifteen dollars", &[115]),
            ("four hundred and twelve dollars", &[412]),
            ("1.5m in damages", &[1_500_000]),
            ("迷惑料込みで百五十万。", &[1_500_000]),
            ("150万円払え", &[1_500_000]),
            ("1万5千円です", &[15_000]),
            ("三百万用意しろ", &[3_000_000]),
            ("一億二千万", &[120_000_000]),
            ("千八百四十円", &[1840]),
        ];
        for (text, want) in cases {
            assert_eq!(amounts(text), *want, "{text}");
        }
    }

    #[test]
    fn counts_days_and_letters_are_not_sums() {
        for text in [
            "I've called four times in two weeks",
            "order K four four one nine",
            "plan B, or plan k",
            "十日も待った",
            "a lot of people",
            "room 12",
        ] {
            assert!(amounts(text).is_empty(), "{text}: {:?}", amounts(text));
        }
    }
}
