package supervisor

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Reading and writing a notifying task's memory. process_vm_readv and
// process_vm_writev need ptrace access, which sandlock has as the sandbox's
// ancestor. Callers that act on what they read check
// SECCOMP_IOCTL_NOTIF_ID_VALID afterwards: if the task died and its pid was
// reused, the memory read was someone else's.

var errShort = errors.New("short transfer")

func (w *worker) readMem(addr uint64, dst []byte) error {
	local := [1]unix.Iovec{{Base: &dst[0]}}
	local[0].SetLen(len(dst))
	remote := [1]unix.RemoteIovec{{Base: uintptr(addr), Len: len(dst)}}
	n, err := unix.ProcessVMReadv(int(w.n.Pid), local[:], remote[:], 0)
	if err != nil {
		return err
	}
	if n != len(dst) {
		return errShort
	}
	return nil
}

func (w *worker) writeMem(addr uint64, src []byte) error {
	local := [1]unix.Iovec{{Base: &src[0]}}
	local[0].SetLen(len(src))
	remote := [1]unix.RemoteIovec{{Base: uintptr(addr), Len: len(src)}}
	n, err := unix.ProcessVMWritev(int(w.n.Pid), local[:], remote[:], 0)
	if err != nil {
		return err
	}
	if n != len(src) {
		return errShort
	}
	return nil
}

// readString reads a NUL-terminated string of at most len(w.buf)-1 bytes
// into w.buf, one page at a time so that an unmapped page after the string
// does not fail the read.
func (w *worker) readString(addr uint64) ([]byte, error) {
	if addr == 0 {
		return nil, unix.EFAULT
	}
	got := 0
	for got < len(w.buf)-1 {
		a := addr + uint64(got)
		chunk := int(uint64(pageSize) - a%uint64(pageSize))
		chunk = min(chunk, len(w.buf)-1-got)
		local := [1]unix.Iovec{{Base: &w.buf[got]}}
		local[0].SetLen(chunk)
		remote := [1]unix.RemoteIovec{{Base: uintptr(a), Len: chunk}}
		n, err := unix.ProcessVMReadv(int(w.n.Pid), local[:], remote[:], 0)
		if err != nil {
			return nil, err
		}
		for i := got; i < got+n; i++ {
			if w.buf[i] == 0 {
				return w.buf[:i], nil
			}
		}
		got += n
		if n < chunk {
			return nil, errShort
		}
	}
	return nil, unix.ENAMETOOLONG
}
