//! The general reader: any line of a chunk that the fast reader does not take
//! (stack frames written otherwise, module list, header, heap lines, allocation
//! lines written otherwise), with the warnings and the errors that stop the log.

use super::chunk::{Chunk, INHERITED, NO_HEAP};
use super::fields::{
    heap_of, parse_allocation, parse_frame, parse_header, parse_module, ParsedFrame,
};
use super::texts::text_hash;
use super::{Frame, HeapSums};

impl Chunk {
    /// Any line but the fast ones; `false` when it stops the log.
    pub(super) fn line(&mut self, buf: &[u8], n: u64, raw: &str) -> bool {
        let indented = raw.starts_with([' ', '\t']);
        let t = raw.trim();

        // Stack frames: indented lines right after an allocation line.
        if self.stack.is_some() {
            if t.is_empty() || !indented {
                self.end_stack(buf);
            } else {
                match parse_frame(t) {
                    Some(Ok(ParsedFrame::Address(a))) => {
                        self.max_address = self.max_address.max(a);
                        self.frames.push(Frame::Address(a));
                        return true;
                    }
                    Some(Ok(ParsedFrame::Symbolic(text))) => {
                        let hash = text_hash(text.as_bytes());
                        // A text read from the chunk's own bytes is interned when the
                        // stack ends (its slot prefetched now); one transcoded from
                        // ANSI, now.
                        let at = (text.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
                        if at <= buf.len() && text.len() <= buf.len() - at {
                            self.symbolic.prefetch(hash);
                            self.deferred
                                .push((self.frames.len(), at..at + text.len(), hash));
                            self.frames.push(Frame::Symbolic(u32::MAX));
                        } else {
                            let (i, _) = self.symbolic.intern(text.as_bytes(), hash);
                            self.frames.push(Frame::Symbolic(i));
                        }
                        return true;
                    }
                    Some(Err(())) => {
                        return self.fatal(
                            n,
                            format!(
                                "a stack frame's address does not fit 64 bits: {}",
                                crate::umdh::quote(t)
                            ),
                        )
                    }
                    None => {
                        self.warn(
                            n,
                            format_args!(
                                "not a stack frame, the stack ends before it: {}",
                                crate::umdh::quote(t)
                            ),
                        );
                        self.end_stack(buf);
                        return true;
                    }
                }
            }
        }
        if t.is_empty() {
            return true;
        }

        if self.in_modules {
            if t.contains("Process modules enumerated") || !t.starts_with("//") {
                self.in_modules = false;
            } else {
                match parse_module(t) {
                    Some(Ok(m)) => {
                        self.max_address = self.max_address.max(m.base.saturating_add(m.size));
                        self.modules.push(m);
                    }
                    Some(Err(e)) => return self.fatal(n, e),
                    None => {}
                }
                return true;
            }
        }
        if t.starts_with("//") {
            if t.contains("Loaded modules") {
                self.in_modules = true;
            } else if self.header.is_none() {
                if let Some(h) = parse_header(t) {
                    self.header = Some((n, h));
                }
            }
            return true;
        }
        // Allocation lines start with a hex digit; heap lines with `*-`.
        let heap_line = !t.as_bytes()[0].is_ascii_hexdigit();
        if heap_line && t.contains("Start of data for heap") {
            match heap_of(t) {
                Some(Ok(heap)) => {
                    self.flush(buf);
                    match self.open {
                        NO_HEAP => {}
                        INHERITED => self.start_while_inherited = Some(n),
                        open => {
                            let h = self.heaps[open as usize].heap;
                            self.warn(n, format_args!("heap {h:X} has no \"End of data\" line before the next heap starts"));
                        }
                    }
                    self.heaps.push(HeapSums {
                        heap,
                        ..Default::default()
                    });
                    self.open = (self.heaps.len() - 1) as u32;
                }
                Some(Err(())) => {
                    return self.fatal(
                        n,
                        format!(
                            "the heap address does not fit 64 bits: {}",
                            crate::umdh::quote(t)
                        ),
                    )
                }
                None => self.warn(
                    n,
                    format_args!(
                        "a heap line without a heap address: {}",
                        crate::umdh::quote(t)
                    ),
                ),
            }
            return true;
        }
        if heap_line && t.contains("End of data for heap") {
            self.flush(buf);
            match self.open {
                NO_HEAP => {}
                INHERITED => self.closes_inherited = true,
                open => self.heaps[open as usize].complete = true,
            }
            self.open = NO_HEAP;
            return true;
        }
        match parse_allocation(t) {
            Some(Ok(a)) => {
                // The IDs of the batch are looked up first, so that traces are made
                // in file order.
                self.flush(buf);
                let trace = self.trace(a.id);
                self.allocation(buf, n, a.size, a.overhead, a.address, trace, 0, 0..0)
            }
            Some(Err(e)) if e.contains("64 bits") => self.fatal(n, e),
            Some(Err(e)) => {
                self.warn(n, format_args!("{e}: skipped"));
                true
            }
            None => true,
        }
    }
}
