//! A small eBPF instruction encoder: one [`Insn`] is one 8-byte instruction slot, built by named
//! constructors, and an [`Asm`] emits a program with forward and backward jumps to [`Label`]s,
//! resolved into jump offsets by [`Asm::finish`].
//!
//! The encoding is the kernel's (`Documentation/bpf/standardization/instruction-set.rst`):
//! `code` = operation | source | class, then one byte holding the destination register in its low
//! nibble and the source register in its high nibble, a signed 16-bit offset and a signed 32-bit
//! immediate, both little-endian (these machines' byte order). A jump's offset counts instruction
//! slots from the one after the jump; the 64-bit immediate load takes two slots.

/// An eBPF register: `R0` (return value), `R1`-`R5` (arguments, clobbered by calls), `R6`-`R9`
/// (kept across calls), `R10` (frame pointer, read-only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reg(pub u8);

/// R0: return values.
pub const R0: Reg = Reg(0);
/// R1: first argument.
pub const R1: Reg = Reg(1);
/// R2: second argument.
pub const R2: Reg = Reg(2);
/// R3: third argument.
pub const R3: Reg = Reg(3);
/// R6: kept across calls.
pub const R6: Reg = Reg(6);
/// R7: kept across calls.
pub const R7: Reg = Reg(7);
/// R8: kept across calls.
pub const R8: Reg = Reg(8);
/// R9: kept across calls.
pub const R9: Reg = Reg(9);
/// R10: the frame pointer (the stack grows down from it; 512 bytes).
pub const R10: Reg = Reg(10);

// Instruction classes.
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const ALU: u8 = 0x04;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
// Source: the immediate (K) or a register (X).
const K: u8 = 0x00;
const X: u8 = 0x08;
// Load / store mode.
const IMM: u8 = 0x00;
const MEM: u8 = 0x60;
// ALU operations.
const ADD: u8 = 0x00;
const AND: u8 = 0x50;
const LSH: u8 = 0x60;
const MOV: u8 = 0xb0;
const END: u8 = 0xd0;
const TO_BE: u8 = 0x08;
// Jump operations.
const JA: u8 = 0x00;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;

/// The source register value of a 64-bit immediate load that the kernel reads as a map fd.
pub const PSEUDO_MAP_FD: u8 = 1;

/// A load or store width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// 1 byte.
    B = 0x10,
    /// 2 bytes.
    H = 0x08,
    /// 4 bytes.
    W = 0x00,
    /// 8 bytes.
    Dw = 0x18,
}

/// A conditional jump's comparison (unsigned unless named otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// `==`.
    Eq = 0x10,
    /// `>`.
    Gt = 0x20,
    /// `!=`.
    Ne = 0x50,
    /// `<`.
    Lt = 0xa0,
}

/// One instruction slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// Operation, source and class.
    pub code: u8,
    /// Destination register.
    pub dst: u8,
    /// Source register.
    pub src: u8,
    /// Offset (memory accesses, jumps).
    pub off: i16,
    /// Immediate.
    pub imm: i32,
}

