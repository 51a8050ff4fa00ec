package supervisor

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Allocation-free /proc access for the hot path: paths are built in the
// worker's scratch buffer and opened with raw openat.

// procPath writes "/proc/<a>[/task/<b>]/<leaf>\x00" into w.path.
func (w *worker) procPath(a int32, b int32, leaf string) *byte {
	p := w.path[:0]
	p = append(p, "/proc/"...)
	p = appendInt(p, int64(a))
	if b != 0 {
		p = append(p, "/task/"...)
		p = appendInt(p, int64(b))
	}
	p = append(p, '/')
	p = append(p, leaf...)
	_ = append(p, 0) // within w.path: the longest path is far below its size
	return &w.path[0]
}

func appendInt(b []byte, v int64) []byte {
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

func openRaw(path *byte, flags int) (int, error) {
	fd, _, e := unix.Syscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(path)), uintptr(flags|unix.O_CLOEXEC), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

func preadRaw(fd int, b []byte) (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_PREAD64, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// readProc reads /proc/<a>[/task/<b>]/<leaf> into w.buf.
func (w *worker) readProc(a, b int32, leaf string) ([]byte, error) {
	fd, err := openRaw(w.procPath(a, b, leaf), unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	n, err := preadRaw(fd, w.buf[:])
	unix.Close(fd)
	if err != nil {
		return nil, err
	}
	return w.buf[:n], nil
}

// readCached reads up to max bytes of /proc/<pid>[/task/<tid>]/<leaf> of p
// into w.buf through the descriptor cached in fd, opening it the first
// time: a second read costs a pread, without the path walk (or the new
// dentries of a young process) of an open. The file follows the process
// across its execs. A descriptor opened while p was being finalized is
// closed again: it must not outlive the record.
func (w *worker) readCached(p *proc, fd *atomic.Int32, tid int32, leaf string, max int) ([]byte, error) {
	f := fd.Load()
	if f < 0 {
		gen := p.gen.Load()
		nfd, err := openRaw(w.procPath(p.pid.Load(), tid, leaf), unix.O_RDONLY)
		if err != nil {
			return nil, err
		}
		if !fd.CompareAndSwap(-1, int32(nfd)) {
			unix.Close(nfd)
		}
		if p.gen.Load() != gen || p.has(stGone) || !p.has(stLive) {
			closeIf(fd)
			return nil, unix.ESRCH
		}
		f = fd.Load()
	}
	n, err := preadRaw(int(f), w.buf[:max])
	if err != nil {
		return nil, err
	}
	return w.buf[:n], nil
}

// field returns the decimal value after "<key>:" in a /proc status text.
func field(text []byte, key string) (int64, bool) {
	for i := 0; i+len(key) < len(text); {
		if (i == 0 || text[i-1] == '\n') && string(text[i:i+len(key)]) == key && text[i+len(key)] == ':' {
			j := i + len(key) + 1
			for j < len(text) && (text[j] == ' ' || text[j] == '\t') {
				j++
			}
			v, _, ok := parseInt(text[j:])
			return v, ok
		}
		// next line
		for i < len(text) && text[i] != '\n' {
			i++
		}
		i++
	}
	return 0, false
}

// parseInt reads a non-negative decimal at the start of b.
func parseInt(b []byte) (v int64, n int, ok bool) {
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + int64(b[n]-'0')
		n++
	}
	return v, n, n > 0
}

// eachInt calls f for every decimal number in b (a space-separated list such
// as /proc/<pid>/task/<tid>/children).
func eachInt(b []byte, f func(int64)) {
	for i := 0; i < len(b); {
		if b[i] < '0' || b[i] > '9' {
			i++
			continue
		}
		v, n, _ := parseInt(b[i:])
		f(v)
		i += n
	}
}

// statField returns field k (1-based, as in proc(5)) of /proc/<pid>/stat
// text, skipping the parenthesised command name.
func statField(text []byte, k int) (int64, bool) {
	end := -1
	for i := len(text) - 1; i >= 0; i-- {
		if text[i] == ')' {
			end = i
			break
		}
	}
	if end < 0 {
		return 0, false
	}
	f := 2 // text[end] closes field 2
	for i := end + 1; i < len(text); i++ {
		if text[i] == ' ' {
			f++
			if f == k {
				v, _, ok := parseInt(text[i+1:])
				return v, ok
			}
		}
	}
	return 0, false
}

// atFDCWD is AT_FDCWD (-100) as a syscall argument.
const atFDCWD = ^uintptr(99)
