//! Just enough of an eBPF assembler for one small program: instructions are
//! built with typed helpers and jumps name labels, resolved when the
//! program is finished. Writing the program here rather than in C keeps
//! the build free of a BPF toolchain (clang, bpf-linker): the bytes the
//! kernel verifies are produced by `cargo build` alone.

/// One register of the BPF machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reg(pub(crate) u8);

pub(crate) const R0: Reg = Reg(0);
pub(crate) const R1: Reg = Reg(1);
pub(crate) const R2: Reg = Reg(2);
pub(crate) const R3: Reg = Reg(3);
pub(crate) const R4: Reg = Reg(4);
pub(crate) const R5: Reg = Reg(5);
pub(crate) const R6: Reg = Reg(6);
pub(crate) const R7: Reg = Reg(7);
/// The read-only frame pointer.
pub(crate) const R10: Reg = Reg(10);

/// Access widths of loads and stores.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    fn bits(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => 0x18,
        }
    }
}

// Instruction classes and fields (uapi linux/bpf.h, linux/bpf_common.h).
const CLASS_LDX: u8 = 0x01;
const CLASS_ST: u8 = 0x02;
const CLASS_STX: u8 = 0x03;
const CLASS_JMP: u8 = 0x05;
const CLASS_ALU64: u8 = 0x07;
const MODE_MEM: u8 = 0x60;
const MODE_ATOMIC: u8 = 0xc0;
const SRC_K: u8 = 0x00;
const SRC_X: u8 = 0x08;
const OP_ADD: u8 = 0x00;
const OP_AND: u8 = 0x50;
const OP_MOV: u8 = 0xb0;
const JA: u8 = 0x00;
const JEQ: u8 = 0x10;
const JGT: u8 = 0x20;
const JSET: u8 = 0x40;
const JNE: u8 = 0x50;
const JLT: u8 = 0xa0;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;
/// `ld_imm64` with `src_reg = BPF_PSEUDO_MAP_FD`: the kernel replaces the
/// file descriptor with the map's address.
const LD_IMM64: u8 = 0x18;
const PSEUDO_MAP_FD: u8 = 1;

/// A jump target, bound with [`Asm::label`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Label(usize);

/// Conditions of the conditional jumps used here (all unsigned).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cond {
    Eq,
    Ne,
    Gt,
    Lt,
    /// `dst & src != 0`.
    Set,
}

