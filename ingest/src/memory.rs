//! Fewer glibc malloc arenas for the ingest process, and memory handed back once the models
//! are dropped: a lower and steadier peak memory.
//!
//! glibc gives a thread that finds the allocator busy an arena of its own (up to eight per core),
//! and memory freed into one arena is not reused by another. Ingest allocates on tokio's workers,
//! its blocking pool and ONNX Runtime's threads, so freed buffers pile up in several arenas. With
//! one arena the GIMP manual's peak RSS went from 513–580 MB to 500–512 MB at the same speed
//! (BENCHMARKS.md, section 1).

/// The arena count used unless the user set one.
pub const MALLOC_ARENAS: i32 = 1;

/// Whether the environment already chooses glibc's arena count (`MALLOC_ARENA_MAX`, or
/// `glibc.malloc.arena_max` in `GLIBC_TUNABLES`): the user's choice wins.
pub fn arena_count_chosen(malloc_arena_max: Option<&str>, glibc_tunables: Option<&str>) -> bool {
    malloc_arena_max.is_some() || glibc_tunables.is_some_and(|t| t.contains("glibc.malloc.arena_max"))
}

/// Limits glibc to [`MALLOC_ARENAS`] arenas unless the environment chose a count. Call it before
/// any thread starts. Returns whether the limit was set (never on other C libraries).
pub fn limit_malloc_arenas() -> bool {
    let env = |name| std::env::var(name).ok();
    if arena_count_chosen(env("MALLOC_ARENA_MAX").as_deref(), env("GLIBC_TUNABLES").as_deref()) {
        return false;
    }
    set_arena_max(MALLOC_ARENAS)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_arena_max(arenas: i32) -> bool {
    // SAFETY: mallopt only changes an allocator parameter; glibc documents M_ARENA_MAX as safe to
    // set at any time, and it takes no pointers.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_arenas: i32) -> bool {
    false
}

/// Returns the allocator's free memory to the system (glibc's `malloc_trim`), including free
/// pages in the middle of the heap, which glibc otherwise keeps for reuse. Call it after
/// dropping something large, before work that needs memory of another kind (the index's file
/// mappings). Returns whether any memory was released (never on other C libraries).
pub fn release_free_memory() -> bool {
    trim()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() -> bool {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_arena_setting_wins() {
        assert!(!arena_count_chosen(None, None));
        assert!(!arena_count_chosen(None, Some("glibc.malloc.tcache_count=0")));
        assert!(arena_count_chosen(Some("4"), None));
        assert!(arena_count_chosen(None, Some("glibc.malloc.tcache_count=0:glibc.malloc.arena_max=2")));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_memory_goes_back_to_the_system() {
        // 64 MB in blocks small enough to come from the heap rather than their own mappings,
        // then a block above them, so that freeing them leaves a hole that `free` itself cannot
        // hand back (it only shrinks the heap from the top): only the trim can.
        let blocks: Vec<Vec<u8>> = (0..16_384).map(|i| vec![i as u8; 4096]).collect();
        let fence = vec![1u8; 64 << 10];
        assert_eq!(blocks.iter().map(Vec::len).sum::<usize>(), 64 << 20);
        drop(blocks);
        assert!(release_free_memory());
        assert_eq!(fence.len(), 64 << 10);
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_accepts_the_limit() {
        assert!(set_arena_max(MALLOC_ARENAS));
    }
}
