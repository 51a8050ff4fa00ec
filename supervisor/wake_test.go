package supervisor

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sandlock/sandlock/internal/sys"
)

// TestSendWake checks how an answer is sent: synchronously when its
// notification woke the worker, with the flag cleared around it (and set
// again) when the worker found it already queued; plainly where the
// listener has no synchronous wake-up or SANDLOCK_SYNC_WAKE=always.
func TestSendWake(t *testing.T) {
	var calls []string
	setFlags = func(fd int, flags uint64) error {
		calls = append(calls, fmt.Sprintf("flags %d", flags))
		return nil
	}
	notifSend = func(fd int, r *sys.SeccompNotifResp) error {
		calls = append(calls, fmt.Sprintf("send %d", r.ID))
		return nil
	}
	defer func() { setFlags, notifSend, syncEveryAnswer = sys.NotifSetFlags, sys.NotifSend, false }()
	tests := []struct {
		name            string
		slept, syncWake bool
		always          bool
		last            int32 // the task of the previous answer (this one's is 100)
		want            []string
	}{
		{"woken by its notification", true, true, false, 99, []string{"send 7"}},
		{"found queued", false, true, false, 99, []string{"flags 0", "send 7", "flags 1"}},
		// One task notifying in a loop, moved to the other CPU meanwhile:
		// pulled back (answered otherwise, it and the worker ping-ponged
		// across CPUs: a notified mmap in a loop 11% slower).
		{"found queued, from the task just answered", false, true, false, 100, []string{"send 7"}},
		{"no synchronous wake-up on the listener", false, false, false, 99, []string{"send 7"}},
		{"SANDLOCK_SYNC_WAKE=always", false, true, true, 99, []string{"send 7"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls = nil
			syncEveryAnswer = tc.always
			w := &worker{s: &Supervisor{syncWake: tc.syncWake}, slept: tc.slept, lastTid: tc.last, resp: sys.SeccompNotifResp{ID: 7}}
			w.n.Pid = 100
			w.send()
			if w.lastTid != 100 {
				t.Errorf("lastTid %d after answering task 100", w.lastTid)
			}
			if d := cmp.Diff(tc.want, calls); d != "" {
				t.Errorf("calls (-want +got):\n%s", d)
			}
		})
	}
}
