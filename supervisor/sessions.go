package supervisor

import "golang.org/x/sys/unix"

// setsid: the caller becomes the leader of a new session and process group
// named by its pid. Recording it before the call runs means teardown (and
// the watchdog) can always reach the group.
func (w *worker) setsid(p *proc) {
	w.s.recordGroup(int(p.pid.Load()))
}

// setpgid(pid, pgid) moves a process to a group, a new one when pgid is 0.
func (w *worker) setpgid(p *proc) {
	a := &w.n.Data.Args
	target := int(int32(a[0]))
	if target == 0 {
		target = int(p.pid.Load())
	}
	g := int(int32(a[1]))
	if g == 0 {
		g = target
	}
	if g > 0 {
		w.s.recordGroup(g)
	}
}

func (s *Supervisor) recordGroup(g int) {
	s.groupsMu.Lock()
	seen := s.groups[g]
	s.groups[g] = true
	s.groupsMu.Unlock()
	if !seen && s.cfg.Events.ProcessGroup != nil {
		s.cfg.Events.ProcessGroup(g)
	}
}

// Groups returns every process group the sandbox made.
func (s *Supervisor) Groups() []int {
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	out := make([]int, 0, len(s.groups))
	for g := range s.groups {
		out = append(out, g)
	}
	return out
}

// doorbell answers ioctl(fd, Doorbell) from inside the sandbox as the kernel
// would for a bad descriptor; only sandlock's spawn thread rings it.
func (w *worker) doorbell(p *proc) {
	w.fail(unix.EBADF)
}

// Signal sends sig to every live sandboxed process and every process group
// the sandbox made.
func (s *Supervisor) Signal(sig unix.Signal) {
	for _, g := range s.Groups() {
		unix.Kill(-g, sig)
	}
	n := s.arena.n.Load()
	for i := uint32(0); i < n; i++ {
		p := s.arena.get(i)
		st := p.state.Load()
		if st&stLive == 0 || st&(stGone|stSelf) != 0 {
			continue
		}
		if fd := p.pidfd.Load(); fd >= 0 {
			unix.PidfdSendSignal(int(fd), sig, nil, 0)
		}
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
