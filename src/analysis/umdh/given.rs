//! Frames a UMDH log prints already resolved (`module!symbol+offset`, maybe with
//! `(file, line)`, where UMDH had the PDB): where they stand in the allocation
//! stream built from the log, and how the report shows them.
//!
//! The stream holds addresses, so each distinct resolved frame stands at a made-up
//! offset in its module's first page ([`given_frames`]): it is charged to its module
//! like any return address and told apart from the others. The leak section built
//! from the stream then shows those frames as printed, and groups the module's
//! function table by the printed function ([`show_given`]).
//!
//! A realistic log has a million stacks and a quarter of a million distinct printed
//! frames: both passes run in parallel and index the made-up offsets directly (a
//! hash per stack and a string hash per function were most of their time).

use crate::addr::{Rva, VirtAddr};
use crate::analysis::attribution::Owner;
use crate::analysis::probability::TimeHistogram;
use crate::analysis::scripts::leak::{self, symbols::Symbols};
use crate::analysis::table::Table;
use crate::model::{Frame, FunctionLeak, LeakAnalysis, ModuleMap, Omitted, Totals};
use crate::umdh::compare::{frame_function, frame_module, frame_source};
use rayon::prelude::*;
use std::collections::HashMap;

/// Resolved frames stand at made-up offsets in their module's first page (its PE
/// headers, where no return address points), one per distinct frame text; past
/// this many in one module they share offset 0 and are charged to the module
/// without their function.
pub const GIVEN_OFFSETS: u64 = 0x1000;

/// A frame UMDH printed already resolved, as the report shows it.
#[derive(Clone, Debug)]
struct Given {
    /// Index into [`GivenFrames::functions`].
    function: u32,
    symbol: String,
    offset: Option<u32>,
    file: Option<String>,
    line: Option<u32>,
}

/// The address each resolved frame of the log stands for, and what the made-up
/// addresses stand for.
pub struct GivenFrames {
    /// By index into the snapshot's resolved-frame texts.
    pub address: Vec<u64>,
    /// By module index: the frames at made-up offsets 1, 2, … (offset k at k − 1),
    /// as indices into `frames`.
    at: Vec<Vec<u32>>,
    frames: Vec<Given>,
    /// `module.dll!symbol` (the module as the log's module list names it): what a
    /// function table groups by. Distinct and sorted.
    functions: Vec<String>,
    /// Frames whose module the log does not list.
    pub unlisted: u64,
    /// Frames past [`GIVEN_OFFSETS`] in their module.
    pub crowded: u64,
}

/// One printed frame, read.
enum Parsed<'a> {
    /// Its module is not in the log's module list.
    Unlisted,
    /// `module+offset`: a real address in the module.
    Address(u64),
    /// `module!symbol[+offset] [(file, line)]`.
    Function(Printed<'a>),
}

/// A printed frame with a function.
struct Printed<'a> {
    module: usize,
    /// `module.dll!symbol`.
    name: String,
    symbol: &'a str,
    offset: Option<u32>,
    source: Option<(&'a str, u32)>,
}

fn parse<'a>(text: &'a str, modules: &ModuleMap, by_stem: &HashMap<String, usize>) -> Parsed<'a> {
    let module = frame_module(text).and_then(|name| {
        let key = name.to_ascii_lowercase();
        by_stem.get(&key).copied().or_else(|| {
            let stem = key.rsplit_once('.').map_or(key.as_str(), |(s, _)| s);
            by_stem.get(stem).copied()
        })
    });
    let Some(m) = module else {
        return Parsed::Unlisted;
    };
    let module = modules.get(m);
    let Some(function) = frame_function(text) else {
        // module+offset: a real offset in the module.
        let offset = text
            .split_once('+')
            .and_then(|(_, o)| crate::umdh::hex(o.split_whitespace().next()?))
            .and_then(Result::ok)
            .unwrap_or(0);
        return Parsed::Address(module.base.0.saturating_add(offset));
    };
    let symbol = function.split_once('!').map_or(function, |(_, s)| s);
    let trimmed = text.trim();
    let bare = trimmed
        .rsplit_once(" (")
        .filter(|_| trimmed.ends_with(')'))
        .map_or(trimmed, |(f, _)| f.trim_end());
    let offset = bare
        .rsplit_once('+')
        .filter(|(f, _)| *f == function)
        .and_then(|(_, o)| crate::umdh::hex(o))
        .and_then(Result::ok)
        .and_then(|o| u32::try_from(o).ok());
    Parsed::Function(Printed {
        module: m,
        name: format!("{}!{symbol}", module.name),
        symbol,
        offset,
        source: frame_source(text),
    })
}

