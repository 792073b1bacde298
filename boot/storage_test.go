package boot

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/board"
	"berth/container"
)

// TestOpenVolume: a volume is made on first use, owned by the given ids,
// mode 0755, with nothing left of its making; an existing one keeps its
// owner and content; an empty .new-NAME left by a power cut is replaced;
// what is not a directory berth made under the volume's name — a symlink
// a hostile writer planted, a file — is refused and never followed.
func TestOpenVolume(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir, outside string)
		wantErr string
		// wantUID is the owner the volume must have: 1000 when it was
		// made now, 0 when it was there already.
		wantUID int
	}{
		{"made on first use", func(*testing.T, string, string) {}, "", 1000},
		{"existing volume kept", func(t *testing.T, dir, _ string) {
			mustMkdir(t, filepath.Join(dir, "v"), 0o700)
			mustWrite(t, filepath.Join(dir, "v", "data"), "kept")
		}, "", 0},
		{"leftover of a power cut", func(t *testing.T, dir, _ string) {
			mustMkdir(t, filepath.Join(dir, ".new-v"), 0o700)
		}, "", 1000},
		{"symlink planted at the name", func(t *testing.T, dir, outside string) {
			mustSymlink(t, outside, filepath.Join(dir, "v"))
		}, "refusing it", 0},
		{"dangling symlink at the name", func(t *testing.T, dir, outside string) {
			mustSymlink(t, filepath.Join(outside, "missing"), filepath.Join(dir, "v"))
		}, "refusing it", 0},
		{"file at the name", func(t *testing.T, dir, _ string) {
			mustWrite(t, filepath.Join(dir, "v"), "")
		}, "refusing it", 0},
		{"symlink planted at the temporary name", func(t *testing.T, dir, outside string) {
			mustSymlink(t, outside, filepath.Join(dir, ".new-v"))
		}, "remove .new-v", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, outside := t.TempDir(), t.TempDir()
			tc.setup(t, dir, outside)
			h, err := openVolume(dir, "v", 1000, 1001)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("openVolume: %v, want an error with %q", err, tc.wantErr)
				}
				if ents, _ := os.ReadDir(outside); len(ents) != 0 {
					t.Errorf("something was made outside the volumes: %v", ents)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			var st unix.Stat_t
			if err := unix.Fstat(int(h.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			var want unix.Stat_t
			if err := unix.Lstat(filepath.Join(dir, "v"), &want); err != nil {
				t.Fatal(err)
			}
			if st.Ino != want.Ino || st.Mode&unix.S_IFMT != unix.S_IFDIR {
				t.Errorf("the handle is not the directory %s/v", dir)
			}
			if tc.wantUID == 1000 && (st.Uid != 1000 || st.Gid != 1001 || st.Mode&0o7777 != 0o755) {
				t.Errorf("new volume: owner %d:%d mode %o, want 1000:1001 755", st.Uid, st.Gid, st.Mode&0o7777)
			}
			if tc.wantUID == 0 && (st.Uid != 0 || st.Mode&0o7777 != 0o700) {
				t.Errorf("existing volume changed: owner %d mode %o", st.Uid, st.Mode&0o7777)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 || ents[0].Name() != "v" {
				t.Errorf("volumes directory holds %v, want only v", ents)
			}
		})
	}
}

// TestEnsureDirs: berth's directories on the data partition are made
// 0700; a symlink under one of their names is refused, not followed.
func TestEnsureDirs(t *testing.T) {
	mount := t.TempDir()
	if err := ensureDirs(mount, "berth", "volumes"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"berth", "volumes"} {
		fi, err := os.Lstat(filepath.Join(mount, n))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want a directory 0700", n, fi.Mode(), err)
		}
	}
	if err := ensureDirs(mount, "berth", "volumes"); err != nil {
		t.Errorf("again: %v", err)
	}
	planted, outside := t.TempDir(), t.TempDir()
	mustSymlink(t, outside, filepath.Join(planted, "berth"))
	err := ensureDirs(planted, "berth")
	if err == nil || !strings.Contains(err.Error(), "refusing it") {
		t.Errorf("a symlink at berth: %v, want it refused", err)
	}
}

// TestHostIDs: a volume is owned by the container's user as the host
// sees it: itself, or what its user namespace maps it to.
func TestHostIDs(t *testing.T) {
	ns := &container.UserNS{
		UIDMap: []container.IDMap{{Container: 0, Host: 100000, Size: 1000}, {Container: 1000, Host: 200000, Size: 10}},
		GIDMap: []container.IDMap{{Container: 0, Host: 300000, Size: 65536}},
	}
	tests := []struct {
		name     string
		user     container.User
		ns       *container.UserNS
		uid, gid int
	}{
		{"root, no user namespace", container.User{}, nil, 0, 0},
		{"user, no user namespace", container.User{UID: 1000, GID: 1000}, nil, 1000, 1000},
		{"root of a user namespace", container.User{}, ns, 100000, 300000},
		{"user of a user namespace", container.User{UID: 1005, GID: 5}, ns, 200005, 300005},
	}
	for _, tc := range tests {
		uid, gid := hostIDs(container.Spec{User: tc.user, UserNS: tc.ns})
		if uid != tc.uid || gid != tc.gid {
			t.Errorf("%s: %d:%d, want %d:%d", tc.name, uid, gid, tc.uid, tc.gid)
		}
	}
}

