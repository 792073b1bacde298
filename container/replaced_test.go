package container

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"berth/internal/testutil"
)

// TestBindSourceReplaced replaces a file bind's source by rename, as a
// DHCP client replaces resolv.conf, after the start has opened it and
// before its init mounts it: the kernel then refuses the mount, and Start
// must start again with the source opened anew, the workload seeing the
// new file. Replaced at every attempt, the start fails and says why. A
// writable bind's CheckSource (berth boot's check of its own trees) is
// given the source each attempt opened.
func TestBindSourceReplaced(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	userns := &UserNS{UIDMap: []IDMap{{0, 100000, 65536}}, GIDMap: []IDMap{{0, 100000, 65536}}}
	for _, tc := range []struct {
		name     string
		userNS   *UserNS
		writable bool
	}{{"direct", nil, false}, {"user namespace", userns, false}, {"writable, checked", nil, true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "resolv.conf")
			write := func(content string) {
				t.Helper()
				if err := os.WriteFile(src+".new", []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(src+".new", src); err != nil {
					t.Fatal(err)
				}
			}
			write("nameserver 192.0.2.1\n")
			spec := Spec{UserNS: tc.userNS, Args: []string{"cat", "/etc/resolv.conf"},
				Mounts: []Mount{{Source: src, Target: "/etc/resolv.conf", Readonly: !tc.writable}}}
			var checked []string // the content of each source checked
			if tc.writable {
				spec.Mounts[0].CheckSource = func(h *os.File) error {
					b, err := os.ReadFile("/proc/self/fd/" + strconv.Itoa(int(h.Fd())))
					checked = append(checked, string(b))
					return err
				}
			}

			starts := 0
			afterHostMounts = func() {
				if starts++; starts == 1 {
					write("nameserver 192.0.2.2\n")
				}
			}
			defer func() { afterHostMounts = nil }()
			exit, out, err := run(t, rootfs, spec)
			if err != nil {
				t.Fatalf("start with the source replaced once: %v", err)
			}
			if exit.Status() != 0 || !containsLine(out, "nameserver 192.0.2.2") || starts != 2 {
				t.Errorf("%d starts, %s, output %q; want 2 starts and the new file", starts, exit, out)
			}
			if want := []string{"nameserver 192.0.2.1\n", "nameserver 192.0.2.2\n"}; tc.writable && !slices.Equal(checked, want) {
				t.Errorf("sources checked: %q, want %q", checked, want)
			}

			starts = 0
			afterHostMounts = func() { starts++; write("nameserver 192.0.2.3\n") }
			_, _, err = run(t, rootfs, spec)
			if !errors.Is(err, errSourceReplaced) || !strings.Contains(err.Error(), "bind mount source "+src+" was removed or replaced") {
				t.Errorf("start with the source replaced every time: %v", err)
			}
			if starts != startAttempts {
				t.Errorf("%d starts, want %d", starts, startAttempts)
			}
		})
	}
}
