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
		want            []string
	}{
		{"woken by its notification", true, true, false, []string{"send 7"}},
		{"found queued", false, true, false, []string{"flags 0", "send 7", "flags 1"}},
		{"no synchronous wake-up on the listener", false, false, false, []string{"send 7"}},
		{"SANDLOCK_SYNC_WAKE=always", false, true, true, []string{"send 7"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls = nil
			syncEveryAnswer = tc.always
			w := &worker{s: &Supervisor{syncWake: tc.syncWake}, slept: tc.slept, resp: sys.SeccompNotifResp{ID: 7}}
			w.send()
			if d := cmp.Diff(tc.want, calls); d != "" {
				t.Errorf("calls (-want +got):\n%s", d)
			}
		})
	}
}