impl Insn {
    fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        Insn { code, dst: dst.0, src: src.0, off, imm }
    }

    /// The 8 bytes the kernel reads.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.dst & 0x0f) | (self.src << 4);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }

    /// `dst = imm` (64-bit, the immediate sign-extended).
    pub fn mov_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(ALU64 | MOV | K, dst, R0, 0, imm)
    }
    /// `dst = src` (64-bit).
    pub fn mov(dst: Reg, src: Reg) -> Insn {
        Insn::new(ALU64 | MOV | X, dst, src, 0, 0)
    }
    /// `dst += imm` (64-bit).
    pub fn add_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(ALU64 | ADD | K, dst, R0, 0, imm)
    }
    /// `dst += src` (64-bit).
    pub fn add(dst: Reg, src: Reg) -> Insn {
        Insn::new(ALU64 | ADD | X, dst, src, 0, 0)
    }
    /// `dst &= imm` (64-bit).
    pub fn and_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(ALU64 | AND | K, dst, R0, 0, imm)
    }
    /// `dst <<= imm` (64-bit).
    pub fn lsh_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(ALU64 | LSH | K, dst, R0, 0, imm)
    }
    /// `dst = be16(dst)`: a 16-bit field loaded from the network to host order.
    pub fn be16(dst: Reg) -> Insn {
        Insn::new(ALU | END | TO_BE, dst, R0, 0, 16)
    }
    /// `dst = *(size *)(src + off)`.
    pub fn ldx(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(LDX | MEM | size as u8, dst, src, off, 0)
    }
    /// `*(size *)(dst + off) = src`.
    pub fn stx(size: Size, dst: Reg, off: i16, src: Reg) -> Insn {
        Insn::new(STX | MEM | size as u8, dst, src, off, 0)
    }
    /// `*(size *)(dst + off) = imm`.
    pub fn st(size: Size, dst: Reg, off: i16, imm: i32) -> Insn {
        Insn::new(ST | MEM | size as u8, dst, R0, off, imm)
    }
    /// Calls kernel helper number `helper` (arguments in R1-R5, result in R0).
    pub fn call(helper: i32) -> Insn {
        Insn::new(JMP | CALL, R0, R0, 0, helper)
    }
    /// Returns R0.
    pub fn exit() -> Insn {
        Insn::new(JMP | EXIT, R0, R0, 0, 0)
    }
    /// `dst = map` (two slots): the kernel replaces the fd by the map's address.
    pub fn ld_map_fd(dst: Reg, fd: i32) -> [Insn; 2] {
        [Insn::new(LD | IMM | Size::Dw as u8, dst, Reg(PSEUDO_MAP_FD), 0, fd), Insn::new(0, R0, R0, 0, 0)]
    }
    /// `goto +off`.
    pub fn ja(off: i16) -> Insn {
        Insn::new(JMP | JA, R0, R0, off, 0)
    }
    /// `if dst <cond> imm goto +off`.
    pub fn jmp_imm(cond: Cond, dst: Reg, imm: i32, off: i16) -> Insn {
        Insn::new(JMP | cond as u8 | K, dst, R0, off, imm)
    }
    /// `if dst <cond> src goto +off`.
    pub fn jmp(cond: Cond, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(JMP | cond as u8 | X, dst, src, off, 0)
    }
}

/// A place in the program to jump to, created by [`Asm::label`] and placed by [`Asm::bind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

/// Why a program could not be assembled (a bug in the program's emitter, never the input's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AsmError {
    /// A label jumped to was never bound.
    Unbound(&'static str),
    /// A label was bound twice.
    Rebound(&'static str),
    /// A jump further than a 16-bit offset reaches.
    TooFar(&'static str),
}

impl std::fmt::Display for AsmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AsmError::Unbound(l) => write!(f, "label {l} jumped to but never placed"),
            AsmError::Rebound(l) => write!(f, "label {l} placed twice"),
            AsmError::TooFar(l) => write!(f, "jump to {l} out of a 16-bit offset's reach"),
        }
    }
}

/// A program being written: instructions, labels, and the jumps waiting for their labels.
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: Vec<(&'static str, Option<usize>)>,
    fixups: Vec<(usize, Label)>,
    rebound: Option<&'static str>,
}

impl Asm {
    /// An empty program.
    pub fn new() -> Asm {
        Asm::default()
    }

    /// A new label (its name appears in errors).
    pub fn label(&mut self, name: &'static str) -> Label {
        self.labels.push((name, None));
        Label(self.labels.len() - 1)
    }

    /// Places `label` at the next instruction.
    pub fn bind(&mut self, label: Label) {
        let slot = &mut self.labels[label.0];
        if slot.1.is_some() {
            self.rebound.get_or_insert(slot.0);
        }
        slot.1 = Some(self.insns.len());
    }

    /// Appends instructions.
    pub fn emit(&mut self, insns: impl IntoIterator<Item = Insn>) {
        self.insns.extend(insns);
    }

    /// Appends `goto label`.
    pub fn goto(&mut self, label: Label) {
        self.fixups.push((self.insns.len(), label));
        self.insns.push(Insn::ja(0));
    }

    /// Appends `if dst <cond> imm goto label`.
    pub fn jmp_imm(&mut self, cond: Cond, dst: Reg, imm: i32, label: Label) {
        self.fixups.push((self.insns.len(), label));
        self.insns.push(Insn::jmp_imm(cond, dst, imm, 0));
    }

    /// Appends `if dst <cond> src goto label`.
    pub fn jmp(&mut self, cond: Cond, dst: Reg, src: Reg, label: Label) {
        self.fixups.push((self.insns.len(), label));
        self.insns.push(Insn::jmp(cond, dst, src, 0));
    }