func mustMkdir(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(p, mode); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestStorageHungDevice: a device whose probe never returns (its reads
// hang in the kernel) holds the boot for [storage] timeout and the
// mount's grace, no longer: the boot goes on without the partition, and
// says why.
func TestStorageHungDevice(t *testing.T) {
	hung, returned := make(chan struct{}), make(chan struct{})
	oldWait, oldGrace := waitDevice, storageMountGrace
	waitDevice = func(string, time.Duration) (board.BlockDevice, []string, error) {
		<-hung
		defer close(returned)
		return board.BlockDevice{Path: "/dev/late"}, nil, nil
	}
	storageMountGrace = 100 * time.Millisecond
	defer func() { waitDevice, storageMountGrace = oldWait, oldGrace }()
	console := &lockedBuffer{}
	b := &booter{log: NewLogger(console), fatal: make(chan error, 1), opts: Options{PID1: true, StateDir: t.TempDir()}}
	mount := filepath.Join(t.TempDir(), "data")
	b.cfg = &Config{Storage: &StorageConfig{Device: "LABEL=data", Timeout: "200ms", Mount: mount}}
	done := make(chan error, 1)
	go func() { done <- b.setupStorage() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a hang guard
		t.Fatal("the storage phase waited on a hung device for 30 s")
	}
	if st := b.storage; st.mounted || st.err == nil || !strings.Contains(st.err.Error(), "no answer from the device within 200ms and 100ms to mount it: its reads hang") {
		t.Errorf("storage after a hung device: mounted %v, %v", st.mounted, st.err)
	}
	// The device answers at last: the boot has gone on, nothing is
	// mounted where it may have put things meanwhile.
	close(hung)
	<-returned
	time.Sleep(200 * time.Millisecond)
	if _, err := os.Lstat(mount); !os.IsNotExist(err) {
		t.Errorf("the mount point after a late answer: %v, want nothing made", err)
	}
	b.log.Flush(5 * time.Second)
	if !strings.Contains(console.String(), "WARNING: storage LABEL=data: no answer from the device") || strings.Contains(console.String(), "found after") {
		t.Errorf("log:\n%s", console.String())
	}
}

// TestStorageLateMount: a partition whose mount was made when the boot
// had already gone on without it is not attached: nothing hides what
// the boot put under the mount point meanwhile. One in time is mounted,
// with berth's directories made on it before it shows.
func TestStorageLateMount(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounts a loop device")
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 16<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v %s", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", loop).Run()
	oldWait, oldGrace := waitDevice, storageMountGrace
	waitDevice = func(string, time.Duration) (board.BlockDevice, []string, error) {
		return board.BlockDevice{Path: loop}, nil, nil
	}
	defer func() { waitDevice, storageMountGrace, beforeAttach = oldWait, oldGrace, nil }()
	for _, late := range []bool{true, false} {
		// The late pass is held past its short timeout; the pass in time
		// has minutes (it returns once mounted), not 200 ms in which a
		// loaded machine could not mount ext4 (flaky-test audit).
		timeout := "100ms"
		storageMountGrace = 100 * time.Millisecond
		if !late {
			timeout, storageMountGrace = "5m", 5*time.Minute
		}
		hold := make(chan struct{})
		beforeAttach = func() {
			if late {
				<-hold // until the boot has gone on
			}
		}
		console := &lockedBuffer{}
		mount := filepath.Join(t.TempDir(), "data")
		b := &booter{log: NewLogger(console), fatal: make(chan error, 1), opts: Options{PID1: true, StateDir: t.TempDir()}}
		b.cfg = &Config{Storage: &StorageConfig{Device: "LABEL=data", Timeout: timeout, Mount: mount}}
		if err := b.setupStorage(); err != nil {
			t.Fatal(err)
		}
		if late {
			close(hold)
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(console.String(), "answered after the boot went on without it: not mounted"); time.Sleep(10 * time.Millisecond) {
				b.log.Flush(time.Second)
				if time.Now().After(deadline) {
					t.Fatalf("the late mount is not dropped; log:\n%s", console.String())
				}
			}
			if b.storage.mounted || mountRoot(unix.AT_FDCWD, mount) {
				t.Errorf("a late mount: mounted %v, mount point a mount: %v", b.storage.mounted, mountRoot(unix.AT_FDCWD, mount))
			}
			continue
		}
		if !b.storage.mounted || !mountRoot(unix.AT_FDCWD, mount) {
			t.Fatalf("in time: mounted %v, %v", b.storage.mounted, b.storage.err)
		}
		for _, d := range []string{stateSubdir, volumesSubdir} {
			if fi, err := os.Lstat(filepath.Join(mount, d)); err != nil || !fi.IsDir() {
				t.Errorf("%s on the partition: %v", d, err)
			}
		}
		unix.Unmount(mount, unix.MNT_DETACH)
	}
}
