//! leakdiag's integration tests: one binary, one module per area, shared helpers.

mod analysis;
mod bad_input;
mod browser;
mod cli;
mod golden;
mod helpers;
mod html;
mod incident;
mod layers;
mod memory_scripts;
mod module_strings;
mod modules;
mod probability;
mod props;
mod scripts;
mod stream;
mod symbolized;
mod symbols_cab;
mod symbols_common;
mod symbols_concurrency;
mod symbols_identity;
mod symbols_llvm;
mod symbols_store;
mod synth;
mod tracker;
mod verdict;
