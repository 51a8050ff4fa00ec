package confine

import (
	"errors"
	"fmt"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"github.com/sandlock/sandlock/internal/sys"
	"golang.org/x/sys/unix"
)

func closeFD(fd int) { unix.Close(fd) }

// PrepareThread does the part of the confinement that does not depend on
// the policy: it empties every capability set when the process has any (a
// root sandlock) and sets no_new_privs, on the calling thread only. It may
// run ahead of ConfineThread, while the policy is still being parsed. The
// caller must hold the thread (runtime.LockOSThread) and never release it.
func PrepareThread() error {
	if sys.HasAnyCap() {
		if err := sys.DropAllCapsThread(); err != nil {
			return fmt.Errorf("drop capabilities: %w", err)
		}
	}
	if _, _, e := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); e != 0 {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", e)
	}
	return nil
}

// ThreadSpec is what ConfineThread applies.
type ThreadSpec struct {
	// Prepared says PrepareThread already ran on this thread.
	Prepared bool
	// Ruleset is the Landlock ruleset to enforce; nil enforces none.
	Ruleset *Ruleset
	// Filters are the seccomp programs, installed in order; the first gets
	// the user-notification listener when Listener is set.
	Filters [][]unix.SockFilter
	// Listener asks for a user-notification listener fd.
	Listener bool
}

// Features reports which optional kernel features ConfineThread could use.
type Features struct {
	WaitKillableRecv bool // SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (5.19+)
	SyncWakeUp       bool // SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (6.6+)
}

// ConfineThread applies spec to the calling OS thread, in this order:
// capabilities and no_new_privs (PrepareThread, unless done), the main
// seccomp filter, then onListener with its listener fd (or -1), then
// Landlock and the stacked filters. The listener comes out as early as
// possible so that the supervisor's worker can be waking up while the rest
// is applied: the thread's first notified syscall, the fork of the
// command, needs it. Nothing between the first filter and the fork may make
// a notified syscall before onListener has returned.
func ConfineThread(spec ThreadSpec, onListener func(listener int) error) (feat Features, err error) {
	if !spec.Prepared {
		if err := PrepareThread(); err != nil {
			return feat, err
		}
	}
	if len(spec.Filters) == 0 || len(spec.Filters[0]) == 0 {
		return feat, errors.New("empty seccomp filter")
	}
	var flags uintptr
	if spec.Listener {
		flags = sys.FilterFlagNewListener | sys.FilterFlagWaitKillable
	}
	fd, err := sys.SeccompSetFilter(flags, spec.Filters[0])
	if err == unix.EINVAL && flags&sys.FilterFlagWaitKillable != 0 {
		// Kernels before 5.19 do not know WAIT_KILLABLE_RECV.
		flags &^= sys.FilterFlagWaitKillable
		fd, err = sys.SeccompSetFilter(flags, spec.Filters[0])
	}
	if err != nil {
		return feat, fmt.Errorf("seccomp(SET_MODE_FILTER): %w", err)
	}
	if !spec.Listener {
		fd = -1
	} else {
		feat.WaitKillableRecv = flags&sys.FilterFlagWaitKillable != 0
		// Kernels before 6.6 refuse SYNC_WAKE_UP; the supervisor still
		// works, each notification costing a cross-CPU wake-up.
		feat.SyncWakeUp = sys.NotifSetFlags(fd, sys.UserNotifFdSyncWakeUp) == nil
	}
	if onListener != nil {
		if err := onListener(fd); err != nil {
			return feat, err
		}
	}
	if spec.Ruleset != nil && spec.Ruleset.FD >= 0 {
		if err := ll.LandlockRestrictSelf(spec.Ruleset.FD, spec.Ruleset.Flags); err != nil {
			return feat, fmt.Errorf("landlock_restrict_self: %w", err)
		}
	}
	for _, f := range spec.Filters[1:] {
		if _, err := sys.SeccompSetFilter(0, f); err != nil {
			return feat, fmt.Errorf("seccomp(SET_MODE_FILTER), stacked filter: %w", err)
		}
	}
	return feat, nil
}
