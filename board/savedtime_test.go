package board

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestSavedTimeRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "berth")
	if _, err := LoadTime(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("nothing saved yet: %v", err)
	}
	want := time.Date(2026, 11, 30, 8, 1, 2, 345678901, time.FixedZone("X", 7200))
	if err := SaveTime(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := LoadTime(dir)
	if err != nil || !got.Equal(want) {
		t.Fatalf("saved %v, loaded %v, %v", want, got, err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, SavedTimeFile))
	if string(data) != "2026-11-30T06:01:02.345678901Z\n" {
		t.Errorf("file holds %q", data)
	}
	for p, mode := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, filepath.Join(dir, SavedTimeFile): 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), mode)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want the saved time alone", len(entries))
	}
}

// TestSavedTimeHostile: a file berth did not write — too large, garbage,
// several lines, out of range, a symlink, a FIFO, a directory — is
// refused with an error that names it, promptly and without a panic.
func TestSavedTimeHostile(t *testing.T) {
	tests := []struct {
		name string
		make func(path string) error
		want string
	}{
		{"huge", func(p string) error { return os.WriteFile(p, make([]byte, 1<<20), 0o600) }, "more than 64 bytes"},
		{"garbage", func(p string) error { return os.WriteFile(p, []byte("\xff\x00garbage\n"), 0o600) }, "not one line"},
		{"not a time", func(p string) error { return os.WriteFile(p, []byte("yesterday\n"), 0o600) }, `not an RFC 3339 time: "yesterday"`},
		{"no newline", func(p string) error { return os.WriteFile(p, []byte("2026-11-30T06:01:02Z"), 0o600) }, "not one line"},
		{"two lines", func(p string) error {
			return os.WriteFile(p, []byte("2026-11-30T06:01:02Z\n2027-01-01T00:00:00Z\n"), 0o600)
		}, "not one line"},
		{"empty", func(p string) error { return os.WriteFile(p, nil, 0o600) }, "not one line"},
		{"year 2100", func(p string) error { return os.WriteFile(p, []byte("2100-01-01T00:00:00Z\n"), 0o600) }, "outside 1970-2099"},
		{"year 9999", func(p string) error { return os.WriteFile(p, []byte("9999-12-31T23:59:59Z\n"), 0o600) }, "outside 1970-2099"},
		{"before 1970", func(p string) error { return os.WriteFile(p, []byte("1969-12-31T23:59:59Z\n"), 0o600) }, "outside 1970-2099"},
		{"symlink", func(p string) error {
			good := p + "-elsewhere"
			if err := os.WriteFile(good, []byte("2030-01-01T00:00:00Z\n"), 0o600); err != nil {
				return err
			}
			return os.Symlink(good, p)
		}, "a symlink: not followed"},
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o600) }, "not a regular file"},
		{"directory", func(p string) error { return os.Mkdir(p, 0o700) }, "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, SavedTimeFile)
			if err := tc.make(path); err != nil {
				t.Fatal(err)
			}
			done := make(chan error)
			go func() { _, err := LoadTime(dir); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
					t.Errorf("%v, want %q naming %s", err, tc.want, path)
				}
			case <-time.After(time.Minute): // a hang guard
				t.Fatal("LoadTime hangs")
			}
		})
	}
}

// TestSaveTimeAtomic: a reader never sees a torn or empty file while the
// time is saved over and over.
func TestSaveTimeAtomic(t *testing.T) {
	dir := t.TempDir()
	if err := SaveTime(dir, time.Unix(1e9, 0)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad []error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := LoadTime(dir); err != nil {
				bad = append(bad, err)
				return
			}
		}
	}()
	base := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	for i := 0; i < 300; i++ {
		if err := SaveTime(dir, base.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("a reader saw a partial save: %v", bad[0])
	}
	if got, err := LoadTime(dir); err != nil || !got.Equal(base.Add(299*time.Second)) {
		t.Errorf("last save: %v, %v", got, err)
	}
}

// TestSaveTimeThroughSymlinks: symlinks planted under the file's or the
// temporary file's name are replaced, never written through.
func TestSaveTimeThroughSymlinks(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("keep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{SavedTimeFile, SavedTimeFile + ".tmp"} {
		if err := os.Symlink(victim, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	want := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	if err := SaveTime(dir, want); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(victim); string(data) != "keep me\n" {
		t.Errorf("the symlinks' target was written: %q", data)
	}
	if got, err := LoadTime(dir); err != nil || !got.Equal(want) {
		t.Errorf("loaded %v, %v", got, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, SavedTimeFile+".tmp")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary file left: %v", err)
	}
}