impl Cond {
    fn op(self) -> u8 {
        match self {
            Cond::Eq => JEQ,
            Cond::Ne => JNE,
            Cond::Gt => JGT,
            Cond::Lt => JLT,
            Cond::Set => JSET,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

/// A program under construction.
#[derive(Debug, Default)]
pub(crate) struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

/// The program could not be finished (a bug in the program text, caught by
/// the unit tests rather than by the verifier).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AsmError {
    #[error("label {0} used but never bound")]
    Unbound(usize),
    #[error("jump at {0} out of the 16-bit offset range")]
    TooFar(usize),
}

impl Asm {
    fn push(&mut self, code: u8, dst: Reg, src: Reg, off: i16, imm: i32) {
        self.insns.push(Insn {
            code,
            regs: (src.0 << 4) | (dst.0 & 0x0f),
            off,
            imm,
        });
    }

    pub(crate) fn new_label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Binds `l` to the next instruction.
    pub(crate) fn label(&mut self, l: Label) {
        if let Some(slot) = self.labels.get_mut(l.0) {
            *slot = Some(self.insns.len());
        }
    }

    pub(crate) fn mov_imm(&mut self, dst: Reg, imm: i32) {
        self.push(CLASS_ALU64 | OP_MOV | SRC_K, dst, R0, 0, imm);
    }

    pub(crate) fn mov_reg(&mut self, dst: Reg, src: Reg) {
        self.push(CLASS_ALU64 | OP_MOV | SRC_X, dst, src, 0, 0);
    }

    pub(crate) fn add_imm(&mut self, dst: Reg, imm: i32) {
        self.push(CLASS_ALU64 | OP_ADD | SRC_K, dst, R0, 0, imm);
    }

    pub(crate) fn and_imm(&mut self, dst: Reg, imm: i32) {
        self.push(CLASS_ALU64 | OP_AND | SRC_K, dst, R0, 0, imm);
    }

    /// `dst = *(size *)(src + off)`.
    pub(crate) fn load(&mut self, size: Size, dst: Reg, src: Reg, off: i16) {
        self.push(CLASS_LDX | MODE_MEM | size.bits(), dst, src, off, 0);
    }

    /// `*(size *)(dst + off) = src`.
    pub(crate) fn store(&mut self, size: Size, dst: Reg, off: i16, src: Reg) {
        self.push(CLASS_STX | MODE_MEM | size.bits(), dst, src, off, 0);
    }

    /// `*(size *)(dst + off) = imm`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn store_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) {
        self.push(CLASS_ST | MODE_MEM | size.bits(), dst, R0, off, imm);
    }

    /// `lock *(u64 *)(dst + off) += src`.
    pub(crate) fn atomic_add64(&mut self, dst: Reg, off: i16, src: Reg) {
        self.push(
            CLASS_STX | MODE_ATOMIC | Size::DW.bits(),
            dst,
            src,
            off,
            i32::from(OP_ADD),
        );
    }

    /// `dst = map` (two instruction slots).
    pub(crate) fn load_map_fd(&mut self, dst: Reg, fd: i32) {
        self.push(LD_IMM64, dst, Reg(PSEUDO_MAP_FD), 0, fd);
        self.insns.push(Insn {
            code: 0,
            regs: 0,
            off: 0,
            imm: 0,
        });
    }

    pub(crate) fn jump(&mut self, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.push(CLASS_JMP | JA, R0, R0, 0, 0);
    }

    pub(crate) fn jump_imm(&mut self, cond: Cond, dst: Reg, imm: i32, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.push(CLASS_JMP | cond.op() | SRC_K, dst, R0, 0, imm);
    }

    pub(crate) fn jump_reg(&mut self, cond: Cond, dst: Reg, src: Reg, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.push(CLASS_JMP | cond.op() | SRC_X, dst, src, 0, 0);
    }

    pub(crate) fn call(&mut self, helper: i32) {
        self.push(CLASS_JMP | CALL, R0, R0, 0, helper);
    }

    pub(crate) fn exit(&mut self) {
        self.push(CLASS_JMP | EXIT, R0, R0, 0, 0);
    }

    /// Resolves the jumps and returns the instructions as the kernel reads
    /// them (8 bytes each, little-endian fields on every host we support).
    pub(crate) fn finish(mut self) -> Result<Vec<u64>, AsmError> {
        for (at, l) in std::mem::take(&mut self.fixups) {
            let target = self
                .labels
                .get(l.0)
                .copied()
                .flatten()
                .ok_or(AsmError::Unbound(l.0))?;
            let off = target as i64 - at as i64 - 1;
            let off = i16::try_from(off).map_err(|_| AsmError::TooFar(at))?;
            if let Some(insn) = self.insns.get_mut(at) {
                insn.off = off;
            }
        }
        Ok(self
            .insns
            .iter()
            .map(|i| {
                u64::from(i.code)
                    | u64::from(i.regs) << 8
                    | u64::from(i.off as u16) << 16
                    | u64::from(i.imm as u32) << 32
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_uapi_layout() {
        let mut a = Asm::default();
        a.mov_imm(R0, -1); // b7 00 0000 ffffffff
        a.load(Size::W, R2, R6, 76); // 61 62 4c00 00000000
        a.store_imm(Size::DW, R10, -8, 7); // 7a 0a f8ff 07000000
        a.atomic_add64(R7, 32, R1); // db 17 2000 00000000
        a.exit();
        let words = a.finish().unwrap();
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(
            bytes,
            [
                0xb7, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, //
                0x61, 0x62, 0x4c, 0x00, 0x00, 0x00, 0x00, 0x00, //
                0x7a, 0x0a, 0xf8, 0xff, 0x07, 0x00, 0x00, 0x00, //
                0xdb, 0x17, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, //
                0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            ]
        );
    }

    #[test]
    fn jumps_resolve_forward_and_backward() {
        let mut a = Asm::default();
        let top = a.new_label();
        let end = a.new_label();
        a.label(top);
        a.jump_imm(Cond::Eq, R1, 0, end); // 0 -> 3: off 2
        a.mov_imm(R0, 1);
        a.jump(top); // 2 -> 0: off -3
        a.label(end);
        a.exit();
        let w = a.finish().unwrap();
        assert_eq!((w[0] >> 16) as u16 as i16, 2);
        assert_eq!((w[2] >> 16) as u16 as i16, -3);
    }

    #[test]
    fn an_unbound_label_is_an_error() {
        let mut a = Asm::default();
        let l = a.new_label();
        a.jump(l);
        assert_eq!(a.finish(), Err(AsmError::Unbound(0)));
    }

    #[test]
    fn map_fd_load_takes_two_slots() {
        let mut a = Asm::default();
        a.load_map_fd(R1, 5);
        let w = a.finish().unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w[0] & 0xff, 0x18);
        assert_eq!((w[0] >> 12) & 0xf, 1); // src_reg = BPF_PSEUDO_MAP_FD
        assert_eq!(w[0] >> 32, 5);
        assert_eq!(w[1], 0);
    }
}
