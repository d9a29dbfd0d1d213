//! The growth section of a UMDH comparison log (`umdh OLD NEW`): what grew between
//! two snapshots per module, function and stack. These are differences, never
//! outstanding totals.

use serde::Serialize;

/// Bytes and allocation counts of one group in the old and the new snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GrowthTotals {
    pub old_bytes: u64,
    pub new_bytes: u64,
    /// new − old (negative when it shrank).
    pub growth_bytes: i64,
    /// Allocation counts, when the log gives them (null otherwise).
    pub old_count: Option<u64>,
    pub new_count: Option<u64>,
}

impl GrowthTotals {
    pub fn add(&mut self, other: &GrowthTotals) {
        self.old_bytes = self.old_bytes.saturating_add(other.old_bytes);
        self.new_bytes = self.new_bytes.saturating_add(other.new_bytes);
        self.growth_bytes = self.growth_bytes.saturating_add(other.growth_bytes);
        let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            (a, b) => a.or(b),
        };
        self.old_count = add(self.old_count, other.old_count);
        self.new_count = add(self.new_count, other.new_count);
    }
}

/// A module's growth.
#[derive(Clone, Debug, Serialize)]
pub struct ModuleGrowth {
    /// The module as the log names it, or `(unknown)` / `(no stack)`.
    pub name: String,
    /// A system, runtime or allocator module (never the one to blame).
    pub system: bool,
    #[serde(flatten)]
    pub totals: GrowthTotals,
    /// Stacks charged to it.
    pub stacks: u64,
    /// Share of the total positive growth, percent.
    pub share_percent: f64,
}

/// A function's growth (`module!symbol` of the responsible frame).
#[derive(Clone, Debug, Serialize)]
pub struct FunctionGrowth {
    pub name: String,
    pub module: String,
    #[serde(flatten)]
    pub totals: GrowthTotals,
}

/// One frame as the comparison log prints it.
#[derive(Clone, Debug, Serialize)]
pub struct GrowthFrame {
    /// As printed: `module!symbol+offset`, `module+offset` or an address.
    pub text: String,
    pub module: Option<String>,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// The frame the growth is charged to.
    pub responsible: bool,
}

/// One stack's growth.
#[derive(Clone, Debug, Serialize)]
pub struct StackGrowth {
    /// The BackTrace ID as written.
    pub trace: String,
    pub module: String,
    pub function: Option<String>,
    #[serde(flatten)]
    pub totals: GrowthTotals,
    pub frames: Vec<GrowthFrame>,
}

/// The closing `Total increase == …` line, signed.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct GrowthTotalLine {
    pub requested: i64,
    pub overhead: Option<i64>,
    pub total: Option<i64>,
}

/// The growth section.
#[derive(Clone, Debug, Serialize)]
pub struct UmdhGrowth {
    /// The numbers were decimal (`umdh -d`), else hexadecimal.
    pub decimal: bool,
    /// Sums over every stack in the log.
    pub totals: GrowthTotals,
    /// What UMDH's own total line says (requested, overhead, total).
    pub total_line: Option<GrowthTotalLine>,
    /// Modules, most growth first.
    pub modules: Vec<ModuleGrowth>,
    /// Functions, most growth first (at most the run's `--functions` × modules).
    pub functions: Vec<FunctionGrowth>,
    pub functions_omitted: u64,
    /// Stacks, most growth first (at most 25).
    pub stacks: Vec<StackGrowth>,
    pub stacks_omitted: u64,
}
