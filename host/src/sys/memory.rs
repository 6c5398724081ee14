//! Giving memory remedy no longer uses back to the kernel.
//!
//! A daemon's resident memory is mostly pages it touched once: malloc's
//! free lists after compiling a plugin, and the code and read-only data of
//! start-up (config, plugin loading, migrations) that serving never runs
//! again. The kernel keeps both counted against remedy until asked.

use std::ffi::{c_int, c_void};

/// Give the pages malloc holds free back to the kernel. Compiling a plugin
/// allocates several MiB that are all freed when it ends, and glibc keeps
/// such pages for the life of the process unless asked.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims malloc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Ask the kernel to reclaim the resident pages of remedy's own code and
/// read-only data; the bytes asked about, or why the kernel refused.
///
/// Called once serving has started. The pages serving runs come back on
/// their first use, read from the page cache or, if it dropped them, the
/// binary; the ones only start-up ran stay out. Only whole pages of
/// segments that are never written are advised, so no data is touched,
/// and pages another process maps as well are left to the kernel.
#[cfg(target_os = "linux")]
pub fn release_code_pages() -> std::io::Result<usize> {
    let mut released = 0;
    for (start, end) in read_only_pages() {
        // SAFETY: [start, end) is whole pages of a loaded, never-written
        // segment of this program; MADV_PAGEOUT changes no contents, it only
        // lets the kernel drop the pages and read them again when touched.
        if unsafe { libc::madvise(start as *mut c_void, end - start, libc::MADV_PAGEOUT) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        released += end - start;
    }
    Ok(released)
}

/// The whole pages of this program's loaded segments that are never
/// written (code, read-only data), as `[start, end)` address ranges.
#[cfg(target_os = "linux")]
fn read_only_pages() -> Vec<(usize, usize)> {
    let page = page_size();
    let mut segments: Vec<(usize, usize)> = Vec::new();
    // SAFETY: the callback only reads the headers the loader hands it and
    // writes to `segments`, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(program_segments),
            (&mut segments as *mut Vec<(usize, usize)>).cast(),
        );
    }
    segments
        .into_iter()
        // Inward to whole pages: a page a segment shares with a writable
        // neighbour is left alone.
        .map(|(start, end)| (start.next_multiple_of(page), end / page * page))
        .filter(|(start, end)| start < end)
        .collect()
}

#[cfg(target_os = "linux")]
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// `dl_iterate_phdr`'s callback: collects the program's loaded segments
/// without the writable flag, then stops, since the loader hands over the
/// program itself first and its libraries after.
#[cfg(target_os = "linux")]
unsafe extern "C" fn program_segments(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    segments: *mut c_void,
) -> c_int {
    // SAFETY: the loader passes a valid `info` whose `dlpi_phdr` points to
    // `dlpi_phnum` headers, and `segments` is the Vec `read_only_pages` passed.
    let (info, segments) = unsafe { (&*info, &mut *segments.cast::<Vec<(usize, usize)>>()) };
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
    for header in headers {
        if header.p_type == libc::PT_LOAD && header.p_flags & libc::PF_W == 0 {
            let start = info.dlpi_addr as usize + header.p_vaddr as usize;
            segments.push((start, start + header.p_memsz as usize));
        }
    }
    1
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The mappings of this test program's own file: (start, end, permissions).
    fn program_mappings() -> Vec<(usize, usize, String)> {
        let program = std::fs::read_link("/proc/self/exe").unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .filter(|line| line.ends_with(program.to_str().unwrap()))
            .map(|line| {
                let mut fields = line.split_whitespace();
                let (start, end) = fields.next().unwrap().split_once('-').unwrap();
                let hex = |text| usize::from_str_radix(text, 16).unwrap();
                (hex(start), hex(end), fields.next().unwrap().to_string())
            })
            .collect()
    }

    #[test]
    fn only_the_program_s_never_written_pages_are_advised_and_all_its_code_is() {
        let mappings = program_mappings();
        let pages = read_only_pages();
        assert!(!pages.is_empty(), "no segments found in {mappings:?}");
        for &(start, end) in &pages {
            let inside = mappings
                .iter()
                .filter(|(from, to, _)| *from < end && start < *to)
                .collect::<Vec<_>>();
            assert!(!inside.is_empty(), "{start:x}-{end:x} is not the program's");
            for (from, to, permissions) in inside {
                assert!(
                    !permissions.contains('w'),
                    "{start:x}-{end:x} reaches the writable {from:x}-{to:x} {permissions}"
                );
            }
        }
        // All of the code but a page it may share at either end with a
        // neighbouring segment, where the linker did not align it to pages.
        let page = page_size();
        let code = mappings.iter().filter(|(_, _, p)| p.contains('x'));
        for (from, to, _) in code {
            assert!(
                pages
                    .iter()
                    .any(|&(start, end)| start <= from + page && to - page <= end),
                "the code at {from:x}-{to:x} is not advised: {pages:x?}"
            );
        }
    }

    #[test]
    fn the_kernel_takes_the_advice_and_the_program_runs_on() {
        let advised = release_code_pages().unwrap();
        assert!(advised > 0);
        // Code and read-only data paged out come back on use.
        let words: Vec<String> = ["remedy", "runs", "on"].map(str::to_string).into();
        assert_eq!(words.join(" "), "remedy runs on");
    }
}
