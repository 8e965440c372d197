//! Final answers of free-form completions, as math benchmarks grade them: the content of the last
//! `\boxed{…}`, else the last number of the text, compared with the expected answer after both are
//! normalised (numbers numerically, other answers as strings without spaces or LaTeX spacing).

/// The final answer of `completion`: the content of its last `\boxed{…}` whose braces balance
/// (nested braces allowed), else its last number (an integer or decimal, maybe negative, maybe
/// with thousands commas such as `1,234`), else `None`.
pub fn final_answer(completion: &str) -> Option<String> {
    last_boxed(completion).or_else(|| last_number(completion))
}

/// `answer` in the form answers are compared in. A GSM8K solution keeps only what follows its last
/// `####`; a whole `\boxed{…}` keeps its content; whitespace, `$`, LaTeX spacing (`\,` `\!` `\;`
/// `\:`), `\left` and `\right` and trailing periods go, `\dfrac` and `\tfrac` become `\frac`. A
/// number (sign, digits with or without thousands commas, decimals) becomes its canonical decimal,
/// so `72`, `72.0` and `072.00` all read `72`.
pub fn normalize(answer: &str) -> String {
    let answer = answer.rsplit("####").next().unwrap_or(answer).trim();
    let mut text = match answer.strip_prefix(BOXED) {
        Some(inner) if closing_brace(inner).is_some_and(|end| end + 1 == inner.len()) => inner[..inner.len() - 1].trim().to_string(),
        _ => answer.to_string(),
    };
    for spacing in ["\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ "] {
        text = text.replace(spacing, "");
    }
    let mut text: String = text.chars().filter(|c| !c.is_whitespace() && *c != '$').collect();
    for fraction in ["\\dfrac", "\\tfrac"] {
        text = text.replace(fraction, "\\frac");
    }
    let text = text.trim_end_matches('.');
    canonical_number(text).unwrap_or_else(|| text.to_string())
}

/// Whether the final answer of `completion` is `answer`, both normalised; never for an empty one.
pub fn matches(completion: &str, answer: &str) -> bool {
    let expected = normalize(answer);
    !expected.is_empty() && final_answer(completion).is_some_and(|found| normalize(&found) == expected)
}

/// What opens a boxed answer.
const BOXED: &str = "\\boxed{";

/// The index in `text` of the `}` closing a `{` just before it, nested braces allowed.
fn closing_brace(text: &str) -> Option<usize> {
    let mut depth = 1usize;
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(at);
                }
            }
            _ => {}
        }
    }
    None
}

/// The trimmed content of the last `\boxed{…}` of `text` whose braces balance.
fn last_boxed(text: &str) -> Option<String> {
    let starts: Vec<usize> = text.match_indices(BOXED).map(|(at, _)| at + BOXED.len()).collect();
    starts.into_iter().rev().find_map(|start| closing_brace(&text[start..]).map(|end| text[start..start + end].trim().to_string()))
}

/// The index after the run of ASCII digits starting at `at`.
fn digits_end(bytes: &[u8], at: usize) -> usize {
    at + bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count()
}

/// Whether exactly three digits start at `at`, not followed by another digit.
fn thousands_group(bytes: &[u8], at: usize) -> bool {
    at + 3 <= bytes.len() && digits_end(bytes, at) == at + 3
}

/// Whether the `-` at `at` is a sign rather than a subtraction: not right after a word, a closing
/// bracket or (across spaces) a number.
fn is_sign(bytes: &[u8], at: usize) -> bool {
    let before = &bytes[..at];
    match before.last() {
        None => true,
        Some(b) if b.is_ascii_alphanumeric() || *b == b')' => false,
        Some(b) if b.is_ascii_whitespace() => {
            !before.iter().rev().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| b.is_ascii_digit() || *b == b')')
        }
        Some(_) => true,
    }
}

/// The last number of `text`, as written.
fn last_number(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut found = None;
    let mut at = 0;
    while at < bytes.len() {
        if !bytes[at].is_ascii_digit() || (at > 0 && bytes[at - 1].is_ascii_digit()) {
            at += 1;
            continue;
        }
        let start = if at > 0 && bytes[at - 1] == b'-' && is_sign(bytes, at - 1) { at - 1 } else { at };
        let mut end = digits_end(bytes, at);
        if end - at <= 3 {
            while end < bytes.len() && bytes[end] == b',' && thousands_group(bytes, end + 1) {
                end += 4;
            }
        }
        if end + 1 < bytes.len() && bytes[end] == b'.' && bytes[end + 1].is_ascii_digit() {
            end = digits_end(bytes, end + 1);
        }
        found = Some((start, end));
        at = end;
    }
    found.map(|(start, end)| text[start..end].to_string())
}

