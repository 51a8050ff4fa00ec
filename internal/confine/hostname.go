package confine

import (
	"errors"
	"fmt"

	"github.com/sandlock/sandlock/internal/spawn"
	"golang.org/x/sys/unix"
)

// ProbeVirtualHostname reports whether sandlock can give a sandbox its
// hostname through namespaces here (it needs CAP_SYS_ADMIN, /etc/hostname
// and /proc): nil when it can, else the step that failed. It forks a child
// that makes them exactly as a sandbox's first process does, then fails
// its exec (of a directory) and exits.
func ProbeVirtualHostname() error {
	allow := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}
	ch, err := spawn.Prepare("/", []string{"sandlock-check"}, nil, &spawn.Attr{LandlockFD: -1, Files: []int{-1, -1, -1},
		NoNewPrivs: true, Filters: [][]unix.SockFilter{allow}, Hostname: "sandlock-check", HostFallback: allow})
	if err != nil {
		return err
	}
	if _, _, err := ch.Start(); err != nil && !errors.Is(err, unix.EACCES) {
		return fmt.Errorf("probe: %w", err)
	}
	return ch.HostNamespacesError()
}
