//! Text formatting for the report: numbers, byte sizes and link targets.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// A number as a reader wants it in a table: integers in full (`30000`), magnitudes in
/// [10⁻³, 10⁵) with four significant digits and no trailing zeros (`0.1199`, `2.125`,
/// `12.5`), others in scientific notation with four significant digits (`1.557e-5`); `—` for
/// NaN and `∞` / `−∞` for infinities.
pub fn number(x: f64) -> String {
    if x.is_nan() {
        return "—".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "∞" } else { "−∞" }.into();
    }
    if x == x.trunc() && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let a = x.abs();
    if (1e-3..1e5).contains(&a) {
        // Four significant digits: decimals = 3 − floor(log₁₀ a), at least 0.
        let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{x:.decimals$}");
        trim_zeros(&s)
    } else {
        let s = format!("{x:.3e}");
        match s.split_once('e') {
            Some((m, e)) => format!("{}e{e}", trim_zeros(m)),
            None => s,
        }
    }
}

/// Drops trailing zeros after a decimal point, and the point itself if nothing follows.
fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// A byte count in binary units: `812 B`, `12.3 KiB`, `4.05 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    let digits = if v < 10.0 { 2 } else { 1 };
    format!("{v:.digits$} {}", UNITS[unit])
}

/// The characters kept as they are in a path segment of a relative link: RFC 3986's
/// unreserved set (letters, digits, `-`, `.`, `_`, `~`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A relative link to `file` inside the sub-directory `dir`: each segment percent-encoded
/// (UTF-8), so names with spaces, `#`, `?` or non-ASCII letters still resolve.
pub fn href(dir: &str, file: &str) -> String {
    format!(
        "{}/{}",
        utf8_percent_encode(dir, SEGMENT),
        utf8_percent_encode(file, SEGMENT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(30000.0), "30000");
        assert_eq!(number(-3.0), "-3");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(0.11989293074396454), "0.1199");
        assert_eq!(number(2.1246728853847405), "2.125");
        assert_eq!(number(12.5), "12.5");
        assert_eq!(number(44.608370168274874), "44.61");
        assert_eq!(number(0.001), "0.001");
        assert_eq!(number(12345.6), "12346");
        assert_eq!(number(1.5e5 + 0.5), "1.5e5");
        assert_eq!(number(-0.00007750018402385983), "-7.75e-5");
        assert_eq!(number(1e-8), "1e-8");
        assert_eq!(number(f64::NAN), "—");
        assert_eq!(number(f64::NEG_INFINITY), "−∞");
        // Rounding up across a power of ten keeps four significant digits' worth of text.
        assert_eq!(number(9.99996), "10");
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.00 KiB");
        assert_eq!(bytes(12_595), "12.3 KiB");
        assert_eq!(bytes(4_246_732), "4.05 MiB");
    }

    #[test]
    fn hrefs_encode_each_segment() {
        assert_eq!(href("moons-cfm", "report.html"), "moons-cfm/report.html");
        assert_eq!(
            href("my run #2", "report.html"),
            "my%20run%20%232/report.html"
        );
        assert_eq!(href("a/b?c", "x.html"), "a%2Fb%3Fc/x.html");
        assert_eq!(href("σ-sweep", "report.html"), "%CF%83-sweep/report.html");
    }
}
