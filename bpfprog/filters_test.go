package bpfprog

import (
	"math/rand"
	"testing"

	"github.com/sandlock/sandlock/internal/bpftest"
)

// TestFiltersMatchPolicy installs (in the interpreter) what Filters returns
// — the prebuilt program plus the stacked deny filter for extra syscalls —
// and checks the stacked verdict of every syscall against DefaultPolicy for
// the same options.
func TestFiltersMatchPolicy(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for _, arch := range Arches {
		names := arch.Names()
		for _, base := range PrebuiltOptions() {
			for trial := 0; trial < 4; trial++ {
				o := base
				o.ExtraDeny = nil
				for i := rng.Intn(12); i > 0; i-- {
					o.ExtraDeny = append(o.ExtraDeny, names[rng.Intn(len(names))])
				}
				filters, err := Filters(arch, o)
				if err != nil {
					t.Fatal(err)
				}
				if len(o.ExtraDeny) > 0 != (len(filters) == 2) {
					t.Fatalf("%d filters for %d extra syscalls", len(filters), len(o.ExtraDeny))
				}
				var vms []*bpftest.VM
				for _, f := range filters {
					vm, err := bpftest.New(f)
					if err != nil {
						t.Fatal(err)
					}
					vms = append(vms, vm)
				}
				pol, err := DefaultPolicy(arch, o)
				if err != nil {
					t.Fatal(err)
				}
				for nr := uint32(0); nr <= uint32(arch.MaxNr())+4; nr++ {
					for _, args := range [][6]uint64{{}, {1 << 32, 0x5412, 3, 0x22, 0, 0}, {0x10000, 2, 2, 2, 2, 2}} {
						data := bpftest.SeccompData(arch.AuditArch, nr, args)
						var got []uint32
						for _, vm := range vms {
							v, err := vm.Run(data)
							if err != nil {
								t.Fatal(err)
							}
							got = append(got, v)
						}
						if v, want := Action(bpftest.Stack(got...)), pol.Eval(arch.AuditArch, nr, args); v != want {
							t.Fatalf("%s %+v: %s(%#x) = %s, want %s", arch, o, arch.SyscallName(int(nr)), args, v, want)
						}
					}
				}
			}
		}
	}
}
