//! The virtual-memory script: how the process's address space is used, from the
//! dump's memory-info list — free, reserved and committed totals, the largest free
//! block, how fragmented the free memory is, and committed memory by type.
//!
//! Shares of the address space are taken of the *user address space* implied by the
//! process's architecture (system-info stream), since the memory-info list of a
//! Windows dump covers exactly that space, free regions included:
//!
//! - 32-bit (x86, ARM): 4 GiB when some region ends above 2 GiB (a large-address-aware
//!   process, e.g. under WOW64), else 2 GiB;
//! - 64-bit (x64, ARM64): 128 TiB, the x64 user address space;
//! - unknown architecture: the sum of all regions of the list.
//!
//! The thresholds of the findings are the constants below.

use super::{Need, Script, ScriptContext, ScriptInfo, ScriptOutput};
use crate::addr::VirtAddr;
use crate::model::{
    AddressSpace, Finding, FindingKind, FreeBlock, SectionData, SectionError, Severity,
    VirtualMemory,
};
use crate::text::{approx_bytes, thousands};
use minidump::system_info::PointerWidth;
use minidump::{MinidumpMemoryInfoList, MinidumpSystemInfo};

/// Free memory counts as fragmented (warning) when more than this share of it lies
/// outside the largest free block.
pub const FRAGMENTATION_WARNING: f64 = 0.80;
/// In a 32-bit process, a largest free block below this is an error: allocations of
/// large blocks (big arrays, bitmaps, file mappings) will fail.
pub const LARGEST_FREE_ERROR_32BIT: u64 = 64 * MIB;
/// In a 32-bit process, a largest free block below this is a warning.
pub const LARGEST_FREE_WARNING_32BIT: u64 = 256 * MIB;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;
/// The x64 user address space (128 TiB).
pub const USER_SPACE_64BIT: u64 = 128 * 1024 * GIB;

const MEM_COMMIT: u32 = 0x1000;
const MEM_RESERVE: u32 = 0x2000;
const MEM_FREE: u32 = 0x1_0000;
const MEM_PRIVATE: u32 = 0x2_0000;
const MEM_MAPPED: u32 = 0x4_0000;
const MEM_IMAGE: u32 = 0x100_0000;

/// The virtual-memory script.
pub struct VirtualMemoryScript;

/// One region of the list: base, size, state, type.
pub type Region = (u64, u64, u32, u32);

fn add(a: &mut u64, b: u64) -> Result<(), SectionError> {
    *a = a.checked_add(b).ok_or_else(|| {
        SectionError::Failed("the memory-info list's region sizes add up to more than 2^64".into())
    })?;
    Ok(())
}

/// Computes the section from the regions (base, size, state, type) and the pointer
/// width.
pub fn summarize(
    regions: &[Region],
    pointer_bits: Option<u32>,
) -> Result<VirtualMemory, SectionError> {
    let mut v = VirtualMemory::absent("");
    v.present = true;
    v.message = None;
    v.pointer_bits = pointer_bits;
    v.regions = regions.len() as u64;
    let mut highest_end = 0u64;
    for &(base, size, state, ty) in regions {
        add(&mut v.total, size)?;
        highest_end = highest_end.max(base.saturating_add(size));
        let amount = match state {
            MEM_FREE => {
                if v.largest_free.is_none_or(|l| size > l.size) {
                    v.largest_free = Some(FreeBlock {
                        address: VirtAddr(base),
                        size,
                    });
                }
                &mut v.free
            }
            MEM_RESERVE => &mut v.reserved,
            MEM_COMMIT => {
                let t = &mut v.committed_by_type;
                add(
                    match ty {
                        MEM_IMAGE => &mut t.image,
                        MEM_MAPPED => &mut t.mapped,
                        MEM_PRIVATE => &mut t.private,
                        _ => &mut t.other,
                    },
                    size,
                )?;
                &mut v.committed
            }
            _ => continue,
        };
        add(&mut amount.bytes, size)?;
        amount.regions += 1;
    }
    let space = match pointer_bits {
        Some(32) if highest_end > 2 * GIB => AddressSpace {
            size: 4 * GIB,
            basis: "user_32bit_4gib",
        },
        Some(32) => AddressSpace {
            size: 2 * GIB,
            basis: "user_32bit_2gib",
        },
        Some(64) => AddressSpace {
            size: USER_SPACE_64BIT,
            basis: "user_64bit",
        },
        _ => AddressSpace {
            size: v.total,
            basis: "sum_of_regions",
        },
    };
    for a in [&mut v.free, &mut v.reserved, &mut v.committed] {
        a.percent = (space.size > 0).then(|| a.bytes as f64 * 100.0 / space.size as f64);
    }
    v.address_space = Some(space);
    if let (Some(largest), true) = (v.largest_free, v.free.bytes > 0) {
        let ratio = v.free.bytes.saturating_sub(largest.size) as f64 / v.free.bytes as f64;
        v.fragmentation = Some(ratio);
        v.fragmentation_percent = Some(ratio * 100.0);
    }
    Ok(v)
}

fn pointer_bits(ctx: &ScriptContext<'_>) -> Option<u32> {
    let sys = ctx
        .dump
        .minidump()
        .get_stream::<MinidumpSystemInfo>()
        .ok()?;
    match sys.cpu.pointer_width() {
        PointerWidth::Bits32 => Some(32),
        PointerWidth::Bits64 => Some(64),
        PointerWidth::Unknown => None,
    }
}

