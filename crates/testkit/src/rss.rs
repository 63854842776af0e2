//! Resident-memory readings from `/proc` (Linux) for flat-memory assertions.

use std::io;

/// `VmRSS` of process `pid`, in KiB.
pub fn rss_kb(pid: u32) -> io::Result<u64> {
    status_field(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// `VmRSS` of this process, in KiB.
pub fn current_rss_kb() -> io::Result<u64> {
    status_field("/proc/self/status", "VmRSS:")
}

/// `VmHWM` (peak resident set since start) of this process, in KiB.
///
/// Compare it before and after a large transfer: unlike a final `VmRSS`
/// reading it also catches a buffer that was allocated and freed again.
pub fn current_peak_rss_kb() -> io::Result<u64> {
    status_field("/proc/self/status", "VmHWM:")
}

fn status_field(path: &str, field: &str) -> io::Result<u64> {
    let status = std::fs::read_to_string(path)?;
    parse_field(&status, field).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no {field} line in {path}"),
        )
    })
}

fn parse_field(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vmrss_line() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t    1234 kB\n";
        assert_eq!(parse_field(status, "VmRSS:"), Some(1234));
        assert_eq!(parse_field(status, "VmHWM:"), Some(2048));
        assert_eq!(parse_field(status, "VmSwap:"), None);
    }

    #[test]
    fn reads_own_rss() {
        let kb = current_rss_kb().unwrap();
        assert!(kb > 0);
        assert_eq!(rss_kb(std::process::id()).map(|v| v > 0).ok(), Some(true));
        assert!(
            current_peak_rss_kb().unwrap() >= kb,
            "the peak is never below an earlier reading"
        );
    }
}
