//! Benchmark helper (case 2 of docs/performance.md): resolves addresses in one image's
//! PDB with `leakdiag::symbols::Symbolizer`, printing every frame the way
//! `llvm-symbolizer` does (function, then `file:line:0`, a blank line after each
//! address), so that the two outputs can be compared.
//!
//! ```text
//! bench-symbolize sample IMAGE N SEED     print N addresses (RVAs) inside the PDB's functions
//! bench-symbolize resolve IMAGE < RVAS    resolve RVAs (hex, one a line) from stdin
//! ```
//!
//! The PDB is looked up next to the image, by the identity in the image's CodeView
//! record, exactly as `leakdiag analyze` finds it.

use leakdiag::symbols::{
    pe, ModuleIdentity, ModuleSymbols, SymbolOptions, SymbolPathEntry, Symbolizer,
};
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

fn load(image: &Path) -> Result<Arc<ModuleSymbols>, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(image)?;
    let info = pe::identity_from_file(&bytes)?;
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let module = ModuleIdentity {
        file_name: name.clone(),
        code_path: name,
        base: 0x1_4000_0000,
        size: u64::from(info.size_of_image),
        pdb: Some(info.pdb),
    };
    let dir = image.parent().unwrap_or(Path::new(".")).to_path_buf();
    let options = SymbolOptions {
        search_path: vec![SymbolPathEntry::Folder(dir)],
        ..SymbolOptions::default()
    };
    let symbols = Symbolizer::new(options).load(&module, None);
    if symbols.lookup(0).is_none() && symbols.functions().is_empty() {
        return Err(format!("no symbols for {}: {:?}", image.display(), symbols.message).into());
    }
    Ok(symbols)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench-symbolize sample IMAGE N SEED | resolve IMAGE < RVAS";
    let image = Path::new(args.get(1).ok_or(usage)?);
    let symbols = load(image)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match args[0].as_str() {
        "sample" => {
            let n: usize = args.get(2).ok_or(usage)?.parse()?;
            let mut state: u64 = args.get(3).ok_or(usage)?.parse()?;
            let mut next = move || {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                state >> 33
            };
            let mut functions: Vec<(u32, u32)> = symbols
                .functions()
                .into_iter()
                .filter_map(|(start, end, _)| Some((start, end?)).filter(|(s, e)| e > s))
                .collect();
            functions.sort_unstable();
            functions.dedup();
            eprintln!("{} functions with a size", functions.len());
            for _ in 0..n {
                let (start, end) = functions[(next() % functions.len() as u64) as usize];
                let rva = start + (next() % u64::from(end - start)) as u32;
                writeln!(out, "{rva:#x}")?;
            }
        }
        "resolve" => {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let rva = u32::from_str_radix(line.trim().trim_start_matches("0x"), 16)?;
                match symbols.lookup(rva) {
                    Some(frames) if !frames.is_empty() => {
                        for f in frames {
                            writeln!(
                                out,
                                "{}\n{}:{}:0",
                                f.function,
                                f.file.as_deref().unwrap_or("??"),
                                f.line.unwrap_or(0)
                            )?;
                        }
                    }
                    _ => writeln!(out, "??\n??:0:0")?,
                }
                writeln!(out)?;
            }
        }
        _ => return Err(usage.into()),
    }
    out.flush()?;
    Ok(())
}
