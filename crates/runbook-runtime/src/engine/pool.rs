//! The pooling instance allocator for `host serve`: every run's memories, tables and fiber stack
//! come from slots reserved once at start-up, and a memory is initialised by mapping its
//! compiled image copy-on-write instead of copying data segments, so a run costs microseconds.
//! The pool is sized from the config: one slot per run `max-concurrent-runs` lets execute, plus a
//! few for describe(), each memory slot as large as the largest `memory-mib`. Each run's own
//! `ResourceLimiter` still holds it to its `memory-mib`, so the pool's linear memory never exceeds
//! `slots × largest memory-mib` (`memory_cap_bytes`).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::PoolingAllocationConfig;

use crate::config::Config;
use crate::policy::Limits;

/// Slots beyond the runs for describe() (one per playbook being loaded at once; short-lived).
pub const DESCRIBE_SLOTS: u32 = 4;
/// Per component: a Rust playbook has one memory, componentize-py and StarlingMonkey ones a few.
const MEMORIES_PER_COMPONENT: u32 = 4;
const TABLES_PER_COMPONENT: u32 = 8;
/// Core instances are only counted (their metadata is allocated on demand), so be generous:
/// componentize-py links a dozen libraries.
const CORE_INSTANCES_PER_COMPONENT: u32 = 100;
/// Same cap as the per-store limiter's (`state::MAX_TABLE_ELEMENTS`): a Python table is large.
const TABLE_ELEMENTS: usize = 100_000;
/// Freed slots are decommitted (madvise) this many at a time: one syscall and one TLB
/// shootdown for several runs. A slot waiting in the batch is flushed as soon as one is needed.
const DECOMMIT_BATCH: usize = 8;
/// A table's first entries are reset with memset instead of madvise, so the next run does not
/// fault its page in again (a Rust playbook's table fits; a 1 MiB memset of linear memory would
/// cost more than the faults it saves, so memories are left to madvise).
const TABLE_KEEP_RESIDENT_BYTES: usize = 16 << 10;
/// A 32-bit linear memory never grows past this; larger `memory-mib` values change nothing.
const MAX_MEMORY_BYTES: usize = 4 << 30;

/// How many instances at once, and how large each memory slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolPlan {
    /// Component instances alive at once: runs plus describe() calls.
    pub slots: u32,
    /// Largest linear memory of any playbook (the largest `memory-mib`, default 64 MiB).
    pub memory_bytes: usize,
}

impl PoolPlan {
    pub fn for_config(config: &Config) -> Self {
        let runs = u32::try_from(config.server.max_concurrent_runs.max(1)).unwrap_or(u32::MAX);
        let largest = config
            .plugins
            .values()
            .filter_map(|p| p.memory_mib)
            .map(|mib| mib.saturating_mul(1 << 20))
            .chain([Limits::default().memory_bytes])
            .max()
            .unwrap_or(0);
        Self {
            slots: runs.saturating_add(DESCRIBE_SLOTS),
            memory_bytes: largest.clamp(1 << 16, MAX_MEMORY_BYTES),
        }
    }

    /// The most linear memory the pool's instances can hold at once.
    pub fn memory_cap_bytes(&self) -> u64 {
        u64::from(self.slots) * self.memory_bytes as u64
    }

    pub(super) fn allocation_config(&self) -> PoolingAllocationConfig {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(self.slots)
            .total_stacks(self.slots)
            .total_core_instances(self.slots.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
            .total_memories(self.slots.saturating_mul(MEMORIES_PER_COMPONENT))
            .total_tables(self.slots.saturating_mul(TABLES_PER_COMPONENT))
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .max_memories_per_module(MEMORIES_PER_COMPONENT)
            .max_tables_per_module(TABLES_PER_COMPONENT)
            .table_elements(TABLE_ELEMENTS)
            // The per-run limiter refuses first (with the limit named); the slot is the backstop.
            .max_memory_size(self.memory_bytes)
            .decommit_batch_size(DECOMMIT_BATCH)
            .table_keep_resident(TABLE_KEEP_RESIDENT_BYTES);
        pool
    }
}

/// Hands out the pool's slots: a store is created only while holding one, so a burst waits for
/// a free slot instead of failing with "pool exhausted".
#[derive(Clone)]
pub struct Slots(Arc<Semaphore>);

/// Held for as long as a store lives (drop it after the store).
pub struct InstanceSlot {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Slots {
    pub fn new(plan: &PoolPlan) -> Self {
        Self(Arc::new(Semaphore::new(plan.slots as usize)))
    }

    pub async fn acquire(&self) -> InstanceSlot {
        let permit = self.0.clone().acquire_owned().await.ok();
        InstanceSlot { _permit: permit }
    }
}

impl InstanceSlot {
    /// For engines that allocate on demand: nothing to wait for.
    pub fn unbounded() -> Self {
        Self { _permit: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_sized_from_the_config() {
        let mut config: Config = toml::from_str(
            "[server]\nmax-concurrent-runs = 3\n[plugins.big]\nmemory-mib = 96\n[plugins.small]\nmemory-mib = 8\n",
        )
        .unwrap();
        let plan = PoolPlan::for_config(&config);
        assert_eq!(plan.slots, 3 + DESCRIBE_SLOTS);
        assert_eq!(plan.memory_bytes, 96 << 20);
        assert_eq!(plan.memory_cap_bytes(), 7 * (96 << 20));
        config.plugins.clear();
        assert_eq!(PoolPlan::for_config(&config).memory_bytes, 64 << 20);
    }
}
