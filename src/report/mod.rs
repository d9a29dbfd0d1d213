//! Reports: JSON, HTML pages and their SVG charts. Reports read the model and format
//! it; they compute no analysis.

pub mod charts;
pub mod format;
pub mod html;
pub mod json;

pub use html::RenderError;
