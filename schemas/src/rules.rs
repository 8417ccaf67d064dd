//! The contract's primitive rules, shared by the SIMD reader, the serde
//! baseline in the benchmarks and the producers.
//!
//! Each rule is also expressed in the JSON Schema files under `schemas/json/`;
//! `tests/schema_agreement.rs` holds both to the same verdict.

/// Largest integer the contract accepts for money and counts: 2^53 - 1, the
/// largest integer every JSON reader (JavaScript included) represents exactly.
pub const MAX_SAFE_INTEGER: u64 = 9_007_199_254_740_991;
/// Upper bound of `quantity` and `shipped_items`: they are `int32` in the lake.
pub const MAX_INT32: u64 = i32::MAX as u64;
/// Longest identifier (`order_id`, `user_id`, `source`, ...), in characters.
pub const MAX_ID_CHARS: usize = 128;
/// Longest `sku` and entry of `changed_fields`, in characters.
pub const MAX_SHORT_CHARS: usize = 64;
/// Longest e-mail address (RFC 5321 path limit), in characters.
pub const MAX_EMAIL_CHARS: usize = 254;
/// Line items of one `order.created`.
pub const MAX_ITEMS: usize = 100;
/// Entries of `changed_fields`.
pub const MAX_CHANGED_FIELDS: usize = 50;

/// `true` when every byte is `0-9a-fA-F`: by a table, because random hex
/// digits make range comparisons branch unpredictably (this was 28% of
/// record parsing).
#[inline]
fn all_hex(b: &[u8]) -> bool {
    b.iter()
        .fold(0u8, |bad, &c| bad | HEX_VALUE[usize::from(c)])
        & NOT_HEX
        == 0
}

/// The hex value of each byte, or `NOT_HEX`.
const HEX_VALUE: [u8; 256] = {
    let mut t = [NOT_HEX; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = match c as u8 {
            d @ b'0'..=b'9' => d - b'0',
            d @ b'a'..=b'f' => d - b'a' + 10,
            d @ b'A'..=b'F' => d - b'A' + 10,
            _ => NOT_HEX,
        };
        c += 1;
    }
    t
};
const NOT_HEX: u8 = 0x10;

/// The 128 bits of a UUID in canonical `8-4-4-4-12` form, either case, as
/// its high and low 64 bits; `None` for any other text. Fixed positions and
/// a table, without 128-bit shifts: the aggregator folds every event's id
/// with it (a general per-character loop was 5% of its time), and lake
/// compaction keeps ids as these bits instead of strings.
#[inline]
pub fn uuid_halves(b: &[u8]) -> Option<(u64, u64)> {
    let b: &[u8; 36] = b.try_into().ok()?;
    if (b[8], b[13], b[18], b[23]) != (b'-', b'-', b'-', b'-') {
        return None;
    }
    let mut bad = 0u8;
    let mut fold = |digits: &[u8]| {
        digits.iter().fold(0u64, |v, &c| {
            let d = HEX_VALUE[usize::from(c)];
            bad |= d;
            (v << 4) | u64::from(d)
        })
    };
    // the high 64 bits are the first 16 digits, the low 64 the last 16
    let hi = fold(&b[0..8]) << 32 | fold(&b[9..13]) << 16 | fold(&b[14..18]);
    let lo = fold(&b[19..23]) << 48 | fold(&b[24..36]);
    (bad & NOT_HEX == 0).then_some((hi, lo))
}

/// A UUID in its canonical 8-4-4-4-12 hex form, any version, either case.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && (b[8] == b'-') & (b[13] == b'-') & (b[18] == b'-') & (b[23] == b'-')
        && all_hex(&b[0..8])
            & all_hex(&b[9..13])
            & all_hex(&b[14..18])
            & all_hex(&b[19..23])
            & all_hex(&b[24..36])
}

/// ISO 3166-1 alpha-2 shape: two upper-case ASCII letters.
pub fn is_country(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|c| c.is_ascii_uppercase())
}

