package cli

import (
	"os"
	"strings"
	"testing"

	"berth/container"
	"berth/internal/testutil"
)

// TestIOWeightWithoutKernelSupport: io_weight on a kernel with no cgroup
// I/O weight (this host's v1 blkio has no blkio.weight since CFQ went)
// is refused at the start with why and what to do, not a bare "no such
// file"; where the kernel has one, the container runs.
func TestIOWeightWithoutKernelSupport(t *testing.T) {
	layout, err := container.DetectCgroups()
	if err != nil {
		t.Fatal(err)
	}
	if layout.Version != 1 {
		t.Skip("the host test is cgroup v1's: v2's root has no io.weight to look at")
	}
	weight := "/sys/fs/cgroup/blkio/blkio.weight"
	_, statErr := os.Stat(weight)
	status, _, stderr := berth(t, "run", "--io-weight", "100", testutil.BusyboxRootfs(t), "true")
	switch {
	case statErr == nil && status != 0:
		t.Errorf("with %s: status %d, %s", weight, status, stderr)
	case statErr != nil && (status != 125 || !strings.Contains(stderr, "io_weight: this kernel has no cgroup I/O weight") || !strings.Contains(stderr, "leave io_weight out")):
		t.Errorf("without %s: status %d, stderr %q; want 125 and why", weight, status, stderr)
	}
}
