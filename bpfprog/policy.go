package bpfprog

// Offsets into struct seccomp_data (little-endian hosts: the low word of an
// argument comes first).
const (
	OffNr   = 0
	OffArch = 4
	OffArgs = 16
)

// Policy is a complete filter for one architecture: a rule per syscall
// number; every syscall without a rule is allowed.
type Policy struct {
	Arch  *Arch
	Rules map[int]Rule
}

// Eval returns the policy's verdict for a syscall as the kernel would see it.
// It is the reference the generated program is tested against.
func (p *Policy) Eval(auditArch uint32, nr uint32, args [6]uint64) Action {
	if auditArch != p.Arch.AuditArch {
		return ActKillProcess
	}
	if p.Arch.X32Bit != 0 && nr >= p.Arch.X32Bit {
		return ActKillProcess
	}
	if r, ok := p.Rules[int(nr)]; ok {
		return r.Eval(args)
	}
	return ActAllow
}
