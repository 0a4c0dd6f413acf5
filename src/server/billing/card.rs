//! Checks on a card before it goes to the processor: Luhn, expiry, security code, name.
//! Each failure says what to fix; none repeats the number.

use zeroize::Zeroizing;

use crate::api::account::AddCardRequest;

/// A card that passed the checks. The number lives only in zeroizing memory.
pub struct CheckedCard {
    pub number: Zeroizing<String>,
    pub brand: &'static str,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
}

pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, c) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(c - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

pub fn brand(digits: &str) -> &'static str {
    let prefix = |n: usize| {
        digits
            .get(..n)
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
    };
    match () {
        _ if digits.starts_with('4') => "visa",
        _ if (51..=55).contains(&prefix(2)) || (2221..=2720).contains(&prefix(4)) => "mastercard",
        _ if prefix(2) == 34 || prefix(2) == 37 => "amex",
        _ if prefix(4) == 6011 || prefix(2) == 65 => "discover",
        _ => "card",
    }
}

/// The current year and month (UTC).
pub fn this_month() -> (u32, u32) {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let year = now[..4].parse().unwrap_or(2026);
    let month = now[5..7].parse().unwrap_or(1);
    (year, month)
}

pub fn check(card: &AddCardRequest, (year, month): (u32, u32)) -> Result<CheckedCard, String> {
    let number: Zeroizing<String> = Zeroizing::new(
        card.number
            .chars()
            .filter(|c| *c != ' ' && *c != '-')
            .collect(),
    );
    if !number.bytes().all(|b| b.is_ascii_digit()) || !(12..=19).contains(&number.len()) {
        return Err("the card number must be 12 to 19 digits (spaces and dashes are fine)".into());
    }
    if !luhn_valid(&number) {
        return Err("the card number is mistyped (its check digit is wrong); check it".into());
    }
    if !(1..=12).contains(&card.exp_month) {
        return Err(format!(
            "expiry month {} is not a month; use 1 to 12",
            card.exp_month
        ));
    }
    let exp_year = if card.exp_year < 100 {
        2000 + card.exp_year
    } else {
        card.exp_year
    };
    if (exp_year, card.exp_month) < (year, month) {
        return Err(format!(
            "the card expired at the end of {:02}/{exp_year}; use a current card",
            card.exp_month
        ));
    }
    if exp_year > year + 20 {
        return Err(format!("expiry year {exp_year} is too far ahead; check it"));
    }
    let brand = brand(&number);
    let cvc_len = if brand == "amex" { 4 } else { 3 };
    if card.cvc.len() != cvc_len || !card.cvc.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "the security code (CVC) of this card is {cvc_len} digits"
        ));
    }
    let name = card.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err("the name on the card must be 1 to 100 characters".into());
    }
    let last4 = number[number.len() - 4..].to_owned();
    Ok(CheckedCard {
        number,
        brand,
        last4,
        exp_month: card.exp_month,
        exp_year,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(number: &str, month: u32, year: u32, cvc: &str) -> AddCardRequest {
        AddCardRequest {
            number: number.into(),
            exp_month: month,
            exp_year: year,
            cvc: cvc.into(),
            name: "A Person".into(),
        }
    }

    #[test]
    fn checks() {
        let now = (2026, 11);
        let ok = check(&card("4242 4242 4242 4242", 12, 30, "123"), now).unwrap();
        assert_eq!(
            (ok.brand, ok.last4.as_str(), ok.exp_year),
            ("visa", "4242", 2030)
        );
        assert!(check(&card("5555555555554444", 11, 2026, "123"), now).is_ok());
        assert_eq!(brand("378282246310005"), "amex");
        let err = |c| check(&c, now).err().unwrap();
        assert!(err(card("4242424242424241", 12, 30, "123")).contains("check digit"));
        assert!(err(card("4242", 12, 30, "123")).contains("12 to 19"));
        assert!(err(card("4242424242424242", 10, 2026, "123")).contains("expired"));
        assert!(err(card("4242424242424242", 13, 2030, "123")).contains("1 to 12"));
        assert!(err(card("4242424242424242", 12, 2030, "12")).contains("3 digits"));
        assert!(err(card("378282246310005", 12, 2030, "123")).contains("4 digits"));
    }

    #[test]
    fn debug_hides_the_number() {
        let text = format!("{:?}", card("4242424242424242", 12, 30, "987"));
        assert!(
            !text.contains("42424242") && !text.contains("987"),
            "{text}"
        );
    }
}
