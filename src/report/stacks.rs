//! Sample stacks as the pages show them: named and anchored by their id, the
//! allocation plumbing before the charged frame collapsed into one labelled line,
//! the frames after the thread's start left out (they are in the JSON), and the
//! charged frame marked in words as well as colour.

use super::view::stack_anchor;
use crate::model::{Frame, StackSample};
use crate::text::{count, probability, thousands};

/// One frame of a stack.
pub(crate) struct FrameView {
    /// `module!function + 0xoffset`, or `module+0xRVA` without symbols.
    pub text: String,
    /// `file:line`, when the PDB gives it.
    pub source: String,
    pub address: String,
    pub responsible: bool,
    pub inlined: bool,
    /// A frame of the tracker itself (where the page knows the tracker's modules).
    pub tracker: bool,
    /// Its position in the stack, innermost = 0.
    pub index: usize,
}

/// A sample stack.
pub(crate) struct StackView {
    /// `stack-<id>`: every page names and links a stack by its id.
    pub anchor: String,
    pub id: String,
    pub title: String,
    /// Frames before the charged one: allocator, runtime and tracker code.
    pub plumbing: Vec<FrameView>,
    /// Their modules, for the collapsed line.
    pub plumbing_modules: String,
    /// The charged frame and its callers, up to the thread's start.
    pub frames: Vec<FrameView>,
    /// Frames after the thread's start, not shown.
    pub trimmed: usize,
}

/// Functions that start a thread: frames after the outermost of them are the OS's
/// or stale stack contents.
const THREAD_START: [&str; 3] = [
    "RtlUserThreadStart",
    "BaseThreadInitThunk",
    "RtlUserThreadStart@",
];

pub(crate) fn frame_view(f: &Frame, index: usize, tracker: &[String]) -> FrameView {
    let module = f.module.as_deref().unwrap_or("(unknown)");
    let text = match (&f.function, f.function_offset, f.offset) {
        (Some(func), Some(off), _) => format!("{module}!{func} + 0x{off:x}"),
        (Some(func), None, _) => format!("{module}!{func}"),
        (None, _, Some(rva)) => format!("{module}+{rva}"),
        (None, _, None) => module.to_owned(),
    };
    let source = match (&f.file, f.line) {
        (Some(file), Some(line)) => format!("{file}:{line}"),
        (Some(file), None) => file.clone(),
        _ => String::new(),
    };
    FrameView {
        text,
        source,
        address: f.address.to_string(),
        responsible: f.responsible,
        inlined: f.inlined,
        tracker: f
            .module
            .as_deref()
            .is_some_and(|m| tracker.iter().any(|t| t.eq_ignore_ascii_case(m))),
        index,
    }
}

/// Where the shown frames end: before a null return address (nothing calls from
/// address 0: what follows is stale stack contents), else after the outermost
/// thread-start frame, else before the trailing frames that lie in no module.
fn shown_end(frames: &[Frame], from: usize) -> usize {
    if let Some(null) = frames.iter().skip(from).position(|f| f.address.0 == 0) {
        return from + null;
    }
    let start = frames.iter().rposition(|f| {
        f.function
            .as_deref()
            .is_some_and(|name| THREAD_START.iter().any(|t| name.contains(t)))
    });
    match start {
        Some(i) => i + 1,
        None => frames
            .iter()
            .rposition(|f| f.module.is_some())
            .map_or(frames.len(), |i| i + 1),
    }
}

/// The view of a sample stack; frames in `tracker` modules are labelled as the
/// tracker's.
pub(crate) fn stack_view(s: &StackSample, tracker: &[String]) -> StackView {
    let charged = s.frames.iter().position(|f| f.responsible);
    let end = shown_end(&s.frames, charged.map_or(0, |c| c + 1)).max(charged.map_or(0, |c| c + 1));
    // Inlined frames share their address: positions count addresses, as the stream.
    let mut index = 0;
    let mut views = Vec::with_capacity(s.frames.len());
    for (i, f) in s.frames.iter().enumerate() {
        views.push(frame_view(f, index, tracker));
        if !f.inlined || s.frames.get(i + 1).is_none_or(|n| n.address != f.address) {
            index += 1;
        }
    }
    let trimmed = views.len() - end.min(views.len());
    views.truncate(end);
    let split = charged.unwrap_or(0).min(views.len());
    let frames = views.split_off(split);
    let plumbing = views;
    let mut modules: Vec<&str> = Vec::new();
    for f in &s.frames[..split] {
        let m = f.module.as_deref().unwrap_or("(unknown)");
        if !modules.contains(&m) {
            modules.push(m);
        }
    }
    StackView {
        anchor: stack_anchor(s.id),
        id: s.id.to_string(),
        title: format!(
            "{}, {} bytes, leak probability {}",
            count(s.allocations, "allocation"),
            thousands(s.bytes),
            probability(s.leak_probability)
        ) + &super::view::frames_omitted_note(s.frames_omitted)
            + &s.reach
                .as_ref()
                .map(|r| {
                    format!(
                        "; {} of {} unreachable",
                        thousands(r.reachability.unreachable.allocations),
                        thousands(r.reachability.total().allocations)
                    )
                })
                .unwrap_or_default(),
        plumbing_modules: modules.join(", "),
        plumbing,
        frames,
        trimmed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{Rva, VirtAddr};
    use crate::model::StackId;

    fn frame(module: Option<&str>, address: u64, responsible: bool) -> Frame {
        Frame {
            module: module.map(str::to_owned),
            offset: module.map(|_| Rva(address & 0xffff)),
            address: VirtAddr(address),
            responsible,
            function: None,
            function_offset: None,
            file: None,
            line: None,
            inlined: false,
        }
    }

    #[test]
    fn plumbing_collapses_and_stale_frames_are_left_out() {
        let s = StackSample {
            stack: 0,
            id: StackId(0xabc),
            allocations: 2,
            bytes: 64,
            leak_probability: None,
            frames: vec![
                frame(Some("ldtrack.dll"), 0x1800_0100, false),
                frame(Some("ucrtbase.dll"), 0x7ff0_0100, false),
                frame(Some("odbcvend.dll"), 0x1000_1366, true),
                frame(Some("app.exe"), 0x4000_1200, false),
                frame(None, 0, false),
                frame(Some("app.exe"), 0x4000_14d0, false),
            ],
            frames_omitted: 0,
            reach: None,
        };
        let v = stack_view(&s, &["ldtrack.dll".to_owned()]);
        assert_eq!(v.anchor, "stack-0000000000000abc");
        assert_eq!(v.plumbing.len(), 2);
        assert_eq!(v.plumbing_modules, "ldtrack.dll, ucrtbase.dll");
        assert!(v.plumbing[0].tracker && !v.plumbing[1].tracker);
        let shown: Vec<usize> = v.frames.iter().map(|f| f.index).collect();
        assert_eq!(
            shown,
            [2, 3],
            "the charged frame and its caller, numbered as in the stack"
        );
        assert!(v.frames[0].responsible);
        assert_eq!(v.trimmed, 2, "the null return address and what follows it");
    }
}
