package vm

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"berth/appliance"
	"berth/board"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// TestFetchedArches finds, for each architecture, the kernel berth vm
// boots by default and, with its modules directory, the overlay module:
// Debian 13's riscv64 package has a vmlinux and .ko.xz modules under
// usr/lib/modules.
func TestFetchedArches(t *testing.T) {
	for _, arch := range appliance.ArchNames {
		t.Run(arch, func(t *testing.T) {
			k, err := appliance.Kernel(repoRoot(), arch)
			if err != nil {
				t.Fatal(err)
			}
			dir, err := appliance.KernelModules(k)
			if err != nil {
				t.Fatal(err)
			}
			set, err := board.OpenModuleSet(dir, arch)
			if err != nil {
				t.Fatal(err)
			}
			if err := set.Add("overlay"); err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(k, "-"+set.Release()) {
				t.Errorf("kernel %s, modules for %s", k, set.Release())
			}
		})
	}
}
