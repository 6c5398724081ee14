fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    remedy::cli::main()
}

/// glibc's malloc gives each thread that allocates an arena of its own, up
/// to eight per core, and memory freed in one arena is not reused by
/// another: under a storm, the webhook's, the workers' and the blocking
/// pool's threads each grew one, and their free fragments, not live data,
/// were most of the daemon's peak. Two arenas, not one, so that two threads
/// need not queue on one lock. Set before any thread starts, so that none
/// has an arena yet.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable; no thread is allocating yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
