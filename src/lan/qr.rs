//! QR codes on the terminal, so the phone scans a URL instead of typing it. Two modules per
//! character cell with the half blocks `▀ ▄ █`, drawn black on white whatever the terminal's
//! colours (scanners expect dark modules on a light ground), with the quiet zone the
//! standard asks for around the code.

use anyhow::{Context, Result};
use qrcode::{Color, QrCode};

/// Light modules around the code; ISO/IEC 18004 asks for four, two is what phone cameras need
/// in practice and keeps the code small on a terminal.
const QUIET_ZONE: usize = 2;
/// Black on white, then back to the terminal's colours.
const ON: &str = "\x1b[30;47m";
const OFF: &str = "\x1b[0m";

/// The dark/light modules of the QR code for `text`, row by row (`true` = dark).
pub(crate) fn modules(text: &str) -> Result<Vec<Vec<bool>>> {
    let code = QrCode::new(text.as_bytes()).context("the text is too long for a QR code")?;
    let width = code.width();
    let colors = code.to_colors();
    Ok(colors
        .chunks(width)
        .map(|row| row.iter().map(|c| *c == Color::Dark).collect())
        .collect())
}

/// The QR code for `text` as terminal lines, two module rows per line.
pub(crate) fn render(text: &str) -> Result<String> {
    let m = modules(text)?;
    let size = m.len() + 2 * QUIET_ZONE;
    let dark = |row: usize, col: usize| -> bool {
        let (r, c) = (row.wrapping_sub(QUIET_ZONE), col.wrapping_sub(QUIET_ZONE));
        m.get(r)
            .and_then(|line| line.get(c))
            .copied()
            .unwrap_or(false)
    };
    let mut out = String::new();
    for row in (0..size).step_by(2) {
        out.push_str(ON);
        for col in 0..size {
            out.push(match (dark(row, col), dark(row + 1, col)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push_str(OFF);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_holds_two_module_rows_inside_a_quiet_zone() {
        let text = render("https://192.168.1.20:8443/").unwrap();
        let size = modules("https://192.168.1.20:8443/").unwrap().len() + 2 * QUIET_ZONE;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), size.div_ceil(2));
        let first = lines[0].trim_start_matches(ON).trim_end_matches(OFF);
        assert_eq!(first.chars().count(), size);
        assert!(first.chars().all(|c| c == ' '), "the quiet zone is light");
    }
}
