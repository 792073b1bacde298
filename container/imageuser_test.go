package container

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// TestLookupUser resolves docker's user forms through an image's
// /etc/passwd and /etc/group.
func TestLookupUser(t *testing.T) {
	root := t.TempDir()
	writeIDFiles(t, root,
		"root:x:0:0:root:/root:/bin/sh\nbroken line\nbad:x:notanumber:1::/:/bin/sh\nwww:x:33:34::/var/www:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n",
		"root:x:0:\nwww:x:34:\nstaff:x:50:app,www\nvideo:x:44:app\napp:x:1000:\n")
	cases := []struct {
		spec string
		want User
		err  string
	}{
		{"app", User{UID: 1000, GID: 1000, Groups: []uint32{50, 44}}, ""},
		{"www", User{UID: 33, GID: 34, Groups: []uint32{50}}, ""},
		{"1000", User{UID: 1000, GID: 1000, Groups: []uint32{50, 44}}, ""},
		{"4242", User{UID: 4242, GID: 0}, ""},
		{"app:staff", User{UID: 1000, GID: 50}, ""},
		{"app:7", User{UID: 1000, GID: 7}, ""},
		{"4242:video", User{UID: 4242, GID: 44}, ""},
		{"nobody", User{}, `no user "nobody" in the image's /etc/passwd`},
		{"bad", User{}, `no user "bad" in the image's /etc/passwd`},
		{"app:nogroup", User{}, `no group "nogroup" in the image's /etc/group`},
		{"app:", User{}, "want USER[:GROUP]"},
		{"", User{}, "want USER[:GROUP]"},
		// "unchanged" to setresuid: not a number here, and a passwd
		// line giving it is left to Spec.Validate (TestValidate).
		{"4294967295", User{}, `no user "4294967295" in the image's /etc/passwd`},
	}
	for _, c := range cases {
		t.Run(c.spec, func(t *testing.T) {
			got, err := LookupUser(root, c.spec)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

// TestLookupUserHostile checks that an image's /etc/passwd cannot lead
// the lookup out of the root (a symlink to the host's file resolves
// inside the image), block it (a FIFO), open a device, or make it read
// without limit; and that a numeric user needs no /etc/passwd.
func TestLookupUserHostile(t *testing.T) {
	cases := []struct {
		name, spec string
		setup      func(t *testing.T, root string)
		want       User
		err        string
	}{
		{"symlink to the host's passwd", "root", func(t *testing.T, root string) {
			mustSymlink(t, "/etc/hostname", filepath.Join(root, "etc/passwd"))
		}, User{}, "no such file or directory"},
		{"relative symlink climbing out", "root", func(t *testing.T, root string) {
			mustSymlink(t, "../../../../../../../../etc/hostname", filepath.Join(root, "etc/passwd"))
		}, User{}, "no such file or directory"},
		{"symlink inside the image", "app", func(t *testing.T, root string) {
			if err := os.WriteFile(filepath.Join(root, "etc/real"), []byte("app:x:7:8::/:/bin/sh\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, "/etc/real", filepath.Join(root, "etc/passwd"))
		}, User{UID: 7, GID: 8}, ""},
		{"a FIFO", "app", func(t *testing.T, root string) {
			if err := syscall.Mkfifo(filepath.Join(root, "etc/passwd"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, User{}, "/etc/passwd is not a regular file"},
		{"a device", "app", func(t *testing.T, root string) {
			if err := syscall.Mknod(filepath.Join(root, "etc/passwd"), syscall.S_IFCHR|0o644, 1<<8|5); err != nil { // /dev/zero
				t.Skipf("mknod: %v", err)
			}
		}, User{}, "/etc/passwd is not a regular file"},
		{"over the size limit", "app", func(t *testing.T, root string) {
			if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte(strings.Repeat("#\n", maxIDFile)), 0o644); err != nil {
				t.Fatal(err)
			}
		}, User{}, "over the limit of 1048576 bytes"},
		{"numeric without /etc/passwd", "5:6", func(t *testing.T, root string) {}, User{UID: 5, GID: 6}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			c.setup(t, root)
			got, err := LookupUser(root, c.spec)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func writeIDFiles(t *testing.T, root, passwd, group string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"passwd": passwd, "group": group} {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
