package bpfprog

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Action is a seccomp filter return value (SECCOMP_RET_*).
type Action uint32

// The actions the filter uses.
const (
	ActKillProcess Action = 0x80000000 // SECCOMP_RET_KILL_PROCESS
	ActTrap        Action = 0x00030000 // SECCOMP_RET_TRAP
	ActErrno       Action = 0x00050000 // SECCOMP_RET_ERRNO; the low 16 bits are the errno
	ActNotify      Action = 0x7fc00000 // SECCOMP_RET_USER_NOTIF
	ActLog         Action = 0x7ffc0000 // SECCOMP_RET_LOG
	ActAllow       Action = 0x7fff0000 // SECCOMP_RET_ALLOW
)

// Errno returns the action that fails a syscall with e.
func Errno(e unix.Errno) Action { return ActErrno | Action(uint32(e)&0xffff) }

// Kind returns the action without its data bits.
func (a Action) Kind() Action { return a & 0xffff0000 }

// Data returns the action's data bits (the errno of an ActErrno).
func (a Action) Data() uint32 { return uint32(a) & 0xffff }

// String names the action, e.g. "ERRNO(EPERM)".
func (a Action) String() string {
	switch a.Kind() {
	case ActKillProcess:
		return "KILL_PROCESS"
	case ActTrap:
		return "TRAP"
	case ActErrno:
		return fmt.Sprintf("ERRNO(%s)", unix.ErrnoName(unix.Errno(a.Data())))
	case ActNotify:
		return "USER_NOTIF"
	case ActLog:
		return "LOG"
	case ActAllow:
		return "ALLOW"
	}
	return fmt.Sprintf("ACTION(%#x)", uint32(a))
}
