package cli

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestImageFIFO names a FIFO as the image of each verb that reads one:
// each fails at once with "not a regular file (a FIFO)" (they once
// blocked in open, waiting for a writer that never came).
func TestImageFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "ff")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	verbs := [][]string{
		{"image", "ls", fifo},
		{"image", "cat", fifo, "etc/hostname"},
		{"image", "digest", fifo},
		{"image", "unpack", fifo, filepath.Join(dir, "out")},
		{"image", "pack", fifo, "-o", filepath.Join(dir, "out.tar.zst")},
	}
	if os.Geteuid() == 0 {
		verbs = append(verbs, []string{"run", fifo, "--", "true"})
	}
	for _, args := range verbs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := exec.CommandContext(ctx, berthBin, args...)
		out, err := cmd.CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		var ee *exec.ExitError
		switch {
		case timedOut:
			t.Errorf("berth %v: still running after 10s", args)
		case !errors.As(err, &ee) || ee.ExitCode() == 0:
			t.Errorf("berth %v: %v, want it to fail: %s", args, err, out)
		case !strings.Contains(string(out), "map "+fifo+": not a regular file (a FIFO)"):
			t.Errorf("berth %v: status %d, output %q", args, ee.ExitCode(), out)
		}
	}
}
