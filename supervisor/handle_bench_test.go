package supervisor

import (
	"os"
	"testing"
	"unsafe"

	"github.com/sandlock/sandlock/bpfprog"
	"golang.org/x/sys/unix"
)

// The hot path, measured: one notification handled from the moment it is
// received to the reply, with -benchmem showing what it allocates (nothing).
// The notifications are synthetic, from this process about itself (reading
// its own memory is what process_vm_readv does for a sandboxed one); the
// reply goes to a closed listener, so the send fails at once.

func benchWorker(b *testing.B, mem int64) (*Supervisor, *worker) {
	arch, err := bpfprog.Native()
	if err != nil {
		b.Skip(err)
	}
	s, err := New(Config{Arch: arch, MaxProcesses: 64, MaxMemory: mem, Hostname: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	s.listener = -1
	b.Cleanup(s.Stop)
	w := s.newWorker(0)
	self := int32(os.Getpid())
	if p := w.register(self, int32(os.Getppid()), nil, 0); p == nil {
		b.Skip("cannot register this process (pidfd_open)")
	}
	w.n.Pid = uint32(self)
	return s, w
}

func nr(b *testing.B, s *Supervisor, name string) uint64 {
	n, ok := s.cfg.Arch.Nr(name)
	if !ok {
		b.Skipf("no %s on %s", name, s.cfg.Arch.Name)
	}
	return uint64(n)
}

// BenchmarkHandleOpen is the commonest notification: an open of anything
// but /etc/hostname, whose path is read from the process and let through.
func BenchmarkHandleOpen(b *testing.B) {
	s, w := benchWorker(b, 0)
	path := []byte("/usr/lib/x86_64-linux-gnu/libc.so.6\x00")
	w.n.Data.Nr = int32(nr(b, s, "openat"))
	w.n.Data.Args = [6]uint64{uint64(atFDCWD), uint64(uintptr(unsafe.Pointer(&path[0]))), unix.O_RDONLY | unix.O_CLOEXEC}
	b.ReportAllocs()
	for b.Loop() {
		w.handle()
	}
}

// BenchmarkHandleMmap charges an anonymous writable mapping to the ledger.
func BenchmarkHandleMmap(b *testing.B) {
	s, w := benchWorker(b, 1<<50)
	w.n.Data.Nr = int32(nr(b, s, "mmap"))
	w.n.Data.Args = [6]uint64{0, 1 << 16, unix.PROT_READ | unix.PROT_WRITE, unix.MAP_PRIVATE | unix.MAP_ANONYMOUS, ^uint64(0), 0}
	b.ReportAllocs()
	for b.Loop() {
		w.handle()
	}
}

// BenchmarkHandleUname answers uname on the process's behalf (a write into
// its memory).
func BenchmarkHandleUname(b *testing.B) {
	s, w := benchWorker(b, 0)
	var uts unix.Utsname
	w.n.Data.Nr = int32(nr(b, s, "uname"))
	w.n.Data.Args = [6]uint64{uint64(uintptr(unsafe.Pointer(&uts)))}
	b.ReportAllocs()
	for b.Loop() {
		w.handle()
	}
}

// BenchmarkHandleSigaction makes a SIGCHLD handler restartable (a read and
// a write of the process's struct sigaction).
func BenchmarkHandleSigaction(b *testing.B) {
	s, w := benchWorker(b, 0)
	var act [32]byte
	act[0] = 1 // a handler address other than SIG_DFL/SIG_IGN
	w.n.Data.Nr = int32(nr(b, s, "rt_sigaction"))
	w.n.Data.Args = [6]uint64{uint64(unix.SIGCHLD), uint64(uintptr(unsafe.Pointer(&act[0]))), 0, 8}
	b.ReportAllocs()
	for b.Loop() {
		w.handle()
	}
}

// BenchmarkHandleBrk charges a growth of the program break: the break's
// start comes from /proc/<pid>/stat, through the descriptor the record
// keeps open.
func BenchmarkHandleBrk(b *testing.B) {
	s, w := benchWorker(b, 1<<50)
	cur, _, _ := unix.RawSyscall(unix.SYS_BRK, 0, 0, 0)
	w.n.Data.Nr = int32(nr(b, s, "brk"))
	w.n.Data.Args = [6]uint64{uint64(cur) + 1<<16}
	b.ReportAllocs()
	for b.Loop() {
		w.handle()
	}
}
