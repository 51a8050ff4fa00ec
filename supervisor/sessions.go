package supervisor

import (
	"github.com/sandlock/sandlock/internal/sys"
	"golang.org/x/sys/unix"
)

// sigaction makes a SIGCHLD handler restartable (the filter sends only
// rt_sigaction(SIGCHLD, act != NULL)).
//
// A notified syscall waits for the supervisor interruptibly until the
// supervisor has received the notification (WAIT_KILLABLE_RECV makes the
// wait killable-only after that). A signal that lands in that window of a
// few microseconds ends the syscall with ERESTARTSYS, which the kernel turns
// into EINTR when the handler lacks SA_RESTART. For fork, which never fails
// with EINTR natively, that is the "Cannot fork" of dash pipelines, whose
// SIGCHLD handler has no SA_RESTART. With SA_RESTART the kernel restarts the
// syscall instead. SIGCHLD is where it matters (children exit all the time
// in a fork-heavy sandbox) and where it changes nothing else in practice:
// programs do not rely on SIGCHLD to interrupt a blocking read, and the calls
// they wait for SIGCHLD in (sigsuspend, poll, select, epoll_wait) are never
// restarted anyway.
//
// The flag is written into the caller's struct sigaction before the call
// goes on (CONTINUE). That decision is not a security one: another thread
// that rewrites the struct in between only takes the restart away from its
// own process.
func (w *worker) sigaction(p *proc) {
	addr := w.n.Data.Args[1]
	var b [16]byte // sa_handler, sa_flags: the first two words on x86_64 and aarch64
	if err := w.readMem(addr, b[:]); err != nil {
		return
	}
	handler := le64(b[0:])
	flags := le64(b[8:])
	if handler <= 1 || flags&sys.SaRestart != 0 { // SIG_DFL, SIG_IGN, or already restartable
		return
	}
	putLE64(b[8:], flags|sys.SaRestart)
	w.writeMem(addr+8, b[8:16])
}

func le64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func putLE64(b []byte, v uint64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (8 * i))
	}
}

// Signal sends sig to every registered live sandboxed process.
func (s *Supervisor) Signal(sig unix.Signal) {
	s.eachLive(func(p *proc) {
		if fd := p.pidfd.Load(); fd >= 0 {
			unix.PidfdSendSignal(int(fd), sig, nil, 0)
		}
	})
}

func (s *Supervisor) eachLive(f func(*proc)) {
	n := s.arena.n.Load()
	for i := uint32(0); i < n; i++ {
		p := s.arena.get(i)
		st := p.state.Load()
		if st&stLive == 0 || st&(stGone|stSelf) != 0 {
			continue
		}
		f(p)
	}
}

// Live returns the number of registered processes not yet reaped, and the
// forks still unresolved.
func (s *Supervisor) Live() (procs int, forks int) {
	n := s.arena.n.Load()
	for i := uint32(0); i < n; i++ {
		p := s.arena.get(i)
		st := p.state.Load()
		if st&stLive == 0 || st&stGone != 0 {
			continue
		}
		forks += int(p.nmarkers.Load() + p.overflow.Load())
		if st&stSelf == 0 {
			procs++
		}
	}
	return procs, forks
}
