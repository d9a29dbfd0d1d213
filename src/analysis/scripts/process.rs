//! The process script: the image, identity and times of the process, its thread
//! count and its memory counters (private bytes, working set, page-file usage…) from
//! the dump's ProcessVmCountersStream, parsed here since the `minidump` crate leaves
//! that stream unparsed.

use super::{Need, Script, ScriptContext, ScriptInfo, ScriptOutput};
use crate::model::{
    unix_to_rfc3339, Finding, FindingKind, ProcessSection, SectionData, SectionError, Severity,
    VmCounters,
};
use crate::text::{approx_bytes, thousands};
use minidump::{MinidumpMiscInfo, MinidumpThreadList};

/// Stream type of `MINIDUMP_PROCESS_VM_COUNTERS_1/2`.
pub const PROCESS_VM_COUNTERS_STREAM: u32 = 22;

/// The process script.
pub struct ProcessScript;

const FLAG_BASIC: u16 = 0x1;
const FLAG_VIRTUAL_SIZE: u16 = 0x2;
const FLAG_EX: u16 = 0x4;
const FLAG_EX2: u16 = 0x8;
const FLAG_JOB: u16 = 0x10;

/// Parses the ProcessVmCountersStream; `None` for an unknown revision or a stream too
/// short for its revision.
pub fn parse_vm_counters(b: &[u8]) -> Option<VmCounters> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    let revision = u16_at(0)?;
    let mut c = VmCounters {
        revision,
        ..Default::default()
    };
    let basic = |c: &mut VmCounters| -> Option<()> {
        c.page_fault_count = Some(u32_at(4)?);
        c.peak_working_set_size = Some(u64_at(8)?);
        c.working_set_size = Some(u64_at(16)?);
        c.quota_peak_paged_pool_usage = Some(u64_at(24)?);
        c.quota_paged_pool_usage = Some(u64_at(32)?);
        c.quota_peak_non_paged_pool_usage = Some(u64_at(40)?);
        c.quota_non_paged_pool_usage = Some(u64_at(48)?);
        c.pagefile_usage = Some(u64_at(56)?);
        c.peak_pagefile_usage = Some(u64_at(64)?);
        Some(())
    };
    match revision {
        1 => {
            basic(&mut c)?;
            c.private_usage = Some(u64_at(72)?);
        }
        2 => {
            if b.len() < 152 {
                return None;
            }
            let flags = u16_at(2)?;
            c.flags = flags;
            if flags & FLAG_BASIC != 0 {
                basic(&mut c)?;
            }
            if flags & FLAG_VIRTUAL_SIZE != 0 {
                c.peak_virtual_size = Some(u64_at(72)?);
                c.virtual_size = Some(u64_at(80)?);
            }
            if flags & FLAG_EX != 0 {
                c.private_usage = Some(u64_at(88)?);
            }
            if flags & FLAG_EX2 != 0 {
                c.private_working_set_size = Some(u64_at(96)?);
                c.shared_commit_usage = Some(u64_at(104)?);
            }
            if flags & FLAG_JOB != 0 {
                c.job_shared_commit_usage = Some(u64_at(112)?);
                c.job_private_commit_usage = Some(u64_at(120)?);
                c.job_peak_private_commit_usage = Some(u64_at(128)?);
                c.job_private_commit_limit = Some(u64_at(136)?);
                c.job_total_commit_limit = Some(u64_at(144)?);
            }
        }
        _ => return None,
    }
    Some(c)
}

/// The number of threads in the thread list; the `minidump` crate checks the count
/// against the stream's size before reading it.
fn thread_count(ctx: &ScriptContext<'_>) -> Option<u64> {
    let list = ctx
        .dump
        .minidump()
        .get_stream::<MinidumpThreadList>()
        .ok()?;
    Some(list.threads.len() as u64)
}

const INFO: ScriptInfo = ScriptInfo {
    name: "process",
    title: "Process",
    description: "image, pid, start and dump time, uptime, CPU times, threads, memory counters",
    needs: &[
        Need::MiscInfo,
        Need::ProcessVmCounters,
        Need::ThreadList,
        Need::ModuleList,
    ],
};

impl Script for ProcessScript {
    fn info(&self) -> &'static ScriptInfo {
        &INFO
    }

    fn run(&self, ctx: &ScriptContext<'_>) -> Result<ScriptOutput, SectionError> {
        let md = ctx.dump.minidump();
        let dump_time_unix = md.header.time_date_stamp;
        let mut s = ProcessSection {
            image: ctx.process.image.clone(),
            command_line: None,
            pid: None,
            create_time: None,
            create_time_unix: None,
            dump_time: unix_to_rfc3339(u64::from(dump_time_unix)),
            dump_time_unix,
            uptime_seconds: None,
            user_time_seconds: None,
            kernel_time_seconds: None,
            threads: thread_count(ctx),
            vm_counters: None,
            notes: Vec::new(),
        };
        match md.get_stream::<MinidumpMiscInfo>() {
            Ok(misc) => {
                s.pid = misc.raw.process_id().copied();
                s.create_time_unix = misc.raw.process_create_time().copied();
                s.create_time = s.create_time_unix.and_then(|t| unix_to_rfc3339(u64::from(t)));
                s.user_time_seconds = misc.raw.process_user_time().copied();
                s.kernel_time_seconds = misc.raw.process_kernel_time().copied();
                s.uptime_seconds = s
                    .create_time_unix
                    .and_then(|c| dump_time_unix.checked_sub(c))
                    .map(u64::from);
            }
            Err(_) => s.notes.push(
                "The dump has no readable misc-info stream: the process ID, start time and CPU times are unknown.".into(),
            ),
        }
        match md.get_raw_stream(PROCESS_VM_COUNTERS_STREAM) {
            Ok(raw) => {
                s.vm_counters = parse_vm_counters(raw);
                if s.vm_counters.is_none() {
                    s.notes.push("The dump's process VM counters have an unknown revision or are truncated.".into());
                }
            }
            Err(_) => s.notes.push(
                "The dump has no process VM counters (ProcessVmCountersStream): private bytes and working set are unknown.".into(),
            ),
        }
        if s.threads.is_none() {
            s.notes
                .push("The dump has no readable thread list: the thread count is unknown.".into());
        }
        Ok(output(s))
    }
}

/// The findings the section supports.
pub fn findings(section: &ProcessSection) -> Vec<Finding> {
    let Some(private) = section.vm_counters.as_ref().and_then(|c| c.private_usage) else {
        return Vec::new();
    };
    vec![Finding {
        severity: Severity::Information,
        kind: FindingKind::PrivateBytes,
        script: "process",
        module: None,
        stack: None,
        title: format!("Private bytes: {}", approx_bytes(private)),
        description: format!(
            "The process had {} bytes of private committed memory when the dump was written.",
            thousands(private)
        ),
        recommendation: String::new(),
    }]
}

/// The section with its findings.
fn output(section: ProcessSection) -> ScriptOutput {
    let findings = findings(&section);
    ScriptOutput::new(SectionData::Process(Box::new(section)), findings)
}
