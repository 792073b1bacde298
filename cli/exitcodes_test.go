package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/internal/testutil"
)

// TestExitCodes: the README's exit statuses of failures that need no
// running berth, exactly.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	rootfs := testutil.BusyboxRootfs(t)
	if err := os.WriteFile(filepath.Join(rootfs, "notexec"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "k")
	if status, _, stderr := run(t, "image", "keygen", "-o", key); status != 0 {
		t.Fatalf("keygen: %d %s", status, stderr)
	}
	t.Setenv("BERTH_SOCKET", filepath.Join(dir, "none.sock"))
	tests := []struct {
		args   []string
		status int
		stderr string
	}{
		{[]string{"run", rootfs, "--", "/notexec"}, 126, ""},
		{[]string{"run", rootfs, "--", "/no-such-command"}, 127, ""},
		{[]string{"image", "pack", filepath.Join(dir, "missing"), "-o", filepath.Join(dir, "out.tar.zst")}, 1, "missing"},
		{[]string{"image", "digest", filepath.Join(dir, "missing")}, 1, "missing"},
		{[]string{"image", "keygen", "-o", key}, 1, "k.key"},
		{[]string{"image", "sign", "--key", filepath.Join(dir, "nokey.key"), filepath.Join(dir, "missing")}, 1, ""},
		{[]string{"status"}, 1, "none.sock"},
		{[]string{"logs", "web"}, 1, "none.sock"},
		{[]string{"start", "web"}, 1, "none.sock"},
		{[]string{"restart", "web"}, 1, "none.sock"},
		{[]string{"reboot"}, 1, "none.sock"},
		{[]string{"poweroff"}, 1, "none.sock"},
		{[]string{"rollback"}, 1, "none.sock"},
		{[]string{"reload"}, 1, "none.sock"},
	}
	for _, tc := range tests {
		status, _, stderr := run(t, tc.args...)
		if status != tc.status || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("berth %s: status %d, stderr %q; want %d and %q", strings.Join(tc.args, " "), status, stderr, tc.status, tc.stderr)
		}
	}
}
