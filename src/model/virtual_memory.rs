//! The virtual-memory section: how the address space is used.

use crate::addr::VirtAddr;
use serde::Serialize;

/// The size the shares are taken of, and how it was chosen.
#[derive(Clone, Debug, Serialize)]
pub struct AddressSpace {
    pub size: u64,
    /// `user_32bit_2gib`, `user_32bit_4gib`, `user_64bit` or `sum_of_regions`.
    pub basis: &'static str,
}

/// An amount of memory and its share of the address space (in percent).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Amount {
    pub bytes: u64,
    pub regions: u64,
    /// Percent of `address_space.size`; null when that is 0.
    pub percent: Option<f64>,
}

/// The largest free block.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FreeBlock {
    pub address: VirtAddr,
    pub size: u64,
}

/// Committed memory by type.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct CommittedByType {
    pub image: u64,
    pub mapped: u64,
    pub private: u64,
    /// Committed regions with no (or an unknown) type.
    pub other: u64,
}

/// The section.
#[derive(Clone, Debug, Serialize)]
pub struct VirtualMemory {
    /// Whether the dump has a memory-info list; when false only `message` is set.
    pub present: bool,
    pub message: Option<String>,
    /// Pointer width of the process, 32 or 64; null when the dump does not say.
    pub pointer_bits: Option<u32>,
    pub regions: u64,
    /// The sum of all regions of the list.
    pub total: u64,
    pub address_space: Option<AddressSpace>,
    pub free: Amount,
    pub reserved: Amount,
    pub committed: Amount,
    pub largest_free: Option<FreeBlock>,
    /// (free − largest free) / free; null when nothing is free.
    pub fragmentation: Option<f64>,
    /// `fragmentation` × 100.
    pub fragmentation_percent: Option<f64>,
    pub committed_by_type: CommittedByType,
}

impl VirtualMemory {
    pub fn absent(message: impl Into<String>) -> Self {
        VirtualMemory {
            present: false,
            message: Some(message.into()),
            pointer_bits: None,
            regions: 0,
            total: 0,
            address_space: None,
            free: Amount::default(),
            reserved: Amount::default(),
            committed: Amount::default(),
            largest_free: None,
            fragmentation: None,
            fragmentation_percent: None,
            committed_by_type: CommittedByType::default(),
        }
    }
}