    /// Resolves every jump to its label's offset.
    pub fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        if let Some(name) = self.rebound {
            return Err(AsmError::Rebound(name));
        }
        for &(at, label) in &self.fixups {
            let (name, target) = self.labels[label.0];
            let target = target.ok_or(AsmError::Unbound(name))?;
            let off = target as i64 - (at as i64 + 1);
            self.insns[at].off = i16::try_from(off).map_err(|_| AsmError::TooFar(name))?;
        }
        Ok(self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_instruction_set() {
        // mov64 r0, 2: ALU64 (0x07) | MOV (0xb0) | K = 0xb7.
        assert_eq!(Insn::mov_imm(R0, 2).to_bytes(), [0xb7, 0x00, 0, 0, 2, 0, 0, 0]);
        // exit: JMP (0x05) | EXIT (0x90) = 0x95.
        assert_eq!(Insn::exit().to_bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        // r2 = *(u32 *)(r1 + 4): LDX (0x01) | MEM (0x60) | W = 0x61; dst 2 low nibble, src 1 high.
        assert_eq!(Insn::ldx(Size::W, R2, R1, 4).to_bytes(), [0x61, 0x12, 4, 0, 0, 0, 0, 0]);
        // *(u16 *)(r10 - 8) = r3: STX (0x03) | MEM | H (0x08) = 0x6b; offset -8 = 0xfff8.
        assert_eq!(Insn::stx(Size::H, R10, -8, R3).to_bytes(), [0x6b, 0x3a, 0xf8, 0xff, 0, 0, 0, 0]);
        // *(u64 *)(r10 - 16) = 0: ST (0x02) | MEM | DW (0x18) = 0x7a.
        assert_eq!(Insn::st(Size::Dw, R10, -16, 0).to_bytes(), [0x7a, 0x0a, 0xf0, 0xff, 0, 0, 0, 0]);
        // r2 += -40: ALU64 | ADD | K = 0x07, imm -40 = 0xffffffd8.
        assert_eq!(Insn::add_imm(R2, -40).to_bytes(), [0x07, 0x02, 0, 0, 0xd8, 0xff, 0xff, 0xff]);
        // r7 += r2: ALU64 | ADD | X = 0x0f.
        assert_eq!(Insn::add(R7, R2).to_bytes(), [0x0f, 0x27, 0, 0, 0, 0, 0, 0]);
        // call 51 (bpf_redirect_map): JMP | CALL = 0x85.
        assert_eq!(Insn::call(51).to_bytes(), [0x85, 0, 0, 0, 51, 0, 0, 0]);
        // if r2 > r8 goto +3: JMP | JGT (0x20) | X = 0x2d.
        assert_eq!(Insn::jmp(Cond::Gt, R2, R8, 3).to_bytes(), [0x2d, 0x82, 3, 0, 0, 0, 0, 0]);
        // if r9 != 0x0008 goto -2: JMP | JNE (0x50) | K = 0x55.
        assert_eq!(Insn::jmp_imm(Cond::Ne, R9, 8, -2).to_bytes(), [0x55, 0x09, 0xfe, 0xff, 8, 0, 0, 0]);
        // r3 = be16(r3): ALU (0x04) | END (0xd0) | TO_BE (0x08) = 0xdc, imm 16.
        assert_eq!(Insn::be16(R3).to_bytes(), [0xdc, 0x03, 0, 0, 16, 0, 0, 0]);
        // r1 = map fd 5: LD | IMM | DW = 0x18, src = BPF_PSEUDO_MAP_FD (1); second slot all zero.
        let [a, b] = Insn::ld_map_fd(R1, 5);
        assert_eq!(a.to_bytes(), [0x18, 0x11, 0, 0, 5, 0, 0, 0]);
        assert_eq!(b.to_bytes(), [0; 8]);
    }

    #[test]
    fn labels_resolve_forward_and_backward() {
        let mut a = Asm::new();
        let top = a.label("top");
        let out = a.label("out");
        a.bind(top); // 0
        a.jmp_imm(Cond::Eq, R0, 0, out); // 0 -> 3: off +2
        a.emit([Insn::mov_imm(R0, 1)]); // 1
        a.goto(top); // 2 -> 0: off -3
        a.bind(out);
        a.emit([Insn::exit()]); // 3
        let p = a.finish().unwrap();
        assert_eq!(p[0].off, 2);
        assert_eq!(p[2].off, -3);
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn label_errors_are_reported() {
        let mut a = Asm::new();
        let l = a.label("nowhere");
        a.goto(l);
        assert_eq!(a.finish(), Err(AsmError::Unbound("nowhere")));
        let mut a = Asm::new();
        let l = a.label("twice");
        a.bind(l);
        a.bind(l);
        assert_eq!(a.finish(), Err(AsmError::Rebound("twice")));
        let mut a = Asm::new();
        let l = a.label("far");
        a.goto(l);
        a.emit(std::iter::repeat_n(Insn::mov_imm(R0, 0), 40_000));
        a.bind(l);
        assert_eq!(a.finish(), Err(AsmError::TooFar("far")));
    }
}