const INFO: ScriptInfo = ScriptInfo {
    name: "virtual_memory",
    title: "Virtual memory",
    description: "free, reserved and committed memory, the largest free block, fragmentation, committed memory by type",
    needs: &[Need::MemoryInfoList],
};

/// `MiniDumpWithFullMemoryInfo`, the dump-type bit that asks for the memory-info list.
const MINIDUMP_WITH_FULL_MEMORY_INFO: u32 = 0x800;

/// Why the dump has no memory-info list, from the dump type the tracker recorded
/// asking for it (metadata `dump_type`, stream 1.2), when it did.
fn absent_message(ctx: &ScriptContext<'_>) -> String {
    let requested = ctx
        .stream
        .and_then(|s| s.metadata_value("dump_type"))
        .and_then(|v| u32::from_str_radix(v.trim().trim_start_matches("0x"), 16).ok());
    match requested {
        Some(t) if t & MINIDUMP_WITH_FULL_MEMORY_INFO != 0 => format!(
            "The dump has no memory-info list (MemoryInfoListStream), although the tracker asked for it (dump type 0x{t:08x} includes MiniDumpWithFullMemoryInfo): the dump writer ignored the request (Wine's dbghelp does)."
        ),
        Some(t) => format!(
            "The dump has no memory-info list (MemoryInfoListStream): the tracker did not ask for it (dump type 0x{t:08x} lacks MiniDumpWithFullMemoryInfo)."
        ),
        None => "The dump has no memory-info list (MemoryInfoListStream): write it with MiniDumpWithFullMemoryInfo to see how the address space is used.".to_owned(),
    }
}

impl Script for VirtualMemoryScript {
    fn info(&self) -> &'static ScriptInfo {
        &INFO
    }

    fn run(&self, ctx: &ScriptContext<'_>) -> Result<ScriptOutput, SectionError> {
        let list = match ctx.dump.minidump().get_stream::<MinidumpMemoryInfoList>() {
            Ok(list) => list,
            Err(minidump::Error::StreamNotFound) => {
                return Ok(output(VirtualMemory::absent(absent_message(ctx))))
            }
            Err(e) => {
                return Ok(output(VirtualMemory::absent(format!(
                    "The dump's memory-info list cannot be read: {e}."
                ))))
            }
        };
        let regions: Vec<Region> = list
            .iter()
            .map(|r| {
                (
                    r.raw.base_address,
                    r.raw.region_size,
                    r.raw.state,
                    r.raw._type,
                )
            })
            .collect();
        Ok(output(summarize(&regions, pointer_bits(ctx))?))
    }
}

fn finding(
    severity: Severity,
    kind: FindingKind,
    title: String,
    description: String,
    recommendation: &str,
) -> Finding {
    Finding::new(
        severity,
        kind,
        "virtual_memory",
        title,
        description,
        recommendation.to_owned(),
    )
}

fn size_text(n: u64) -> String {
    format!("{} bytes ({})", thousands(n), approx_bytes(n))
}

/// The findings the section supports.
pub fn findings(section: &VirtualMemory) -> Vec<Finding> {
    let mut out = Vec::new();
    if !section.present {
        return out;
    }
    if let (Some(f), Some(largest)) = (section.fragmentation, section.largest_free) {
        if f > FRAGMENTATION_WARNING {
            out.push(finding(
                Severity::Warning,
                FindingKind::Fragmentation,
                format!("Free memory is fragmented: {:.1}% lies outside the largest free block", f * 100.0),
                format!(
                    "Of {} free, the largest free block holds only {} at {}.",
                    size_text(section.free.bytes),
                    size_text(largest.size),
                    largest.address
                ),
                "Look for many small reservations (thread stacks, small file mappings, heap segments, modules loaded at scattered addresses) and reduce them; allocate large buffers early, while the address space is still in one piece.",
            ));
        }
    }
    if section.pointer_bits == Some(32) {
        let largest = section.largest_free.map_or(0, |l| l.size);
        let (severity, limit) = if largest < LARGEST_FREE_ERROR_32BIT {
            (Severity::Error, LARGEST_FREE_ERROR_32BIT)
        } else if largest < LARGEST_FREE_WARNING_32BIT {
            (Severity::Warning, LARGEST_FREE_WARNING_32BIT)
        } else {
            return out;
        };
        out.push(finding(
            severity,
            FindingKind::SmallLargestFreeBlock,
            format!(
                "32-bit process: the largest free block is only {}",
                approx_bytes(largest)
            ),
            format!(
                "The largest free block of this 32-bit process is {}, below {}: allocations of large blocks will fail (out of memory) although {} is free in total.",
                size_text(largest),
                approx_bytes(limit),
                size_text(section.free.bytes)
            ),
            "Build the process as 64-bit, or at least large-address-aware (/LARGEADDRESSAWARE gives a 32-bit process 4 GiB under 64-bit Windows); fix leaks of reserved or committed memory; avoid large contiguous allocations.",
        ));
    }
    out
}

/// The section with its findings.
fn output(section: VirtualMemory) -> ScriptOutput {
    let findings = findings(&section);
    ScriptOutput::new(SectionData::VirtualMemory(Box::new(section)), findings)
}
