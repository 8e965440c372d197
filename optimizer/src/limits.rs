//! The host memory this process may still take and the memory it holds, read from Linux's
//! `/proc` and cgroup files (no libc). Where those files are missing, every figure is `None`.

pub use crate::plan::HostLimit;
use std::fs;
use std::path::{Component, Path};

/// The tightest of the bounds on the host memory this process may still allocate: the memory
/// available on the host, the headroom of its memory cgroup and of every cgroup above it (v2
/// `memory.max` less `memory.current`, v1 `memory.limit_in_bytes` less `memory.usage_in_bytes`),
/// and its address-space limit less its address space; `None` where none is known.
pub fn host_memory_limit() -> Option<HostLimit> {
    let available = read("/proc/meminfo").and_then(|t| kib_field(&t, "MemAvailable"));
    let cgroup = read("/proc/self/cgroup").and_then(|t| {
        memory_cgroups(&t).into_iter().filter_map(|(hierarchy, path)| hierarchy.headroom(Path::new(hierarchy.root), path)).min()
    });
    let address_space = read("/proc/self/limits").and_then(|t| address_space_limit(&t)).map(|limit| {
        let used = read("/proc/self/status").and_then(|t| kib_field(&t, "VmSize")).unwrap_or(0);
        limit.saturating_sub(used)
    });
    [(available, "available memory"), (cgroup, "cgroup memory.max"), (address_space, "RLIMIT_AS")]
        .into_iter()
        .filter_map(|(bytes, source)| Some(HostLimit { bytes: bytes?, source }))
        .min_by_key(|limit| limit.bytes)
}

/// This process's resident memory in bytes (`VmRSS` of `/proc/self/status`).
pub fn resident_bytes() -> Option<u64> {
    read("/proc/self/status").and_then(|t| kib_field(&t, "VmRSS"))
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path).ok()
}

/// The field `key` of a `/proc/meminfo` or `/proc/<pid>/status` text (`key: <n> kB`), in bytes.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
    let mut words = line.split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then(|| kib.saturating_mul(1024))
}

/// The soft `Max address space` limit of a `/proc/<pid>/limits` text in bytes; `None` when
/// unlimited.
fn address_space_limit(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix("Max address space"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// The memory controller's files in one cgroup hierarchy.
#[derive(Debug, PartialEq, Eq)]
struct Hierarchy {
    /// Where the hierarchy is mounted.
    root: &'static str,
    /// The file of a cgroup's limit in bytes.
    limit: &'static str,
    /// The file of a cgroup's usage in bytes.
    usage: &'static str,
}

const V2: Hierarchy = Hierarchy { root: "/sys/fs/cgroup", limit: "memory.max", usage: "memory.current" };
const V1: Hierarchy = Hierarchy { root: "/sys/fs/cgroup/memory", limit: "memory.limit_in_bytes", usage: "memory.usage_in_bytes" };

/// The hierarchies of a `/proc/<pid>/cgroup` text that can hold a memory limit, each with the
/// process's cgroup path in it: the unified one (`0::/path`) and v1's `memory` controller.
fn memory_cgroups(text: &str) -> Vec<(&'static Hierarchy, &str)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            if id == "0" && controllers.is_empty() {
                Some((&V2, path))
            } else {
                controllers.split(',').any(|c| c == "memory").then_some((&V1, path))
            }
        })
        .collect()
}

