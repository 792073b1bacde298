// Package testutil builds the fixtures berth's tests run containers in: a
// busybox root filesystem for the host's architecture, from the Debian
// busybox-static package that the Makefile fetches into .cache.
package testutil

import (
	"path/filepath"
	"runtime"
	"testing"

	"berth/internal/busybox"
)

// RepoRoot is the top of the berth checkout.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BusyboxRootfs builds a minimal busybox root filesystem for the host's
// architecture in a new temporary directory.
func BusyboxRootfs(t testing.TB) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := busybox.Rootfs(RepoRoot(), runtime.GOARCH, root, nil); err != nil {
		t.Fatal(err)
	}
	return root
}
