package seccomp

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// The offsets of struct seccomp_data's fields, as read by BPF_LD|BPF_W|BPF_ABS.
const (
	offNr   = 0
	offArch = 4
	// offArgLo(i) is the low 32 bits of argument i on a little-endian machine (every
	// architecture this package supports). The filter compares only the low words: the
	// kernel truncates the int arguments it checks.
	offArgs = 16
)

func offArgLo(i int) uint32 { return uint32(offArgs + 8*i) }

// label names a position in a program; labels are resolved when the program is assembled.
type label int

// asm assembles a classic BPF program with symbolic labels. Conditional jumps in classic
// BPF reach at most 255 instructions ahead; asm sidesteps the limit by emitting every jump
// to a label as a conditional skip over an unconditional jump (BPF_JA has a 32-bit offset).
type asm struct {
	insns  []unix.SockFilter
	fixups map[int]label // index of a BPF_JA instruction -> its target
	labels []int         // label -> instruction index, or -1 while unplaced
}

func newAsm() *asm { return &asm{fixups: map[int]label{}} }

// newLabel returns a fresh, unplaced label.
func (a *asm) newLabel() label {
	a.labels = append(a.labels, -1)
	return label(len(a.labels) - 1)
}

// place puts l at the next instruction.
func (a *asm) place(l label) { a.labels[l] = len(a.insns) }

func (a *asm) emit(code uint16, jt, jf uint8, k uint32) {
	a.insns = append(a.insns, unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k})
}

// load loads the 32-bit word at offset off of seccomp_data into the accumulator.
func (a *asm) load(off uint32) { a.emit(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, 0, 0, off) }

// and masks the accumulator.
func (a *asm) and(k uint32) { a.emit(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, 0, 0, k) }

// ret returns the action k.
func (a *asm) ret(k uint32) { a.emit(unix.BPF_RET|unix.BPF_K, 0, 0, k) }

// jump jumps to l unconditionally.
func (a *asm) jump(l label) {
	a.fixups[len(a.insns)] = l
	a.emit(unix.BPF_JMP|unix.BPF_JA, 0, 0, 0)
}

// jumpIf jumps to l if the accumulator compares true with k under op (BPF_JEQ, BPF_JGE,
// BPF_JGT or BPF_JSET); otherwise execution continues after it.
func (a *asm) jumpIf(op uint16, k uint32, l label) {
	// if (A op k) goto +0 (the BPF_JA below) else goto +1 (past it).
	a.emit(unix.BPF_JMP|op|unix.BPF_K, 0, 1, k)
	a.jump(l)
}

// jumpIfNot jumps to l if the accumulator does not compare true with k under op.
func (a *asm) jumpIfNot(op uint16, k uint32, l label) {
	a.emit(unix.BPF_JMP|op|unix.BPF_K, 1, 0, k)
	a.jump(l)
}

// assemble resolves the labels and returns the program.
func (a *asm) assemble() ([]unix.SockFilter, error) {
	for i, l := range a.fixups {
		target := a.labels[l]
		if target < 0 {
			return nil, fmt.Errorf("seccomp: label %d is never placed", l)
		}
		if target <= i {
			return nil, errors.New("seccomp: backward jump")
		}
		a.insns[i].K = uint32(target - i - 1)
	}
	if len(a.insns) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp: program has %d instructions, more than %d", len(a.insns), unix.BPF_MAXINSNS)
	}
	return a.insns, nil
}
