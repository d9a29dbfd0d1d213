//! The process section: identity, times, threads and memory counters.

use serde::Serialize;

/// What the section says of a command line it cannot read.
pub const NO_COMMAND_LINE: &str = "not recorded in the dump";

/// The memory counters of `MINIDUMP_PROCESS_VM_COUNTERS_1` (revision 1) or `_2`
/// (revision 2). A counter the stream does not carry (revision 1, or a revision-2
/// flag not set) is null.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VmCounters {
    pub revision: u16,
    /// Revision 2's flags word (0 for revision 1).
    pub flags: u16,
    pub page_fault_count: Option<u32>,
    pub peak_working_set_size: Option<u64>,
    pub working_set_size: Option<u64>,
    pub quota_peak_paged_pool_usage: Option<u64>,
    pub quota_paged_pool_usage: Option<u64>,
    pub quota_peak_non_paged_pool_usage: Option<u64>,
    pub quota_non_paged_pool_usage: Option<u64>,
    pub pagefile_usage: Option<u64>,
    pub peak_pagefile_usage: Option<u64>,
    pub peak_virtual_size: Option<u64>,
    pub virtual_size: Option<u64>,
    /// Private bytes: committed memory that only this process uses.
    pub private_usage: Option<u64>,
    pub private_working_set_size: Option<u64>,
    pub shared_commit_usage: Option<u64>,
    pub job_shared_commit_usage: Option<u64>,
    pub job_private_commit_usage: Option<u64>,
    pub job_peak_private_commit_usage: Option<u64>,
    pub job_private_commit_limit: Option<u64>,
    pub job_total_commit_limit: Option<u64>,
}

/// The section.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessSection {
    /// Path of the main module (first module of the list).
    pub image: Option<String>,
    /// The command line, or null; leakdiag does not read it from the PEB yet.
    pub command_line: Option<String>,
    pub pid: Option<u32>,
    /// Process creation (RFC 3339) and the raw Unix seconds of the misc-info stream.
    pub create_time: Option<String>,
    pub create_time_unix: Option<u32>,
    /// When the dump was written (minidump header).
    pub dump_time: Option<String>,
    pub dump_time_unix: u32,
    /// dump time − create time, seconds; null if either is missing or the dump
    /// predates the creation.
    pub uptime_seconds: Option<u64>,
    /// CPU time in user and kernel mode, seconds (misc-info stream).
    pub user_time_seconds: Option<u32>,
    pub kernel_time_seconds: Option<u32>,
    /// Threads in the thread list; null without one.
    pub threads: Option<u64>,
    /// Null when the dump has no ProcessVmCountersStream.
    pub vm_counters: Option<VmCounters>,
    /// What the dump lacks, in words.
    pub notes: Vec<String>,
}
