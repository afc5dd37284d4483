//! The text form of the kernel IR: `Display` for [`Program`] and [`Kernel`], and
//! [`kernel_list`], a one-line-per-step summary that says why each boundary exists.
//!
//! The text is a pure function of the program (no hash-map order reaches it), so it can be
//! dumped, snapshot-tested and diffed:
//!
//! ```text
//! program @softmax {
//!   b0: f32[4,8] input 0
//!   b1: f32[4,1] temp
//!   outputs b1
//!
//!   kernel k0 space=[4,8] reduce=max axes=[1]  ; reduction output used at a broadcast shape
//!     %0 = load b0[i0*8 + i1] : f32
//!     reduce %0
//!   epilogue space=[4]
//!     %1 = acc : f32
//!     store b1 <- %1
//! }
//! ```
//!
//! Body instructions are `%0, %1, ...`; epilogue instructions continue the numbering. Index
//! maps are written as affine expressions of the loop indices: `i0, i1, ...` over the
//! iteration space, `o0, o1, ...` over a reduction's output space (in the epilogue), and
//! `z0, ...`, `r`, `c` over a matrix operand's batch dims, row and column.

use super::{BufferKind, Group, IndexMap, Inst, Instr, Kernel, LoopStep, MatOperand, OpStep, Program, Step};
use crate::ops::Op;
use std::fmt::{self, Write};

/// Writes `offset + Σ strides[d] * var(d)` as `7 - i0 + i1*8`.
fn affine(offset: i64, terms: &[(i64, String)]) -> String {
    let mut out = String::new();
    if offset != 0 {
        out += &offset.to_string();
    }
    for (stride, var) in terms {
        if *stride == 0 {
            continue;
        }
        let magnitude = stride.unsigned_abs();
        let term = if magnitude == 1 { var.clone() } else { format!("{var}*{magnitude}") };
        match (out.is_empty(), *stride < 0) {
            (true, false) => out += &term,
            (true, true) => out += &format!("-{term}"),
            (false, false) => out += &format!(" + {term}"),
            (false, true) => out += &format!(" - {term}"),
        }
    }
    if out.is_empty() {
        out.push('0');
    }
    out
}

fn index_text(index: &IndexMap, var: &str) -> String {
    let terms: Vec<(i64, String)> =
        index.strides.iter().enumerate().map(|(d, &s)| (s, format!("{var}{d}"))).collect();
    affine(index.offset, &terms)
}

fn dims_text(dims: &[usize]) -> String {
    let items: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", items.join(","))
}

/// One instruction, numbered `%first + position` with operands numbered likewise.
fn instr_text(instr: &Instr, first: usize, var: &str) -> String {
    let v = |id: usize| format!("%{}", first + id);
    let rhs = match &instr.inst {
        Inst::Load { buf, index } => format!("load b{buf}[{}]", index_text(index, var)),
        Inst::Const(value) => format!("const {}", value.text(instr.dtype)),
        Inst::Iota { index } => format!("iota {}", index_text(index, var)),
        Inst::Rand { seed, offset, counter } => {
            format!("rand seed={}, offset={}, counter={}", v(*seed), v(*offset), index_text(counter, var))
        }
        Inst::Unary(op, x) => format!("{} {}", op.spec().name, v(*x)),
        Inst::Binary(op, x, y) => format!("{} {}, {}", op.spec().name, v(*x), v(*y)),
        Inst::Where(c, x, y) => format!("where {}, {}, {}", v(*c), v(*x), v(*y)),
        Inst::Cast(x) => format!("cast {}", v(*x)),
        Inst::Acc => "acc".to_string(),
        Inst::AccValue => "acc_value".to_string(),
    };
    format!("{rhs} : {}", instr.dtype)
}

fn write_kernel(f: &mut impl Write, k: &Kernel, indent: &str) -> fmt::Result {
    write!(f, "{indent}kernel {} space={}", k.name, dims_text(&k.space))?;
    if let Some(r) = &k.reduce {
        write!(f, " reduce={} axes={}", r.op.name(), dims_text(&r.axes))?;
    }
    writeln!(f, "  ; {}", k.reason)?;
    let body_var = "i";
    for (i, instr) in k.body.iter().enumerate() {
        writeln!(f, "{indent}  %{i} = {}", instr_text(instr, 0, body_var))?;
    }
    let first = k.body.len();
    let store_base = if k.reduce.is_some() {
        if let Some(v) = k.value {
            writeln!(f, "{indent}  reduce %{v}")?;
        }
        writeln!(f, "{indent}epilogue space={}", dims_text(&k.out_space()))?;
        for (i, instr) in k.epilogue.iter().enumerate() {
            writeln!(f, "{indent}  %{} = {}", first + i, instr_text(instr, first, "o"))?;
        }
        first
    } else {
        0
    };
    for s in &k.stores {
        writeln!(f, "{indent}  store b{} <- %{}", s.buf, store_base + s.value)?;
    }
    Ok(())
}