/// Places the log's resolved frames (`texts`, in order of first printing) at
/// addresses in the modules they name: a real offset where the frame has one and
/// no function, else the next made-up offset of its module.
pub fn given_frames(texts: &[String], modules: &ModuleMap) -> GivenFrames {
    let mut by_stem: HashMap<String, usize> = HashMap::new();
    for (i, m) in modules.modules().iter().enumerate() {
        let lower = m.name.to_ascii_lowercase();
        let stem = lower.rsplit_once('.').map_or(lower.as_str(), |(s, _)| s);
        by_stem.entry(stem.to_owned()).or_insert(i);
        by_stem.entry(lower.clone()).or_insert(i);
    }
    let parsed: Vec<Parsed<'_>> = texts
        .par_iter()
        .map(|t| parse(t, modules, &by_stem))
        .collect();

    // Offsets in order of first printing (the same whatever the threads).
    let mut out = GivenFrames {
        address: Vec::with_capacity(texts.len()),
        at: vec![Vec::new(); modules.len()],
        frames: Vec::new(),
        functions: Vec::new(),
        unlisted: 0,
        crowded: 0,
    };
    let mut placed: Vec<&Printed<'_>> = Vec::new();
    for p in &parsed {
        let address = match p {
            Parsed::Unlisted => {
                out.unlisted += 1;
                0
            }
            Parsed::Address(a) => *a,
            Parsed::Function(f) => {
                let module = modules.get(f.module);
                let room = GIVEN_OFFSETS.min(module.size);
                let offset = out.at[f.module].len() as u64 + 1;
                if offset < room {
                    out.at[f.module].push(placed.len() as u32);
                    placed.push(f);
                    module.base.0 + offset
                } else {
                    out.crowded += 1;
                    module.base.0
                }
            }
        };
        out.address.push(address);
    }
    drop(by_stem);
    // The functions numbered in the order of their names (sorted in parallel; a
    // name is then found by a binary search).
    let names: Vec<&str> = placed.iter().map(|f| f.name.as_str()).collect();
    let mut order: Vec<u32> = (0..placed.len() as u32).collect();
    order.par_sort_unstable_by(|&a, &b| names[a as usize].cmp(names[b as usize]));
    let mut number = vec![0u32; placed.len()];
    for (k, &j) in order.iter().enumerate() {
        let name = names[j as usize];
        if k == 0 || name != names[order[k - 1] as usize] {
            out.functions.push(name.to_owned());
        }
        number[j as usize] = out.functions.len() as u32 - 1;
    }
    out.frames = placed
        .par_iter()
        .zip(&number)
        .map(|(f, &function)| Given {
            function,
            symbol: f.symbol.to_owned(),
            offset: f.offset,
            file: f.source.map(|(file, _)| file.to_owned()),
            line: f.source.map(|(_, l)| l),
        })
        .collect();
    out
}

impl GivenFrames {
    /// The frame a made-up address stands for.
    fn at(&self, modules: &ModuleMap, address: VirtAddr) -> Option<&Given> {
        let m = modules.find(address)?;
        self.in_module(m, address.0.checked_sub(modules.get(m).base.0)?)
    }

    /// The frame made-up offset `offset` of module `m` stands for.
    fn in_module(&self, m: usize, offset: u64) -> Option<&Given> {
        let k = usize::try_from(offset.checked_sub(1)?).ok()?;
        let &i = self.at.get(m)?.get(k)?;
        self.frames.get(i as usize)
    }
}

/// Shows the resolved frames of the log as given: in the sample stacks, and in the
/// function tables of the modules they are charged to (those tables are grouped
/// again by function, the given names included, and cut as the leak script cuts
/// them).
pub fn show_given(
    analysis: &mut LeakAnalysis,
    table: &Table,
    modules: &ModuleMap,
    symbols: &Symbols,
    given: &GivenFrames,
    top_functions: usize,
) {
    if given.frames.is_empty() {
        return;
    }
    analysis.modules.par_iter_mut().for_each(|module| {
        for sample in &mut module.stacks {
            let mut frames: Vec<Frame> = Vec::with_capacity(sample.frames.len());
            for f in sample.frames.drain(..) {
                match given.at(modules, f.address) {
                    Some(g) => {
                        // One frame per given address, whatever a PDB said about it.
                        if let Some(last) = frames.last_mut().filter(|l| l.address == f.address) {
                            last.responsible |= f.responsible;
                            continue;
                        }
                        frames.push(Frame {
                            offset: None,
                            function: Some(g.symbol.clone()),
                            function_offset: g.offset,
                            file: g.file.clone(),
                            line: g.line,
                            inlined: false,
                            ..f
                        });
                    }
                    None => frames.push(f),
                }
            }
            sample.frames = frames;
        }
        let Some(m) = module.base.and_then(|b| modules.find(b)) else {
            return;
        };
        if let Some((functions, omitted)) =
            functions(m, table, modules, symbols, given, top_functions)
        {
            module.functions = functions;
            module.functions_omitted = omitted;
        }
    });
}