/// A cgroup limit file's text in bytes; `None` for `max` (no limit).
fn cgroup_limit(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

impl Hierarchy {
    /// The least headroom (limit less usage) over the cgroup `path` of this hierarchy, mounted at
    /// `root`, and the cgroups above it up to the root: `None` where none has a limit. Path
    /// components that would leave the mount (`..`) are skipped.
    fn headroom(&self, root: &Path, path: &str) -> Option<u64> {
        let mut dir = root.to_path_buf();
        dir.extend(Path::new(path).components().filter(|c| matches!(c, Component::Normal(_))));
        let mut least = None;
        loop {
            if let Some(limit) = read(dir.join(self.limit)).and_then(|t| cgroup_limit(&t)) {
                let usage = read(dir.join(self.usage)).and_then(|t| t.trim().parse().ok()).unwrap_or(0);
                let headroom = limit.saturating_sub(usage);
                least = Some(least.map_or(headroom, |l: u64| l.min(headroom)));
            }
            if dir == root || !dir.pop() {
                return least;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_status_fields() {
        let meminfo = "MemTotal:       24683772 kB\nMemFree:        22289928 kB\nMemAvailable:   24005756 kB\n";
        assert_eq!(kib_field(meminfo, "MemAvailable"), Some(24005756 * 1024));
        assert_eq!(kib_field(meminfo, "MemTotal"), Some(24683772 * 1024));
        assert_eq!(kib_field(meminfo, "Mem"), None);
        let status = "Name:\teggroll\nVmSize:\t    3060 kB\nVmRSS:\t    1708 kB\nThreads:\t1\n";
        assert_eq!(kib_field(status, "VmRSS"), Some(1708 * 1024));
        assert_eq!(kib_field(status, "VmSize"), Some(3060 * 1024));
        assert_eq!(kib_field(status, "Threads"), None);
    }

    #[test]
    fn address_space_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max stack size            8388608              unlimited            bytes     \n\
                      Max address space         unlimited            unlimited            bytes     \n";
        assert_eq!(address_space_limit(limits), None);
        let limits = limits.replace("Max address space         unlimited ", "Max address space         4294967296");
        assert_eq!(address_space_limit(&limits), Some(4294967296));
    }

    #[test]
    fn cgroup_files() {
        assert_eq!(memory_cgroups("0::/user.slice/session-2.scope\n"), vec![(&V2, "/user.slice/session-2.scope")]);
        let hybrid = "9:name=systemd:/\n5:devices:/\n4:memory,kmem:/process_api/abc\n1:cpu,cpuacct:/\n0::/\n";
        assert_eq!(memory_cgroups(hybrid), vec![(&V1, "/process_api/abc"), (&V2, "/")]);
        assert_eq!(cgroup_limit("max\n"), None);
        assert_eq!(cgroup_limit("1073741824\n"), Some(1073741824));
        assert_eq!(cgroup_limit("9223372036854771712\n"), Some(9223372036854771712));
    }

    #[test]
    fn cgroup_headroom_is_the_least_up_the_tree() {
        let root = std::env::temp_dir().join(format!("eggroll-limits-{}", std::process::id()));
        let leaf = root.join("outer/inner");
        fs::create_dir_all(&leaf).unwrap();
        fs::write(leaf.join("memory.max"), "max\n").unwrap();
        fs::write(leaf.join("memory.current"), "100\n").unwrap();
        fs::write(root.join("outer/memory.max"), "1000\n").unwrap();
        fs::write(root.join("outer/memory.current"), "400\n").unwrap();
        assert_eq!(V2.headroom(&root, "/outer/inner"), Some(600));
        assert_eq!(V2.headroom(&root, "/../outer/inner/gone"), Some(600));
        fs::write(leaf.join("memory.max"), "500\n").unwrap();
        assert_eq!(V2.headroom(&root, "/outer/inner"), Some(400));
        assert_eq!(V2.headroom(&root, "/"), None);
        fs::remove_dir_all(&root).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_host_has_a_limit_below_its_memory() {
        let total = kib_field(&read("/proc/meminfo").unwrap(), "MemTotal").unwrap();
        let limit = host_memory_limit().expect("a limit on Linux");
        assert!(limit.bytes > 0 && limit.bytes < total, "{limit:?} of {total} bytes");
        let resident = resident_bytes().expect("a resident size on Linux");
        assert!(resident > 0 && resident < total, "{resident} of {total} bytes");
    }
}