fn operand_text(m: &MatOperand) -> String {
    let mut terms: Vec<(i64, String)> =
        m.batch_strides.iter().enumerate().map(|(d, &s)| (s, format!("z{d}"))).collect();
    terms.push((m.row_stride, "r".into()));
    terms.push((m.col_stride, "c".into()));
    format!("b{}[{}]", m.buf, affine(m.offset, &terms))
}

/// The attributes of a library op, `axis=1` or `lo=[1,0], hi=[0,2]`.
fn op_attrs(op: &Op) -> String {
    match op {
        Op::ArgReduce { axis, .. } | Op::Concat { axis } | Op::Gather { axis } | Op::ScatterAdd { axis } => {
            format!(", axis={axis}")
        }
        Op::Pad { lo, hi } => format!(", lo={}, hi={}", dims_text(lo), dims_text(hi)),
        Op::Conv(c) => c.attrs().into_iter().map(|(k, v)| format!(", {k}={v}")).collect(),
        Op::Pool(p) => p.attrs().into_iter().map(|(k, v)| format!(", {k}={v}")).collect(),
        Op::Reduce { axes, .. } => format!(", axes={}", dims_text(axes)),
        Op::Iota { axis, .. } => format!(", axis={axis}"),
        Op::Reshape { shape } | Op::Expand { shape } => format!(", shape={}", dims_text(shape.dims())),
        Op::Permute { perm } => format!(", perm={}", dims_text(perm)),
        Op::Slice { start, step, size, .. } => {
            let list =
                |v: &[isize]| format!("[{}]", v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(","));
            format!(", start={}, step={}, size={}", list(start), list(step), dims_text(size))
        }
        Op::Input { .. }
        | Op::Const { .. }
        | Op::Size { .. }
        | Op::Rand { .. }
        | Op::Unary(_)
        | Op::Binary(_)
        | Op::Where
        | Op::Cast { .. }
        | Op::Matmul => String::new(),
        Op::Loop(l) => format!(", trips={}", l.trips),
    }
}

/// A loop step's line: `b3, b4 <- loop b0, b1, b2 trips=100`.
fn loop_step_text(l: &LoopStep) -> String {
    format!("{} <- loop {} trips={}", buffers_text(&l.outs), buffers_text(&l.args), l.trips)
}

fn op_step_text(s: &OpStep) -> String {
    let args: Vec<String> = s.args.iter().map(|b| format!("b{b}")).collect();
    format!("b{} <- {} {}{}", s.out, s.op.name(), args.join(", "), op_attrs(&s.op))
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_kernel(f, self, "")
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "program @{} {{", self.name)?;
        for (i, b) in self.buffers.iter().enumerate() {
            match b.kind {
                BufferKind::Input(j) => writeln!(f, "  b{i}: {} input {j}", b.ty)?,
                BufferKind::Temp => writeln!(f, "  b{i}: {} temp", b.ty)?,
            }
        }
        let outs: Vec<String> = self.outputs.iter().map(|b| format!("b{b}")).collect();
        writeln!(f, "  outputs {}", outs.join(", "))?;
        for (at, step) in self.steps.iter().enumerate() {
            writeln!(f)?;
            if let Some((n, g)) = self.groups.iter().enumerate().find(|(_, g)| g.steps.start == at) {
                writeln!(f, "  {}\n", group_text(n, g))?;
            }
            match step {
                Step::Kernel(k) => write_kernel(f, k, "  ")?,
                Step::Matmul(m) => writeln!(
                    f,
                    "  b{} <- matmul {}, {} : {} batch={} m={} k={} n={}  ; matmul runs as a GEMM",
                    m.out,
                    operand_text(&m.a),
                    operand_text(&m.b),
                    m.dtype,
                    dims_text(&m.batch),
                    m.m,
                    m.k,
                    m.n
                )?,
                Step::Op(s) => writeln!(f, "  {}  ; {}", op_step_text(s), s.reason)?,
                Step::Loop(l) => {
                    writeln!(f, "  {}  ; a loop runs its body's program", loop_step_text(l))?;
                    // The body's program, indented under the step.
                    for line in l.body.to_string().lines() {
                        writeln!(f, "    {line}")?;
                    }
                }
            }
            if let Some(n) = self.groups.iter().position(|g| g.steps.end == at + 1) {
                writeln!(f, "\n  end group g{n}")?;
            }
        }
        writeln!(f, "}}")
    }
}

/// A group's header line: `group g0 rows=4096 local b1 b2  ; ...`, with `parts=4x1024` after
/// the rows when it has steps over parts.
fn group_text(n: usize, g: &Group) -> String {
    let local: String = g.local.iter().map(|b| format!(" b{b}")).collect();
    let local = if local.is_empty() { String::new() } else { format!(" local{local}") };
    let parts = if g.part > 1 { format!(" parts={}x{}", g.rows / g.part, g.part) } else { String::new() };
    format!("group g{n} rows={}{parts}{local}  ; {} steps run row block by row block", g.rows, g.steps.len())
}

