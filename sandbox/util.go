package sandbox

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// cldExited is CLD_EXITED, the si_code of a child that exited normally.
const cldExited = 1

// killReap kills the process pidfd refers to, reaps it and closes pidfd:
// a start that failed leaves nothing running.
func killReap(pidfd int) {
	unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
	var info unix.Siginfo
	for unix.Waitid(unix.P_PIDFD, pidfd, &info, unix.WEXITED, nil) == unix.EINTR {
	}
	unix.Close(pidfd)
}