/// A stack's function before it is named: a given function, or a return address
/// in the module.
const RVA_KEY: u64 = 1 << 63;

/// Module `m`'s function table again, where a given frame is responsible for some
/// of its stacks; `None` where none is.
fn functions(
    m: usize,
    table: &Table,
    modules: &ModuleMap,
    symbols: &Symbols,
    given: &GivenFrames,
    top_functions: usize,
) -> Option<(Vec<FunctionLeak>, Omitted)> {
    let (_, acc) = table
        .by_owner
        .iter()
        .find(|(o, _)| *o == Owner::Module(m))?;
    // Each stack's responsible frame: given (its function as printed) or a return
    // address (its function from the PDB, named once per RVA: a module of a big
    // log has a million stacks and a few thousand functions).
    let keyed: Vec<(u64, u32)> = acc
        .charged
        .par_iter()
        .filter_map(|&(s, at)| {
            // The module's stacks are charged at an offset in it (the module known,
            // no search by address).
            let rva = at.rva?;
            Some(match given.in_module(m, rva.0) {
                Some(g) => (u64::from(g.function), s),
                None => (RVA_KEY | rva.0, s),
            })
        })
        .collect();
    if !keyed.iter().any(|&(k, _)| k & RVA_KEY == 0) {
        return None;
    }
    // The names of the RVAs, the given names among them: one number per name.
    let mut rvas: Vec<u64> = keyed
        .iter()
        .filter(|&&(k, _)| k & RVA_KEY != 0)
        .map(|&(k, _)| k & !RVA_KEY)
        .collect();
    rvas.par_sort_unstable();
    rvas.dedup();
    let rva_names: Vec<String> = rvas
        .par_iter()
        .map(|&rva| leak::function_name_in(m, Rva(rva), modules, symbols))
        .collect();
    // Numbers past the given functions' are the names only a PDB gave.
    let given_count = given.functions.len();
    let mut more: Vec<&str> = Vec::new();
    let mut found: HashMap<&str, u32> = HashMap::new();
    let rva_number: Vec<u32> = rva_names
        .iter()
        .map(|n| {
            if let Ok(i) = given.functions.binary_search_by(|f| f.as_str().cmp(n)) {
                return i as u32;
            }
            *found.entry(n.as_str()).or_insert_with(|| {
                more.push(n);
                (given_count + more.len() - 1) as u32
            })
        })
        .collect();
    let name = |number: u32| -> &str {
        let n = number as usize;
        match given.functions.get(n) {
            Some(f) => f,
            None => more[n - given_count],
        }
    };
    // (name number, stack), sorted: one run per function.
    let mut runs: Vec<u64> = keyed
        .par_iter()
        .map(|&(k, s)| {
            let number = if k & RVA_KEY == 0 {
                k as u32
            } else {
                // Every RVA key is among `rvas`.
                rva_number[rvas.binary_search(&(k & !RVA_KEY)).unwrap_or(0)]
            };
            u64::from(number) << 32 | u64::from(s)
        })
        .collect();
    drop(keyed);
    runs.par_sort_unstable();
    let mut groups: Vec<(u32, std::ops::Range<usize>, Totals)> = Vec::new();
    for (i, &e) in runs.iter().enumerate() {
        let (number, s) = ((e >> 32) as u32, e as u32);
        let t = table.per_stack[s as usize];
        match groups.last_mut() {
            Some((n, r, totals)) if *n == number => {
                totals.merge(t);
                r.end = i + 1;
            }
            _ => groups.push((number, i..i + 1, t)),
        }
    }
    // Ranked and cut as the leak script ranks and cuts a function table.
    leak::top_ranked(&mut groups, top_functions, |a, b| {
        a.2.rank(&b.2).then_with(|| name(a.0).cmp(name(b.0)))
    });
    let omitted = leak::omit(&mut groups, top_functions, |(_, _, t)| {
        (t.allocations, t.bytes)
    });
    let rows = groups
        .iter()
        .map(|(number, r, t)| {
            let mut times = TimeHistogram::default();
            for &e in &runs[r.clone()] {
                table.stack_times.merge_into(e as u32 as usize, &mut times);
            }
            FunctionLeak {
                name: name(*number).to_owned(),
                allocations: t.allocations,
                bytes: t.bytes,
                leak_probability: times.leak_probability(table.window),
                // A log is no dump: nothing to scan.
                reachability: None,
            }
        })
        .collect();
    Some((rows, omitted))
}