/// ISO 4217 shape: three upper-case ASCII letters.
pub fn is_currency(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|c| c.is_ascii_uppercase())
}

/// Length in characters (what JSON Schema's `maxLength` counts) is within
/// `1..=max`. ASCII strings, the common case, are decided by byte length.
pub fn has_char_len(s: &str, max: usize) -> bool {
    if s.is_empty() {
        return false;
    }
    if s.len() <= max {
        return true;
    }
    s.chars().count() <= max
}

/// A plausible e-mail address: `local@label.label[...]`, no white space,
/// exactly one `@`, no empty domain label. Deliverability is the producer's
/// problem; the lake only keeps the domain. Mirrors the JSON Schema pattern
/// `^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$`.
pub fn is_email(s: &str) -> bool {
    if s.is_ascii() {
        return is_ascii_email(s.as_bytes());
    }
    is_email_in_full(s)
}

/// [`is_email`] for ASCII text, in one pass over the bytes: the general
/// rule took six (length in characters, whitespace by `char`, the `@`, then
/// the domain three times), 800 instructions a sign-up.
fn is_ascii_email(b: &[u8]) -> bool {
    if b.is_empty() || b.len() > MAX_EMAIL_CHARS {
        return false;
    }
    // where the `@` is, and in the domain: a label has begun, a dot seen
    let (mut at, mut in_label, mut dots) = (None, false, 0);
    for (i, &c) in b.iter().enumerate() {
        match c {
            // ASCII's whitespace, as `char::is_whitespace` has it
            b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' => return false,
            b'@' if at.is_some() => return false,
            b'@' => {
                if i == 0 {
                    return false;
                }
                (at, in_label) = (Some(i), false);
            }
            b'.' if at.is_some() => {
                if !in_label {
                    return false;
                }
                (in_label, dots) = (false, dots + 1);
            }
            _ => in_label = true,
        }
    }
    at.is_some() && dots > 0 && in_label
}

/// [`is_email`] for any text.
fn is_email_in_full(s: &str) -> bool {
    if !has_char_len(s, MAX_EMAIL_CHARS) || s.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
}

/// The domain part of a valid e-mail address, as written. The lake stores
/// this instead of the address (no personal data).
pub fn email_domain(email: &str) -> &str {
    email.rsplit_once('@').map_or("", |(_, d)| d)
}

const fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

const fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
/// Howard Hinnant's `days_from_civil`.
pub const fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count from 1970-01-01: (year, month, day).
pub const fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// ASCII digits as a number; `None` unless all are digits. Callers pass at
/// most 18 (nothing here checks for overflow).
pub(crate) fn digits(b: &[u8]) -> Option<i64> {
    let mut v: i64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

const ZEROS: u64 = 0x3030_3030_3030_3030;

/// The eight bytes of a little-endian word as digit values, one a lane,
/// when all eight are ASCII digits (SWAR): each byte 0x30..=0x39, that is
/// the high nibble 3, and adding 6 carries out of no low nibble.
pub(crate) fn digit_lanes(w: u64) -> Option<u64> {
    let high_nibbles = 0xF0F0_F0F0_F0F0_F0F0;
    let all = w & high_nibbles == ZEROS
        && (w.wrapping_add(0x0606_0606_0606_0606) & high_nibbles) == ZEROS;
    all.then(|| w - ZEROS)
}

/// Eight ASCII digits as a number, a word at a time: the digit pairs, then
/// the fours, then the eight, combined by multiplying. `None` unless all
/// eight are digits.
pub(crate) fn eight_digits(b: &[u8; 8]) -> Option<i64> {
    let d = digit_lanes(u64::from_le_bytes(*b))?;
    // the first digit is the lowest byte (little-endian) and the highest
    // place: each step puts the earlier of two lanes in front
    let d = (d.wrapping_mul(10) + (d >> 8)) & 0x00FF_00FF_00FF_00FF;
    let d = (d.wrapping_mul(100) + (d >> 16)) & 0x0000_FFFF_0000_FFFF;
    let d = (d.wrapping_mul(10_000) + (d >> 32)) & 0xFFFF_FFFF;
    Some(d as i64)
}

/// Days since the Unix epoch of a real date written `YYYY-MM-DD` (a lake
/// partition's `dt`, a report's day); `None` for anything else.
pub fn parse_day(s: &str) -> Option<i64> {
    let b: &[u8; 10] = s.as_bytes().try_into().ok()?;
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// `YYYY-MM-DD` of a day count from the Unix epoch: what [`parse_day`] reads.
pub fn format_day(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` (RFC 3339, UTC only) into
/// milliseconds since the Unix epoch; sub-millisecond digits are truncated,
/// since the lake stores milliseconds. Offsets other than `Z`, lower-case `t`
/// or `z`, leap seconds and impossible dates are rejected.
pub fn parse_rfc3339_utc_ms(s: &str) -> Option<i64> {
    if let Some(ms) = s
        .as_bytes()
        .first_chunk::<24>()
        .filter(|_| s.len() == 24)
        .and_then(milliseconds_form)
    {
        return Some(ms);
    }
    parse_rfc3339_in_full(s)
}

/// The form producers write, `YYYY-MM-DDTHH:MM:SS.mmmZ`, read as three
/// words: the separators compared under a mask, the twenty digits checked
/// together (SWAR), then the fields read off the checked bytes. Every event
/// has one, and reading it field by field was 300 instructions, 2% of an
/// archiver invocation. `None` for anything else, which
/// [`parse_rfc3339_in_full`] then reads (and rejects, or accepts the same).
fn milliseconds_form(b: &[u8; 24]) -> Option<i64> {
    // the separators' places in each word, and what they must be
    const SEPARATORS: [(u64, u64); 3] = [
        separators(&[(4, b'-'), (7, b'-')]),
        separators(&[(2, b'T'), (5, b':')]),
        separators(&[(0, b':'), (3, b'.'), (7, b'Z')]),
    ];
    // a word's digits as values, one a lane, if it has its separators and
    // digits everywhere else
    let digits = |at: usize, (mask, expected): (u64, u64)| {
        let w = u64::from_le_bytes(*b.get(at..)?.first_chunk::<8>()?);
        if w & mask != expected {
            return None;
        }
        // the separators as `0`, so that all eight lanes must be digits
        digit_lanes((w & !mask) | (ZEROS & mask))
    };
    let [s0, s1, s2] = SEPARATORS;
    let (w0, w1, w2) = (digits(0, s0)?, digits(8, s1)?, digits(16, s2)?);
    let d = |w: u64, lane: u32| ((w >> (lane * 8)) & 0xFF) as i64;
    let year = d(w0, 0) * 1000 + d(w0, 1) * 100 + d(w0, 2) * 10 + d(w0, 3);
    let (month, day) = (d(w0, 5) * 10 + d(w0, 6), d(w1, 0) * 10 + d(w1, 1));
    let (hour, minute) = (d(w1, 3) * 10 + d(w1, 4), d(w1, 6) * 10 + d(w1, 7));
    let second = d(w2, 1) * 10 + d(w2, 2);
    let millis = d(w2, 4) * 100 + d(w2, 5) * 10 + d(w2, 6);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// For separators `(lane, byte)` of a little-endian word: the mask of
/// their lanes, and the word with each byte in its lane.
const fn separators(pairs: &[(u32, u8)]) -> (u64, u64) {
    let (mut mask, mut bytes) = (0, 0);
    let mut i = 0;
    while i < pairs.len() {
        mask |= 0xFF << (pairs[i].0 * 8);
        bytes |= (pairs[i].1 as u64) << (pairs[i].0 * 8);
        i += 1;
    }
    (mask, bytes)
}

/// [`parse_rfc3339_utc_ms`] field by field, for every form it accepts.
fn parse_rfc3339_in_full(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' || *b.last()? != b'Z' {
        return None;
    }
    let days = parse_day(s.get(0..10)?)?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut millis = 0;
    let rest = &b[19..b.len() - 1];
    if !rest.is_empty() {
        let frac = rest.strip_prefix(b".")?;
        if frac.is_empty() || frac.len() > 9 {
            return None;
        }
        digits(frac)?;
        let mut ms = [b'0'; 3];
        for (slot, &c) in ms.iter_mut().zip(frac) {
            *slot = c;
        }
        millis = digits(&ms)?;
    }
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` into `out`.
/// Years outside 0..=9999 are clamped to keep the fixed width (the contract
/// cannot express them anyway).
pub fn format_rfc3339_ms(ms: i64, out: &mut Vec<u8>) {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    let y = y.clamp(0, 9999);
    let (h, mi, s, f) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    let mut buf = *b"0000-00-00T00:00:00.000Z";
    for (v, at, width) in [
        (y, 0, 4),
        (mo, 5, 2),
        (d, 8, 2),
        (h, 11, 2),
        (mi, 14, 2),
        (s, 17, 2),
        (f, 20, 3),
    ] {
        let mut v = v;
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    out.extend_from_slice(&buf);
}

/// Appends the decimal form of `v` without allocating.
pub fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        assert!(is_uuid("7c9e6679-7425-40de-944b-e07fc1f90ae7"));
        assert!(is_uuid("7C9E6679-7425-40DE-944B-E07FC1F90AE7"));
        assert!(!is_uuid("7c9e6679742540de944be07fc1f90ae7"));
        assert!(!is_uuid("7c9e6679-7425-40de-944b-e07fc1f90ae"));
        assert!(!is_uuid("7c9e6679-7425-40de-944b-e07fc1f90aeg"));
        assert!(!is_uuid(""));
    }

    #[test]
    fn timestamps_parse_to_epoch_millis() {
        assert_eq!(parse_rfc3339_utc_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_utc_ms("2026-11-25T14:37:56.123Z"),
            Some(1_795_617_476_123)
        );
        assert_eq!(
            parse_rfc3339_utc_ms("2026-11-25T14:37:56.123999999Z"),
            Some(1_795_617_476_123)
        );
        assert_eq!(
            parse_rfc3339_utc_ms("2026-11-25T14:37:56.1Z"),
            Some(1_795_617_476_100)
        );
        assert!(parse_rfc3339_utc_ms("2024-02-29T00:00:00Z").is_some());
        for bad in [
            "2026-11-25T14:37:56+00:00",
            "2026-11-25 14:37:56Z",
            "2026-11-25t14:37:56z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T23:60:00Z",
            "2026-11-25T23:59:60Z",
            "2026-11-25T14:37:56.Z",
            "2026-11-25T14:37:56.1234567890Z",
            "2026-11-25T14:37:56",
            "26-11-25T14:37:56Z",
            "",
        ] {
            assert_eq!(parse_rfc3339_utc_ms(bad), None, "{bad}");
        }
        assert!(parse_rfc3339_utc_ms("2000-02-29T00:00:00Z").is_some());
    }

    #[test]
    fn the_usual_form_reads_as_the_full_parser_reads_it() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            seed >> 11
        };
        // every byte of a valid stamp replaced by bytes around the ones it may be
        let probes = [
            b'0', b'9', b'/', b':', b'-', b'T', b'Z', b'.', b't', 0x00, 0xb0, 0xff,
        ];
        for _ in 0..3_000 {
            // years 0000 to 9999, and days near month ends
            let ms =
                (next() % (253_402_300_800_000 + 62_167_219_200_000)) as i64 - 62_167_219_200_000;
            let mut stamp = Vec::new();
            format_rfc3339_ms(ms, &mut stamp);
            let text = std::str::from_utf8(&stamp).expect("ASCII");
            assert_eq!(parse_rfc3339_utc_ms(text), Some(ms), "{text}");
            assert_eq!(parse_rfc3339_in_full(text), Some(ms), "{text}");
            let form = stamp.first_chunk::<24>().expect("24 bytes");
            assert_eq!(milliseconds_form(form), Some(ms), "{text}, word-wise");
            for at in 0..24 {
                for &p in &probes {
                    let mut odd = stamp.clone();
                    odd[at] = p;
                    let Ok(odd) = std::str::from_utf8(&odd) else {
                        continue;
                    };
                    assert_eq!(
                        parse_rfc3339_utc_ms(odd),
                        parse_rfc3339_in_full(odd),
                        "{odd}"
                    );
                }
            }
        }
        for date in [
            "2024-02-29",
            "2026-02-29",
            "1900-02-29",
            "2000-02-29",
            "2026-04-31",
            "2026-12-31",
            "2026-00-10",
            "2026-13-10",
            "2026-01-00",
            "2026-01-32",
        ] {
            let text = format!("{date}T23:59:59.999Z");
            assert_eq!(
                parse_rfc3339_utc_ms(&text),
                parse_rfc3339_in_full(&text),
                "{text}"
            );
        }
        for time in ["24:00:00", "23:60:00", "23:59:60", "00:00:00", "19:09:09"] {
            let text = format!("2026-12-07T{time}.000Z");
            assert_eq!(
                parse_rfc3339_utc_ms(&text),
                parse_rfc3339_in_full(&text),
                "{text}"
            );
        }
    }

    #[test]
    fn days_parse_and_format_as_partitions_name_them() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2026-11-25"), Some(20_782));
        assert_eq!(parse_day("2024-02-29"), Some(19_782));
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-11-00",
            "2026-11-5",
            "2026/11/25",
            "2026-11-25T",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
        for days in [-1, 0, 19_782, 20_782, 2_932_896] {
            assert_eq!(parse_day(&format_day(days)), Some(days));
        }
        assert_eq!(format_day(20_782), "2026-11-25");
    }

    #[test]
    fn timestamps_format_and_reparse() {
        for ms in [
            0,
            1_795_617_476_123,
            951_782_400_000,
            -1,
            253_402_300_799_999,
        ] {
            let mut out = Vec::new();
            format_rfc3339_ms(ms, &mut out);
            let s = String::from_utf8(out).expect("ascii");
            assert_eq!(parse_rfc3339_utc_ms(&s), Some(ms), "{s}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for d in (-800_000..3_000_000).step_by(997) {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn codes_and_emails() {
        assert!(is_country("DE") && !is_country("de") && !is_country("DEU"));
        assert!(is_currency("EUR") && !is_currency("EU") && !is_currency("eur"));
        assert!(is_email("a.b@example.co.uk"));
        assert_eq!(email_domain("a.b@example.co.uk"), "example.co.uk");
        for bad in [
            "", "a@b", "a@b..com", "@b.com", "a@.com", "a@b.", "a b@c.de", "a@b@c.de", "abc",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
        assert!(has_char_len("é", 1) && !has_char_len("", 5) && !has_char_len("ééé", 2));
    }

    #[test]
    fn ascii_emails_are_judged_as_the_general_rule_judges_them() {
        // every string of up to five bytes over the characters that matter
        let alphabet = [b'a', b'@', b'.', b' ', b'\t', 0x0b, b'-'];
        let mut strings: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..5 {
            let longer: Vec<Vec<u8>> = strings
                .iter()
                .filter(|s| s.len() == strings.last().map_or(0, Vec::len))
                .flat_map(|s| alphabet.iter().map(move |&c| [s.as_slice(), &[c]].concat()))
                .collect();
            strings.extend(longer);
        }
        let mut judged = 0;
        for s in &strings {
            let text = std::str::from_utf8(s).expect("ASCII");
            assert_eq!(is_ascii_email(s), is_email_in_full(text), "{text:?}");
            judged += 1;
        }
        assert!(judged > 19_000);
        // and at the length limit
        let long = format!("{}@example.com", "a".repeat(MAX_EMAIL_CHARS - 12));
        assert_eq!(long.len(), MAX_EMAIL_CHARS);
        assert!(is_email(&long));
        assert!(!is_email(&format!("a{long}")));
        assert!(is_email("é@example.com") && !is_email("é @example.com"));
    }
}
