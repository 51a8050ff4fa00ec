package confine

import (
	"runtime"

	"github.com/sandlock/sandlock/bpfprog"
	"github.com/sandlock/sandlock/internal/sys"
	"github.com/sandlock/sandlock/ring"
	"golang.org/x/sys/unix"
)

// Report is what `sandlock check` prints.
type Report struct {
	LandlockABI      int
	Protections      []ProtectionStatus
	SeccompFilter    bool
	UserNotif        bool
	WaitKillableRecv bool
	SyncWakeUp       bool
	IOUring          error
	Pidfd            error
	Arch             string
	ArchSupported    bool
}

// ProtectionStatus is one protection and whether the kernel has it.
type ProtectionStatus struct {
	ProtectionInfo
	Available bool
}

// OK reports whether this build can run sandboxes here with every
// protection (the strict default).
func (r Report) OK() bool {
	return r.LandlockABI >= MinRequiredABI && r.UserNotif && r.SeccompFilter && r.ArchSupported && r.Pidfd == nil && r.IOUring == nil
}

// Probe asks the kernel what it supports. It installs a throwaway filter on
// a thread that then exits, to learn which listener flags work.
func Probe() Report {
	r := Report{LandlockABI: LandlockABI(), Arch: runtime.GOARCH}
	for _, p := range Protections {
		r.Protections = append(r.Protections, ProtectionStatus{p, r.LandlockABI >= p.MinABI})
	}
	if a, err := bpfprog.Native(); err == nil {
		r.Arch, r.ArchSupported = a.Name, true
	}
	r.UserNotif = sys.SeccompActionAvail(sys.RetUserNotif)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with its filter
		if _, _, e := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); e != 0 {
			return
		}
		allow := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: uint32(bpfprog.ActAllow)}}
		fd, err := sys.SeccompSetFilter(sys.FilterFlagNewListener|sys.FilterFlagWaitKillable, allow)
		if err == nil {
			r.WaitKillableRecv = true
		} else {
			fd, err = sys.SeccompSetFilter(sys.FilterFlagNewListener, allow)
		}
		if err != nil {
			_, err = sys.SeccompSetFilter(0, allow)
			r.SeccompFilter = err == nil
			return
		}
		r.SeccompFilter = true
		r.SyncWakeUp = sys.NotifSetFlags(fd, sys.UserNotifFdSyncWakeUp) == nil
		unix.Close(fd)
	}()
	<-done
	if rg, err := ring.New(ring.Options{Entries: 2}); err != nil {
		r.IOUring = err
	} else {
		rg.Close()
	}
	if fd, err := unix.PidfdOpen(unix.Getpid(), 0); err != nil {
		r.Pidfd = err
	} else {
		unix.Close(fd)
	}
	return r
}
