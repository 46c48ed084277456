//! Masking of personal data in evidence excerpts (DESIGN section 3): runs of
//! four or more digits (card, phone and account numbers) and e-mail addresses
//! never leave the process in an alert.

/// Returns `excerpt` with digit runs of 4 or more (ASCII or full-width,
/// spaces and hyphens inside a run allowed) replaced by `#` per digit, and
/// e-mail addresses replaced by `[email]`.
pub fn mask_personal_data(excerpt: &str) -> String {
    if !needs_masking(excerpt) {
        return excerpt.to_owned();
    }
    let masked_emails = mask_emails(excerpt);
    mask_digit_runs(&masked_emails)
}

/// [`mask_personal_data`] of an excerpt already owned: returned as it is,
/// with no copy, when there is nothing to mask (most excerpts).
pub fn mask_personal_data_owned(excerpt: String) -> String {
    if needs_masking(&excerpt) {
        mask_personal_data(&excerpt)
    } else {
        excerpt
    }
}

/// Whether [`mask_personal_data`] could change `excerpt`: it has a digit
/// or an `@`. Most excerpts have neither, and are then kept as they are
/// without the passes and copies of masking.
fn needs_masking(excerpt: &str) -> bool {
    excerpt.chars().any(|c| c == '@' || is_digit(c))
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || ('０'..='９').contains(&c)
}

fn mask_digit_runs(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if !is_digit(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // A run: digits with single spaces or hyphens between them.
        let mut j = i;
        let mut digits = 0;
        let mut end = i;
        while j < chars.len() {
            if is_digit(chars[j]) {
                digits += 1;
                end = j + 1;
                j += 1;
            } else if matches!(chars[j], ' ' | '-' | '－' | '　')
                && j + 1 < chars.len()
                && is_digit(chars[j + 1])
            {
                j += 1;
            } else {
                break;
            }
        }
        for &c in &chars[i..end] {
            out.push(if digits >= 4 && is_digit(c) { '#' } else { c });
        }
        i = end;
    }
    out
}

fn mask_emails(s: &str) -> String {
    let is_local = |c: char| c.is_ascii_alphanumeric() || "._%+-".contains(c);
    let is_domain = |c: char| c.is_ascii_alphanumeric() || ".-".contains(c);
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('@') {
        let before = &rest[..at];
        let local_start = before
            .char_indices()
            .rev()
            .take_while(|&(_, c)| is_local(c))
            .last()
            .map(|(i, _)| i);
        let after = &rest[at + 1..];
        let domain_len = after
            .char_indices()
            .take_while(|&(_, c)| is_domain(c))
            .last()
            .map(|(i, c)| i + c.len_utf8())
            .unwrap_or(0);
        let domain = after[..domain_len].trim_end_matches('.');
        match local_start {
            Some(ls) if domain.contains('.') => {
                out.push_str(&before[..ls]);
                out.push_str("[email]");
                rest = &after[domain.len()..];
            }
            _ => {
                out.push_str(&rest[..=at]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        let cases = [
            (
                "card",
                "my card is 4111 1111 1111 1111 ok",
                "my card is #### #### #### #### ok",
            ),
            (
                "phone_jp",
                "番号は090-1234-5678です",
                "番号は###-####-####です",
            ),
            ("fullwidth", "０９０１２３４５６７８", "###########"),
            (
                "short_numbers_kept",
                "I waited 3 hours and paid 200",
                "I waited 3 hours and paid 200",
            ),
            (
                "email",
                "write to taro.yamada@example.co.jp now",
                "write to [email] now",
            ),
            ("at_without_domain", "meet @ noon", "meet @ noon"),
            ("year_masked", "since 2019", "since ####"),
        ];
        for (name, input, want) in cases {
            assert_eq!(mask_personal_data(input), want, "case {name}");
            assert!(needs_masking(input), "case {name}");
        }
        for plain in [
            "",
            "no numbers here",
            "お電話ありがとうございます",
            "a-b_c.d",
        ] {
            assert!(!needs_masking(plain), "{plain}");
            assert_eq!(mask_personal_data(plain), plain);
        }
    }
}
