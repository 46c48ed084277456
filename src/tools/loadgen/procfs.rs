//! Server process figures from /proc (Linux; None elsewhere): CPU ticks
//! of a process or of its threads of one name, resident memory.

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ). It is 100 on
/// every mainstream Linux build; reading sysconf(_SC_CLK_TCK) would need
/// libc and unsafe code, which this crate forbids.
pub(super) const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of a process, in clock ticks.
pub(super) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat)
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces;
    // the fields after its closing parenthesis start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// utime + stime of this process's threads called `name`, in clock ticks.
fn threads_cpu_ticks(name: &str) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        let comm = stat
            .find('(')
            .zip(stat.rfind(')'))
            .map(|(open, close)| &stat[open + 1..close]);
        if comm == Some(name) {
            total += parse_cpu_ticks(&stat)?;
        }
    }
    Some(total)
}

pub(super) fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// A "Key:   123 kB" line of /proc/<pid>/status.
pub(super) fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, key)
}

fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Whose CPU and RSS a run reports: a process, or the threads of one name
/// in it.
#[derive(Clone, Copy)]
pub(super) struct Measured {
    pub(super) pid: u32,
    pub(super) threads: Option<&'static str>,
}

impl Measured {
    pub(super) fn cpu_ticks(self) -> Option<u64> {
        match self.threads {
            None => cpu_ticks(self.pid),
            Some(name) => threads_cpu_ticks(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let stat = "4242 (tokio rt (x)) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 37 0 0 20 0 9 0";
        assert_eq!(parse_cpu_ticks(stat), Some(187));
        let status = "Name:\tcallguard\nVmHWM:\t   81234 kB\nVmRSS:\t   51200 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(51_200));
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(81_234));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }
}
