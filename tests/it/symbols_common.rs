//! Shared helpers for the `symbols_*` integration tests: fixture paths, module
//! identities read from the fixture images, a mapped-image memory reader, and tiny
//! loopback HTTP servers (a static file server and one that never answers).
#![allow(dead_code)]

use leakdiag::symbols::pe;
use leakdiag::symbols::{ModuleIdentity, PdbIdentity};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pdb")
}

/// The CodeView identity of a fixture image file.
pub fn image_identity(image: &Path) -> PdbIdentity {
    let bytes = std::fs::read(image).unwrap();
    pe::identity_from_file(&bytes).unwrap().pdb
}

pub const VENDOR_BASE: u64 = 0x1_8000_0000;

/// What a dump would say about `odbcvend.dll` (with its CodeView record).
pub fn vendor_module() -> ModuleIdentity {
    module_from_image(
        &fixtures().join("odbcvend.dll"),
        "C:\\app\\odbcvend.dll",
        VENDOR_BASE,
    )
}

pub fn module_from_image(image: &Path, code_path: &str, base: u64) -> ModuleIdentity {
    let bytes = std::fs::read(image).unwrap();
    let info = pe::identity_from_file(&bytes).unwrap();
    ModuleIdentity {
        file_name: pe::file_name_of(code_path).to_string(),
        code_path: code_path.to_string(),
        base,
        size: u64::from(info.size_of_image),
        pdb: Some(info.pdb),
    }
}

/// Maps a PE file as the loader would (headers + each section at its
/// VirtualAddress) and returns the mapped bytes.
pub fn map_image(file: &[u8]) -> Vec<u8> {
    let u16_at = |o: usize| u16::from_le_bytes([file[o], file[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(file[o..o + 4].try_into().unwrap()) as usize;
    let nt = u32_at(0x3c);
    let sections = u16_at(nt + 6);
    let opt = nt + 24;
    let size_of_image = u32_at(opt + 56);
    let size_of_headers = u32_at(opt + 60);
    let mut image = vec![0u8; size_of_image];
    image[..size_of_headers].copy_from_slice(&file[..size_of_headers]);
    let table = opt + u16_at(nt + 20);
    for i in 0..sections {
        let s = table + i * 40;
        let va = u32_at(s + 12);
        let raw_size = u32_at(s + 16);
        let raw_ptr = u32_at(s + 20);
        let n = raw_size.min(size_of_image.saturating_sub(va));
        image[va..va + n].copy_from_slice(&file[raw_ptr..raw_ptr + n]);
    }
    image
}

/// A closure serving `image` mapped at `base`, like a full dump's memory list.
pub fn memory_reader(image: Vec<u8>, base: u64) -> impl Fn(u64, usize) -> Option<Vec<u8>> {
    move |addr, len| {
        let start = usize::try_from(addr.checked_sub(base)?).ok()?;
        let end = start.checked_add(len)?;
        image.get(start..end).map(<[u8]>::to_vec)
    }
}

/// A static-file HTTP/1.1 server on 127.0.0.1 serving `root`, one thread.
pub struct FileServer {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    port: u16,
    thread: Option<JoinHandle<()>>,
}

impl FileServer {
    pub fn start(root: PathBuf) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (stop2, requests2) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    requests2.fetch_add(1, Ordering::SeqCst);
                    let _ = serve_one(stream, &root);
                }
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}"),
            requests,
            stop,
            port,
            thread: Some(thread),
        }
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve_one(stream: TcpStream, root: &Path) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let rel = path.trim_start_matches('/');
    let mut stream = stream;
    let file = if rel.split('/').any(|c| c == ".." || c.is_empty()) {
        None
    } else {
        std::fs::read(root.join(rel)).ok()
    };
    match file {
        Some(body) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body)?;
        }
        None => {
            let body = b"not found";
            write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(body)?;
        }
    }
    stream.flush()?;
    // Drain whatever is left so the client sees a clean close.
    let _ = reader.read(&mut [0u8; 64]);
    Ok(())
}

/// A server that accepts connections and never answers; closes them when dropped.
pub struct SilentServer {
    pub url: String,
    stop: Arc<AtomicBool>,
    port: u16,
    thread: Option<JoinHandle<()>>,
}

impl SilentServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(s) = stream {
                    held.push(s); // keep it open, say nothing
                }
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}"),
            stop,
            port,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies a file, creating the target's folders.
pub fn copy_to(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

/// Start RVA of the function `name` in loaded symbols (so tests do not hard-code
/// addresses of the committed fixture build).
pub fn function_rva(symbols: &leakdiag::symbols::ModuleSymbols, name: &str) -> u32 {
    symbols
        .functions()
        .into_iter()
        .find(|f| f.2 == name)
        .unwrap_or_else(|| panic!("{name} not among the functions"))
        .0
}

/// Start RVA of `SQLAllocHandle` in the committed `odbcvend.pdb`, read directly
/// through a fresh load (for tests whose module may not resolve).
pub fn sql_alloc_handle_rva() -> u32 {
    use leakdiag::symbols::{SymbolOptions, SymbolPathEntry, Symbolizer};
    let options = SymbolOptions {
        search_path: vec![SymbolPathEntry::Folder(fixtures())],
        ..SymbolOptions::default()
    };
    function_rva(
        &Symbolizer::new(options).load(&vendor_module(), None),
        "SQLAllocHandle",
    )
}
