//! Reports: JSON, HTML pages and their SVG charts. Reports read the model and format
//! it; they compute no analysis.

pub mod charts;
pub mod html;
pub mod index_page;
pub mod json;
pub mod markdown;
pub mod sections;
mod stacks;
pub mod vendor_page;
pub mod view;

pub use html::RenderError;