/// The canonical decimal of `text` when it is a number: no `+`, no thousands commas, no leading
/// zeros, no trailing fractional zeros, no `-` on zero.
fn canonical_number(text: &str) -> Option<String> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let groups: Vec<&str> = whole.split(',').collect();
    let grouped = groups.len() == 1 || ((1..=3).contains(&groups[0].len()) && groups[1..].iter().all(|g| g.len() == 3));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !grouped || !groups.iter().all(|g| digits(g)) || !digits(fraction) || (whole.is_empty() && fraction.is_empty()) {
        return None;
    }
    if unsigned.contains('.') && fraction.is_empty() {
        return None;
    }
    let whole: String = groups.concat();
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    let mut number = if whole.is_empty() { "0".to_string() } else { whole.to_string() };
    if !fraction.is_empty() {
        number = format!("{number}.{fraction}");
    }
    if negative && number != "0" {
        number.insert(0, '-');
    }
    Some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_answers_prefer_the_last_box_then_the_last_number() {
        assert_eq!(final_answer("so \\boxed{3} wait, \\boxed{\\frac{1}{2}} is it. Step 4").as_deref(), Some("\\frac{1}{2}"));
        assert_eq!(final_answer("\\boxed{2^{10}} then \\boxed{unclosed").as_deref(), Some("2^{10}"));
        assert_eq!(final_answer("She pays $1,234.50 in total.").as_deref(), Some("1,234.50"));
        assert_eq!(final_answer("The temperature is -5 degrees.").as_deref(), Some("-5"));
        assert_eq!(final_answer("8 - 3 gives 5, and 10 - 5").as_deref(), Some("5"));
        assert_eq!(final_answer("values 5,6,7").as_deref(), Some("7"));
        assert_eq!(final_answer("x-2 = 72.").as_deref(), Some("72"));
        assert_eq!(final_answer("no digits here"), None);
    }

    #[test]
    fn normalised_answers_compare_numbers_numerically() {
        assert_eq!(normalize("Natalia sold 48/2 = 24 clips in May.\n#### 72"), "72");
        assert_eq!(normalize(" $1,234. "), "1234");
        for same in ["72.0", "72.00", "072", "+72", "72"] {
            assert_eq!(normalize(same), "72", "{same}");
        }
        assert_eq!(normalize("-0.50"), "-0.5");
        assert_eq!(normalize("-0.0"), "0");
        assert_eq!(normalize("\\boxed{ \\dfrac{1}{2} }"), "\\frac{1}{2}");
        assert_eq!(normalize("\\left( 1, 2 \\right)"), "(1,2)");
        assert_eq!(normalize("1\\,000"), "1000");
        assert_eq!(normalize("12,34"), "12,34");
    }

    #[test]
    fn gsm8k_and_deepscaler_completions_match() {
        let gsm8k = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether.\n#### 72";
        assert!(matches("She sold 48 + 24 = 72 clips.", gsm8k));
        assert!(matches("The answer is 72.00", gsm8k));
        assert!(matches("So the total is \\boxed{72}. Check: 48 + 24.", gsm8k));
        assert!(!matches("She sold 48 + 24 = 71 clips.", gsm8k));
        assert!(matches("It costs $1,234 in all.", "#### 1234"));
        assert!(matches("Thus \\boxed{\\dfrac{1}{2}}.", "\\frac{1}{2}"));
        assert!(matches("Thus \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"));
        assert!(matches("We get \\boxed{ 2^{10} }", "2^{10}"));
        assert!(matches("The interval is \\boxed{(1, 2)}", "(1,2)"));
        assert!(!matches("Thus \\boxed{\\frac{1}{3}}.", "\\frac{1}{2}"));
        assert!(!matches("The answer is 1 / 2", "\\frac{1}{2}"));
        assert!(!matches("nothing", "7"));
        assert!(!matches("\\boxed{}", ""));
    }
}