/// The buffers a kernel reads, in order, each once.
fn kernel_reads(k: &Kernel) -> Vec<usize> {
    let mut reads: Vec<usize> = k
        .body
        .iter()
        .chain(&k.epilogue)
        .filter_map(|i| match &i.inst {
            Inst::Load { buf, .. } => Some(*buf),
            Inst::Const(_)
            | Inst::Iota { .. }
            | Inst::Rand { .. }
            | Inst::Unary(..)
            | Inst::Binary(..)
            | Inst::Where(..)
            | Inst::Cast(_)
            | Inst::Acc
            | Inst::AccValue => None,
        })
        .collect();
    reads.sort_unstable();
    reads.dedup();
    reads
}

fn buffers_text(bufs: &[usize]) -> String {
    if bufs.is_empty() {
        return "()".into();
    }
    bufs.iter().map(|b| format!("b{b}")).collect::<Vec<_>>().join(", ")
}

/// A summary of a program, one line per step: its name, what it is, its iteration space, the
/// buffers it reads and writes, and why it is a step of its own.
///
/// ```text
/// k0  reduce max   [4,8] axes=[1]  b0 -> b1          ; reduction output used at a broadcast shape
/// k1  reduce sum   [4,8] axes=[1]  b0, b1 -> b2      ; reduction output used at a broadcast shape
/// k2  elementwise  [4,8]           b0, b1, b2 -> b3  ; graph output
/// ```
///
/// Matrix products read `matmul  matmul f32  [4,3]x[3,2]  b0, b1 -> b3  ; matmul runs as a
/// GEMM`, library steps `gather  library  axis=1  b0, b1 -> b2  ; gather runs as a library routine`;
/// an index-of-extremum kernel reads `k0  reduce argmax  [4,8] axes=[1]  b0 -> b1, b2  ; ...`
/// (it stores the indices and, when the graph also takes the `max`, the values).
pub fn kernel_list(p: &Program) -> String {
    let rows: Vec<[String; 5]> = p.steps.iter().map(step_cells).collect();
    kernel_list_rows(p, rows)
}

/// The cells of a step's line in [`kernel_list`]: its name, what it is, its iteration space or
/// attributes, the buffers it reads and writes, and why it is a step of its own.
pub fn step_cells(step: &Step) -> [String; 5] {
    match step {
        Step::Kernel(k) => {
            let (what, space) = match &k.reduce {
                Some(r) => (
                    format!("reduce {}", r.op.name()),
                    format!("{} axes={}", dims_text(&k.space), dims_text(&r.axes)),
                ),
                None => ("elementwise".to_string(), dims_text(&k.space)),
            };
            let writes: Vec<usize> = k.stores.iter().map(|s| s.buf).collect();
            let io = format!("{} -> {}", buffers_text(&kernel_reads(k)), buffers_text(&writes));
            [k.name.clone(), what, space, io, k.reason.clone()]
        }
        Step::Matmul(m) => {
            let batch: String = m.batch.iter().map(|d| format!("{d}x")).collect();
            [
                "matmul".into(),
                format!("matmul {}", m.dtype),
                format!("{batch}[{},{}]x[{},{}]", m.m, m.k, m.k, m.n),
                format!("b{}, b{} -> b{}", m.a.buf, m.b.buf, m.out),
                "matmul runs as a GEMM".into(),
            ]
        }
        Step::Op(s) => [
            s.op.name().into(),
            "library".into(),
            op_attrs(&s.op).trim_start_matches(", ").to_string(),
            format!("{} -> b{}", buffers_text(&s.args), s.out),
            s.reason.clone(),
        ],
        Step::Loop(l) => [
            "loop".into(),
            format!("loop of {} step(s)", l.body.steps.len()),
            format!("trips={}", l.trips),
            format!("{} -> {}", buffers_text(&l.args), buffers_text(&l.outs)),
            "a loop runs its body's program".into(),
        ],
    }
}

/// [`kernel_list`] of the steps' cells.
fn kernel_list_rows(p: &Program, rows: Vec<[String; 5]>) -> String {
    // A group's steps are indented under its header.
    let mut rows = rows;
    for (at, row) in rows.iter_mut().enumerate() {
        if p.groups.iter().any(|g| g.steps.contains(&at)) {
            row[0] = format!("  {}", row[0]);
        }
    }
    let mut widths = [0usize; 4];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (at, row) in rows.iter().enumerate() {
        if let Some((n, g)) = p.groups.iter().enumerate().find(|(_, g)| g.steps.start == at) {
            out += &group_text(n, g);
            out.push('\n');
        }
        let mut line = String::new();
        for (w, cell) in widths.iter().zip(row) {
            // Padded by hand: a format width must fit in `u16`, and a concat of many operands
            // makes a wider cell.
            line += cell;
            line.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 2));
        }
        line += &format!("; {}", row[4]);
        out += &line;
        out.push('\n');
    }
    out
}
